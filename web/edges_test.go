package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/hw"
)

// fakeMachine is a MachineService with a fixed snapshot.
type fakeMachine struct{ snap hw.Snapshot }

func (f *fakeMachine) Latest() hw.Snapshot    { return f.snap }
func (f *fakeMachine) History() []hw.Snapshot { return []hw.Snapshot{f.snap} }

var _ MachineService = (*fakeMachine)(nil)

// TestOneTemperatureLine: the System card has exactly one temperature line: the value
// when a sensor exists, "no sensor" when the reader found none (not also "temp:
// unavailable" beside a dash); other failed sources are still named.
func TestOneTemperatureLine(t *testing.T) {
	c := 47.5
	for _, tt := range []struct {
		name string
		snap hw.Snapshot
		want string
	}{
		{"sensor", hw.Snapshot{Time: time.Now(), TempC: &c, Errors: map[string]string{"board": "x"}}, "47.5 °C"},
		{"no sensor", hw.Snapshot{Time: time.Now(), Errors: map[string]string{"temp": "no thermal zone in /sys/class/thermal", "board": "x"}}, "no sensor"},
		{"not read yet", hw.Snapshot{}, "–"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, _ := dashboardOptions(t)
			o.Machine = &fakeMachine{snap: tt.snap}
			srv := httptest.NewServer(NewHandler(o))
			defer srv.Close()
			_, page := getBody(t, client(t), srv.URL+"/")
			card := page[strings.Index(page, "<h3>System</h3>"):]
			card = card[:strings.Index(card, "</div>\n</div>")]
			if n := strings.Count(card, "temperature") + strings.Count(card, "temp:"); n != 1 {
				t.Errorf("the System card mentions temperature %d times, want once:\n%s", n, card)
			}
			if !strings.Contains(card, "temperature ") || !strings.Contains(card, tt.want) {
				t.Errorf("System card lacks %q:\n%s", tt.want, card)
			}
			if tt.snap.Errors["board"] != "" && !strings.Contains(card, "board: unavailable") {
				t.Errorf("another failed source is no longer named:\n%s", card)
			}
		})
	}
}

// TestBinaryUnitsOnly: the dashboard's templates and scripts print sizes and rates only
// in binary units (units.Bytes, fmtBytes in app.js): no kB, MB/s or GB beside KiB/s.
func TestBinaryUnitsOnly(t *testing.T) {
	si := regexp.MustCompile(`\b\d*\s*[kKMGT]B(/s)?\b|"[kKMGT]B"`)
	for _, fsys := range []fs.FS{templateFS, staticFS} {
		fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, _ := fs.ReadFile(fsys, p)
			for i, line := range strings.Split(string(b), "\n") {
				if m := si.FindString(line); m != "" {
					t.Errorf("%s:%d: SI unit %q: use binary units (units.Bytes, fmtBytes)", p, i+1, m)
				}
			}
			return nil
		})
	}
}

// roleClients registers an admin and a viewer on srv and returns a client for each role:
// "admin", "viewer", and "visitor" (no session).
func roleClients(t *testing.T, srv *httptest.Server, o Options) map[string]*http.Client {
	t.Helper()
	admin := client(t)
	if resp := registerAdmin(t, srv, admin); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("register admin: %d", resp.StatusCode)
	}
	if _, err := o.Auth.Create("viewer", "a long password", false); err != nil {
		t.Fatal(err)
	}
	viewer := client(t)
	if resp := postForm(t, viewer, srv.URL+"/login", url.Values{"name": {"viewer"}, "password": {"a long password"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("log in viewer: %d", resp.StatusCode)
	}
	return map[string]*http.Client{"admin": admin, "viewer": viewer, "visitor": client(t)}
}

// TestEmptyStatesSayWhatToDo: an empty Packages page says why (no package databases yet,
// the first sync fetches them) instead of "0 packages"; an administrator gets links to
// act (the benchmark and settings while no upstream is set, the sync page once one is), a
// viewer or visitor an explanation without them; the sync page with no runs, the
// traffic page with no downloads and the benchmark page with no results say the same
// kind of thing.
func TestEmptyStatesSayWhatToDo(t *testing.T) {
	var srv *httptest.Server
	var cs map[string]*http.Client
	start := func(upstream string) {
		o, _ := dashboardOptions(t)
		o.Settings.(*fakeSettings).cfg.Sync.Upstream = upstream
		srv = httptest.NewServer(NewHandler(o))
		t.Cleanup(srv.Close)
		cs = roleClients(t, srv, o)
	}
	start("")
	empty := func(page string) string {
		i := strings.Index(page, `<div class="card empty"`)
		if i < 0 {
			return ""
		}
		e := page[i:]
		return e[:strings.Index(e, "</div>")]
	}
	check := func(who, path string, want, not []string) {
		t.Helper()
		status, page := getBody(t, cs[who], srv.URL+path)
		if status != 200 {
			t.Fatalf("%s GET %s: %d", who, path, status)
		}
		e := empty(page)
		if e == "" {
			t.Errorf("%s GET %s: no empty state:\n%.2000s", who, path, page)
			return
		}
		for _, w := range want {
			if !strings.Contains(e, w) {
				t.Errorf("%s GET %s: empty state lacks %q:\n%s", who, path, w, e)
			}
		}
		for _, n := range not {
			if strings.Contains(e, n) {
				t.Errorf("%s GET %s: empty state has %q, not for this reader:\n%s", who, path, n, e)
			}
		}
	}
	admin := []string{`href="/bench"`, `href="/settings"`}
	// No upstream yet.
	check("admin", "/search", append([]string{"No package databases yet", "Run the benchmark to pick an upstream"}, admin...), nil)
	check("admin", "/search?q=bash", []string{"No package databases yet"}, nil)
	check("viewer", "/search", []string{"No package databases yet", "an administrator picks one"}, admin)
	check("visitor", "/search", []string{"No package databases yet", `href="/login"`}, admin)
	check("admin", "/sync", append([]string{"No sync has run yet", "No upstream mirror is set yet"}, admin...), nil)
	check("viewer", "/sync", []string{"No sync has run yet", "an administrator picks one first"}, admin)
	check("visitor", "/sync", []string{"No sync has run yet"}, admin)
	check("viewer", "/traffic", []string{"No downloads yet", "Server line", `href="/#use"`}, nil)
	check("admin", "/traffic", []string{"No downloads yet"}, nil)
	check("admin", "/bench", []string{"No benchmark has run yet", "press Measure", "Use as upstream", `href="/settings"`}, nil)
	check("viewer", "/bench", []string{"No benchmark has run yet", "An administrator runs it"}, []string{"press Measure", `href="/settings"`})

	// An upstream is set: the admin is sent to start the first sync.
	start("rsync://mirror.example/archlinux/")
	check("admin", "/search", []string{"No package databases yet", "The first sync fetches them", `href="/sync"`, "Start the first sync"}, admin)
	check("viewer", "/search", []string{"An administrator starts it, or it runs on schedule"}, admin)
	check("admin", "/sync", []string{"Press Sync now"}, admin)
	check("admin", "/bench", []string{"compare its mirrors with the upstream in use"}, nil)
	if _, page := getBody(t, cs["admin"], srv.URL+"/search"); strings.Contains(page, "0 packages") {
		t.Errorf("the empty Packages page still says 0 packages")
	}
}

// TestFavicon: /favicon.ico answers with the SVG icon, typed and cacheable; the
// dashboard's pages and the mirror index link it.
func TestFavicon(t *testing.T) {
	o, _ := dashboardOptions(t)
	srv := httptest.NewServer(NewHandler(o))
	defer srv.Close()
	for _, p := range []string{"/favicon.ico", "/static/favicon.svg"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml" ||
			!strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") || !strings.HasPrefix(string(b), "<svg ") {
			t.Errorf("GET %s: %d %q %q %.40q", p, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), b)
		}
		if len(b) > 1024 {
			t.Errorf("the favicon is %d bytes: keep it small", len(b))
		}
	}
	link := `<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">`
	for _, p := range []string{"/", "/search", "/register", "/archlinux/"} {
		if _, page := getBody(t, client(t), srv.URL+p); !strings.Contains(page, link) {
			t.Errorf("GET %s does not link the favicon", p)
		}
	}
}

// TestMirrorIndexNavigation: the mirror's directory index has the dashboard's header
// (brand link home, the main links) and a breadcrumb whose steps link each folder up the
// path, the folder shown last and unlinked; its CSP still runs no script.
func TestMirrorIndexNavigation(t *testing.T) {
	o, _ := dashboardOptions(t)
	os.MkdirAll(filepath.Join(o.MirrorRoot.Name(), "core", "os", "x86_64"), 0o755)
	os.WriteFile(filepath.Join(o.MirrorRoot.Name(), "core", "os", "x86_64", "a-very-long-package-name-that-must-wrap-on-a-phone-1.2.3-1-x86_64.pkg.tar.zst"), []byte("x"), 0o644)
	srv := httptest.NewServer(NewHandler(o))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/archlinux/core/os/x86_64/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	for _, want := range []string{
		`<a class="brand" href="/">AMWI</a>`, `<a href="/search">Packages</a>`,
		`<a href="/archlinux/">archlinux</a><span class="sep">/</span><a href="/archlinux/core/">core</a><span class="sep">/</span><a href="/archlinux/core/os/">os</a><span class="sep">/</span><span aria-current="page">x86_64</span>`,
		`<td class="name"><a href="./a-very-long-package-name`, "overflow-wrap:anywhere", "@media (max-width:40rem)",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("index lacks %s:\n%s", want, page)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") || strings.Contains(csp, "script-src") {
		t.Errorf("mirror CSP %q", csp)
	}
	if got := crumbs("/archlinux/", "."); len(got) != 1 || got[0] != (crumb{"archlinux", ""}) {
		t.Errorf("root crumbs %+v", got)
	}
	if got := crumbs("/archlinux/", "a b/c"); len(got) != 3 || got[1].Href != "/archlinux/a%20b/" || got[2].Href != "" {
		t.Errorf("escaped crumbs %+v", got)
	}
}

// TestNoDownloadsSaysSo: with nothing downloading, the Overview's "Downloads now" says so
// in a line instead of showing an empty table; the table stays in the page, hidden, for
// the live stream (app.js) to fill and show when a download starts.
func TestNoDownloadsSaysSo(t *testing.T) {
	o, _ := dashboardOptions(t)
	srv := httptest.NewServer(NewHandler(o))
	defer srv.Close()
	cs := roleClients(t, srv, o)
	for _, who := range []string{"admin", "viewer"} {
		_, page := getBody(t, cs[who], srv.URL+"/")
		for _, want := range []string{`id="downloads-none"`, "Nothing is being downloaded", `<div class="scroll" id="downloads-table" hidden>`, `<tbody id="downloads"></tbody>`} {
			if !strings.Contains(page, want) {
				t.Errorf("%s: the Overview lacks %s", who, want)
			}
		}
		if strings.Contains(page, `id="downloads-none" hidden`) {
			t.Errorf("%s: the no-downloads line is hidden with nothing downloading", who)
		}
	}
}
