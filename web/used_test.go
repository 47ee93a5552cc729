package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/config"
	dsync "github.com/amwi/amwi/daemon/mirrorsync"
	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/internal/archtest"
)

// getBody fetches u as c and returns status and body.
func getBody(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSettingsPackagesSection: the settings page has the Packages fields with their saved
// values, says before saving what switching mirror.packages would move (the server's
// estimate, in both directions), posts the fields to Save and shows their problems next
// to them.
func TestSettingsPackagesSection(t *testing.T) {
	o, _ := dashboardOptions(t)
	cfg := config.Default()
	cfg.Mirror.KeepDays, cfg.Mirror.MaxGiB = 30, 2.5
	cfg.Sync.HTTPUpstream, cfg.Sync.HTTPFallbackUpstreams = "https://a.example/arch/", []string{"https://b.example/arch/", "https://c.example/arch/"}
	fs := &fakeSettings{cfg: cfg, est: PackagesEstimate{Mode: "all", KeepDays: 30, FreeFiles: 1234, FreeBytes: 3 << 30}}
	o.Settings = fs
	srv := httptest.NewServer(NewHandler(o))
	defer srv.Close()
	c := client(t)
	registerAdmin(t, srv, c)
	_, page := getBody(t, c, srv.URL+"/settings")
	for _, want := range []string{`<option value="all" selected>all</option>`, `name="mirror.keep_days" type="number" min="1" max="400" value="30"`,
		`name="mirror.max_gib" type="number" min="0" step="any" value="2.5"`, `name="sync.http_upstream" value="https://a.example/arch/"`,
		">https://b.example/arch/\nhttps://c.example/arch/</textarea>",
		"Switching to used would free about 3.0 GiB (1234 package files not downloaded in the last 30 days)."} {
		if !strings.Contains(page, want) {
			t.Errorf("settings page lacks %q", want)
		}
	}

	cfg.Mirror.Packages = "used"
	fs.est = PackagesEstimate{Mode: "used", KeepDays: 30, FetchFiles: 1, FetchBytes: 1 << 29}
	_, page = getBody(t, c, srv.URL+"/settings")
	for _, want := range []string{`<option value="used" selected>used</option>`, "Switching to all would fetch about 0.5 GiB (1 package file not on disk)."} {
		if !strings.Contains(page, want) {
			t.Errorf("settings page in used mode lacks %q", want)
		}
	}

	token := csrfOf(t, c, srv.URL+"/settings")
	v := url.Values{"csrf": {token}, "sync.interval": {"6h"}, "mirror.packages": {"used"}, "mirror.keep_days": {"7"},
		"mirror.max_gib": {"0"}, "sync.http_upstream": {"https://x.example/arch/"}, "sync.http_fallback_upstreams": {"https://y.example/arch/"}}
	resp := postForm(t, c, srv.URL+"/settings", v)
	b, _ := io.ReadAll(resp.Body)
	for k, want := range map[string]string{"mirror.packages": "used", "mirror.keep_days": "7", "mirror.max_gib": "0",
		"sync.http_upstream": "https://x.example/arch/", "sync.http_fallback_upstreams": "https://y.example/arch/"} {
		if fs.saved[k] != want {
			t.Errorf("Save got %s = %q, want %q", k, fs.saved[k], want)
		}
	}
	// The fake's problem is shown; the typed values stay in the form.
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `name="mirror.keep_days" type="number" min="1" max="400" value="7"`) {
		t.Errorf("refused save: %d, typed values not kept", resp.StatusCode)
	}
	// A form without the section passes none of its keys (Save then keeps them).
	postForm(t, c, srv.URL+"/settings", url.Values{"csrf": {token}, "sync.interval": {"6h"}})
	for k := range usedFields {
		if _, ok := fs.saved[k]; ok {
			t.Errorf("a form without %s passed it to Save", k)
		}
	}
}

// historySync is a sync engine with a finished run in its history.
type historySync struct {
	fakeSync
	runs []dsync.Run
}

func (h *historySync) History(int) ([]dsync.Run, error) { return h.runs, nil }

// TestUsedOverviewAndMetrics: in "used" mode the Overview has its card (hits, misses,
// bytes from disk and from fetches, the last prefetch, the budget, a full mirror's size),
// /metrics has the amwi_used_* family and the last run's prefetch, and the sync history
// shows it; in "all" mode the card is absent and amwi_used_mode is 0.
func TestUsedOverviewAndMetrics(t *testing.T) {
	o, _ := dashboardOptions(t)
	// Hits: the mirror counts them (the one package served below), whatever the daemon says.
	stats := UsedStats{Used: true, KeepDays: 45, Hits: 7, Misses: 3, Shared: 1, Failed: 1, FetchedBytes: 5 << 20,
		MissServedBytes: 100, PrefetchedFiles: 12, PrefetchedBytes: 3 << 20, HeldBytes: 1 << 30, BudgetBytes: 4 << 30, FullBytes: 80 << 30}
	o.Used = func() UsedStats { return stats }
	o.Sync = &historySync{runs: []dsync.Run{{ID: 1, Result: "ok", Prefetched: 12, HeldBytes: 1 << 30}}}
	pkg := "core/os/x86_64/x-1-1-x86_64.pkg.tar.zst"
	if err := o.MirrorRoot.MkdirAll("core/os/x86_64", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := o.MirrorRoot.WriteFile(pkg, make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(o))
	defer srv.Close()
	c := client(t)
	if code, _ := getBody(t, c, srv.URL+MirrorPrefix+pkg); code != 200 {
		t.Fatalf("package: %d", code)
	}

	_, page := getBody(t, c, srv.URL+"/")
	for _, want := range []string{"Packages: used mode", "<b>1</b> from disk · <b>3</b> fetched on request", "(1 shared, 1 failed)",
		"sent from disk 900 B, from fetches 100 B; fetched from upstream 5.0 MiB", "last sync prefetched 12 files (3.0 MiB)",
		"held 1.0 GiB of 4.0 GiB", `style="width:25%"`, "a full mirror of these repos would need 80.0 GiB", "for 45 days"} {
		if !strings.Contains(page, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	_, metrics := getBody(t, c, srv.URL+"/metrics")
	for _, want := range []string{"amwi_used_mode 1\n", "amwi_used_hits_total 1\n", "amwi_used_misses_total 3\n",
		"amwi_used_misses_shared_total 1\n", "amwi_used_misses_failed_total 1\n", "amwi_used_fetched_bytes_total 5242880\n",
		"amwi_used_miss_served_bytes_total 100\n", "amwi_used_held_bytes 1073741824\n", "amwi_used_budget_bytes 4294967296\n",
		"amwi_used_full_mirror_bytes 85899345920\n", "amwi_sync_last_prefetched_files 12\n", "amwi_package_sent_bytes_total 1000\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	registerAdmin(t, srv, c)
	if _, page := getBody(t, c, srv.URL+"/sync"); !strings.Contains(page, "used mode: prefetched 12 files clients use; holding 1.0 GiB") {
		t.Errorf("sync history lacks the prefetch")
	}

	// No budget.
	stats.BudgetBytes = 0
	if _, page := getBody(t, c, srv.URL+"/"); !strings.Contains(page, "held 1.0 GiB · no budget") {
		t.Errorf("overview without a budget does not say so")
	}

	// "all" mode: no card; the gauge says 0 (after the scrape cache's second).
	stats = UsedStats{}
	if _, page := getBody(t, c, srv.URL+"/"); strings.Contains(page, "used mode") {
		t.Errorf("the used-mode card shows in all mode")
	}
	time.Sleep(1100 * time.Millisecond)
	if _, metrics := getBody(t, c, srv.URL+"/metrics"); !strings.Contains(metrics, "amwi_used_mode 0\n") {
		t.Errorf("amwi_used_mode is not 0 in all mode")
	}
}

// TestUsedPackageMarks: in "used" mode, search results and the package page say whether
// each package's file is on disk or will be fetched on first request, from the real tree
// (its repo link followed into pool/); in "all" mode neither says anything.
func TestUsedPackageMarks(t *testing.T) {
	o, _ := dashboardOptions(t)
	svc := o.Search.(*search.Service)
	here, gone := archtest.Pkg{Name: "marked-here", Desc: "marked test package"}, archtest.Pkg{Name: "marked-gone", Desc: "marked test package"}
	archtest.BuildTree(t, svc.Root, archtest.Repo{Name: "core", Pkgs: []archtest.Pkg{here, gone}})
	// A "used" mirror keeps the link and the database entry; the pool file goes.
	if err := os.Remove(filepath.Join(svc.Root, gone.PoolPath())); err != nil {
		t.Fatal(err)
	}
	svc.Load()
	used := true
	o.Used = func() UsedStats { return UsedStats{Used: used} }
	srv := httptest.NewServer(NewHandler(o))
	defer srv.Close()
	c := client(t)

	_, page := getBody(t, c, srv.URL+"/search?q=marked")
	rowOf := func(name string) string {
		i := strings.Index(page, `<a href="/packages/core/`+name+`">`)
		if i < 0 {
			t.Fatalf("no result %s:\n%s", name, page)
		}
		row := page[i:]
		return row[:strings.Index(row, "</tr>")]
	}
	if r := rowOf("marked-here"); !strings.Contains(r, "on disk") || strings.Contains(r, "fetched on first request") {
		t.Errorf("marked-here row: %s", r)
	}
	if r := rowOf("marked-gone"); !strings.Contains(r, "fetched on first request") {
		t.Errorf("marked-gone row: %s", r)
	}
	if _, p := getBody(t, c, srv.URL+"/packages/core/marked-here"); !strings.Contains(p, `<span class="pill ok">on disk</span>`) {
		t.Errorf("package page of a file on disk does not say so")
	}
	if _, p := getBody(t, c, srv.URL+"/packages/core/marked-gone"); !strings.Contains(p, "fetched on first request") {
		t.Errorf("package page of a file not on disk does not say so")
	}

	used = false
	_, page = getBody(t, c, srv.URL+"/search?q=marked")
	_, pkgPage := getBody(t, c, srv.URL+"/packages/core/marked-gone")
	if strings.Contains(page+pkgPage, "on disk") || strings.Contains(page+pkgPage, "fetched on first request") {
		t.Errorf("all mode marks packages")
	}
}

// TestSettingsReverseDNS: the settings page has traffic.reverse_dns as a checkbox with its
// saved value and origin; ticked or not it reaches Save as "true"/"false" (the hidden "0"
// tells an unticked box from a form without the field, which passes nothing), and a
// refused save shows the box as it was posted. Admin only, with the session's CSRF token.
func TestSettingsReverseDNS(t *testing.T) {
	o, _ := dashboardOptions(t)
	fs := &fakeSettings{cfg: config.Default()} // reverse_dns on by default
	o.Settings = fs
	srv := httptest.NewServer(NewHandler(o))
	defer srv.Close()
	cs := roleClients(t, srv, o)
	c := cs["admin"]
	box := `<input type="checkbox" name="traffic.reverse_dns" value="1" checked>`
	if _, page := getBody(t, c, srv.URL+"/settings"); !strings.Contains(page, box) || !strings.Contains(page, `<input type="hidden" name="traffic.reverse_dns" value="0">`) {
		t.Fatalf("settings page lacks the ticked reverse DNS box")
	}
	fs.cfg.Traffic.ReverseDNS = false
	if _, page := getBody(t, c, srv.URL+"/settings"); strings.Contains(page, box) || !strings.Contains(page, `name="traffic.reverse_dns" value="1" >`) {
		t.Errorf("reverse DNS off: the box is still ticked")
	}

	token := csrfOf(t, c, srv.URL+"/settings")
	for _, tt := range []struct {
		name string
		vals []string // as the browser posts them
		want string   // what Save gets; "" for nothing
	}{
		{"unticked", []string{"0"}, "false"},
		{"ticked", []string{"0", "1"}, "true"},
		{"a form without the field", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := url.Values{"csrf": {token}, "sync.interval": {"6h"}}
			if tt.vals != nil {
				v["traffic.reverse_dns"] = tt.vals
			}
			resp := postForm(t, c, srv.URL+"/settings", v)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got, ok := fs.saved["traffic.reverse_dns"]
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("Save got %q (present %v), want %q", got, ok, tt.want)
			}
			// The fake refuses every save: the form shows what was posted.
			if tt.want == "true" && !strings.Contains(string(b), box) {
				t.Errorf("the refused form lost the ticked box")
			}
		})
	}
	// Not for a viewer, nor without the token.
	for who, cl := range map[string]*http.Client{"viewer": cs["viewer"], "admin without the token": c} {
		fs.saved = nil
		v := url.Values{"sync.interval": {"6h"}, "traffic.reverse_dns": {"0"}}
		if who == "viewer" {
			v.Set("csrf", csrfOf(t, cl, srv.URL+"/"))
		}
		resp := postForm(t, cl, srv.URL+"/settings", v)
		resp.Body.Close()
		if resp.StatusCode < 400 || fs.saved != nil {
			t.Errorf("%s: %d, Save got %v", who, resp.StatusCode, fs.saved)
		}
	}
}
