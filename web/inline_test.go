package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/internal/archtest"
)

var (
	tagRe  = regexp.MustCompile(`(?s)<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'>]+))?)*)\s*/?>`)
	attrRe = regexp.MustCompile(`([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?`)
)

// inlineCode lists what in page would need the CSP to allow inline code: a <script>
// without src (a type="application/json" data block is data, not code), an on*= event
// handler, a javascript: URL, and, when csp does not allow inline styles, a style
// attribute or element.
func inlineCode(page, csp string) []string {
	inlineStyle := false
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 && (f[0] == "style-src" || f[0] == "style-src-attr") && strings.Contains(d, "'unsafe-inline'") {
			inlineStyle = true
		}
	}
	var bad []string
	for _, m := range tagRe.FindAllStringSubmatch(page, -1) {
		tag := strings.ToLower(m[1])
		attrs := map[string]string{}
		for _, a := range attrRe.FindAllStringSubmatch(m[2], -1) {
			name := strings.ToLower(a[1])
			val := a[2] + a[3] + a[4]
			attrs[name] = val
			switch {
			case strings.HasPrefix(name, "on"):
				bad = append(bad, "event handler "+name+"= on <"+tag+">")
			case strings.HasPrefix(strings.ToLower(strings.TrimSpace(val)), "javascript:"):
				bad = append(bad, "javascript: URL in "+name+"= on <"+tag+">")
			case name == "style" && !inlineStyle:
				bad = append(bad, "style= on <"+tag+"> (the CSP forbids inline styles)")
			}
		}
		if tag == "script" {
			if _, src := attrs["src"]; !src && attrs["type"] != "application/json" {
				bad = append(bad, "inline <script>"+m[2]+">")
			}
		}
		if tag == "style" && !inlineStyle {
			bad = append(bad, "<style> element (the CSP forbids inline styles)")
		}
	}
	return bad
}

// TestInlineCodeDetector: the checker below finds what it must.
func TestInlineCodeDetector(t *testing.T) {
	const strict, loose = "default-src 'self'", "default-src 'self'; style-src 'self' 'unsafe-inline'"
	for _, c := range []struct {
		html, csp string
		bad       bool
	}{
		{`<script src="/static/app.js" defer></script>`, strict, false},
		{`<script type="application/json" id="d">{"a":1}</script>`, strict, false},
		{`<script>alert(1)</script>`, strict, true},
		{"<SCRIPT\ntype=module>x()</SCRIPT>", strict, true},
		{`<button onclick="x()">`, strict, true},
		{`<body ONLOAD=x()>`, strict, true},
		{`<a href=" JavaScript:x()">`, strict, true},
		{`<form action='javascript:x()'>`, strict, true},
		{`<div style="width:1px">`, strict, true},
		{`<div style="width:1px">`, loose, false},
		{`<style>p{}</style>`, strict, true},
		{`<a href="/one" data-on="x" class="on">`, strict, false},
	} {
		if got := inlineCode(c.html, c.csp); (len(got) > 0) != c.bad {
			t.Errorf("%q under %q: %v, want bad=%v", c.html, c.csp, got, c.bad)
		}
	}
}

// TestNoInlineCode renders every dashboard page (each GET route of the route table, and
// the pages forms answer with) as an administrator, a viewer, a visitor and before the
// first account exists, and the mirror's directory index, and fails on anything that
// needs inline code: <script> without src, on*= handlers, javascript: URLs, and style=
// where the page's CSP (the header it is served with) forbids inline styles.
func TestNoInlineCode(t *testing.T) {
	o, _ := dashboardOptions(t)
	svc := o.Search.(*search.Service)
	archtest.BuildTree(t, svc.Root, archtest.Repo{Name: "core", Pkgs: []archtest.Pkg{
		{Name: "glibc", Version: "2.40-1", Desc: "GNU C Library", URL: "https://gnu.org/glibc", Groups: []string{"base"}},
		{Name: "bash", Version: "5.2-1", Desc: "The GNU Bourne Again shell", Provides: []string{"sh"}, Depends: []string{"glibc>=2.38", "nowhere"},
			OptDepends: []string{"glibc: for fun"}, Conflicts: []string{"ksh"}, Replaces: []string{"oldbash"}},
	}})
	if _, err := svc.Load(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(o))
	defer srv.Close()

	// Every page template must be reached by one of the URLs below.
	urls := map[string]string{ // template → a URL that renders it
		"overview": "/", "sync": "/sync", "search": "/search?q=bash", "package": "/packages/core/bash",
		"traffic": "/traffic", "bench": "/bench", "settings": "/settings", "users": "/users", "login": "/login",
	}
	names, _ := fs.Glob(templateFS, "templates/*.html")
	for _, n := range names {
		n = strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if _, ok := urls[n]; !ok && n != "layout" {
			t.Errorf("template %s.html is not rendered by this test: add a URL for it", n)
		}
	}
	paths := map[string]bool{"/search": true, "/register": true, "/archlinux/": true, "/archlinux/core/os/x86_64/": true, "/packages/core/nope": true}
	for _, u := range urls {
		paths[u] = true
	}
	// Every GET route of the table that answers a page.
	u := newUI(o, NewActive())
	for _, rt := range u.table() {
		method, p, _ := strings.Cut(rt.pattern, " ")
		if method != "GET" || strings.HasPrefix(p, "/static/") || strings.HasPrefix(p, "/api/") || p == "/events" || p == "/favicon.ico" {
			continue
		}
		p = strings.TrimSuffix(strings.NewReplacer("{repo}", "core", "{name}", "glibc").Replace(p), "{$}")
		paths[p] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)

	checked := 0
	check := func(who string, c *http.Client, method, p string, form url.Values) {
		t.Helper()
		var resp *http.Response
		if method == "POST" {
			resp = postForm(t, c, srv.URL+p, form)
		} else {
			var err error
			if resp, err = c.Get(srv.URL + p); err != nil {
				t.Fatal(err)
			}
		}
		defer resp.Body.Close()
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || resp.StatusCode >= 300 && resp.StatusCode < 400 {
			return // a redirect (to the login page, say) or not a page
		}
		var b strings.Builder
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		checked++
		csp := resp.Header.Get("Content-Security-Policy")
		if csp == "" {
			t.Errorf("%s %s %s as %s: no Content-Security-Policy", method, p, resp.Status, who)
		}
		for _, bad := range inlineCode(b.String(), csp) {
			t.Errorf("%s %s as %s: %s", method, p, who, bad)
		}
	}

	// Before the first account: the setup state.
	for _, p := range sorted {
		check("nobody yet", client(t), "GET", p, nil)
	}
	cs := roleClients(t, srv, o)
	for _, who := range []string{"admin", "viewer", "visitor"} {
		for _, p := range sorted {
			check(who, cs[who], "GET", p, nil)
		}
	}
	// Pages that forms answer with.
	check("visitor", client(t), "POST", "/login", url.Values{"name": {"admin"}, "password": {"wrong password"}})
	csrf := csrfOf(t, cs["admin"], srv.URL+"/settings")
	check("admin", cs["admin"], "POST", "/settings", url.Values{"csrf": {csrf}, "sync.interval": {"soon"}})
	check("admin", cs["admin"], "POST", "/sync/cancel", url.Values{"csrf": {csrf}})
	check("admin", cs["admin"], "POST", "/users", url.Values{"csrf": {csrf}, "name": {"Bad Name"}, "password": {"short"}})
	check("viewer", cs["viewer"], "POST", "/account/password", url.Values{"csrf": {csrfOf(t, cs["viewer"], srv.URL+"/users")}, "old": {"wrong"}, "new": {"x"}})
	if checked < 4*len(urls) {
		t.Errorf("only %d pages checked", checked)
	}
	t.Logf("%d pages checked over %d paths", checked, len(sorted))
}
