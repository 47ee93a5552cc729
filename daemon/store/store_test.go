package store

import (
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
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
