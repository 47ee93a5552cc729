package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// scrapeSeries reads amwi's /metrics into series (`name{labels}` as written → value) and
// returns the text too.
func scrapeSeries(t *testing.T, base string) (map[string]float64, string) {
	t.Helper()
	code, text := httpGet(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	out := map[string]float64{}
	for _, l := range strings.Split(text, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics: %q: %v", l, err)
		}
		out[l[:i]] = v
	}
	return out, text
}

// TestMetricsFromRealSyncs: the real daemon over a real rsync upstream. Its /metrics
// passes `promtool check metrics` as it is on this machine; amwi_sync_runs_total counts
// real runs by result; the mirror's lastupdate and the upstream's lastupdate and lastsync
// are what the files say; a pacman-style download moves the mirror's counters and
// dashboard/API requests do not; amwi_build_info carries what `amwi version` says.
func TestMetricsFromRealSyncs(t *testing.T) {
	t.Parallel()
	tr, rd := syncUpstream(t)
	// The upstream's lastsync runs ahead of its lastupdate, as on a real mirror.
	lastsync := tr.LastUpdate + 120
	if err := os.WriteFile(filepath.Join(tr.Root, "lastsync"), []byte(fmt.Sprintf("%d\n", lastsync)), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "")
	p, base := serve(t, cfg)

	m, _ := scrapeSeries(t, base)
	for _, r := range []string{"success", "up to date", "failed", "incomplete", "cancelled"} {
		if v, ok := m[`amwi_sync_runs_total{result="`+r+`"}`]; !ok || v != 0 {
			t.Errorf("before any sync, runs %q = %v (present %v), want 0", r, v, ok)
		}
	}
	if _, ok := m["amwi_mirror_lastupdate_timestamp_seconds"]; ok {
		t.Errorf("a lastupdate before the first sync")
	}

	if out, code := run(t, nil, nil, "-c", cfg, "sync"); code != 0 {
		t.Fatalf("sync: %s\n%s", out, p.Output())
	}
	if out, code := run(t, nil, nil, "-c", cfg, "sync"); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("second sync: exit %d\n%s", code, out)
	}
	m, text := scrapeSeries(t, base)
	for key, want := range map[string]float64{
		`amwi_sync_runs_total{result="success"}`:            1,
		`amwi_sync_runs_total{result="up to date"}`:         1,
		`amwi_sync_runs_total{result="failed"}`:             0,
		"amwi_mirror_lastupdate_timestamp_seconds":          float64(tr.LastUpdate),
		"amwi_mirror_upstream_lastupdate_timestamp_seconds": float64(tr.LastUpdate),
		"amwi_mirror_upstream_lastsync_timestamp_seconds":   float64(lastsync),
		"amwi_mirror_lastsync_timestamp_seconds":            float64(lastsync),
		"amwi_sync_last_ok":                                 1,
		"amwi_mirror_problem_files":                         0,
		`amwi_packages{repo="core"}`:                        float64(len(testRepos[0].Pkgs)),
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if _, ok := m["amwi_sync_last_success_timestamp_seconds"]; !ok {
		t.Errorf("no amwi_sync_last_success_timestamp_seconds after a successful sync")
	}

	// The exposition as a real Prometheus parser and linter see it.
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool (Debian package prometheus) is needed: %v; run scripts/test-deps.sh", err)
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	// The build: amwi_build_info says what `amwi version` says.
	ver, _ := run(t, nil, nil, "version")
	lines := strings.Split(ver, "\n")
	if len(lines) < 2 {
		t.Fatalf("amwi version: %q", ver)
	}
	version, _ := strings.CutPrefix(lines[0], "amwi ")
	commit, _ := strings.CutPrefix(lines[1], "commit ")
	if !strings.Contains(text, fmt.Sprintf("amwi_build_info{version=%q,commit=%q,goversion=\"go", version, commit)) {
		t.Errorf("amwi_build_info does not match `amwi version` (%s, %s):\n%s", version, commit, grep(text, "amwi_build_info"))
	}

	// Traffic: the dashboard and API leave the mirror's counters alone; a download moves them.
	mirrorReqs := func(m map[string]float64) (n, bytes float64) {
		for k, v := range m {
			if strings.HasPrefix(k, "amwi_mirror_requests_total{") {
				n += v
			}
		}
		return n, m["amwi_mirror_sent_bytes_total"]
	}
	n0, b0 := mirrorReqs(m)
	for _, path := range []string{"/", "/api/sync", "/api/search?q=hello", "/healthz"} {
		httpGet(t, base+path)
	}
	m, _ = scrapeSeries(t, base)
	if n, b := mirrorReqs(m); n != n0 || b != b0 {
		t.Errorf("dashboard/API requests moved the mirror's counters: %v,%v → %v,%v", n0, b0, n, b)
	}
	db, err := os.ReadFile(filepath.Join(dir, "mirror", "core", "os", "x86_64", "core.db"))
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := httpGet(t, base+"/archlinux/core/os/x86_64/core.db"); code != 200 {
		t.Fatalf("core.db: %d", code)
	}
	m, _ = scrapeSeries(t, base)
	if n, b := mirrorReqs(m); n != n0+1 || b != b0+float64(len(db)) || m[`amwi_mirror_requests_total{status="200"}`] < 1 {
		t.Errorf("a %d-byte download: mirror counters %v,%v → %v,%v", len(db), n0, b0, n, b)
	}
}

func grep(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
