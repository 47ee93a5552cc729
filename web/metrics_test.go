package web

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dsync "github.com/amwi/amwi/daemon/mirrorsync"
	"golang.org/x/sys/unix"

	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/hw"
)

// metricsEnv is the whole web side behind the real Server, with real parts where they run
// here: the sync engine's history in a real store, hw reading a fixture proc/sys tree,
// the search index over the mirror.
type metricsEnv struct {
	srv    *testServer
	mirror string
	st     *store.Store
	mgr    *dsync.Manager
	o      Options
}

// copyFixture copies hw/testdata/NAME to a temp dir, to be changed there.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "hw", "testdata", name))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// readerMachine is hw's Reader on a fixture tree, read at each look.
type readerMachine struct{ r *hw.Reader }

func (m readerMachine) Latest() hw.Snapshot    { return m.r.Read() }
func (m readerMachine) History() []hw.Snapshot { return nil }

var _ MachineService = readerMachine{}

const testPkg = "core/os/x86_64/x-1-1-x86_64.pkg.tar.zst"

// newMetricsEnv serves a mirror with lastupdate/lastsync and one package; hwFixture names
// a tree under hw/testdata ("rpi4", "nas"), or "nosensor": the NAS without its thermal zones.
func newMetricsEnv(t *testing.T, hwFixture string, repos ...string) *metricsEnv {
	t.Helper()
	o, _ := dashboardOptions(t)
	e := &metricsEnv{mirror: o.MirrorRoot.Name()}
	for name, data := range map[string]string{"lastupdate": "1764000000\n", "lastsync": "1764000300\n"} {
		if err := os.WriteFile(filepath.Join(e.mirror, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.MirrorRoot.MkdirAll("core/os/x86_64", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := o.MirrorRoot.WriteFile(testPkg, bytes.Repeat([]byte("x"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	st, err := store.Open(stateDir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st
	e.mgr = &dsync.Manager{Config: dsync.Config{Root: e.mirror, StateDir: stateDir}, Store: st, Log: quiet()}
	o.Sync = e.mgr
	fx := filepath.Join("..", "hw", "testdata", hwFixture)
	switch hwFixture {
	case "nosensor":
		// The NAS without its thermal zones: a machine with no sensor at all.
		fx = copyFixture(t, "nas")
		if err := os.RemoveAll(filepath.Join(fx, "sys", "class", "thermal")); err != nil {
			t.Fatal(err)
		}
	case "rpi4":
		// The Pi with the mirror on its SD card's root partition (mmcblk0p2), so its disk
		// is found and read too.
		fx = copyFixture(t, "rpi4")
		var st unix.Stat_t
		if err := unix.Stat(e.mirror, &st); err != nil {
			t.Fatal(err)
		}
		dev := uint64(st.Dev)
		if unix.Major(dev) != 0 {
			target, err := os.Readlink(filepath.Join(fx, "sys", "dev", "block", "179:2"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(fx, "sys", "dev", "block", fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev)))); err != nil {
				t.Fatal(err)
			}
		} else { // tmpfs or overlay: the mount table says which device
			line := fmt.Sprintf("36 25 0:%d / %s rw,relatime - ext4 /dev/mmcblk0p2 rw\n", unix.Minor(dev), e.mirror)
			f, err := os.OpenFile(filepath.Join(fx, "proc", "self", "mountinfo"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(line); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	o.Machine = readerMachine{&hw.Reader{ProcRoot: filepath.Join(fx, "proc"), SysRoot: filepath.Join(fx, "sys"), MirrorRoot: e.mirror}}
	svc := o.Search.(*search.Service)
	if len(repos) > 0 {
		svc.SetRepos(repos)
	}
	svc.Load()
	o.Used = func() UsedStats { return UsedStats{Used: true, Hits: 1, BudgetBytes: 1 << 30} }
	e.o = o
	return e
}

// start serves the handler; runs and the verification written before it are the history
// it starts with.
func (e *metricsEnv) start(t *testing.T) {
	t.Helper()
	var srv *testServer
	e.o.Conns = func() ConnStats { return srv.Stats() }
	srv = startServer(t, NewHandler(e.o), ServerOptions{Log: quiet()}, nil)
	e.srv = srv
}

// putRun stores a run record as the engine does (keep: how many the store keeps).
func (e *metricsEnv) putRun(t *testing.T, r dsync.Run, keep int) dsync.Run {
	t.Helper()
	if r.ID == 0 {
		id, err := e.st.NextRunID()
		if err != nil {
			t.Fatal(err)
		}
		r.ID = id
	}
	b, _ := json.Marshal(r)
	if err := e.st.PutRun(r.ID, b, keep); err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *metricsEnv) scrape(t *testing.T) string {
	t.Helper()
	code, body := getBody(t, client(t), e.srv.URL+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	return body
}

func (e *metricsEnv) get(t *testing.T, path string) {
	t.Helper()
	if code, _ := getBody(t, client(t), e.srv.URL+path); code >= 500 {
		t.Fatalf("GET %s: %d", path, code)
	}
}

// exposition is a parsed scrape: families with their HELP, TYPE and series.
type exposition struct {
	help, typ map[string]string
	series    map[string]float64 // `name{labels}` as written → value
	order     []string           // family of each series, in order
}

// parseExposition reads the text format strictly enough for these tests (promtool is
// the real judge); it fails on HELP or TYPE written twice or after the family's series.
func parseExposition(t *testing.T, text string) exposition {
	t.Helper()
	x := exposition{help: map[string]string{}, typ: map[string]string{}, series: map[string]float64{}}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := sc.Text()
		if rest, ok := strings.CutPrefix(l, "# HELP "); ok {
			name, help, _ := strings.Cut(rest, " ")
			if _, dup := x.help[name]; dup || seen[name] {
				t.Errorf("HELP for %s twice or after its series", name)
			}
			x.help[name] = help
			continue
		}
		if rest, ok := strings.CutPrefix(l, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			if _, dup := x.typ[name]; dup || seen[name] {
				t.Errorf("TYPE for %s twice or after its series", name)
			}
			x.typ[name] = typ
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			t.Fatalf("not a series: %q", l)
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("series %q: %v", l, err)
		}
		key := l[:i]
		x.series[key] = v
		fam := key[:strings.IndexAny(key+"{", "{")]
		if x.typ[fam] == "" {
			for _, suf := range []string{"_sum", "_count"} {
				if base, ok := strings.CutSuffix(fam, suf); ok && x.typ[base] == "summary" {
					fam = base
				}
			}
		}
		seen[fam] = true
		x.order = append(x.order, fam)
	}
	return x
}

func (x exposition) families() []string {
	var out []string
	for _, f := range x.order {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// sum adds the series of a family whose labels contain every one of match.
func (x exposition) sum(family string, match ...string) (float64, bool) {
	var total float64
	found := false
	for k, v := range x.series {
		name := k[:strings.IndexAny(k+"{", "{")]
		if name != family {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(k, m)
		}
		if ok {
			total += v
			found = true
		}
	}
	return total, found
}

// populated is an env with a history (an up-to-date check, a failure before the gate),
// a verification, and some traffic of both kinds: every family has series.
func populated(t *testing.T) (*metricsEnv, exposition, string) {
	t.Helper()
	e := newMetricsEnv(t, "rpi4")
	now := time.Now()
	e.putRun(t, dsync.Run{Result: dsync.ResultSuccess, Start: now.Add(-3 * time.Hour), End: now.Add(-170 * time.Minute), LastUpdate: 1764000000, LastSync: 1764000300,
		Check: &dsync.Report{}}, 500)
	e.putRun(t, dsync.Run{Result: dsync.ResultFailed, Start: now.Add(-time.Hour), End: now.Add(-59 * time.Minute), Error: "upstream unreachable",
		Check: &dsync.Report{}}, 500) // the engine checks the mirror at the end of every run
	v := dsync.Verification{Start: now.Add(-2 * time.Hour), End: now.Add(-110 * time.Minute)}
	b, _ := json.Marshal(v)
	if err := os.WriteFile(filepath.Join(e.mgr.Config.StateDir, dsync.VerifyFile), b, 0o640); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	e.get(t, MirrorPrefix+testPkg)
	e.get(t, MirrorPrefix+"core/os/x86_64/nothere.pkg.tar.zst")
	e.get(t, "/")
	e.get(t, "/healthz")
	e.scrape(t) // so /metrics' own request shows in the next one
	text := e.scrape(t)
	return e, parseExposition(t, text), text
}

// TestMetricsExposition: a real scrape passes `promtool check metrics` with nothing to
// say (no parse error, no lint warning), and every family has a non-empty HELP and a TYPE.
func TestMetricsExposition(t *testing.T) {
	_, x, text := populated(t)
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool (Debian package prometheus) is needed: %v; run scripts/test-deps.sh", err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	for _, fam := range x.families() {
		if x.help[fam] == "" || x.typ[fam] == "" {
			t.Errorf("family %s: HELP %q TYPE %q", fam, x.help[fam], x.typ[fam])
		}
	}
	for key, want := range map[string]float64{
		`amwi_sync_runs_total{result="success"}`:            1,
		`amwi_sync_runs_total{result="failed"}`:             1,
		`amwi_sync_runs_total{result="incomplete"}`:         0,
		"amwi_mirror_lastupdate_timestamp_seconds":          1764000000,
		"amwi_mirror_lastsync_timestamp_seconds":            1764000300,
		"amwi_mirror_upstream_lastsync_timestamp_seconds":   1764000300, // the failure never reached the upstream
		"amwi_mirror_upstream_lastupdate_timestamp_seconds": 1764000000,
		"amwi_sync_min_free_bytes":                          2 << 30,
		"amwi_sync_last_ok":                                 0,
		"amwi_mirror_problem_files":                         0,
		"amwi_verify_problem_files":                         0,
		`amwi_mirror_requests_total{status="200"}`:          1,
		`amwi_mirror_requests_total{status="404"}`:          1,
		"amwi_package_sent_bytes_total":                     1000,
	} {
		if got, ok := x.series[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	for _, fam := range []string{"amwi_build_info", "amwi_temperature_celsius", "amwi_mirror_fs_size_bytes", "amwi_mirror_fs_free_bytes",
		"amwi_http_connections_open", "amwi_sync_last_success_timestamp_seconds", "go_goroutines", "process_resident_memory_bytes", "go_gc_duration_seconds", "amwi_mirror_disk_busy_percent"} {
		if !slices.Contains(x.families(), fam) {
			t.Errorf("no %s", fam)
		}
	}
	if !regexp.MustCompile(`amwi_build_info\{version="test",commit="[^"]+",goversion="go[^"]+"\} 1\n`).MatchString(text) {
		t.Errorf("amwi_build_info is not as expected:\n%s", grepLines(text, "amwi_build_info"))
	}
}

func grepLines(text, s string) string {
	var out []string
	for l := range strings.Lines(text) {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// TestMetricsMirrorApart: dashboard and API requests leave the amwi_mirror_* counters as
// they were and count in amwi_http_*; a mirror download moves the mirror's counters only.
func TestMetricsMirrorApart(t *testing.T) {
	e := newMetricsEnv(t, "nas")
	e.start(t)
	e.get(t, MirrorPrefix+testPkg) // so the mirror's series exist
	mirrorCounters := func(x exposition) [2]float64 {
		r, _ := x.sum("amwi_mirror_requests_total")
		b, _ := x.sum("amwi_mirror_sent_bytes_total")
		return [2]float64{r, b}
	}
	before := parseExposition(t, e.scrape(t))
	httpBefore, _ := before.sum("amwi_http_requests_total")
	for _, p := range []string{"/", "/api/search?q=x", "/api/sync", "/healthz", "/login", "/static/app.css", "/archlinux-not"} {
		e.get(t, p)
	}
	after := parseExposition(t, e.scrape(t))
	if mirrorCounters(after) != mirrorCounters(before) {
		t.Errorf("dashboard/API requests moved the mirror's counters: %v → %v", mirrorCounters(before), mirrorCounters(after))
	}
	if h, _ := after.sum("amwi_http_requests_total"); h < httpBefore+7 {
		t.Errorf("amwi_http_requests_total %v → %v after 7 dashboard/API requests and a scrape", httpBefore, h)
	}
	httpSent, _ := after.sum("amwi_http_sent_bytes_total")

	e.get(t, MirrorPrefix+testPkg)
	e.get(t, MirrorPrefix) // the mirror's index is the mirror's too
	last := parseExposition(t, e.scrape(t))
	got, want := mirrorCounters(last), mirrorCounters(after)
	if got[0] != want[0]+2 || got[1] <= want[1]+1000-1 {
		t.Errorf("two mirror requests (a 1000-byte package and the index): mirror counters %v → %v", want, got)
	}
	if s, _ := last.sum("amwi_http_sent_bytes_total"); s <= httpSent {
		// Only the scrape in between is dashboard traffic: it must have grown by it alone.
		t.Errorf("amwi_http_sent_bytes_total did not count the scrape in between")
	}
	if v, _ := last.sum("amwi_package_sent_bytes_total"); v != 2000 {
		t.Errorf("amwi_package_sent_bytes_total = %v, want 2000", v)
	}
}

// TestMetricsNoSensorNoSeries: on a machine without a thermal sensor (the NAS fixture less its zones),
// amwi_temperature_celsius is absent, HELP and TYPE included, not an invented 0.
func TestMetricsNoSensorNoSeries(t *testing.T) {
	e := newMetricsEnv(t, "nosensor")
	e.start(t)
	if text := e.scrape(t); strings.Contains(text, "amwi_temperature_celsius") {
		t.Errorf("temperature without a sensor:\n%s", grepLines(text, "temperature"))
	}
	// Nor is there a sync time, an upstream's stamps or a check before any sync.
	text := e.scrape(t)
	for _, fam := range []string{"amwi_sync_last_success_timestamp_seconds", "amwi_mirror_upstream_lastsync_timestamp_seconds", "amwi_sync_last_ok", "amwi_verify_problem_files"} {
		if strings.Contains(text, fam) {
			t.Errorf("%s without its source:\n%s", fam, grepLines(text, fam))
		}
	}
}

// TestMetricsRepoDropped: a repo dropped from the selection leaves amwi_packages with the
// index that no longer has it.
func TestMetricsRepoDropped(t *testing.T) {
	e := newMetricsEnv(t, "nas", "core", "multilib")
	e.start(t)
	if text := e.scrape(t); !strings.Contains(text, `amwi_packages{repo="multilib"} 0`+"\n") || !strings.Contains(text, `amwi_packages{repo="core"}`) {
		t.Fatalf("selected repos missing:\n%s", grepLines(text, "amwi_packages"))
	}
	// What the daemon does when mirror.repos changes.
	svc := e.o.Search.(*search.Service)
	svc.SetRepos([]string{"core"})
	svc.Load()
	text := e.scrape(t)
	if strings.Contains(text, "multilib") || !strings.Contains(text, `amwi_packages{repo="core"}`) {
		t.Errorf("after dropping multilib:\n%s", grepLines(text, "amwi_packages"))
	}
}

// TestSyncRunsNeverDecrease: amwi_sync_runs_total starts from the kept history, counts
// each run once when it ends (not while it runs), and keeps counting while the store
// drops the oldest records; the upstream's lastsync stays what the last check that
// reached the upstream saw.
func TestSyncRunsNeverDecrease(t *testing.T) {
	e := newMetricsEnv(t, "nas")
	now := time.Now()
	for i := range 3 {
		e.putRun(t, dsync.Run{Result: dsync.ResultUpToDate, Start: now, End: now, LastUpdate: 1764000000, LastSync: 1764000000 + int64(i)}, 3)
	}
	e.start(t)
	runs := func() map[string]float64 {
		x := parseExposition(t, e.scrape(t))
		out := map[string]float64{}
		for _, r := range []string{"up to date", "failed", "success"} {
			out[r], _ = x.sum("amwi_sync_runs_total", `result="`+r+`"`)
		}
		out["lastsync"] = x.series["amwi_mirror_upstream_lastsync_timestamp_seconds"]
		return out
	}
	if got := runs(); got["up to date"] != 3 || got["failed"] != 0 || got["lastsync"] != 1764000002 {
		t.Fatalf("seeded from 3 runs: %v", got)
	}
	// A run in progress is not counted; once it ends, it is, once. The store keeps 3.
	running := e.putRun(t, dsync.Run{Result: dsync.ResultRunning, Start: now}, 3)
	if got := runs(); got["failed"] != 0 || got["up to date"] != 3 {
		t.Errorf("a running sync counted: %v", got)
	}
	running.Result, running.End = dsync.ResultFailed, now // failed before reaching the upstream
	e.putRun(t, running, 3)
	prev := runs()
	if prev["failed"] != 1 || prev["up to date"] != 3 || prev["lastsync"] != 1764000002 {
		t.Errorf("after one failure: %v", prev)
	}
	// Twelve more runs, more than one look at the newest few covers, while the store
	// keeps only 3: the counter follows every one and never falls.
	for i := range 12 {
		res := dsync.ResultSuccess
		if i%3 == 0 {
			res = dsync.ResultFailed
		}
		e.putRun(t, dsync.Run{Result: res, Start: now, End: now, LastUpdate: 1764000100, LastSync: 1764000100 + int64(i)}, 3)
		if i%5 == 4 {
			continue // let some pile up between scrapes
		}
		got := runs()
		for k, v := range got {
			if k != "lastsync" && v < prev[k] {
				t.Errorf("amwi_sync_runs_total{result=%q} went down: %v → %v", k, prev[k], v)
			}
		}
		prev = got
	}
	got := runs()
	if got["success"] != 8 || got["failed"] != 5 || got["up to date"] != 3 || got["lastsync"] != 1764000111 {
		t.Errorf("after 12 more runs (8 successes, 4 failures): %v", got)
	}
}

// etcFile is a file shipped under etc/.
func etcFile(t *testing.T, parts ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{"..", "etc"}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool (Debian package prometheus) is needed: %v; run scripts/test-deps.sh", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAlertRules: the shipped rules pass `promtool check rules` (lint included), and
// `promtool test rules` fires each alert on synthetic series (and not on healthy ones).
func TestAlertRules(t *testing.T) {
	rules := etcFile(t, "prometheus", "amwi-alerts.yml")
	out := promtool(t, ".", "check", "rules", rules)
	if !strings.Contains(out, "SUCCESS: 5 rules found") {
		t.Errorf("promtool check rules:\n%s", out)
	}
	test := etcFile(t, "prometheus", "amwi-alerts_test.yml")
	out = promtool(t, filepath.Dir(test), "test", "rules", filepath.Base(test))
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules:\n%s", out)
	}
	text, _ := os.ReadFile(test)
	for _, alert := range []string{"AmwiMirrorStale", "AmwiSyncFailing", "AmwiDiskNearFloor", "AmwiMirrorInconsistent"} {
		if !strings.Contains(string(text), "alertname: "+alert+"\n        exp_alerts:\n          - exp_labels:") {
			t.Errorf("the rule tests never see %s fire", alert)
		}
	}
}

// grafanaDashboard is what the test reads of the dashboard's JSON model.
type grafanaDashboard struct {
	Inputs []struct {
		Name, Type, PluginID string
	} `json:"__inputs"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Datasource json.RawMessage `json:"datasource"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	UID   string `json:"uid"`
	Title string `json:"title"`
}

type grafanaPanel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *grafanaDS               `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		Datasource *grafanaDS `json:"datasource"`
		Expr       string     `json:"expr"`
		RefID      string     `json:"refId"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDS struct{ Type, UID string }

var metricName = regexp.MustCompile(`\b(?:amwi|go|process)_[a-z0-9_]+`)

// TestDashboardAndAlertsUseRealMetrics: every metric the Grafana dashboard's queries and
// the alert rules (and their tests) name is a family of a real /metrics scrape, so a
// rename breaks this test; the dashboard's queries are valid PromQL (promtool parses them
// as recording rules), and its data source is the ${DS_PROMETHEUS} input.
func TestDashboardAndAlertsUseRealMetrics(t *testing.T) {
	_, x, _ := populated(t)
	families := x.families()
	b, err := os.ReadFile(etcFile(t, "grafana", "amwi-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("amwi-dashboard.json: %v", err)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs: %+v", d.Inputs)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard without uid or title")
	}
	var exprs []string
	ids := map[int]bool{}
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d twice", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" || len(p.Targets) == 0 {
				t.Errorf("panel %q: data source %+v, %d queries", p.Title, p.Datasource, len(p.Targets))
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" || tg.RefID == "" || tg.Datasource == nil || tg.Datasource.UID != "${DS_PROMETHEUS}" {
					t.Errorf("panel %q: query %+v", p.Title, tg)
				}
				exprs = append(exprs, tg.Expr)
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		exprs = append(exprs, v.Definition)
	}
	want := []string{"amwi_mirror_requests_total", "amwi_mirror_sent_bytes_total", "amwi_sync_runs_total", "amwi_sync_last_success_timestamp_seconds",
		"amwi_mirror_upstream_lastsync_timestamp_seconds", "amwi_mirror_fs_free_bytes", "amwi_sync_min_free_bytes", "amwi_cpu_busy_percent",
		"amwi_memory_available_bytes", "amwi_temperature_celsius", "amwi_active_downloads", "amwi_http_connections_open"}
	used := map[string]bool{}
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			used[name] = true
			if !slices.Contains(families, name) {
				t.Errorf("the dashboard queries %s, which /metrics does not have (in %s)", name, e)
			}
		}
	}
	for _, w := range want {
		if !used[w] {
			t.Errorf("the dashboard has no panel on %s", w)
		}
	}

	// The queries parse: promtool reads them as recording rules, Grafana's variables
	// replaced by what Grafana would put there.
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1d", "$__interval", "1m", "$instance", ".*")
	for i, e := range exprs[:len(exprs)-len(d.Templating.List)] {
		q, _ := json.Marshal(vars.Replace(e))
		fmt.Fprintf(&rules, "      - record: amwi:dashboard_query_%d\n        expr: %s\n", i, q)
	}
	rf := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(rf, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := promtool(t, ".", "check", "rules", rf); !strings.Contains(out, "SUCCESS") {
		t.Errorf("the dashboard's queries do not parse:\n%s", out)
	}

	// The alert rules and their unit tests name real families too.
	for _, f := range []string{"amwi-alerts.yml", "amwi-alerts_test.yml"} {
		text, err := os.ReadFile(etcFile(t, "prometheus", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range metricName.FindAllString(string(text), -1) {
			if !slices.Contains(families, name) {
				t.Errorf("%s names %s, which /metrics does not have", f, name)
			}
		}
	}
}
