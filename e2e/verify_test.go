package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amwi/amwi/internal/archtest"
)

// TestVerifyFindsRot: an SD card truncates one package and flips a bit in another.
// `amwi verify` finds the truncated one and exits 1, --full also the flipped one; the
// dashboard's API and /healthz show the result; --repair removes both, an ordinary
// `amwi sync` fetches them again, and the mirror verifies clean.
func TestVerifyFindsRot(t *testing.T) {
	t.Parallel()
	_, rd := syncUpstream(t)
	dir := t.TempDir()
	cfg := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "")
	if out, code := run(t, nil, nil, "-c", cfg, "sync"); code != 0 {
		t.Fatalf("initial sync: %s", out)
	}
	if out, code := run(t, nil, nil, "-c", cfg, "verify", "--full"); code != 0 || !strings.Contains(out, "no problems") {
		t.Fatalf("verify of a fresh mirror: exit %d\n%s", code, out)
	}
	mirror := filepath.Join(dir, "mirror")
	truncated := filepath.Join(mirror, testRepos[1].Pkgs[2].PoolPath()) // bigdata
	flipped := filepath.Join(mirror, testRepos[0].Pkgs[1].PoolPath())   // bash
	fi, _ := os.Stat(truncated)
	os.Truncate(truncated, fi.Size()-4096)
	b, _ := os.ReadFile(flipped)
	b[len(b)/2] ^= 0x10
	os.WriteFile(flipped, b, 0o644)

	out, code := run(t, nil, nil, "-c", cfg, "verify")
	if code != 1 || !strings.Contains(out, "wrong size 1") || !strings.Contains(out, testRepos[1].Pkgs[2].FileName()) {
		t.Fatalf("verify (sizes) of a damaged mirror: exit %d\n%s", code, out)
	}
	out, code = run(t, nil, nil, "-c", cfg, "verify", "--full")
	if code != 1 || !strings.Contains(out, "corrupt 1") || !strings.Contains(out, testRepos[0].Pkgs[1].FileName()+": SHA-256 differs") {
		t.Fatalf("verify --full of a damaged mirror: exit %d\n%s", code, out)
	}

	p, base := serve(t, cfg)
	_, body := httpGet(t, base+"/api/sync")
	var api struct {
		Verification struct {
			Full   bool `json:"full"`
			Report struct {
				Corrupt   int `json:"corrupt"`
				WrongSize int `json:"wrong_size"`
			} `json:"report"`
		} `json:"verification"`
	}
	if err := json.Unmarshal([]byte(body), &api); err != nil || !api.Verification.Full || api.Verification.Report.Corrupt != 1 || api.Verification.Report.WrongSize != 1 {
		t.Errorf("/api/sync does not show the last verification: %v\n%s", err, body)
	}
	_, health := httpGet(t, base+"/healthz")
	if !strings.Contains(health, `"status":"degraded"`) || !strings.Contains(health, "amwi verify found 2 files") {
		t.Errorf("/healthz after a verify found damage: %s", health)
	}

	out, code = run(t, nil, nil, "-c", cfg, "verify", "--full", "--repair")
	if code != 1 || !strings.Contains(out, "removed 2 damaged files") {
		t.Fatalf("verify --repair: exit %d\n%s", code, out)
	}
	out, code = run(t, nil, nil, "-c", cfg, "sync")
	if code != 0 || !strings.Contains(out, "done") {
		t.Fatalf("sync after --repair: exit %d\n%s\n%s", code, out, p.Output())
	}
	if out, code := run(t, nil, nil, "-c", cfg, "verify", "--full"); code != 0 || !strings.Contains(out, "no problems") {
		t.Fatalf("verify after the repair: exit %d\n%s", code, out)
	}
	if _, health := httpGet(t, base+"/healthz"); !strings.Contains(health, `"status":"ok"`) {
		t.Errorf("/healthz after the repair: %s", health)
	}
}

// TestIncompleteShowsEverywhere: the upstream's database names a package it does not
// have. The sync says incomplete, and so do /healthz (degraded, with the count),
// /metrics, the dashboard's API and `amwi sync`'s exit status.
func TestIncompleteShowsEverywhere(t *testing.T) {
	t.Parallel()
	tr, rd := syncUpstream(t)
	dir := t.TempDir()
	cfg := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "")
	p, base := serve(t, cfg)
	if out, code := run(t, nil, nil, "-c", cfg, "sync"); code != 0 {
		t.Fatalf("initial sync: %s\n%s", out, p.Output())
	}
	lost := archtest.Pkg{Name: "lost", Version: "1-1", Desc: "named but gone"}
	tr.AddPackages(t, "extra", lost)
	os.Remove(filepath.Join(tr.Root, lost.PoolPath()))
	out, code := run(t, nil, nil, "-c", cfg, "sync")
	if code != 1 || !strings.Contains(out, "incomplete") || !strings.Contains(out, lost.FileName()) {
		t.Fatalf("sync with a package missing upstream: exit %d\n%s", code, out)
	}
	_, health := httpGet(t, base+"/healthz")
	if !strings.Contains(health, `"status":"degraded"`) || !strings.Contains(health, "1 file missing") {
		t.Errorf("/healthz: %s", health)
	}
	_, metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{"amwi_sync_last_ok 0", "amwi_sync_last_missing_files 1"} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	_, hist := apiSync(t, base)
	if len(hist) == 0 || hist[0]["result"] != "incomplete" {
		t.Errorf("/api/sync history: %v", hist)
	}
	_, page := httpGet(t, base+"/")
	if !strings.Contains(page, "incomplete") {
		t.Errorf("the overview does not say the last sync was incomplete")
	}
}
