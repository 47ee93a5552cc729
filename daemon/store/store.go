// Package store is AMWI's persistent state: one bbolt file in the state dir.
//
// bbolt takes an exclusive flock on the file, and the store one on the state dir itself
// (which repair takes too, with or without a file: see lockDir); the kernel drops both
// when the process dies, so the store doubles as the "one daemon per state dir" guard
// without a lock file that a crash could leave behind. This package only opens, checks and closes the file; the
// features that keep data in it add their buckets.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// FileName is the database file inside the state dir.
const FileName = "amwi.db"

// schemaVersion is written on creation; a later version refuses to open an unknown one.
const schemaVersion = 1

var bucketMeta = []byte("meta")

// ErrLocked means another process holds the database.
var ErrLocked = errors.New("database is locked by another process")

// Store is the open database. Every transaction runs under a guard: a panic in bbolt (a
// damaged page) or a memory fault (a page beyond the end of a file cut short under us)
// becomes an error naming the file, and the store refuses all later work, since bbolt's
// state after a panic mid-commit cannot be trusted; the health check says so.
type Store struct {
	db      *bolt.DB
	path    string
	dirLock *os.File // the state dir's lock (see lockDir)
	// OnBroken, when set before use, hears the first such panic once.
	OnBroken func(error)

	broken atomic.Pointer[BrokenError]
	// skipped counts records that did not decode and were passed over.
	skipped atomic.Int64
}

// BrokenError is a store that stopped working after a panic or memory fault in bbolt.
type BrokenError struct {
	Path  string
	Cause error
}

func (e *BrokenError) Error() string {
	return fmt.Sprintf("%s is no longer used after this failure: %v; restart amwi, which checks the file as it opens and says what to do (or stop it and run `amwi db check`)", e.Path, e.Cause)
}

func (e *BrokenError) Unwrap() error { return e.Cause }

func (e *BrokenError) Is(target error) bool { return target == ErrDamaged }

// Open opens the database in dir, waiting at most lockWait for another process to let go
// of it. A missing file is created, unless the state dir has backups of one (then it is a
// *DamagedError: not the first start). A file that is not safe to use, damaged or cut
// short, is refused with a *DamagedError saying what to do; nothing is written to it.
func Open(dir string, lockWait time.Duration) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	dl, err := lockDir(dir, lockWait)
	if errors.Is(err, ErrLocked) {
		return nil, fmt.Errorf("open store %s: %w: is another `amwi serve`, `amwi sync` or `amwi db repair` using state dir %s?", path, ErrLocked, dir)
	} else if err != nil {
		return nil, fmt.Errorf("open store %s: lock state dir: %w", path, err)
	}
	// No repair runs: what one killed left behind goes (as big as the database).
	removeRepairLeftovers(dir)
	s, err := openLocked(dir, path, lockWait)
	if err != nil {
		dl.Close()
		return nil, err
	}
	s.dirLock = dl
	return s, nil
}

// lockDir takes the state dir's lock: flock on the directory itself, held by whoever may
// create or replace amwi.db (the store while it is open, repair throughout), so that a
// repair never renames its file over one a process is opening, nor two repairs run at
// once, whether or not amwi.db exists. Like the file's lock, the kernel drops it when the
// process dies: nothing is left behind.
func lockDir(dir string, wait time.Duration) (*os.File, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := lockFile(d, true, wait); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// openLocked is Open once the state dir's lock is held.
func openLocked(dir, path string, lockWait time.Duration) (*Store, error) {
	f, err := openFile(path, os.O_RDWR)
	if errors.Is(err, fs.ErrNotExist) {
		if err := create(dir, path); err != nil {
			return nil, err
		}
		f, err = openFile(path, os.O_RDWR)
	}
	var nf *NotFileError
	if errors.As(err, &nf) {
		return nil, err
	}
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("open store %s: %w: the file must be readable and writable by the user amwi runs as (for the service: chown amwi: %s), or run this command as that user", path, err, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := lockFile(f, true, lockWait); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("open store %s: %w: is another `amwi serve` or `amwi sync` using state dir %s?", path, ErrLocked, dir)
		}
		return nil, fmt.Errorf("open store %s: lock: %w", path, err)
	}
	// While we waited for the lock, `amwi db repair` may have put a new file in place and
	// kept the one we opened as amwi.db.before-repair-TIME: using that would write into
	// the kept file, and lose it all at the next start. Open the file now at path.
	if moved, err := replaced(f, path); err != nil || moved {
		f.Close()
		if err == nil {
			if lockWait <= 0 {
				return nil, fmt.Errorf("open store %s: %w: it was replaced while opening", path, ErrLocked)
			}
			return openLocked(dir, path, lockWait/2)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	rep, err := inspect(f, path, false)
	if err == nil && !rep.OK() {
		err = &DamagedError{Path: path, Report: rep, Backups: Backups(dir)}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	db, err := openBolt(f, false)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if probs := boltCheck(db); len(probs) > 0 {
		closeBolt(db)
		rep.Problems = probs
		return nil, &DamagedError{Path: path, Report: rep, Backups: Backups(dir)}
	}
	s := &Store{db: db, path: path}
	if err := s.init(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// NotFileError is a database path that holds something else than a file: a directory,
// a named pipe (which would block every reader), a device. It is damage to the state dir
// (errors.Is ErrDamaged), so amwi.service does not restart into it again and again.
type NotFileError struct {
	Path string
	Kind string // "a directory", "a named pipe (FIFO)", …
}

func (e *NotFileError) Error() string {
	return fmt.Sprintf("%s is %s, not a database file: move it away (amwi creates a new database on the first start; `amwi db repair --from-backup` restores the newest daily backup)", e.Path, e.Kind)
}

func (e *NotFileError) Is(target error) bool { return target == ErrDamaged }

// openFile opens the database file at path with flag, refusing anything but a regular
// file (*NotFileError). O_NONBLOCK keeps a named pipe from blocking the open itself; it
// changes nothing for a regular file.
func openFile(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.EISDIR) {
		return nil, &NotFileError{Path: path, Kind: "a directory"}
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &NotFileError{Path: path, Kind: fileKind(fi.Mode())}
	}
	return f, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	default:
		return "not a regular file"
	}
}

// create makes a new, empty database at path: built in a temporary file and linked into
// place, so that a crash leaves either no database or a whole one, never an empty file
// (which a later start would have to refuse). A missing database where backups exist is
// not a first start: refused.
func create(dir, path string) error {
	if bs := Backups(dir); len(bs) > 0 {
		return &DamagedError{Path: path, Backups: bs}
	}
	tmp, err := os.CreateTemp(dir, FileName+".new-*")
	if err != nil {
		return fmt.Errorf("create store %s: %w", path, err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	db, err := bolt.Open(tmp.Name(), 0o600, &bolt.Options{NoFreelistSync: true, Timeout: time.Second})
	if err == nil {
		err = db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			return b.Put([]byte("schema"), []byte(strconv.Itoa(schemaVersion)))
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		// Root running `amwi user add` before the first start: the service's user must be
		// able to open what root creates in its state dir.
		err = sameOwner(tmp.Name(), dir)
	}
	if err == nil {
		// Link, unlike rename, never replaces a database another process created meanwhile.
		if err = os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
			return nil
		} else if err != nil && !errors.Is(err, fs.ErrExist) {
			// A filesystem without hard links (vfat on a USB stick).
			err = os.Rename(tmp.Name(), path)
		}
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("create store %s: %w", path, err)
	}
	return nil
}

// replaced says whether path no longer names the open file f.
func replaced(f *os.File, path string) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	pi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return !os.SameFile(fi, pi), nil
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return nil
}

func (s *Store) init() error {
	// Read first: a write transaction costs an fsync and a page written on every start.
	ok := false
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta); b != nil {
			if v := b.Get([]byte("schema")); v != nil {
				n, err := strconv.Atoi(string(v))
				if err != nil || n > schemaVersion {
					return fmt.Errorf("store %s has schema %q, newer than this amwi understands (%d): use a newer amwi", s.path, v, schemaVersion)
				}
				ok = true
			}
		}
		return nil
	})
	if err != nil || ok {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
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

// view and update run a transaction under the guard (see Store).
func (s *Store) view(fn func(*bolt.Tx) error) error   { return s.do(false, fn) }
func (s *Store) update(fn func(*bolt.Tx) error) error { return s.do(true, fn) }

func (s *Store) do(write bool, fn func(*bolt.Tx) error) (err error) {
	if b := s.broken.Load(); b != nil {
		return b
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			b := &BrokenError{Path: s.path, Cause: panicError(r)}
			if s.broken.CompareAndSwap(nil, b) && s.OnBroken != nil {
				s.OnBroken(b)
			}
			err = s.broken.Load()
		}
	}()
	if write {
		return s.db.Update(fn)
	}
	return s.db.View(fn)
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Check reads the database, for health checks.
func (s *Store) Check() error {
	return s.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return fmt.Errorf("store %s: meta bucket missing", s.path)
		}
		return nil
	})
}

// Skipped is how many records did not decode and were passed over since Open.
func (s *Store) Skipped() int64 { return s.skipped.Load() }

// Close releases the database and its lock. After a panic bbolt may hold its own locks
// for ever; then Close gives up after a while (the process's end drops the file lock).
func (s *Store) Close() error {
	if s.dirLock != nil {
		defer s.dirLock.Close()
	}
	if s.broken.Load() == nil {
		return closeBolt(s.db)
	}
	done := make(chan error, 1)
	go func() { done <- closeBolt(s.db) }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		return fmt.Errorf("close store %s: bbolt did not let go after the failure", s.path)
	}
}

func closeBolt(db *bolt.DB) error { return guard(db.Close) }

var bucketRuns = []byte("sync_runs")

// NextRunID reserves the id of a new sync run; ids grow with time.
func (s *Store) NextRunID() (uint64, error) {
	var id uint64
	err := s.update(func(tx *bolt.Tx) error {
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
	err := s.update(func(tx *bolt.Tx) error {
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
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < n; k, v = c.Prev() {
			if !json.Valid(v) {
				s.skipped.Add(1)
				continue
			}
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
