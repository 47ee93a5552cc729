package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// overflowJS lists the elements that reach past the viewport's right edge, outside any
// scrolling box (a wide table inside .scroll is fine: it scrolls in its box), as
// "tag#id.class (right edge px)", the outermost first. Empty when nothing is wider.
const overflowJS = `(() => {
  const vw = document.documentElement.clientWidth, out = [];
  const scrolls = (el) => { for (let p = el.parentElement; p; p = p.parentElement) {
    const s = getComputedStyle(p); if (/(auto|scroll|hidden)/.test(s.overflowX)) return true; } return false; };
  for (const el of document.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.right <= vw + 1 || scrolls(el)) continue;
    out.push({el, d: el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "") + " (right " + Math.round(r.right) + " px, viewport " + vw + ")"});
  }
  // The innermost offenders are what to fix: an element none of whose children reaches
  // as far.
  const inner = out.filter((o) => ![...o.el.children].some((c) => c.getBoundingClientRect().right >= o.el.getBoundingClientRect().right - 1));
  const list = (inner.length ? inner : out).slice(0, 5).map((o) => o.d);
  if (document.documentElement.scrollWidth > vw + 1 && list.length === 0) list.push("the page scrolls sideways: scrollWidth " + document.documentElement.scrollWidth + " > " + vw);
  return list;
})()`

// fitsJS checks a box that must fit the viewport even though it is a scrolling box (the
// sync history: its facts matter most on a phone) and lists what does not: the box
// scrolling sideways, too few rows, or one of the facts (the cells matching the second
// argument) hidden or cut off.
const fitsJS = `((sel, facts, rows) => {
  const vw = document.documentElement.clientWidth, out = [], box = document.querySelector(sel);
  if (!box) return [sel + " is missing"];
  if (box.scrollWidth > box.clientWidth + 1) out.push(sel + " scrolls sideways: " + box.scrollWidth + " px in " + box.clientWidth);
  const trs = box.querySelectorAll("tbody tr");
  if (trs.length < rows) out.push(sel + " has " + trs.length + " rows, want " + rows);
  for (const tr of trs) for (const f of facts.split(",")) {
    const td = tr.querySelector(f), r = td && td.getBoundingClientRect();
    if (!td || r.width === 0 || r.left < -1 || r.right > vw + 1) out.push(sel + " row " + (tr.rowIndex) + ": " + f + (td ? " at " + Math.round(r.left) + "–" + Math.round(r.right) + " px" : " missing"));
  }
  return out;
})`

// TestEveryPageInBrowser sweeps every dashboard page and the mirror index in real
// headless Chromium, at 1280 px and at 390 px (a phone, as a mobile viewport): each must
// load without console errors or CSP violations (browser fails the test on any), and no
// element may reach past the viewport outside a scrolling box (the test names the
// element). Screenshots go to e2e/artifacts/page-NAME-WIDTH.png, to be looked at.
func TestEveryPageInBrowser(t *testing.T) {
	t.Parallel()
	_, rd := syncUpstream(t)
	dir := t.TempDir()
	cfg := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "enabled = false")
	// A synced mirror with two runs in the history (a success, and a failure with its
	// long rsync message, the widest row), an administrator and a viewer.
	if out, code := run(t, nil, nil, "-c", cfg, "sync"); code != 0 {
		t.Fatalf("amwi sync: exit %d\n%s", code, out)
	}
	bad := syncConfig(t, dir, strings.Replace(rd.URL, "/archlinux/", "/no-such-module/", 1), `["core", "extra"]`, "enabled = false")
	if out, code := run(t, nil, nil, "-c", bad, "sync", "--force"); code == 0 {
		t.Fatalf("amwi sync from a missing module succeeded:\n%s", out)
	}
	syncConfig(t, dir, rd.URL, `["core", "extra"]`, "enabled = false")
	for _, u := range [][]string{{"--admin", "admin"}, {"viewer"}} {
		if out, code := run(t, strings.NewReader("correct horse battery\n"), nil, append([]string{"-c", cfg, "user", "add"}, u...)...); code != 0 {
			t.Fatalf("amwi user add %v: exit %d\n%s", u, code, out)
		}
	}
	p, base := serve(t, cfg)
	// A download, so the traffic page has something to draw.
	pkg := testRepos[0].Pkgs[1].FileName()
	resp, err := http.Get(base + "/archlinux/core/os/x86_64/" + pkg)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download %s: %v %v", pkg, err, resp)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	ctx := browser(t)
	shots := artifacts(t)
	// visit loads base+path, waits for wait and the live numbers, checks the width and
	// saves the screenshot as page-NAME-WIDTH.png.
	// fit, when set, is a scrolling box that must fit all the same (fitsJS).
	visit := func(base, name, path, wait string, width int64, fit ...string) {
		t.Helper()
		var wide []string
		file := fmt.Sprintf("page-%s-%d", name, width)
		fits := `[]`
		if len(fit) == 3 {
			fits = fmt.Sprintf("%s(%q, %q, %s)", fitsJS, fit[0], fit[1], fit[2])
		}
		var cut []string
		err := chromedp.Run(ctx, chromedp.Navigate(base+path), chromedp.WaitVisible(wait, chromedp.ByQuery),
			// Let the live stream fill in the numbers and the charts draw.
			chromedp.Sleep(1500*time.Millisecond),
			chromedp.Evaluate(overflowJS, &wide),
			chromedp.Evaluate(fits, &cut),
			screenshot(shots, file))
		if err != nil {
			var html string
			chromedp.Run(ctx, chromedp.OuterHTML("body", &html, chromedp.ByQuery))
			t.Fatalf("%s at %d px: %v\n%.2000s", path, width, err, html)
		}
		for _, w := range wide {
			t.Errorf("%s at %d px: wider than the viewport: %s", path, width, w)
		}
		for _, c := range cut {
			t.Errorf("%s at %d px: does not fit: %s", path, width, c)
		}
	}
	// A second daemon that never synced and has no account: the empty states a first
	// visitor meets.
	emptyDir := t.TempDir()
	_, emptyBase := serve(t, syncConfig(t, emptyDir, "", `["core", "extra"]`, "enabled = false"))
	pages := []struct{ name, path, wait string }{
		{"login", "/login", `input[name=password]`},
		{"overview", "/", `#live-status`},
		{"search", "/search", `input[name=q]`},
		{"search-results", "/search?q=bash", `a[href="/packages/core/bash"]`},
		{"package", "/packages/core/bash", `h1`},
		{"package-hello", "/packages/extra/hello", `h1`},
		{"sync", "/sync", `#history`},
		{"traffic", "/traffic", `h1`},
		{"bench", "/bench", `.card.empty`}, // no benchmark run: what to do
		{"settings", "/settings", `form`},
		{"users", "/users", `h1`},
		{"mirror", "/archlinux/", `table`},
		{"mirror-repo", "/archlinux/core/os/x86_64/", `table`},
	}
	// Boxes that must fit although they scroll: the sync history's two runs, each with
	// when, result, took and fetched in sight.
	fits := map[string][]string{"sync": {"#history", "td.when,td.result,td.took,td.bytes", "2"}}
	for _, width := range []int64{1280, 390} {
		height := int64(1000)
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
		if width < 600 {
			height = 844
			opts = append(opts, chromedp.EmulateMobile)
		}
		if err := chromedp.Run(ctx, chromedp.EmulateViewport(width, height, opts...)); err != nil {
			t.Fatalf("viewport %d: %v", width, err)
		}
		// The login page as a visitor first, then every page as the admin.
		for i, pg := range pages {
			if i == 1 {
				err := chromedp.Run(ctx,
					chromedp.SendKeys(`input[name=name]`, "admin", chromedp.ByQuery),
					chromedp.SendKeys(`input[name=password]`, "correct horse battery", chromedp.ByQuery),
					chromedp.Submit(`input[name=password]`, chromedp.ByQuery),
					chromedp.WaitVisible(`header form button`, chromedp.ByQuery))
				if err != nil {
					t.Fatalf("log in at %d px: %v\n%s", width, err, p.Output())
				}
			}
			visit(base, pg.name, pg.path, pg.wait, width, fits[pg.name]...)
		}
		if err := chromedp.Run(ctx, chromedp.Navigate(base+"/"), chromedp.Click(`header form button`, chromedp.ByQuery),
			chromedp.WaitVisible(`a[href="/login"]`, chromedp.ByQuery)); err != nil {
			t.Fatalf("log out at %d px: %v", width, err)
		}
		visit(emptyBase, "empty-search", "/search", ".card.empty", width)
		visit(emptyBase, "empty-sync", "/sync", ".card.empty", width)
	}
}
