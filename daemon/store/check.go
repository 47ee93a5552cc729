package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// ErrDamaged is what every *DamagedError matches with errors.Is.
var ErrDamaged = errors.New("state database damaged")

// Report is what a check of a database file found.
type Report struct {
	Path     string
	Size     int64
	PageSize int
	Pages    uint64 // the high-water mark: pages in use or free
	TxID     uint64
	// Records counts the key/value pairs of each top-level bucket.
	Records map[string]uint64
	// Problems make bbolt unable to use the file safely: `amwi serve` refuses it.
	Problems []string
	// Bad are records that do not decode; the store skips them, repair drops them.
	Bad []string
	// More counts problems (and bad records) beyond those listed.
	More int
	Took time.Duration
}

// OK says the file is safe to open: no structural problem. Bad records do not count.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Clean says there is nothing wrong at all.
func (r *Report) Clean() bool { return r.OK() && len(r.Bad) == 0 }

// DamagedError is the refusal of a database that is not safe to open, or that is missing
// where one existed before. Its message says what to run.
type DamagedError struct {
	Path    string
	Report  *Report // nil when the file is missing
	Backups []string
	// Command is how the user runs amwi ("amwi -c FILE" when the config is not the
	// default); "amwi" when empty.
	Command string
}

func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

func (e *DamagedError) Error() string {
	cmd := e.Command
	if cmd == "" {
		cmd = "amwi"
	}
	var b strings.Builder
	if e.Report == nil {
		fmt.Fprintf(&b, "state database %s is missing, but %s has backups of it: a database is created afresh only on the first start, so as not to lose all accounts and history.\n", e.Path, filepath.Dir(e.Path))
		fmt.Fprintf(&b, "  to restore the newest backup (%s):  %s db repair --from-backup\n", e.Backups[0], cmd)
		fmt.Fprintf(&b, "  to start afresh instead: move %s away", filepath.Join(filepath.Dir(e.Path), BackupDir))
		return b.String()
	}
	fmt.Fprintf(&b, "state database %s is damaged; amwi has not changed it:\n", e.Path)
	for _, p := range e.Report.Problems[:min(len(e.Report.Problems), 5)] {
		fmt.Fprintf(&b, "  - %s\n", p)
	}
	if n := len(e.Report.Problems) + e.Report.More - 5; n > 0 {
		fmt.Fprintf(&b, "  - … and %d more\n", n)
	}
	fmt.Fprintf(&b, "What to do (with amwi stopped):\n")
	todo := [][2]string{
		{cmd + " db check", "lists every problem"},
		{cmd + " db repair", fmt.Sprintf("copies what is readable into a new %s, filling what is not from the daily backups (the damaged file is kept beside it)", FileName)},
	}
	if len(e.Backups) > 0 {
		todo = append(todo, [2]string{cmd + " db repair --from-backup", fmt.Sprintf("restores the daily backup %s instead", e.Backups[0])})
	}
	width := len(todo[len(todo)-1][0])
	for _, t := range todo {
		fmt.Fprintf(&b, "  %-*s   %s\n", width, t[0], t[1])
	}
	if len(e.Backups) == 0 {
		fmt.Fprintf(&b, "  (there is no backup in %s to start from)\n", filepath.Join(filepath.Dir(e.Path), BackupDir))
	}
	return strings.TrimRight(b.String(), "\n")
}

// lockFile takes flock (exclusive or shared) on f as bbolt does, waiting up to wait.
func lockFile(f *os.File, exclusive bool, wait time.Duration) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		if time.Now().After(deadline) {
			return ErrLocked
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inspect checks the format of the open file f, which the caller has locked. With
// contents, it also decodes every record of the buckets it knows.
func inspect(f *os.File, path string, contents bool) (*Report, error) {
	start := time.Now()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("check store %s: %w", path, err)
	}
	rep := &Report{Path: path, Size: fi.Size()}
	var bad problems
	var res walkResult
	err = guard(func() error {
		bf, r, err := checkFormat(f, fi.Size(), func(w *walker) {
			if contents {
				w.onValue = func(p [][]byte, k, v []byte) {
					if why := badRecord(p, k, v); why != "" {
						bad.add("%s %s: %s", quotePath(p), quoteKey(k), why)
					}
				}
			}
		})
		if err != nil {
			return err
		}
		res = r
		m := bf.newest()
		rep.PageSize, rep.Pages, rep.TxID = int(bf.pageSize), m.hwm, m.txid
		return nil
	})
	if err != nil {
		rep.Problems = []string{err.Error()}
	}
	rep.Problems = append(rep.Problems, res.list...)
	rep.More = res.n - len(res.list) + bad.n - len(bad.list)
	rep.Bad = bad.list
	rep.Records = res.records()
	rep.Took = time.Since(start)
	return rep, nil
}

// boltCheck runs bbolt's own consistency check on db; only for a file inspect passed,
// since the check follows page numbers in a goroutine no recover reaches.
func boltCheck(db *bolt.DB) []string {
	var out []string
	err := guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				if len(out) < maxProblems {
					out = append(out, "bbolt check: "+err.Error())
				}
			}
			return nil
		})
	})
	if err != nil {
		out = append(out, "bbolt check: "+err.Error())
	}
	return out
}

// openBolt hands the file f, locked and inspected, to bbolt. bbolt closes f.
//
// NoFreelistSync: bbolt then keeps no freelist page, rebuilding the list from the tree at
// open. A freelist page is rewritten by every commit (one more page written to an SD card
// every few seconds for the traffic counters), and a damaged one makes bbolt hand out pages
// in use, which panics at the next write or silently overwrites data. The rebuild walks
// the tree, as the open's checks have just done.
func openBolt(f *os.File, readOnly bool) (*bolt.DB, error) {
	var db *bolt.DB
	err := guard(func() error {
		var err error
		db, err = bolt.Open(f.Name(), 0o600, &bolt.Options{
			ReadOnly:       readOnly,
			NoFreelistSync: true,
			// The caller holds the lock already, on this very file description.
			Timeout:  time.Second,
			OpenFile: func(string, int, os.FileMode) (*os.File, error) { return f, nil },
		})
		return err
	})
	return db, err
}

// CheckFile checks the database file at path as `amwi serve` would before using it, plus
// bbolt's own check and every record of the buckets it knows, and changes nothing. It
// waits up to lockWait for a process writing the file (then ErrLocked). The error is for
// a file it could not read at all; damage is in the report.
func CheckFile(path string, lockWait time.Duration) (*Report, error) {
	f, err := openFile(path, os.O_RDONLY)
	var nf *NotFileError
	if errors.As(err, &nf) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("check store: %w", err)
	}
	if err := lockFile(f, false, lockWait); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("check store %s: %w: stop `amwi serve`, or let `amwi db check` ask it", path, ErrLocked)
		}
		return nil, fmt.Errorf("check store %s: lock: %w", path, err)
	}
	rep, err := inspect(f, path, true)
	if err != nil || !rep.OK() {
		f.Close()
		return rep, err
	}
	start := time.Now()
	db, err := openBolt(f, true)
	if err != nil {
		rep.Problems = append(rep.Problems, "bbolt open: "+err.Error())
		return rep, nil
	}
	defer db.Close()
	rep.Problems = append(rep.Problems, boltCheck(db)...)
	rep.Took += time.Since(start)
	return rep, nil
}

// guard runs f, turning a panic, or a memory fault in f's goroutine (a page of the mmap
// beyond the end of the file is a SIGBUS), into an error.
func guard(f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = panicError(r)
		}
	}()
	return f()
}

// panicError describes a recovered panic.
func panicError(r any) error {
	if re, ok := r.(runtime.Error); ok {
		if fa, ok := r.(interface{ Addr() uintptr }); ok {
			return fmt.Errorf("memory fault reading the database at %#x: the file is damaged or was cut short", fa.Addr())
		}
		return fmt.Errorf("panic: %v", re)
	}
	return fmt.Errorf("panic: %v", r)
}

// Backups lists the daily backups in the state dir dir, newest first, as of now:
// BackupsAt(dir, time.Now()).
func Backups(dir string) []string { return BackupsAt(dir, time.Now()) }

// BackupsAt lists the daily backups in the state dir dir, newest first by the date in
// their names, except that those dated more than a day after now (written while the
// board's clock was wrong) come last: a stale copy named 2099-01-01 must not be what
// repair starts from, nor push the real backups out.
func BackupsAt(dir string, now time.Time) []string {
	des, err := os.ReadDir(filepath.Join(dir, BackupDir))
	if err != nil {
		return nil
	}
	var out, ahead []string
	for _, de := range des {
		day, ok := backupDay(de.Name())
		if !ok || !de.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, BackupDir, de.Name())
		if aheadOf(day, now) {
			ahead = append(ahead, p)
		} else {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	slices.Reverse(out)
	slices.Sort(ahead)
	return append(out, ahead...)
}

// aheadOf reports whether a backup of day was dated more than a day after now.
func aheadOf(day, now time.Time) bool { return day.After(now.Add(24 * time.Hour)) }
