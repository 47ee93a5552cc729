package ondemand

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/amwi/amwi/internal/layout"
)

// TestIndexMemoryRealDBs bounds the heap of the index of the real 2019 databases (core,
// extra, multilib; read in place through symlinks; see ../shared/data/arch-real/README.md).
func TestIndexMemoryRealDBs(t *testing.T) {
	src, _ := filepath.Abs("../../../shared/data/arch-real/alpm.rs-sync")
	if _, err := os.Stat(src); err != nil {
		t.Fatalf("real databases absent: %v", err)
	}
	root := t.TempDir()
	repos := []string{"core", "extra", "multilib"}
	for _, r := range repos {
		dir := layout.RepoPath(root, r)
		must(t, os.MkdirAll(dir, 0o755))
		must(t, os.Symlink(filepath.Join(src, r+".db"), filepath.Join(dir, r+".db")))
	}
	f, err := New(Config{Root: root})
	must(t, err)
	defer f.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	must(t, f.Reload(repos))
	runtime.GC()
	runtime.ReadMemStats(&after)
	n, sig := 0, 0
	for _, idx := range *f.index.Load() {
		n += len(idx)
		for _, e := range idx {
			sig += int(e.sigLen)
		}
	}
	// The index lives as long as the daemon (idle RSS ≤ 20 MB; today's extra has ~15,000
	// packages): it must not keep each package's desc text or signature bytes alive.
	if per := (after.HeapAlloc - before.HeapAlloc) / uint64(n); per > 300 {
		t.Errorf("index takes %d bytes per package, want ≤ 300", per)
	}
	t.Logf("%d entries: heap %d KiB (%d B/entry), of which decoded signatures %d KiB", n,
		(after.HeapAlloc-before.HeapAlloc)>>10, (after.HeapAlloc-before.HeapAlloc)/uint64(n), sig>>10)
}
