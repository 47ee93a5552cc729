package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// artifacts is where the browser test leaves its screenshots (AMWI_ARTIFACTS, else
// e2e/artifacts/, which git ignores), to be looked at by a person.
func artifacts(t *testing.T) string {
	dir := os.Getenv("AMWI_ARTIFACTS")
	if dir == "" {
		dir, _ = filepath.Abs("artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts Debian's headless Chromium, as DESIGN.md says, with a fresh profile.
func browser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found: install Debian package chromium (make test-deps does)")
	}
	// Chromium's helpers may still write the profile for a moment after it was told to
	// quit: the folder is removed with retries, not by t.TempDir's single attempt.
	profile, err := os.MkdirTemp("", "amwi-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 1000),
	}
	opts = append(opts, extra...)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	// The pinned cdproto predates some events of Debian's Chromium; its complaints are noise.
	ctx, cancel2 := chromedp.NewContext(actx, chromedp.WithErrorf(func(string, ...any) {}))
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel3)
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// Every page must run under its Content-Security-Policy: a violation, a script
	// exception or any console error fails the test when it ends.
	var mu sync.Mutex
	var problems []string
	chromedp.ListenTarget(ctx, func(ev any) {
		var p string
		switch e := ev.(type) {
		case *cdplog.EventEntryAdded:
			// A page answered with its own 4xx (a form with a mistake is a 400, by design)
			// is not an error of the page; a static file that does not load is.
			loadFail := strings.HasPrefix(e.Entry.Text, "Failed to load resource") && !strings.Contains(e.Entry.URL, "/static/")
			if e.Entry.Level == cdplog.LevelError && !loadFail {
				p = "console: " + e.Entry.Text + " (" + e.Entry.URL + ")"
			}
		case *runtime.EventExceptionThrown:
			p = "exception: " + e.ExceptionDetails.Error()
		}
		if p != "" {
			mu.Lock()
			problems = append(problems, p)
			mu.Unlock()
		}
	})
	if err := chromedp.Run(ctx, cdplog.Enable()); err != nil {
		t.Fatalf("enable the console log: %v", err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("in the browser: %s", p)
		}
	})
	return ctx
}

// TestDashboardInBrowser: a new user's first session, in a real Chromium against the real
// binary and a local rsync upstream: register the admin, watch live numbers, start a sync
// and see it succeed, search a package and open it, change a setting, log out.
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	_, rd := syncUpstream(t)
	dir := t.TempDir()
	cfg := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "enabled = false")
	p, base := serve(t, cfg)
	ctx := browser(t)
	shots := artifacts(t)
	shot := func(name string) chromedp.Action { return screenshot(shots, name) }
	run := func(step string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			var html string
			chromedp.Run(ctx, chromedp.OuterHTML("main", &html, chromedp.ByQuery))
			t.Fatalf("%s: %v\npage:\n%.3000s\ndaemon:\n%s", step, err, html, p.Output())
		}
	}
	var text string

	// First visit: no account yet, the page offers to create the admin.
	run("open overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(`a[href="/register"]`, chromedp.ByQuery), shot("01-first-visit"))
	// The owner reads the setup code in the daemon's log.
	run("register", registerForm(t, base, p), shot("02-register"), registered,
		chromedp.Text(`header`, &text, chromedp.ByQuery))
	if !strings.Contains(text, "admin") || !strings.Contains(text, "Settings") {
		t.Fatalf("after registering, the header shows %q", text)
	}

	// Live numbers: the stream connects and the CPU figure is filled in.
	run("live overview", chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(`#live-status`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("live-status").textContent === "live"`, nil, chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Poll(`/%$/.test(document.querySelector('[data-live="machine.cpu.total"]').textContent)`, nil, chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Sleep(2*time.Second), shot("03-overview"))

	// A sync from the dashboard, to success.
	// A marker on the old document tells when the form's POST and redirect are done.
	run("sync", chromedp.Navigate(base+"/sync"), chromedp.Evaluate(`window.oldPage = true`, nil),
		chromedp.Click(`form[action="/sync/start"] button`, chromedp.ByQuery))
	for i := 0; ; i++ {
		var fresh bool
		err := chromedp.Run(ctx, chromedp.Evaluate(`!window.oldPage && document.readyState === "complete"`, &fresh))
		if err == nil && fresh {
			break
		}
		if i > 200 {
			t.Fatalf("the sync form's POST never completed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		// The form's own navigation may still be settling: a reload it aborts is retried.
		err := chromedp.Run(ctx, chromedp.Navigate(base+"/sync"), chromedp.Text(`table tbody`, &text, chromedp.ByQuery))
		if err == nil && strings.Contains(text, "success") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no successful sync in the history:\n%s\n%s", text, p.Output())
		}
		time.Sleep(500 * time.Millisecond)
	}
	run("sync page", shot("04-sync"))

	// Search and the package page.
	run("search", chromedp.Navigate(base+"/search"), chromedp.SendKeys(`input[name=q]`, "bash", chromedp.ByQuery),
		chromedp.Submit(`input[name=q]`, chromedp.ByQuery), chromedp.WaitVisible(`a[href="/packages/core/bash"]`, chromedp.ByQuery), shot("05-search"),
		chromedp.Click(`a[href="/packages/core/bash"]`, chromedp.ByQuery), chromedp.WaitVisible(`h1`, chromedp.ByQuery),
		chromedp.Text(`main`, &text, chromedp.ByQuery), shot("06-package"))
	if !strings.Contains(text, "5.2.037-1") || !strings.Contains(text, "Required by") || !strings.Contains(text, "hello") {
		t.Errorf("package page:\n%s", text)
	}

	// A setting, saved and shown again; a bad value is refused with a message by the field.
	run("settings bad", chromedp.Navigate(base+"/settings"), chromedp.SetValue(`input[name="sync.interval"]`, "soon", chromedp.ByQuery),
		chromedp.Submit(`input[name="sync.interval"]`, chromedp.ByQuery), chromedp.WaitVisible(`.err`, chromedp.ByQuery),
		chromedp.Text(`main`, &text, chromedp.ByQuery), shot("07-settings-error"))
	if !strings.Contains(text, `"soon" is not a duration`) || !strings.Contains(text, "Nothing was changed") {
		t.Errorf("settings with a bad interval:\n%s", text)
	}
	run("settings good", chromedp.Navigate(base+"/settings"), chromedp.SetValue(`input[name="search.per_page"]`, "7", chromedp.ByQuery),
		chromedp.Submit(`input[name="search.per_page"]`, chromedp.ByQuery), chromedp.WaitVisible(`p.flash`, chromedp.ByQuery),
		chromedp.Text(`main`, &text, chromedp.ByQuery), shot("08-settings-saved"))
	if !strings.Contains(text, "Settings saved") {
		t.Errorf("settings save:\n%s", text)
	}
	// amwi.toml is the admin's and stays as it was; the change is in the state dir, and the
	// page says where the value comes from now.
	before, _ := os.ReadFile(cfg)
	if b, _ := os.ReadFile(filepath.Join(dir, "state", "settings.toml")); !strings.Contains(string(b), "per_page = 7") {
		t.Errorf("settings.toml after saving:\n%s", b)
	}
	if !strings.Contains(text, "settings.toml") {
		t.Errorf("the settings page does not say where values come from:\n%s", text)
	}
	if after, _ := os.ReadFile(cfg); string(after) != string(before) || strings.Contains(string(after), "per_page") {
		t.Errorf("amwi.toml was rewritten:\n%s", after)
	}
	run("traffic", chromedp.Navigate(base+"/traffic"), chromedp.WaitVisible(`h1`, chromedp.ByQuery), shot("09-traffic"))
	run("users", chromedp.Navigate(base+"/users"), chromedp.WaitVisible(`h1`, chromedp.ByQuery), shot("10-users"))

	// Log out: admin pages send the browser to the login page again.
	run("logout", chromedp.Click(`header form button`, chromedp.ByQuery), chromedp.WaitVisible(`a[href="/login"]`, chromedp.ByQuery),
		chromedp.Navigate(base+"/settings"), chromedp.WaitVisible(`input[name=password]`, chromedp.ByQuery), shot("11-logged-out"))
}

// screenshot saves the whole page as DIR/NAME.png (quality 100 makes chromedp capture PNG).
// registerForm fills the first-run form as the owner does: the setup code from the
// daemon's log, then admin / "correct horse battery".
func registerForm(t *testing.T, base string, p *proc) chromedp.Tasks {
	return chromedp.Tasks{chromedp.Navigate(base + "/register"),
		chromedp.SendKeys(`input[name=setup_code]`, setupCode(t, p), chromedp.ByQuery),
		chromedp.SendKeys(`input[name=name]`, "admin", chromedp.ByQuery),
		chromedp.SendKeys(`input[name=password]`, "correct horse battery", chromedp.ByQuery),
		chromedp.SendKeys(`input[name=password2]`, "correct horse battery", chromedp.ByQuery)}
}

// registered sends the filled form and waits for the logged-in header.
var registered = chromedp.Tasks{chromedp.Submit(`input[name=password2]`, chromedp.ByQuery),
	chromedp.WaitVisible(`header form button`, chromedp.ByQuery)}

func screenshot(dir, name string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var buf []byte
		if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644)
	})
}
