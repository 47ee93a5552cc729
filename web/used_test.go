package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/amwi/amwi/daemon/config"
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
