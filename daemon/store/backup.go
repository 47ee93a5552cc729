package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BackupDir is where the daily backups live, inside the state dir.
const BackupDir = "backup"

// KeepBackups is how many daily backups are kept.
const KeepBackups = 2

func backupName(day time.Time) string { return "amwi-" + day.Format(time.DateOnly) + ".db" }

func backupDay(name string) (time.Time, bool) {
	s, ok := strings.CutPrefix(name, "amwi-")
	if !ok {
		return time.Time{}, false
	}
	if s, ok = strings.CutSuffix(s, ".db"); !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.DateOnly, s)
	return t, err == nil
}

// WriteBackup writes a consistent copy of the database to w while it stays in use: a read
// transaction, which writers do not wait for. size, when set, hears the copy's size first.
func (s *Store) WriteBackup(w io.Writer, size func(int64)) (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		if size != nil {
			size(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store %s: copy: %w", s.path, err)
	}
	return n, nil
}

// SaveCopy writes a database copy to path: write fills a temporary file beside it, which
// is synced, checked like `amwi db check`, and only then renamed over path. A copy that
// fails the check is removed: the error says the database it came from is damaged (and
// the report says how). A copy with records that do not decode is kept; the report lists
// them.
func SaveCopy(path string, write func(io.Writer) error) (*Report, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("copy to %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 64<<10)
	if err := write(bw); err != nil {
		return nil, fmt.Errorf("copy to %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("copy to %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("copy to %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("copy to %s: %w", path, err)
	}
	rep, err := CheckFile(tmp.Name(), time.Second)
	if err != nil {
		return nil, fmt.Errorf("copy to %s: %w", path, err)
	}
	rep.Path = path
	if !rep.OK() {
		return rep, fmt.Errorf("the copy fails the check, so the database it was made from is damaged: %s", strings.Join(rep.Problems[:min(3, len(rep.Problems))], "; "))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("copy to %s: %w", path, err)
	}
	done = true
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("copy to %s: %w", path, err)
	}
	return rep, nil
}

// DailyBackup makes today's backup in the state dir's backup folder unless there is one
// already, then keeps only the newest KeepBackups. It returns the backup made ("" when
// none was due) and its check. A backup that fails its check is not kept and removes no
// older one.
func (s *Store) DailyBackup(now time.Time) (string, *Report, error) {
	if now.Year() < 2020 {
		// A board without a clock before NTP answered: the date would be wrong, and a
		// backup named after it would be pruned first (or last) for the wrong reason.
		return "", nil, nil
	}
	dir := filepath.Join(filepath.Dir(s.path), BackupDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("backup: %w", err)
	}
	path := filepath.Join(dir, backupName(now))
	if _, err := os.Stat(path); err == nil {
		return "", nil, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", nil, fmt.Errorf("backup: %w", err)
	}
	// Leftovers of a backup cut short (power cut, full disk) go first: they take the space.
	if old, _ := filepath.Glob(filepath.Join(dir, ".amwi-*.tmp-*")); len(old) > 0 {
		for _, p := range old {
			os.Remove(p)
		}
	}
	rep, err := SaveCopy(path, func(w io.Writer) error {
		_, err := s.WriteBackup(w, nil)
		return err
	})
	if err != nil {
		return "", rep, fmt.Errorf("backup: %w", err)
	}
	// The newest KeepBackups stay. Backups dated ahead of the clock are left alone: they
	// count for nothing, and if the clock is what is wrong now, they are the real ones.
	n := 0
	for _, old := range BackupsAt(filepath.Dir(s.path), now) {
		if day, _ := backupDay(filepath.Base(old)); aheadOf(day, now) {
			continue
		}
		if n++; n > KeepBackups {
			os.Remove(old)
		}
	}
	return path, rep, nil
}
