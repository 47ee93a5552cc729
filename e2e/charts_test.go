package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/amwi/amwi/internal/units"
)

// chartInfo is what the browser test reads of one drawn chart.
type chartInfo struct {
	Title  string   `json:"title"`
	Y      []string `json:"y"`
	X      []string `json:"x"`
	Axes   int      `json:"axes"`
	Grid   int      `json:"grid"`
	Marks  int      `json:"marks"`
	Width  float64  `json:"width"`
	Height float64  `json:"height"`
}

const chartsJS = `[...document.querySelectorAll(".chart svg")].map((s) => { const r = s.getBoundingClientRect(); return {
	title: (s.querySelector(".ttl") || {}).textContent || "",
	y: [...s.querySelectorAll(".ax.y text")].map((e) => e.textContent),
	x: [...s.querySelectorAll(".ax.x text")].map((e) => e.textContent),
	axes: s.querySelectorAll(".ax line.axis").length, grid: s.querySelectorAll(".ax line.gl").length,
	marks: s.querySelectorAll("path.line, rect.bx").length, width: r.width, height: r.height }; })`

// tooWideJS lists elements that reach past the viewport's right edge, except inside a
// container that scrolls or clips them (a wide table in .scroll is meant to scroll).
const tooWideJS = `(() => { const W = document.documentElement.clientWidth, bad = [];
	if (document.documentElement.scrollWidth > W) bad.push("page scrolls sideways: " + document.documentElement.scrollWidth + " > " + W);
	for (const e of document.querySelectorAll("body *")) {
		const r = e.getBoundingClientRect();
		if (r.width === 0 || r.right <= W + 0.5) continue;
		let p = e.parentElement, clipped = false;
		for (; p && p !== document.body; p = p.parentElement) if (/auto|scroll|hidden/.test(getComputedStyle(p).overflowX)) { clipped = true; break; }
		if (!clipped) bad.push(e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + "." + e.className + " right=" + Math.round(r.right));
	}
	return bad.slice(0, 10); })()`

// yTick is a y tick label with its unit: "20 %", "1.5 MiB/s", "500 ms", "30 s", "40 °C".
var yTick = regexp.MustCompile(`^-?[0-9.]+ (%|°C|B|KiB|MiB|GiB|TiB)(/s)?$|^-?[0-9.]+ (ms|s|min|h)$`)

// TestChartsInBrowser: the Overview's machine charts, the Traffic page's bytes per hour and
// per day and the Sync page's runs, in a real Chromium at a desktop and a phone width, light
// and dark: no console errors, every chart with axes, gridlines and tick labels in units,
// nothing wider than the screen, and the value under a real mouse and a real touch the
// one the server has.
func TestChartsInBrowser(t *testing.T) {
	t.Parallel()
	_, rd := syncUpstream(t)
	dir := t.TempDir()
	cfg := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "enabled = false")
	p, base := serve(t, cfg)
	// Two runs for the Sync page's bars: a first sync and a forced one.
	for _, args := range [][]string{{"sync"}, {"sync", "--force"}} {
		if out, code := run(t, nil, nil, append([]string{"-c", cfg}, args...)...); code != 0 {
			t.Fatalf("amwi %v: exit %d\n%s\n%s", args, code, out, p.Output())
		}
	}
	// Mirror traffic for the Traffic page: a package, downloaded three times.
	var pkgURL string
	for _, l := range strings.Split(httpBody(t, base+"/archlinux/core/os/x86_64/"), "\"") {
		if strings.HasSuffix(l, ".pkg.tar.zst") {
			pkgURL = base + "/archlinux/core/os/x86_64/" + strings.TrimPrefix(l, "./")
			break
		}
	}
	if pkgURL == "" {
		t.Fatalf("no package in the mirror's core index")
	}
	var downloaded int64
	for i := 0; i < 3; i++ {
		downloaded += int64(len(httpBody(t, pkgURL)))
	}

	ctx := browser(t)
	shots := artifacts(t)
	runB := func(step string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			var html string
			chromedp.Run(ctx, chromedp.OuterHTML("main", &html, chromedp.ByQuery))
			t.Fatalf("%s: %v\npage:\n%.3000s\ndaemon:\n%.3000s", step, err, html, p.Output())
		}
	}
	// The tooltip's clock is the browser's: UTC, as the checks below read the server's.
	runB("time zone", emulation.SetTimezoneOverride("UTC"))
	runB("register", registerForm(t, base, p), registered)

	// box is a chart's place in the viewport (CSS pixels), scrolled into view first.
	box := func(sel string) (b struct{ X, Y, W, H float64 }) {
		t.Helper()
		runB("locate "+sel, chromedp.Evaluate(`(() => { const e = document.querySelector(`+strconv.Quote(sel)+`); e.scrollIntoView({block: "center"}); const r = e.getBoundingClientRect(); return {X: r.left, Y: r.top, W: r.width, H: r.height}; })()`, &b))
		return b
	}
	// tipAfter moves the mouse (or puts a finger) at x, y and returns the chart's tooltip.
	tipAfter := func(chart string, x, y float64, touch bool) string {
		t.Helper()
		// A real mouse arrives from somewhere: two moves.
		var a chromedp.Action = chromedp.Tasks{chromedp.MouseEvent(input.MouseMoved, x-6, y), chromedp.MouseEvent(input.MouseMoved, x, y)}
		if touch {
			a = chromedp.ActionFunc(func(ctx context.Context) error {
				if err := input.DispatchTouchEvent(input.TouchStart, []*input.TouchPoint{{X: x, Y: y}}).Do(ctx); err != nil {
					return err
				}
				return input.DispatchTouchEvent(input.TouchEnd, []*input.TouchPoint{}).Do(ctx)
			})
		}
		var tip string
		runB("pointer on "+chart, a,
			chromedp.Poll(`(() => { const e = document.querySelector(`+strconv.Quote(chart+" .chart-tip")+`); return !!e && !e.hidden && e.innerText; })()`, &tip,
				chromedp.WithPollingTimeout(10*time.Second)))
		return tip
	}
	checkCharts := func(name string, want int) []chartInfo {
		t.Helper()
		var charts []chartInfo
		runB(name+" charts", chromedp.Evaluate(chartsJS, &charts))
		if len(charts) != want {
			t.Errorf("%s: %d charts, want %d: %+v", name, len(charts), want, charts)
		}
		for _, c := range charts {
			if c.Title == "" || c.Axes < 2 || c.Grid < 2 || len(c.Y) < 2 || len(c.X) < 2 || c.Marks < 1 || c.Height < 100 {
				t.Errorf("%s: chart %q lacks a title, axes, gridlines, tick labels or marks: %+v", name, c.Title, c)
			}
			for _, l := range c.Y {
				if !yTick.MatchString(l) {
					t.Errorf("%s: chart %q: y tick %q has no unit", name, c.Title, l)
				}
			}
		}
		var wide []string
		runB(name+" width", chromedp.Evaluate(tooWideJS, &wide))
		if len(wide) > 0 {
			t.Errorf("%s: wider than the viewport: %v", name, wide)
		}
		return charts
	}
	// checkBars: every bar with a value shows (at least 1 px, though next to a bar
	// millions of times larger its true height is far below a pixel), every zero is flat.
	// It returns how many bars were too small to see at their true height.
	checkBars := func(what, sel string, vals []float64) (tiny int) {
		t.Helper()
		var hs []float64
		runB(what+" bars", chromedp.Evaluate(`[...document.querySelectorAll(`+strconv.Quote(sel+" rect.bx")+`)].map((r) => r.getBoundingClientRect().height)`, &hs))
		if len(hs) != len(vals) {
			t.Errorf("%s: %d bars for %d values", what, len(hs), len(vals))
			return 0
		}
		top, tallest := 0.0, 0.0
		for i, v := range vals {
			top, tallest = max(top, v), max(tallest, hs[i])
		}
		for i, v := range vals {
			if v > 0 && hs[i] < 1 || v == 0 && hs[i] != 0 {
				t.Errorf("%s: bar %d of value %v is %.2f px tall", what, i, v, hs[i])
			}
			if v > 0 && v/top*tallest < 1 {
				tiny++
			}
		}
		return tiny
	}

	for _, view := range []struct {
		width  int64
		mobile bool
	}{{1280, false}, {390, true}} {
		for _, scheme := range []string{"light", "dark"} {
			tag := fmt.Sprintf("%d-%s", view.width, scheme)
			shot := func(page string) chromedp.Action { return screenshot(shots, "charts-"+page+"-"+tag) }
			runB(tag+" view",
				emulation.SetDeviceMetricsOverride(view.width, 900, 1, view.mobile),
				emulation.SetTouchEmulationEnabled(true),
				emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}))

			// Overview: the machine's last 10 minutes, drawn from the history and live.
			runB(tag+" overview", chromedp.Navigate(base+"/"),
				chromedp.Poll(`document.querySelectorAll("[data-chart] path.line").length >= 5`, nil, chromedp.WithPollingTimeout(20*time.Second)))
			var bg string
			runB(tag+" colours", chromedp.Evaluate(`getComputedStyle(document.body).backgroundColor`, &bg))
			if (scheme == "dark") != (bg == "rgb(21, 24, 27)") {
				t.Errorf("%s: body background %s", tag, bg)
			}
			for i, c := range checkCharts(tag+" overview", 5) {
				// A fixed 10-minute window, counted back from the newest sample.
				if len(c.X) < 2 || c.X[0] != "now" || c.X[len(c.X)-1] != "−10 min" {
					t.Errorf("%s overview chart %d %q: x ticks %q, want \"now\" … \"−10 min\"", tag, i, c.Title, c.X)
				}
			}
			cpu := box(`[data-chart="cpu"] svg`)
			tip := tipAfter(`[data-chart="cpu"]`, cpu.X+cpu.W*0.6, cpu.Y+cpu.H/2, false)
			checkMachineTip(t, base, tag+" cpu (mouse)", tip, func(s snapshot) *float64 { return s.CPU.Total })
			mem := box(`[data-chart="mem"] svg`)
			tip = tipAfter(`[data-chart="mem"]`, mem.X+mem.W*0.8, mem.Y+mem.H/2, true)
			checkMachineTip(t, base, tag+" memory (touch)", tip, func(s snapshot) *float64 { return s.Memory.UsedPercent })
			runB(tag+" overview shot", shot("overview"))

			// Traffic: bytes per hour (48) and per day (30) from the page's data block.
			var raw string
			runB(tag+" traffic", chromedp.Navigate(base+"/traffic"), chromedp.WaitVisible(`#traffic-days svg`, chromedp.ByQuery),
				chromedp.Evaluate(`document.getElementById("traffic-data").textContent`, &raw))
			var tr struct{ Hours, Days []bar }
			if err := json.Unmarshal([]byte(raw), &tr); err != nil {
				t.Fatalf("traffic data block: %v\n%s", err, raw)
			}
			if len(tr.Hours) != 48 || len(tr.Days) != 30 {
				t.Fatalf("traffic data block: %d hours, %d days", len(tr.Hours), len(tr.Days))
			}
			if last := tr.Days[len(tr.Days)-1]; last.Bytes < downloaded {
				t.Errorf("today's bar %+v holds less than the %d bytes downloaded", last, downloaded)
			}
			charts := checkCharts(tag+" traffic", 2)
			for i, n := range []int{48, 30} {
				if i < len(charts) && charts[i].Marks != n {
					t.Errorf("%s traffic chart %q: %d bars, want %d", tag, charts[i].Title, charts[i].Marks, n)
				}
			}
			var hours, days []float64
			for _, b := range tr.Hours {
				hours = append(hours, float64(b.Bytes))
			}
			for _, b := range tr.Days {
				days = append(days, float64(b.Bytes))
			}
			checkBars(tag+" traffic hours", "#traffic-hours", hours)
			checkBars(tag+" traffic days", "#traffic-days", days)
			// The newest hour by mouse, the newest day by touch.
			b := box(`#traffic-hours rect.bx:last-of-type`)
			h := box(`#traffic-hours svg`)
			checkBarTip(t, tag+" hour (mouse)", tipAfter("#traffic-hours", b.X+b.W/2, h.Y+h.H/2, false), tr.Hours[47].Label, tr.Hours[47].Bytes)
			b = box(`#traffic-days rect.bx:last-of-type`)
			h = box(`#traffic-days svg`)
			checkBarTip(t, tag+" day (touch)", tipAfter("#traffic-days", b.X+b.W/2, h.Y+h.H/2, true), tr.Days[29].Label, tr.Days[29].Bytes)
			runB(tag+" traffic shot", shot("traffic"))

			// Sync: each finished run's duration and bytes.
			runB(tag+" sync", chromedp.Navigate(base+"/sync"), chromedp.WaitVisible(`#sync-bytes svg`, chromedp.ByQuery))
			charts = checkCharts(tag+" sync", 2)
			// Runs of well under a second to a few seconds: nice steps, each label its own.
			if len(charts) == 2 {
				y, seen := charts[0].Y, map[string]bool{}
				for _, l := range y {
					seen[l] = true
				}
				if len(y) < 3 || len(seen) != len(y) {
					t.Errorf("%s sync duration ticks %q: want 3 or more, all different", tag, y)
				}
			}
			var sy []struct{ Seconds, Bytes float64 }
			runB(tag+" sync data", chromedp.Evaluate(`JSON.parse(document.getElementById("sync-data").textContent)`, &sy))
			var secs, fetched []float64
			for _, r := range sy {
				secs, fetched = append(secs, r.Seconds), append(fetched, r.Bytes)
			}
			checkBars(tag+" sync durations", "#sync-secs", secs)
			// The forced sync fetches a file list (KiB) beside the first sync's MiB.
			if checkBars(tag+" sync bytes", "#sync-bytes", fetched) == 0 {
				t.Errorf("%s: sync bytes %v: no bar below a pixel at its true height, so the 2 px floor went untested", tag, fetched)
			}
			_, hist := apiSync(t, base)
			if len(hist) != 2 {
				t.Fatalf("/api/sync history: %v", hist)
			}
			for i := range charts {
				if charts[i].Marks != 2 {
					t.Errorf("%s sync chart %q: %d bars, want 2", tag, charts[i].Title, charts[i].Marks)
				}
			}
			newest := hist[0] // newest first
			start, _ := time.Parse(time.RFC3339Nano, newest["start"].(string))
			end, _ := time.Parse(time.RFC3339Nano, newest["end"].(string))
			id := fmt.Sprint(newest["id"])
			b = box(`#sync-secs rect.bx:last-of-type`)
			h = box(`#sync-secs svg`)
			tip = tipAfter("#sync-secs", b.X+b.W/2, h.Y+h.H/2, false)
			if m := regexp.MustCompile(`^#(\d+) .*\n([0-9.]+) (m?)s$`).FindStringSubmatch(tip); m == nil || m[1] != id {
				t.Errorf("%s: sync duration tooltip %q, want run #%s in ms or s", tag, tip, id)
			} else if v, _ := strconv.ParseFloat(m[2], 64); math.Abs(v/map[string]float64{"": 1, "m": 1e3}[m[3]]-end.Sub(start).Seconds()) > 0.06 {
				t.Errorf("%s: sync duration tooltip %q, the run took %s", tag, tip, end.Sub(start))
			}
			b = box(`#sync-bytes rect.bx:last-of-type`)
			h = box(`#sync-bytes svg`)
			tip = tipAfter("#sync-bytes", b.X+b.W/2, h.Y+h.H/2, true)
			got := int64(newest["stats"].(map[string]any)["bytes_received"].(float64))
			if !strings.HasPrefix(tip, "#"+id+" ") {
				t.Errorf("%s: sync bytes tooltip %q, want run #%s", tag, tip, id)
			}
			checkBytes(t, tag+" sync bytes (touch)", tip[strings.LastIndex(tip, "\n")+1:], got)
			runB(tag+" sync shot", shot("sync"))
		}
	}
}

// bar is one bar of the Traffic page's data block.
type bar struct {
	Label    string `json:"label"`
	Bytes    int64  `json:"bytes"`
	Requests int64  `json:"requests"`
}

// snapshot is the part of /api/stats/history the tooltips are checked against.
type snapshot struct {
	Time   time.Time `json:"time"`
	CPU    struct{ Total *float64 }
	Memory struct {
		UsedPercent *float64 `json:"used_percent"`
	}
}

// checkMachineTip: a line chart's tooltip ("15:04:05\n12.3 %") names a sample the server's
// full history has, with its value to the shown precision.
func checkMachineTip(t *testing.T, base, what, tip string, value func(snapshot) *float64) {
	t.Helper()
	m := regexp.MustCompile(`^(\d\d:\d\d:\d\d)\n([0-9.]+) %$`).FindStringSubmatch(tip)
	if m == nil {
		t.Errorf("%s: tooltip %q is not \"HH:MM:SS\\nN.N %%\"", what, tip)
		return
	}
	shown, _ := strconv.ParseFloat(m[2], 64)
	var h []snapshot
	if err := json.Unmarshal([]byte(httpBody(t, base+"/api/stats/history")), &h); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, s := range h {
		if s.Time.UTC().Format("15:04:05") != m[1] || value(s) == nil {
			continue
		}
		if math.Abs(*value(s)-shown) <= 0.051 {
			return
		}
		seen = append(seen, fmt.Sprint(*value(s)))
	}
	t.Errorf("%s: tooltip %q: the server's history has %v at %s", what, tip, seen, m[1])
}

// checkBarTip: a traffic bar's tooltip names its bucket and its bytes.
func checkBarTip(t *testing.T, what, tip, label string, bytes int64) {
	t.Helper()
	lines := strings.Split(tip, "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], label+" · ") {
		t.Errorf("%s: tooltip %q, want %q and its bytes", what, tip, label)
		return
	}
	checkBytes(t, what, lines[1], bytes)
}

// checkBytes: shown is n in Go's binary units, to the shown precision (JavaScript and Go
// may round a tie differently).
func checkBytes(t *testing.T, what, shown string, n int64) {
	t.Helper()
	want := units.Bytes(n)
	wf, wu, _ := strings.Cut(want, " ")
	sf, su, _ := strings.Cut(shown, " ")
	w, _ := strconv.ParseFloat(wf, 64)
	s, err := strconv.ParseFloat(sf, 64)
	if err != nil || su != wu || math.Abs(w-s) > 0.11 {
		t.Errorf("%s: shows %q, want %q", what, shown, want)
	}
}

func httpBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
	}
	return string(b)
}
