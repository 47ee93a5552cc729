// Package store is AMWI's persistent state: one bbolt file in the state dir.
//
// bbolt takes an exclusive flock on the file, which the kernel drops when the process dies,
// so the store doubles as the "one daemon per state dir" guard without a lock file that a
// crash could leave behind. This package only opens, checks and closes the file; the
// features that keep data in it add their buckets.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the database file inside the state dir.
const FileName = "amwi.db"

// schemaVersion is written on creation; a later version refuses to open an unknown one.
const schemaVersion = 1

var bucketMeta = []byte("meta")

// ErrLocked means another process holds the database.
var ErrLocked = errors.New("database is locked by another process")

// Store is the open database.
type Store struct {
	db   *bolt.DB
	path string
}

// Open opens (creating if needed) the database in dir, waiting at most lockWait for another
// process to let go of it.
func Open(dir string, lockWait time.Duration) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockWait})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w: is another `amwi serve` or `amwi sync` using state dir %s?", path, ErrLocked, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return fmt.Errorf("init store %s: %w", s.path, err)
		}
		v := b.Get([]byte("schema"))
		if v == nil {
			return b.Put([]byte("schema"), []byte(strconv.Itoa(schemaVersion)))
		}
		if n, err := strconv.Atoi(string(v)); err != nil || n > schemaVersion {
			return fmt.Errorf("store %s has schema %q, newer than this amwi understands (%d): use a newer amwi", s.path, v, schemaVersion)
		}
		return nil
	})
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Check reads the database, for health checks.
func (s *Store) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return fmt.Errorf("store %s: meta bucket missing", s.path)
		}
		return nil
	})
}

// Close releases the database and its lock.
func (s *Store) Close() error { return s.db.Close() }

var bucketRuns = []byte("sync_runs")

// NextRunID reserves the id of a new sync run; ids grow with time.
func (s *Store) NextRunID() (uint64, error) {
	var id uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketRuns)
		if err != nil {
			return err
		}
		id, err = b.NextSequence()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store %s: next run id: %w", s.path, err)
	}
	return id, nil
}

// PutRun stores (or replaces) run id's record and keeps only the newest keep records.
func (s *Store) PutRun(id uint64, record []byte, keep int) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketRuns)
		if err != nil {
			return err
		}
		if err := b.Put(runKey(id), record); err != nil {
			return err
		}
		// Prune from the oldest end while there are more than keep.
		// Deleting under a moving cursor can skip keys, so collect first.
		var old [][]byte
		n := 0
		c := b.Cursor()
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			if n++; n > keep {
				old = append(old, append([]byte(nil), k...))
			}
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %s: save sync run %d: %w", s.path, id, err)
	}
	return nil
}

// Runs returns up to n run records, newest first.
func (s *Store) Runs(n int) ([][]byte, error) {
	var out [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < n; k, v = c.Prev() {
			out = append(out, append([]byte(nil), v...))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: read sync runs: %w", s.path, err)
	}
	return out, nil
}

func runKey(id uint64) []byte {
	k := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		k[i] = byte(id)
		id >>= 8
	}
	return k
}
