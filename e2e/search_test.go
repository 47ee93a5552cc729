package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/amwi/amwi/internal/archtest"
)

// entries turns pacman -Ss style output into sorted "header | description" pairs.
func entries(out string) []string {
	var res []string
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		res = append(res, lines[i]+" | "+strings.TrimSpace(lines[i+1]))
	}
	sort.Strings(res)
	return res
}

// TestSearchCLIMatchesPacman: `amwi search` reads the mirror's databases without a daemon
// and prints what pacman -Ss prints (same lines; amwi ranks them).
func TestSearchCLIMatchesPacman(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mirror := filepath.Join(dir, "mirror")
	archtest.BuildTree(t, mirror, testRepos...)
	cfg := writeConfig(t, dir, mirror, "")
	os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "[mirror]", "[mirror]\nrepos = [\"core\", \"extra\"]", 1)), 0o644)
	client := filepath.Join(dir, "client")
	conf := archtest.PacmanConf(t, client, "http://127.0.0.1:1/x", "core", "extra")
	os.MkdirAll(filepath.Join(client, "db", "sync"), 0o755)
	for _, r := range []string{"core", "extra"} {
		b, _ := os.ReadFile(filepath.Join(mirror, r, "os", "x86_64", r+".db"))
		os.WriteFile(filepath.Join(client, "db", "sync", r+".db"), b, 0o644)
	}
	for _, q := range [][]string{{"bash"}, {"gnu"}, {"greeting"}, {"lib", "gnu"}} {
		ours, code := run(t, nil, nil, append([]string{"-c", cfg, "search"}, q...)...)
		if code != 0 {
			t.Fatalf("amwi search %v: exit %d\n%s", q, code, ours)
		}
		cmd := exec.Command("pacman", append([]string{"--config", conf, "--color", "never", "-Ss"}, q...)...)
		theirs, err := cmd.Output()
		if err != nil {
			t.Fatalf("pacman -Ss %v: %v", q, err)
		}
		if a, b := entries(ours), entries(string(theirs)); strings.Join(a, "\n") != strings.Join(b, "\n") {
			t.Errorf("search %v:\namwi:\n%s\npacman:\n%s", q, strings.Join(a, "\n"), strings.Join(b, "\n"))
		}
	}
	if out, code := run(t, nil, nil, "-c", cfg, "search", "no-such-package-anywhere"); code != 1 {
		t.Errorf("no match: exit %d (pacman exits 1)\n%s", code, out)
	}
	out, code := run(t, nil, nil, "-c", cfg, "search", "--json", "--repo", "extra", "hello")
	var v struct {
		Count   int `json:"count"`
		Results []struct {
			Name  string `json:"pkgname"`
			Epoch int    `json:"epoch"`
			Repo  string `json:"repo"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 || v.Count != 1 || v.Results[0].Name != "hello" || v.Results[0].Epoch != 2 {
		t.Errorf("search --json: exit %d, %v\n%s", code, err, out)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSearchAPI: the daemon's JSON search, package detail and what the last sync changed.
func TestSearchAPI(t *testing.T) {
	t.Parallel()
	tr, rd := syncUpstream(t)
	dir := t.TempDir()
	cfg := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "")
	os.WriteFile(cfg, []byte(mustRead(t, cfg)+"[search]\nper_page = 2\n"), 0o644)
	_, base := serve(t, cfg)
	if code, _ := httpGet(t, base+"/api/search?q=bash"); code != 200 {
		t.Fatalf("search before any sync: %d", code)
	}
	if out, code := run(t, nil, nil, "-c", cfg, "sync"); code != 0 {
		t.Fatalf("sync: %s", out)
	}
	code, body := httpGet(t, base+"/api/search?q=gnu")
	var res struct {
		Count, Page, NumPages, Limit int
		Results                      []map[string]any
	}
	json.Unmarshal([]byte(body), &res)
	if code != 200 || res.Count != 3 || res.Limit != 2 || len(res.Results) != 2 || !strings.Contains(body, `"num_pages":2`) {
		t.Fatalf("/api/search?q=gnu after the sync: %d %s", code, body)
	}
	for _, k := range []string{"pkgname", "pkgbase", "repo", "arch", "pkgver", "pkgrel", "epoch", "pkgdesc", "url", "filename", "compressed_size", "installed_size", "build_date", "packager", "groups", "licenses", "provides", "depends"} {
		if _, ok := res.Results[0][k]; !ok {
			t.Errorf("result lacks archweb field %q", k)
		}
	}
	for q, want := range map[string]int{"": 400, "?q=": 400, "?q=" + strings.Repeat("x", 300): 400, "?q=bash&repo=nope": 400, "?q=bash&page=0": 400} {
		if code, _ := httpGet(t, base+"/api/search"+q); code != want {
			t.Errorf("/api/search%.30s: %d, want %d", q, code, want)
		}
	}
	code, body = httpGet(t, base+"/api/packages/core/bash")
	var pkg map[string]any
	json.Unmarshal([]byte(body), &pkg)
	if code != 200 || pkg["download_url"] != "/archlinux/core/os/x86_64/bash-5.2.037-1-x86_64.pkg.tar.zst" || !strings.Contains(body, `"required_by":[{"repo":"extra","pkgname":"hello"}]`) {
		t.Errorf("/api/packages/core/bash: %d %s", code, body)
	}
	if resp, err := http.Get(base + pkg["download_url"].(string)); err != nil || resp.StatusCode != 200 {
		t.Errorf("download_url does not serve the package: %v", err)
	}
	if code, _ := httpGet(t, base+"/api/packages/core/nope"); code != 404 {
		t.Errorf("missing package: %d", code)
	}

	// Upstream changes; the next sync's record says what changed.
	tr.AddPackages(t, "extra", archtest.Pkg{Name: "nano", Version: "8.2-1", Desc: "small editor"})
	if out, code := run(t, nil, nil, "-c", cfg, "sync"); code != 0 {
		t.Fatalf("sync: %s", out)
	}
	code, body = httpGet(t, base+"/api/changes")
	if code != 200 || !strings.Contains(body, `"added":[{"repo":"extra","pkgname":"nano","new_version":"8.2-1"}]`) || !strings.Contains(body, `"run_id":2`) {
		t.Errorf("/api/changes: %d %s", code, body)
	}
	if code, body := httpGet(t, base+"/api/search?q=nano"); code != 200 || !strings.Contains(body, `"count":1`) {
		t.Errorf("the index was not rebuilt after the sync: %s", body)
	}
}
