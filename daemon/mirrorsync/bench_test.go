package mirrorsync_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/amwi/amwi/daemon/mirrorsync"
	"github.com/amwi/amwi/internal/archtest"
)

// benchTree is an Arch-shaped tree with n packages per repo (links into pool/, .sig
// files, a database file): the shape that makes a full rsync walk cost its file list.
func benchTree(b *testing.B, n int) string {
	b.Helper()
	root := filepath.Join(b.TempDir(), "upstream")
	pool := filepath.Join(root, "pool", "packages")
	os.MkdirAll(pool, 0o755)
	for _, repo := range []string{"core", "extra"} {
		dir := filepath.Join(root, repo, "os", "x86_64")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, repo+".db.tar.gz"), make([]byte, 4096), 0o644)
		os.Symlink(repo+".db.tar.gz", filepath.Join(dir, repo+".db"))
		for i := 0; i < n; i++ {
			for _, ext := range []string{".pkg.tar.zst", ".pkg.tar.zst.sig"} {
				name := fmt.Sprintf("%s-package-number-%05d-1.0-1-x86_64%s", repo, i, ext)
				os.WriteFile(filepath.Join(pool, name), []byte(name), 0o644)
				os.Symlink("../../../pool/packages/"+name, filepath.Join(dir, name))
			}
		}
	}
	os.WriteFile(filepath.Join(root, "lastupdate"), []byte("1700000000\n"), 0o644)
	os.WriteFile(filepath.Join(root, "lastsync"), []byte("1700000000\n"), 0o644)
	return root
}

// BenchmarkNoChangeSync compares what a sync costs when nothing changed upstream: the
// lastupdate gate (up to date after fetching one tiny file) against a forced run that walks
// the whole file list, on a tree of 2 × 5,000 packages. Compare fetched-B/op and ns/op.
func BenchmarkNoChangeSync(b *testing.B) {
	archtest.Require(b, "rsync")
	root := benchTree(b, 5000)
	rd := archtest.StartRsyncd(b, root)
	for _, force := range []bool{false, true} {
		name := "gate"
		if force {
			name = "forced-full-walk"
		}
		b.Run(name, func(b *testing.B) {
			e := newBenchEnv(b, rd.URL)
			if run, _ := e.Sync(context.Background(), mirrorsync.Options{Trigger: mirrorsync.TriggerCLI}); run.Result != mirrorsync.ResultSuccess {
				b.Fatalf("initial sync: %+v", run)
			}
			var fetched int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run, err := e.Sync(context.Background(), mirrorsync.Options{Trigger: mirrorsync.TriggerCLI, Force: force})
				if err != nil || !run.OK() {
					b.Fatalf("%v %+v", err, run)
				}
				fetched += run.Stats.BytesReceived
			}
			b.ReportMetric(float64(fetched)/float64(b.N), "fetched-B/op")
		})
	}
}
