package e2e

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestTrafficInBrowser: in a real Chromium, an admin watches the live Overview (its own
// page loads, the live stream and its API calls are dashboard requests) while one package
// is downloaded: "today" says exactly one mirror request, live, and the Traffic page ranks
// the package, its repository and the client, at 1280 px and on a 390 px phone without
// anything wider than the screen; the period links lead to the other periods.
func TestTrafficInBrowser(t *testing.T) {
	dir := t.TempDir()
	const pkg = "vim-9.1.0-1-x86_64.pkg.tar.zst"
	root, _ := mirrorWithFile(t, dir, pkg, 200_000)
	cfg := writeConfig(t, dir, root, "")
	if out, code := run(t, strings.NewReader("alice-password-1\n"), nil, "-c", cfg, "user", "add", "--admin", "alice"); code != 0 {
		t.Fatalf("user add: %d\n%s", code, out)
	}
	p, base := serve(t, cfg)
	ctx := browser(t)
	shots := artifacts(t)
	shot := func(name string) chromedp.Action { return screenshot(shots, name) }
	step := func(name string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			var html string
			chromedp.Run(ctx, chromedp.OuterHTML("main", &html, chromedp.ByQuery))
			t.Fatalf("%s: %v\npage:\n%.3000s\ndaemon:\n%s", name, err, html, p.Output())
		}
	}
	step("login", chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(`input[name=name]`, "alice", chromedp.ByQuery),
		chromedp.SendKeys(`input[name=password]`, "alice-password-1", chromedp.ByQuery),
		chromedp.Submit(`input[name=password]`, chromedp.ByQuery),
		chromedp.WaitVisible(`header form button`, chromedp.ByQuery))
	step("live overview", chromedp.Navigate(base+"/"),
		chromedp.Poll(`document.getElementById("live-status").textContent === "live"`, nil, chromedp.WithPollingTimeout(20*time.Second)))

	if code, body := httpGet(t, base+"/archlinux/core/os/x86_64/"+pkg); code != 200 || len(body) != 200_000 {
		t.Fatalf("download: %d, %d bytes", code, len(body))
	}
	// The live figure moves to 1 and stays there while the page keeps streaming.
	var today, dash string
	step("today is one download", chromedp.Poll(`document.querySelector('[data-live="traffic.today_requests"]').textContent === "1 mirror request"`, nil, chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Sleep(2500*time.Millisecond), // more pulses, more dashboard requests
		chromedp.Text(`[data-live="traffic.today_requests"]`, &today, chromedp.ByQuery),
		chromedp.Text(`[data-live="traffic.today_bytes"]`, &dash, chromedp.ByQuery), shot("traffic-01-overview"))
	if today != "1 mirror request" || !strings.Contains(dash, "195") { // 200,000 bytes = 195.3 KiB
		t.Errorf("Overview today: %s, %s; want 1 mirror request and 195.3 KiB", today, dash)
	}
	step("dashboard requests apart", chromedp.Text(`#dashboard-today`, &dash, chromedp.ByQuery))
	if !strings.Contains(dash, "not counted as mirror traffic") || strings.Contains(dash, ": 0 requests") {
		t.Errorf("Overview's dashboard line: %q", dash)
	}

	for _, w := range []struct {
		name          string
		width, height int64
	}{{"1280", 1280, 1000}, {"390", 390, 844}} {
		var pkgs, repos, clients string
		var wide bool
		step("traffic page at "+w.name, chromedp.EmulateViewport(w.width, w.height),
			chromedp.Navigate(base+"/traffic?period=today"),
			chromedp.WaitVisible(`#top-packages`, chromedp.ByQuery),
			chromedp.Text(`#top-packages tbody`, &pkgs, chromedp.ByQuery),
			chromedp.Text(`#top-repos tbody`, &repos, chromedp.ByQuery),
			chromedp.Text(`#top-clients tbody`, &clients, chromedp.ByQuery),
			chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth`, &wide),
			shot("traffic-02-page-"+w.name))
		if !strings.Contains(pkgs, "vim") || !strings.Contains(repos, "core") || !strings.Contains(clients, "127.0.0.1") {
			t.Errorf("%s px: packages %q, repos %q, clients %q", w.name, pkgs, repos, clients)
		}
		if wide {
			t.Errorf("%s px: the Traffic page is wider than the screen", w.name)
		}
	}
	var url, current string
	step("period link", chromedp.Click(`a[href="/traffic?period=365d#rankings"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`b[aria-current="page"]`, chromedp.ByQuery),
		chromedp.Location(&url), chromedp.Text(`b[aria-current="page"]`, &current, chromedp.ByQuery))
	if !strings.Contains(url, "period=365d") || current != "365 days" {
		t.Errorf("after the 365 days link: %s, current %q", url, current)
	}

	// The Overview's "Downloads now": a line while nothing downloads; a download that
	// starts (a client that reads nothing, so it stays in flight) appears live as a row,
	// and when it ends the line is back.
	const big = "big-1.0-1-x86_64.pkg.tar.zst"
	if err := os.WriteFile(filepath.Join(root, "core", "os", "x86_64", big), make([]byte, 32<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	const none = `!document.getElementById("downloads-none").hidden && document.getElementById("downloads-table").hidden`
	step("no downloads", chromedp.EmulateViewport(1280, 1000), chromedp.Navigate(base+"/"),
		chromedp.Poll(`document.getElementById("live-status").textContent === "live"`, nil, chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Poll(none, nil, chromedp.WithPollingTimeout(5*time.Second)))
	c := slowConn(t, strings.TrimPrefix(base, "http://"), 4096)
	if _, err := io.WriteString(c, "GET /archlinux/core/os/x86_64/"+big+" HTTP/1.1\r\nHost: m\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	var row string
	step("a download appears live", chromedp.Poll(`document.querySelectorAll("#downloads tr").length === 1 && document.getElementById("downloads-none").hidden && !document.getElementById("downloads-table").hidden`,
		nil, chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Text(`#downloads`, &row, chromedp.ByQuery), shot("traffic-03-downloading"))
	if !strings.Contains(row, big) || !strings.Contains(row, "127.0.0.1") {
		t.Errorf("the live download row: %q", row)
	}
	c.Close()
	step("and goes", chromedp.Poll(none, nil, chromedp.WithPollingTimeout(20*time.Second)), shot("traffic-04-downloads-done"))
}
