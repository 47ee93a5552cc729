package daemon

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/config"
)

// TestAllModeNeedsNoWritableRoot: an "all" mirror whose root the daemon cannot write (a
// read-only mount served as it is, synced elsewhere) started before "used" mode existed;
// then Open made the on-demand fetcher, which creates $root/.amwi/fetch, and the daemon
// refused to start ("used mode: …") in "all" mode. A regular file at $root/.amwi stands
// in for the read-only mount here (a test running as root writes anywhere). The fetcher is
// made when "used" mode needs it: a switch at runtime gets a 503 while it cannot be, and
// a working fetcher once it can.
func TestAllModeNeedsNoWritableRoot(t *testing.T) {
	dir := t.TempDir()
	mirror := filepath.Join(dir, "mirror")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(mirror, 0o755))
	must(os.WriteFile(filepath.Join(mirror, ".amwi"), nil, 0o644))
	path := filepath.Join(dir, "amwi.toml")
	must(os.WriteFile(path, []byte("[server]\nlisten = \"127.0.0.1:0\"\n[mirror]\nroot = \"mirror\"\n[sync]\nenabled = false\n[state]\ndir = \"state\"\n"), 0o640))
	cfg, err := config.LoadLayered(path)
	must(err)
	d := &Daemon{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := d.Open(); err != nil {
		t.Fatalf("an \"all\" mirror with an unwritable root does not open: %v", err)
	}
	defer d.Close()

	s := &settings{d: d}
	if problems, err := s.update(func(c *config.Config) {
		c.Mirror.Packages, c.Sync.HTTPUpstream = "used", "http://127.0.0.1:1/arch/"
	}); err != nil || len(problems) > 0 {
		t.Fatalf("switch to used: %v %v", problems, err)
	}
	miss := func() int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/archlinux/core/os/x86_64/x-1-1-x86_64.pkg.tar.zst", nil)
		if !(&usedMisses{d: d}).ServeMiss(rec, req, "core/os/x86_64/x-1-1-x86_64.pkg.tar.zst") {
			return http.StatusNotFound
		}
		return rec.Code
	}
	if code := miss(); code != http.StatusServiceUnavailable {
		t.Errorf("a miss while the fetcher cannot be made: %d, want 503", code)
	}
	must(os.Remove(filepath.Join(mirror, ".amwi")))
	d.fetcherMu.Lock()
	d.fetcherTried = d.fetcherTried.Add(-time.Hour)
	d.fetcherMu.Unlock()
	if code := miss(); code != http.StatusNotFound {
		t.Errorf("a miss of a name no database has, once the fetcher can be made: %d, want 404", code)
	}
	if d.usedFetcher() == nil {
		t.Error("no fetcher after the root became writable")
	}
	if _, err := os.Stat(filepath.Join(mirror, ".amwi", "fetch")); err != nil {
		t.Errorf("the fetcher's temp dir: %v", err)
	}
}
