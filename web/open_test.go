package web

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestOpenWhileRenaming: a package is a link through ".." into pool/, and openat2 with
// RESOLVE_BENEATH answers EAGAIN when any rename on the system races such a "..", as a
// sync's renames do: a pacman downloading during a sync got a 500 (seen in
// e2e TestPacmanDuringSync). Opening while another goroutine renames must always work.
func TestOpenWhileRenaming(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"core/os/x86_64", "pool/packages", "scratch"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const pkg = "foo-1.0-1-x86_64.pkg.tar.zst"
	if err := os.WriteFile(filepath.Join(dir, "pool/packages", pkg), []byte("package"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../pool/packages/"+pkg, filepath.Join(dir, "core/os/x86_64", pkg)); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	b := newBeneath(root)
	if b.fd < 0 {
		t.Fatal("no directory descriptor: openat2 is not what is tested")
	}

	var stop atomic.Bool
	done := make(chan struct{})
	go func() { // a sync publishing
		defer close(done)
		a, c := filepath.Join(dir, "scratch/a"), filepath.Join(dir, "scratch/b")
		os.WriteFile(a, nil, 0o644)
		for !stop.Load() {
			os.Rename(a, c)
			os.Rename(c, a)
		}
	}()
	defer func() { stop.Store(true); <-done }()
	deadline := time.Now().Add(2 * time.Second)
	opens := 0
	for ; time.Now().Before(deadline) || opens < 20000; opens++ {
		f, _, err := b.OpenSized("core/os/x86_64/" + pkg)
		if err != nil {
			t.Fatalf("open %d while renaming: %v", opens, err)
		}
		f.Close()
	}
	if b.off.Load() {
		t.Errorf("openat2 was turned off by a race")
	}
}
