package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// trafficAnswer is what GET /api/traffic answers (the parts this test reads).
type trafficAnswer struct {
	Period string `json:"period"`
	Mirror struct {
		Bytes    int64 `json:"bytes"`
		Requests int64 `json:"requests"`
	} `json:"mirror"`
	Dashboard struct {
		Requests int64 `json:"requests"`
	} `json:"dashboard_today"`
	Clients  []clientRow `json:"clients"`
	Packages []topRow    `json:"packages"`
	Repos    []topRow    `json:"repos"`
	Errors   []string    `json:"errors"`
}

type topRow struct {
	Key      string `json:"key"`
	Bytes    int64  `json:"bytes"`
	Requests int64  `json:"requests"`
}

type clientRow struct {
	topRow
	Name string `json:"name"`
}

// TestTrafficCountsOnlyMirrorDownloads: a logged-in admin browses every dashboard page and
// calls the APIs many times, and one package is downloaded from the mirror. The mirror's
// statistics (the period's total, the top clients, packages and repositories, "today" on
// the Overview) hold exactly that one download, its bytes and one request, before and
// after a restart; the dashboard's requests are counted apart.
func TestTrafficCountsOnlyMirrorDownloads(t *testing.T) {
	dir := t.TempDir()
	const pkg = "vim-9.1.0-1-x86_64.pkg.tar.zst"
	const size = 123_457
	root, _ := mirrorWithFile(t, dir, pkg, size)
	cfg := writeConfig(t, dir, root, "")
	if out, code := run(t, strings.NewReader("alice-password-1\n"), nil, "-c", cfg, "user", "add", "--admin", "alice"); code != 0 {
		t.Fatalf("user add: %d\n%s", code, out)
	}
	p, base := serve(t, cfg)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	resp, err := c.PostForm(base+"/login", url.Values{"name": {"alice"}, "password": {"alice-password-1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	api := func(query string) trafficAnswer {
		t.Helper()
		code, body := get("/api/traffic" + query)
		if code != 200 {
			t.Fatalf("/api/traffic%s: %d %s", query, code, body)
		}
		var a trafficAnswer
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			t.Fatalf("/api/traffic%s: %v\n%s", query, err, body)
		}
		if len(a.Errors) > 0 {
			t.Errorf("/api/traffic%s: errors %v", query, a.Errors)
		}
		return a
	}
	browse := func() {
		t.Helper()
		for range 5 {
			for _, path := range []string{"/", "/traffic", "/traffic?period=7d", "/sync", "/search?q=vim", "/settings", "/users",
				"/api/traffic", "/api/traffic?period=365d", "/api/sync", "/api/search?q=vim", "/api/stats/history",
				"/healthz", "/metrics", "/static/app.js", "/login", "/nowhere", "/archlinux/", "/archlinux/core/os/x86_64/"} {
				if code, body := get(path); code >= 500 {
					t.Fatalf("GET %s: %d %s", path, code, body)
				}
			}
		}
	}
	browse()
	if a := api("?period=today"); a.Mirror.Bytes != 0 || a.Mirror.Requests != 0 || len(a.Clients) != 0 || len(a.Packages) != 0 || len(a.Repos) != 0 {
		t.Fatalf("before any download, the mirror's statistics say %+v", a)
	} else if a.Dashboard.Requests < 80 {
		t.Errorf("dashboard requests today: %d, want the ~85 just made", a.Dashboard.Requests)
	}

	// One download, read whole.
	code, body := get("/archlinux/core/os/x86_64/" + pkg)
	if code != 200 || len(body) != size {
		t.Fatalf("download: %d, %d bytes", code, len(body))
	}
	browse()

	want := func(stage string, a trafficAnswer) {
		t.Helper()
		if a.Mirror.Bytes != size || a.Mirror.Requests != 1 {
			t.Errorf("%s: mirror %d bytes in %d requests, want %d in 1", stage, a.Mirror.Bytes, a.Mirror.Requests, size)
		}
		one := func(what string, rows []topRow, key string) {
			if len(rows) != 1 || rows[0] != (topRow{Key: key, Bytes: size, Requests: 1}) {
				t.Errorf("%s: %s = %+v, want only %s with %d bytes in 1 request", stage, what, rows, key, size)
			}
		}
		var clients []topRow
		for _, c := range a.Clients {
			clients = append(clients, c.topRow)
		}
		one("clients", clients, "127.0.0.1")
		one("packages", a.Packages, "vim")
		one("repos", a.Repos, "core")
	}
	for _, period := range []string{"?period=today", "?period=7d", "", "?period=90d", "?period=365d"} {
		want("period "+period, api(period))
	}
	if _, html := get("/"); !strings.Contains(html, `data-noun="mirror request">1 mirror request</span>`) {
		t.Errorf("the Overview does not say 1 mirror request today:\n%s", excerpt(html, "mirror request"))
	}
	if _, html := get("/traffic?period=today"); !strings.Contains(html, `id="top-packages"`) || !strings.Contains(html, "<td>vim</td>") || !strings.Contains(html, "<td>core</td>") {
		t.Errorf("the Traffic page does not rank vim and core:\n%s", excerpt(html, "top-packages"))
	}

	// The client gets its name by reverse DNS (the resolver reads /etc/hosts first, so no
	// DNS server is asked), looked up in the background: the first answers may still show
	// the address alone.
	name := ""
	for i := 0; name == "" && i < 200; i++ {
		if a := api("?period=today"); len(a.Clients) == 1 {
			name = a.Clients[0].Name
		}
		if name == "" {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if name != "localhost" {
		t.Errorf("reverse DNS name of 127.0.0.1: %q, want localhost (from /etc/hosts)", name)
	}
	if _, html := get("/traffic?period=today"); !strings.Contains(html, `<td>localhost <small class="muted">127.0.0.1</small></td>`) {
		t.Errorf("the Traffic page does not name the client:\n%s", excerpt(html, "top-clients"))
	}

	// A bad period is refused, saying which are accepted; the page says so and shows the default.
	if code, body := get("/api/traffic?period=forever"); code != 400 || !strings.Contains(body, "today, 7d, 30d, 90d, 365d") {
		t.Errorf("bad period on the API: %d %s", code, body)
	}
	if code, body := get("/traffic?period=forever"); code != 400 || !strings.Contains(body, `unknown period`) || !strings.Contains(body, "showing 30 days") {
		t.Errorf("bad period on the page: %d %s", code, excerpt(body, "period"))
	}
	// Anonymous: the API wants a login, as the Traffic page does, and says so with a 401
	// (the page sends the browser to the login form).
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noFollow.Get(base + "/api/traffic"); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous /api/traffic: %d, want 401", resp.StatusCode)
	}
	if resp, err := noFollow.Get(base + "/traffic"); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("anonymous /traffic: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// After a restart the stored statistics still hold exactly the one download: the
	// dashboard's requests were never written. With traffic.reverse_dns off, no name.
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, 30*time.Second)
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n[traffic]\nreverse_dns = false\n")
	f.Close()
	_, base = serve(t, cfg)
	resp, err = c.PostForm(base+"/login", url.Values{"name": {"alice"}, "password": {"alice-password-1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	a := api("?period=today")
	want("after restart", a)
	time.Sleep(200 * time.Millisecond) // a lookup, were one started, would have answered from /etc/hosts by now
	if a = api("?period=today"); len(a.Clients) != 1 || a.Clients[0].Name != "" {
		t.Errorf("reverse_dns = false: clients %+v, want no name", a.Clients)
	}
}

// excerpt is up to 400 bytes of s around the first sub, for failure messages.
func excerpt(s, sub string) string {
	i := max(strings.Index(s, sub)-200, 0)
	return s[i:min(i+400, len(s))]
}
