package mirrorsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// LockFile is the sync lock in the state dir. It is an flock(2), which the kernel drops
// when its holder dies however it dies, so a crash or kill -9 never leaves a "ghost lock"
// to clear by hand (the old app's failure). Its content says who holds it, for the message
// a second `amwi sync` prints.
const LockFile = "sync.lock"

type fileLock struct {
	f      *os.File
	holder lockHolder
}

type lockHolder struct {
	PID int `json:"pid"`
	// RsyncPGID is the process group of the rsync running for the holder. rsync forks a
	// helper that Pdeathsig does not reach, so when the holder was killed, the next one to
	// take the lock ends what is left of that group.
	RsyncPGID int       `json:"rsync_pgid,omitempty"`
	RunID     uint64    `json:"run_id,omitempty"`
	Trigger   string    `json:"trigger"`
	Since     time.Time `json:"since"`
}

// tryFileLock takes the lock without waiting; on contention it returns nil and who holds it.
func (m *Manager) tryFileLock(o Options) (*fileLock, string, error) {
	path := filepath.Join(m.Config.StateDir, LockFile)
	if err := os.MkdirAll(m.Config.StateDir, 0o750); err != nil {
		return nil, "", err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, "", fmt.Errorf("open sync lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, describeHolder(f), nil
		}
		return nil, "", fmt.Errorf("lock %s: %w", path, err)
	}
	l := &fileLock{f: f}
	var prev lockHolder
	b := make([]byte, 512)
	n, _ := f.ReadAt(b, 0)
	if json.Unmarshal(b[:n], &prev) == nil && prev.RsyncPGID > 1 {
		if killed := killStaleRsync(prev.RsyncPGID, m.Config.Root, m.Config.StateDir); killed > 0 {
			m.Log.Warn("sync: stopped rsync processes left by an interrupted run", "pgid", prev.RsyncPGID, "processes", killed)
		}
	}
	l.holder = lockHolder{PID: os.Getpid(), Trigger: o.Trigger, Since: m.now()}
	l.write(l.holder)
	return l, "", nil
}

// killStaleRsync kills the members of process group pgid that are rsync working on this
// mirror (their command line names its root or state dir), and returns how many there
// were. The checks guard against a recycled group id: after a reboot the number may be
// anybody's.
func killStaleRsync(pgid int, marks ...string) int {
	des, _ := os.ReadDir("/proc")
	n := 0
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", de.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(s[close+1:])
		if s[open+1:close] != "rsync" || len(f) < 3 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", de.Name(), "cmdline"))
		ours := false
		for _, mark := range marks {
			if mark != "" && strings.Contains(string(cmdline), mark) {
				ours = true
			}
		}
		if !ours {
			continue
		}
		unix.Kill(pid, unix.SIGCONT)
		if unix.Kill(pid, unix.SIGKILL) == nil {
			n++
		}
	}
	return n
}

func describeHolder(f *os.File) string {
	var h lockHolder
	b := make([]byte, 512)
	n, _ := f.ReadAt(b, 0)
	if json.NewDecoder(bytes.NewReader(b[:n])).Decode(&h) != nil || h.PID == 0 {
		return "held by another process"
	}
	s := fmt.Sprintf("pid %d, %s", h.PID, h.Trigger)
	if h.RunID != 0 {
		s += fmt.Sprintf(", run %d", h.RunID)
	}
	return s + ", since " + h.Since.Format(time.RFC3339)
}

// write replaces the holder's description. The new one is written over the old before
// the file is cut to its length, so a reader never finds it empty (truncating first left
// a moment in which a second `amwi sync` could only say "held by another process");
// describeHolder reads the first JSON value and ignores an old one's tail.
func (l *fileLock) write(h lockHolder) {
	b, _ := json.Marshal(h)
	l.f.WriteAt(b, 0)
	l.f.Truncate(int64(len(b)))
}

func (l *fileLock) describe(run Run) {
	l.holder.RunID, l.holder.Since = run.ID, run.Start
	l.write(l.holder)
}

// rsyncStarted records the process group of the rsync now running.
func (l *fileLock) rsyncStarted(pgid int) {
	l.holder.RsyncPGID = pgid
	l.write(l.holder)
}

func (l *fileLock) release() {
	l.f.Truncate(0)
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
}

// acquire waits for both the in-process run and the file lock as o asks; on success m.mu
// is held, so the caller can register its run before anyone else looks.
func (m *Manager) acquire(ctx context.Context, o Options) (*fileLock, error) {
	for {
		m.mu.Lock()
		var wait <-chan struct{}
		holder := ""
		if m.done != nil {
			wait, holder = m.done, m.holderLocked()
		} else {
			l, h, err := m.tryFileLock(o)
			if err != nil || l != nil {
				if err != nil {
					m.mu.Unlock()
				}
				return l, err
			}
			holder = h
		}
		m.mu.Unlock()
		if !o.Wait {
			return nil, &BusyError{Holder: holder}
		}
		if wait == nil { // another process: poll
			t := time.NewTimer(time.Second)
			wait = func() <-chan struct{} {
				c := make(chan struct{})
				go func() { <-t.C; close(c) }()
				return c
			}()
		}
		var left <-chan struct{}
		if o.Queue != nil {
			left = o.Queue.Done()
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-left:
			return nil, ErrLeftQueue
		}
	}
}

// Holder says who holds the sync lock in stateDir ("pid 123, cli, run 4, since …"), or ""
// when no sync is running.
func Holder(stateDir string) string {
	f, err := os.Open(filepath.Join(stateDir, LockFile))
	if err != nil {
		return ""
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return ""
	}
	return describeHolder(f)
}

// RootLockFile is a second flock, in the mirror root's .amwi/: two amwi with different
// state dirs (a copied config, a test box) must not sync one mirror at the same time,
// each swapping the other's staged dirs into place.
const RootLockFile = "lock"

// lockRoot takes the mirror root's lock without waiting; on contention it says who holds it.
func lockRoot(root, stateDir string) (*os.File, error) {
	dir := filepath.Join(root, workDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, RootLockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open the mirror's sync lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b := make([]byte, 512)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &BusyError{Holder: "another amwi syncs this mirror, with state dir " + quoteName(strings.TrimSpace(string(b[:n])))}
		}
		return nil, fmt.Errorf("lock the mirror: %w", err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(stateDir+"\n"), 0)
	return f, nil
}
