package daemon

import (
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/daemon/traffic"
	"github.com/amwi/amwi/internal/archtest"
)

// TestPackagesEstimate: the settings page's figures, from a real tree (repo-add databases,
// pool files with their .sig) and real recorded downloads. In "all" mode, switching frees
// the files no client downloaded within keep_days (and, with a budget, the used ones past
// it); in "used" mode, switching fetches what the databases name and the disk lacks.
func TestPackagesEstimate(t *testing.T) {
	d, _ := openDaemon(t, "[server]\nlisten = \"127.0.0.1:0\"\n[mirror]\nroot = \"mirror\"\nrepos = [\"core\"]\n[state]\ndir = \"state\"\n")
	defer d.Close()
	root := d.Config.Mirror.Root
	a, b, c := archtest.Pkg{Name: "alpha", PayloadSize: 300 << 10}, archtest.Pkg{Name: "beta", PayloadSize: 200 << 10}, archtest.Pkg{Name: "gamma", PayloadSize: 100 << 10}
	archtest.BuildTree(t, root, archtest.Repo{Name: "core", Pkgs: []archtest.Pkg{a, b, c}})
	size := func(p archtest.Pkg, ext string) int64 {
		fi, err := os.Stat(filepath.Join(root, p.PoolPath()+ext))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	gammaSize := size(c, "")
	bWeight := size(b, "") + size(b, ".sig")
	aWeight := size(a, "") + size(a, ".sig")
	// gamma is named but not on disk (a used-mode mirror that never fetched it).
	os.Remove(filepath.Join(root, c.PoolPath()))
	os.Remove(filepath.Join(root, c.PoolPath()+".sig"))
	d.search.Load()
	if n := d.search.Index().Len(); n != 3 {
		t.Fatalf("index holds %d packages, want 3", n)
	}
	d.traffic.Record(traffic.Hit{Time: time.Now(), Client: netip.MustParseAddr("10.0.0.2"), Path: "/archlinux/core/os/x86_64/" + a.FileName(), Status: 200, Bytes: 1})
	s := &settings{d: d}

	est, err := s.PackagesEstimate()
	if err != nil {
		t.Fatal(err)
	}
	if est.Mode != "all" || est.FreeFiles != 1 || est.FreeBytes != bWeight || est.KeepDays != 90 || est.Partial {
		t.Errorf("all mode: %+v, want beta freed (1 file, %d bytes)", est, bWeight)
	}

	// A budget smaller than alpha: alpha would go too.
	if ps, err := s.update(func(c *config.Config) { c.Mirror.MaxGiB = 0.0001 }); err != nil || len(ps) > 0 {
		t.Fatal(ps, err)
	}
	if est, _ := s.PackagesEstimate(); est.FreeFiles != 2 || est.FreeBytes != aWeight+bWeight || est.BudgetBytes == 0 {
		t.Errorf("all mode with a budget below alpha: %+v, want 2 files, %d bytes", est, aWeight+bWeight)
	}

	if ps, err := s.update(func(c *config.Config) {
		c.Mirror.Packages, c.Sync.HTTPUpstream = config.PackagesUsed, "https://mirror.example/archlinux/"
	}); err != nil || len(ps) > 0 {
		t.Fatal(ps, err)
	}
	est, err = s.PackagesEstimate()
	if err != nil {
		t.Fatal(err)
	}
	// %CSIZE% is the package file's size, as repo-add wrote it.
	if est.Mode != "used" || est.FetchFiles != 1 || est.FetchBytes != gammaSize {
		t.Errorf("used mode: %+v, want gamma to fetch (1 file, %d bytes)", est, gammaSize)
	}
}

// TestWalkPoolBounded: the pool walk stops at its bound and says so.
func TestWalkPoolBounded(t *testing.T) {
	pool := filepath.Join(t.TempDir(), "pool")
	os.MkdirAll(filepath.Join(pool, "packages"), 0o755)
	for _, n := range []string{"x.pkg.tar.zst", "y.pkg.tar.zst", "z.pkg.tar.zst"} {
		os.WriteFile(filepath.Join(pool, "packages", n), []byte(strings.Repeat("x", 10)), 0o644)
	}
	os.Symlink("x.pkg.tar.zst", filepath.Join(pool, "packages", "link"))
	var got []string
	partial, err := walkPool(pool, func(_ string, fi fs.FileInfo) { got = append(got, fi.Name()) })
	if err != nil || partial || len(got) != 3 {
		t.Errorf("walk: %v %v %v (links are not files)", got, partial, err)
	}
	if partial, err := walkPool(filepath.Join(t.TempDir(), "none"), func(string, fs.FileInfo) {}); err != nil || partial {
		t.Errorf("no pool: %v %v", partial, err)
	}
}
