package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/internal/archtest"
)

// standIn is a mirror on its own loopback address serving lastsync and extra.db.
func standIn(t *testing.T, ip string, lastsync time.Time) string {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	db := make([]byte, 256<<10)
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/archlinux/lastsync":
			fmt.Fprintf(w, "%d\n", lastsync.Unix())
		case "/archlinux/extra/os/x86_64/extra.db":
			w.Write(db)
		default:
			http.NotFound(w, r)
		}
	})}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL + "/archlinux/"
}

// TestBenchPicksFreshRsyncMirror: `amwi bench` ranks stand-in mirrors from a local status
// JSON: the fresh one whose rsync answers first, a stale one last; the dashboard's "use as
// upstream" sets it (and the fallbacks) through the validated settings save.
func TestBenchPicksFreshRsyncMirror(t *testing.T) {
	t.Parallel()
	up := filepath.Join(t.TempDir(), "up")
	os.MkdirAll(up, 0o755)
	os.WriteFile(filepath.Join(up, "lastupdate"), []byte("1700000000\n"), 0o644)
	rd := archtest.StartRsyncd(t, up)
	now := time.Now()
	good := standIn(t, "127.0.0.1", now.Add(-10*time.Minute))
	norsync := standIn(t, "127.0.0.2", now.Add(-5*time.Minute))
	stale := standIn(t, "127.0.0.3", now.Add(-72*time.Hour))
	entry := func(url, proto string, last time.Time) map[string]any {
		return map[string]any{"url": url, "protocol": proto, "last_sync": last.UTC().Format(time.RFC3339), "completion_pct": 1,
			"delay": 600, "duration_avg": 0.5, "duration_stddev": 0.1, "score": 1.5, "active": true, "country": "Testland",
			"country_code": "TL", "isos": true, "ipv4": true, "ipv6": false, "details": ""}
	}
	status := map[string]any{"cutoff": 86400, "last_check": now.UTC().Format(time.RFC3339), "num_checks": 1, "check_frequency": 600, "version": 3,
		"urls": []any{
			entry(good, "http", now), entry(rd.URL, "rsync", now),
			entry(norsync, "http", now), entry("rsync://127.0.0.2:1/archlinux/", "rsync", now),
			entry(stale, "http", now),
			entry("https://elsewhere.example/archlinux/", "https", now),
		}}
	status["urls"].([]any)[5].(map[string]any)["country"] = "Otherland"
	statusSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(status) }))
	defer statusSrv.Close()

	dir := t.TempDir()
	mirror := filepath.Join(dir, "mirror")
	os.MkdirAll(mirror, 0o755)
	cfg := writeConfig(t, dir, mirror, "")
	os.WriteFile(cfg, []byte(mustRead(t, cfg)+fmt.Sprintf("[bench]\ncountry = \"Testland\"\nstatus_url = %q\nmirrorlists_dir = %q\n", statusSrv.URL, filepath.Join(dir, "lists"))), 0o644)

	start := time.Now()
	out, code := run(t, nil, nil, "-c", cfg, "bench", "--json")
	if code != 0 {
		t.Fatalf("amwi bench: exit %d\n%s", code, out)
	}
	var res []struct {
		Rank     int    `json:"rank"`
		Host     string `json:"host"`
		URL      string `json:"url"`
		RsyncURL string `json:"rsync_url"`
		Fresh    bool   `json:"fresh"`
		RsyncOK  bool   `json:"rsync_ok"`
		Usable   bool   `json:"usable"`
		Why      string `json:"why"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &res); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	if len(res) != 3 || res[0].URL != good || !res[0].Usable || res[0].RsyncURL != rd.URL ||
		res[1].URL != norsync || res[1].Usable || res[1].RsyncOK || res[2].URL != stale || res[2].Fresh {
		t.Fatalf("ranking (took %s):\n%s", time.Since(start), out)
	}
	t.Logf("ranked 3 stand-ins in %s", time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(dir, "state", "bench-results.json")); err != nil {
		t.Errorf("results not kept: %v", err)
	}
	if out, code := run(t, nil, nil, "-c", cfg, "bench", "--country", "Atlantis"); code != 1 || !strings.Contains(out, "Atlantis") {
		t.Errorf("unknown country: exit %d\n%s", code, out)
	}
}
