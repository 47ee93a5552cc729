package store

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amwi/amwi/daemon/auth"
)

func TestOpenLockAndReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir+"/state", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Open(dir+"/state", 200*time.Millisecond)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("second open waited %s despite a 200ms lock wait", time.Since(start))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir+"/state", time.Second)
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	s.Close()
}

func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte("schema"), []byte("99")) })
	s.Close()
	if _, err := Open(dir, time.Second); err == nil {
		t.Fatal("a store with a newer schema opened without complaint")
	}
}

// TestKnownBucketNamesFarApart: damagedName reads a name one byte off a known bucket's as
// that bucket; two known names one byte apart would be taken for each other.
func TestKnownBucketNamesFarApart(t *testing.T) {
	for _, k := range knownBuckets {
		if got := damagedName(k); got != "" {
			t.Errorf("%q is one byte from %q: choose a name further from the others", k, got)
		}
	}
}

// TestOpenWhileRepairReplacesTheFile: an Open that waits for the lock while `amwi db
// repair` puts a new file in place opens the new file, not the one repair kept aside
// (whose writes would be lost at the next start).
func TestOpenWhileRepairReplacesTheFile(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, FileName)
	// The repaired file: a database of its own, with an account.
	other := t.TempDir()
	s, err = Open(other, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutUser(auth.User{Name: "alice", Hash: "x"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Repair holds the old file's lock...
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := lockFile(old, true, 0); err != nil {
		t.Fatal(err)
	}
	opened := make(chan *Store)
	go func() {
		s, err := Open(dir, 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		opened <- s
	}()
	time.Sleep(300 * time.Millisecond)
	// ...keeps it aside and renames the new one into place, then lets go.
	if err := os.Link(path, path+".before-repair-x"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(other, FileName), path); err != nil {
		t.Fatal(err)
	}
	old.Close()
	s = <-opened
	if s == nil {
		t.FailNow()
	}
	defer s.Close()
	if n, err := s.CountUsers(); err != nil || n != 1 {
		t.Fatalf("opened the file repair kept aside: %d users, %v", n, err)
	}
}

// TestCreateGivesTheStateDirsOwner: root creating the database (`amwi user add` before the
// first start) leaves a file the service's user, who owns the state dir, can open.
func TestCreateGivesTheStateDirsOwner(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 4242, 4343
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || int(st.Gid) != gid {
		t.Fatalf("created %s owned by %d:%d, want the state dir's %d:%d", fi.Name(), st.Uid, st.Gid, uid, gid)
	}
}
