package mirrorsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/amwi/amwi/hw"
	"github.com/amwi/amwi/internal/broadcast"
	"github.com/amwi/amwi/internal/units"
)

// Results a run ends with.
const (
	ResultRunning  = "running"
	ResultUpToDate = "up to date"
	ResultSuccess  = "success"
	// ResultIncomplete: files the databases name could not be fetched; what could be was
	// published, lastupdate was not advanced, and the next sync tries again.
	ResultIncomplete = "incomplete"
	ResultFailed     = "failed"
	ResultCancelled  = "cancelled"
)

// Triggers: who asked for a run.
const (
	TriggerSchedule = "schedule"
	TriggerCLI      = "cli"
	TriggerWeb      = "web"
)

// Phases of a run, in order.
const (
	PhaseChecking       = "checking upstream"
	PhaseStaging        = "fetching databases"
	PhasePool           = "fetching packages"
	PhaseVerifying      = "checking package checksums"
	PhasePublishing     = "publishing"
	PhaseMirror         = "syncing the rest of the full mirror"
	PhaseCheckingMirror = "checking the mirror"
)

// historyKeep bounds the run history in the store.
const historyKeep = 500

var (
	// ErrBusy: a sync is already running (the error text says who and since when).
	ErrBusy = errors.New("a sync is already running")
	// ErrNotRunning: nothing to cancel.
	ErrNotRunning = errors.New("no sync is running")
	// ErrNoUpstream: sync.upstream is not set.
	ErrNoUpstream = errors.New("no upstream configured: set sync.upstream (amwi bench suggests one)")
	// ErrDiskSpace: the mirror's filesystem is below sync.min_free_gib.
	ErrDiskSpace = errors.New("not enough free disk space")
	errCancelled = errors.New("cancelled")
)

// Config is what the engine needs from amwi.toml.
type Config struct {
	Root          string
	Repos         []string // or [FullMirror]
	Upstreams     []string // primary first, then fallbacks
	BWLimitKiB    int
	MinFreeBytes  uint64
	IOBusyPercent int
	StateDir      string
	RsyncBin      string        // default "rsync"
	GuardBin      string        // the rsync guard's binary; default amwi's own (os.Executable)
	KillGrace     time.Duration // SIGTERM → SIGKILL, default 10s
	// Used, when set, makes the mirror hold only the package files LAN clients use
	// (mirror.packages = "used"; see used.go).
	Used *UsedPolicy
}

// Attempt is one upstream tried during a run.
type Attempt struct {
	Upstream string `json:"upstream"`
	Error    string `json:"error,omitempty"`
}

// Run is the record of one sync.
type Run struct {
	ID          uint64    `json:"id"`
	Trigger     string    `json:"trigger"`
	Force       bool      `json:"force"`
	Upstream    string    `json:"upstream,omitempty"` // the one that served
	Attempts    []Attempt `json:"attempts,omitempty"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end,omitzero"`
	Result      string    `json:"result"`
	Error       string    `json:"error,omitempty"`
	ExitCode    int       `json:"exit_code"`
	ExitMeaning string    `json:"exit_meaning,omitempty"`
	Stats       Stats     `json:"stats"`
	// LastUpdate is the upstream's lastupdate the run saw.
	LastUpdate int64 `json:"lastupdate,omitempty"`
	// LastSync is the upstream's lastsync the run's gate saw (0: it saw none), for
	// /metrics to tell how current the upstream itself is.
	LastSync      int64   `json:"lastsync,omitempty"`
	PausedSeconds float64 `json:"paused_seconds"`
	Pruned        int     `json:"pruned,omitempty"`
	Fetched       int     `json:"fetched,omitempty"` // pool files asked for
	// Prefetched ("used" mode) is how many package files were fetched because clients
	// use them; HeldBytes is what the held package files take.
	Prefetched      int      `json:"prefetched,omitempty"`
	PrefetchedBytes int64    `json:"prefetched_bytes,omitempty"`
	HeldBytes       int64    `json:"held_bytes,omitempty"`
	Verified        int      `json:"verified,omitempty"`  // new packages checked against %SHA256SUM%
	Refused         int      `json:"refused,omitempty"`   // upstream entries refused (control characters, unsafe links)
	HeldBack        []string `json:"held_back,omitempty"` // repos kept at their previous state (gaps)
	Warning         string   `json:"warning,omitempty"`   // what went wrong without failing the run
	Missing         int      `json:"missing,omitempty"`   // incomplete: files the upstream's databases name that could not be fetched
	StderrTail      []string `json:"stderr_tail,omitempty"`
	// Check is the mirror checked against its own databases at the end of the run.
	Check *Report `json:"check,omitempty"`
	// wentBack: this run was allowed to take an older state (--force, a changed upstream).
	wentBack bool
	// mismatched are packages (pool path → the SHA-256 the database gives) that did not
	// match twice in this run: a later round does not fetch them again.
	mismatched map[string][32]byte
	// lap is when the run's last step ended (see step).
	lap time.Time
	// Changes is filled by whoever watches the databases (package search).
	Changes json.RawMessage `json:"changes,omitempty"`
}

// Duration is how long the run took (so far).
func (r Run) Duration(now time.Time) time.Duration {
	if r.End.IsZero() {
		return now.Sub(r.Start)
	}
	return r.End.Sub(r.Start)
}

// LastUpstream is the upstream the run synced from or, when none served it, the last it
// tried ("" when it never got that far).
func (r Run) LastUpstream() string {
	if r.Upstream == "" && len(r.Attempts) > 0 {
		return r.Attempts[len(r.Attempts)-1].Upstream
	}
	return r.Upstream
}

// OK reports a run that left the mirror current.
func (r Run) OK() bool { return r.Result == ResultSuccess || r.Result == ResultUpToDate }

// State is the live view of the engine.
type State struct {
	Running       bool      `json:"running"`
	RunID         uint64    `json:"run_id,omitempty"`
	Trigger       string    `json:"trigger,omitempty"`
	Phase         string    `json:"phase,omitempty"`
	Upstream      string    `json:"upstream,omitempty"`
	Started       time.Time `json:"started,omitzero"`
	Elapsed       float64   `json:"elapsed_seconds,omitempty"`
	Bytes         int64     `json:"bytes"`
	Files         int       `json:"files"`
	Percent       int       `json:"percent"`
	RateBps       float64   `json:"rate_bps"`
	File          string    `json:"file,omitempty"`
	Paused        bool      `json:"paused"`
	PausedSeconds float64   `json:"paused_seconds"`
	NextScheduled time.Time `json:"next_scheduled,omitzero"`
}

// RunStore keeps run records (daemon/store implements it over bbolt).
type RunStore interface {
	NextRunID() (uint64, error)
	PutRun(id uint64, record []byte, keep int) error
	Runs(n int) ([][]byte, error)
}

// Event is what notifications see: "started" (something new upstream, transfer begins),
// "succeeded", "failed". Up-to-date checks are silent.
type Event struct {
	Kind string
	Run  Run
}

// Manager runs syncs, one at a time, and keeps their history.
type Manager struct {
	Config Config
	Store  RunStore
	Log    *slog.Logger
	Now    func() time.Time
	// Busy samples the mirror disk's busy %; nil disables the I/O throttle.
	Busy func() (float64, error)
	// OnEvent receives notifications; it must not block.
	OnEvent func(Event)
	// Changes, when set, is asked after every successful run what it changed (the search
	// index reloads and compares the databases); the answer is kept in the run's record.
	Changes func(Run) json.RawMessage
	// FreeBytes reports free space under a path; default statfs.
	FreeBytes func(path string) (uint64, error)

	mu     sync.Mutex
	state  State
	cancel context.CancelFunc
	done   chan struct{} // closed when the running sync ends
	states broadcast.Latest[State]
	kick   chan struct{} // a run ended: re-plan the schedule
	lock   *fileLock     // held by the running sync
	next   *Config       // settings changed: takes effect at the next run
	// phaseSince is when the current phase began (debug log of phase times).
	phaseSince time.Time
	// ioBusy and bwLimit are sync.io_busy_percent and sync.bwlimit_kib as last set (or
	// -1: Config's), which a running sync follows.
	ioBusy, bwLimit atomicInt
}

// atomicInt is an int64 whose zero value means "unset" (Load returns -1).
type atomicInt struct {
	v   atomic.Int64
	set atomic.Bool
}

func (a *atomicInt) Store(v int64) { a.v.Store(v); a.set.Store(true) }
func (a *atomicInt) Load() int64 {
	if !a.set.Load() {
		return -1
	}
	return a.v.Load()
}

// SetConfig changes the settings from the next run on (a running sync keeps the ones it
// started with) and re-plans the schedule.
func (m *Manager) SetConfig(c Config) {
	// What a running sync can take at once: the I/O threshold (its throttle reads it at
	// every sample) and the bandwidth limit (its next rsync).
	m.ioBusy.Store(int64(c.IOBusyPercent))
	m.bwLimit.Store(int64(c.BWLimitKiB))
	m.mu.Lock()
	if m.done == nil {
		m.Config = c
	} else {
		m.next = &c
	}
	m.kickLocked()
	m.mu.Unlock()
}

// Upstreams is the configured upstreams, primary first.
func (m *Manager) Upstreams() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.next != nil {
		return m.next.Upstreams
	}
	return m.Config.Upstreams
}

func (m *Manager) kickLocked() {
	if m.kick == nil {
		m.kick = make(chan struct{}, 1)
	}
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// BusyError is ErrBusy with the holder.
type BusyError struct{ Holder string }

func (e *BusyError) Error() string { return "a sync is already running (" + e.Holder + ")" }
func (e *BusyError) Unwrap() error { return ErrBusy }

// Options of one sync.
type Options struct {
	Trigger string
	Force   bool // skip the lastupdate gate
	Wait    bool // queue behind a running sync instead of failing with ErrBusy
	// Started, when set, is told the run's id once it is registered: a caller that must
	// cancel only its own run (amwi sync on Ctrl-C) learns which one that is.
	Started func(id uint64)
	// Queue, when set, ends the wait of a queued request (Wait) with ErrLeftQueue: the
	// client gave up before its run started. It does not touch the run once started.
	Queue context.Context
}

// ErrLeftQueue: a request queued behind a running sync was withdrawn; nothing ran.
var ErrLeftQueue = errors.New("left the queue before the sync started: nothing ran")

// Sync runs one sync and returns its record. The error is nil when the run happened
// (look at Run.Result), and ErrBusy, ErrNoUpstream or a store error when it did not.
func (m *Manager) Sync(ctx context.Context, o Options) (Run, error) {
	lock, err := m.acquire(ctx, o) // returns with m.mu held
	if err != nil {
		return Run{}, err
	}
	defer lock.release()
	if o.Queue != nil && o.Queue.Err() != nil {
		m.mu.Unlock()
		return Run{}, ErrLeftQueue
	}
	if m.next != nil {
		m.Config, m.next = *m.next, nil
	}
	if len(m.Config.Upstreams) == 0 {
		m.mu.Unlock()
		return Run{}, ErrNoUpstream
	}
	rootLock, err := lockRoot(m.Config.Root, m.Config.StateDir)
	if err != nil {
		m.mu.Unlock()
		return Run{}, err
	}
	defer func() {
		unix.Flock(int(rootLock.Fd()), unix.LOCK_UN)
		rootLock.Close()
	}()
	m.lock = lock
	id, err := m.Store.NextRunID()
	if err != nil {
		m.mu.Unlock()
		return Run{}, err
	}
	run := Run{ID: id, Trigger: o.Trigger, Force: o.Force, Start: m.now(), Result: ResultRunning}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	m.cancel = func() { cancel(errCancelled) }
	m.done = make(chan struct{})
	m.state = State{Running: true, RunID: id, Trigger: o.Trigger, Started: run.Start, NextScheduled: m.state.NextScheduled}
	m.mu.Unlock()
	lock.describe(run)
	m.save(run)
	m.publish()
	if o.Started != nil {
		o.Started(id)
	}

	tail := newLineRing(tailLines)
	err = m.do(ctx, &run, tail)
	run.End = m.now()
	run.StderrTail = tail.all()
	var inc *IncompleteError
	switch {
	case err == nil:
	case errors.As(err, &inc):
		run.Result, run.Error, run.Missing = ResultIncomplete, err.Error(), inc.Gaps
	case context.Cause(ctx) == errCancelled || errors.Is(err, errCancelled):
		run.Result, run.Error = ResultCancelled, "cancelled"
		if ctx.Err() != nil && context.Cause(ctx) == errCancelled {
			run.Error = "cancelled by request"
		}
	case ctx.Err() != nil && context.Cause(ctx) != nil && !errors.Is(context.Cause(ctx), ErrDiskSpace):
		run.Result, run.Error = ResultCancelled, "cancelled: "+context.Cause(ctx).Error()
	default:
		run.Result, run.Error = ResultFailed, err.Error()
	}
	if len(run.Error) > maxErrorLen {
		run.Error = run.Error[:maxErrorLen] + "…"
	}
	if run.Check == nil && run.Result != ResultRunning {
		// Whatever the run's end, it says in what state it leaves the mirror.
		run.Check = m.checkLive()
	}
	var re *RsyncError
	if errors.As(err, &re) {
		run.ExitCode, run.ExitMeaning = re.Code, re.Meaning
	}
	if run.changed() && m.Changes != nil {
		run.Changes = m.Changes(run)
	}
	m.save(run)
	m.finish(run)
	return run, nil
}

func (m *Manager) holderLocked() string {
	return fmt.Sprintf("run %d, %s, since %s", m.state.RunID, m.state.Trigger, m.state.Started.Format(time.RFC3339))
}

// finish publishes the end of a run and tells whoever listens.
func (m *Manager) finish(run Run) {
	m.mu.Lock()
	close(m.done)
	m.done, m.cancel = nil, nil
	m.state = State{NextScheduled: m.state.NextScheduled}
	if m.next != nil {
		m.Config, m.next = *m.next, nil
	}
	m.kickLocked()
	m.mu.Unlock()
	m.publish()
	level := slog.LevelInfo
	if !run.OK() {
		level = slog.LevelWarn
	}
	m.Log.Log(context.Background(), level, "sync finished", "run", run.ID, "result", run.Result, "upstream", run.LastUpstream(),
		"bytes", run.Stats.BytesReceived, "files", run.Stats.FilesTransferred, "duration", run.Duration(run.End).Round(time.Millisecond), "err", run.Error)
	switch run.Result {
	case ResultSuccess:
		m.event("succeeded", run)
	case ResultIncomplete:
		m.event("incomplete", run)
	case ResultFailed:
		m.event("failed", run)
	}
}

// changed reports a run that may have published new databases.
func (r Run) changed() bool { return r.Result == ResultSuccess || r.Result == ResultIncomplete }

// Bounds on what a run record keeps of what upstream and rsync said.
const (
	maxErrorLen = 1000
	tailLines   = 12
)

func (m *Manager) event(kind string, run Run) {
	if m.OnEvent != nil {
		m.OnEvent(Event{Kind: kind, Run: run})
	}
}

func (m *Manager) save(run Run) {
	b, err := json.Marshal(run)
	if err == nil {
		err = m.Store.PutRun(run.ID, b, historyKeep)
	}
	if err != nil {
		m.Log.Error("sync: cannot record run", "run", run.ID, "err", err)
	}
}

// Start begins a sync in the background (the web side's "sync now"); it fails at once
// with ErrBusy when one is running. ctx bounds the run, so pass the daemon's, not a request's.
//
// It returns once the run is registered (its state says running), or with why it could not
// start (ErrBusy with the holder, ErrNoUpstream, a store error): two quick calls start one
// run and tell the other.
func (m *Manager) Start(ctx context.Context, o Options) error {
	o.Wait = false
	registered := make(chan error, 1)
	o.Started = func(uint64) { registered <- nil }
	go func() {
		if _, err := m.Sync(ctx, o); err != nil {
			registered <- err
		}
	}()
	return <-registered
}

// Cancel stops the running sync: rsync gets SIGTERM, then SIGKILL after the grace period.
func (m *Manager) Cancel() error { return m.CancelRun(0) }

// CancelRun stops the running sync if it is run id (0: whichever runs); another run is
// left alone with ErrNotRunning.
func (m *Manager) CancelRun(id uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel == nil || (id != 0 && m.state.RunID != id) {
		return ErrNotRunning
	}
	m.cancel()
	return nil
}

// State is the live state.
func (m *Manager) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.state
	if s.Running {
		s.Elapsed = m.now().Sub(s.Started).Seconds()
	}
	return s
}

// History returns up to n runs, newest first.
func (m *Manager) History(n int) ([]Run, error) {
	recs, err := m.Store.Runs(n)
	if err != nil {
		return nil, err
	}
	out := make([]Run, 0, len(recs))
	for _, b := range recs {
		var r Run
		if err := json.Unmarshal(b, &r); err != nil {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// Subscribe returns a channel that gets the state whenever it changes (the latest only,
// when the reader is slow) and a function to stop.
func (m *Manager) Subscribe() (<-chan State, func()) { return m.states.Subscribe() }

// Close ends every subscription (the daemon is stopping): live streams' loops end.
func (m *Manager) Close() { m.states.Close() }

func (m *Manager) publish() { m.states.Publish(m.State()) }

func (m *Manager) update(f func(*State)) {
	m.mu.Lock()
	before := m.state.Phase
	f(&m.state)
	if m.state.Phase != before {
		now := m.now()
		if before != "" {
			m.Log.Debug("sync: phase done", "phase", before, "took", now.Sub(m.phaseSince).Round(time.Millisecond))
		}
		m.phaseSince = now
	}
	m.mu.Unlock()
	m.publish()
}

// Recover cleans up after a process that was killed mid-sync: what is left of its rsync is
// stopped (taking the free lock does that), and the runs it left "running" are closed.
// The daemon calls it at start; nothing needs clearing by hand.
func (m *Manager) Recover() error {
	m.mu.Lock()
	if m.done == nil {
		if l, _, err := m.tryFileLock(Options{Trigger: "recovery"}); err == nil && l != nil {
			l.release()
		}
	}
	m.mu.Unlock()
	return m.markInterrupted()
}

func (m *Manager) markInterrupted() error {
	runs, err := m.History(20)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if r.Result == ResultRunning {
			r.Result = ResultFailed
			r.Error = "interrupted: amwi stopped during this sync (killed or crashed); the next sync resumes it"
			if r.End.IsZero() {
				r.End = r.Start
			}
			m.save(r)
		}
	}
	return nil
}

func (m *Manager) freeBytes(path string) (uint64, error) {
	if m.FreeBytes != nil {
		return m.FreeBytes(path)
	}
	return hw.FreeBytes(path)
}

func gib(b uint64) string { return units.Bytes(int64(b)) }

func (m *Manager) checkSpace() error {
	if m.Config.MinFreeBytes == 0 {
		return nil
	}
	free, err := m.freeBytes(m.Config.Root)
	if err != nil {
		return err
	}
	if free < m.Config.MinFreeBytes {
		return fmt.Errorf("%w on %s: %s free, sync needs at least %s (sync.min_free_gib)", ErrDiskSpace, m.Config.Root, gib(free), gib(m.Config.MinFreeBytes))
	}
	return nil
}

// step logs at debug level (AMWI_DEBUG=1) how long the run's step that just ended took:
// where a slow sync spends its time.
func (m *Manager) step(run *Run, name string) {
	now := time.Now()
	m.Log.Debug("sync: step", "run", run.ID, "step", name, "took", now.Sub(run.lap).Round(time.Millisecond))
	run.lap = now
}

// do is the run itself: leftovers of an interrupted run go, the space check, then each
// upstream in turn until one leaves the mirror complete.
func (m *Manager) do(ctx context.Context, run *Run, tail *lineRing) error {
	run.lap = time.Now()
	// Leftovers first: they may be what fills the disk.
	defer m.step(run, "done")
	if removed, err := removeLeftovers(m.Config.Root); err != nil {
		return fmt.Errorf("remove what an interrupted sync left: %w", err)
	} else if len(removed) > 0 {
		m.Log.Info("sync: removed what an interrupted run left", "count", len(removed), "first", removed[0])
	}
	m.pruneRetired()
	m.step(run, "leftovers")
	if err := m.checkSpace(); err != nil {
		return err
	}
	// Watch the free space while rsync writes; stop cleanly below the floor.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	spaceCtx, spaceCancel := context.WithCancelCause(ctx)
	defer spaceCancel(nil)
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
				if err := m.checkSpace(); errors.Is(err, ErrDiskSpace) {
					spaceCancel(err)
					return
				}
			}
		}
	}()
	var (
		err        error
		incomplete error // the last upstream that published with gaps
	)
	for _, up := range m.Config.Upstreams {
		up = normalizeUpstream(up)
		m.update(func(s *State) { s.Upstream = up })
		err = m.syncFrom(spaceCtx, up, run, tail)
		if cause := context.Cause(spaceCtx); cause != nil && errors.Is(cause, ErrDiskSpace) {
			err = fmt.Errorf("stopped: %w", cause)
		}
		if err != nil && (errors.Is(err, ErrDiskSpace) || errors.Is(err, ErrDiskFull)) {
			// Nothing half-written stays: the temporary files go, the live mirror was
			// never touched, the complete packages stay for the next run.
			removeLeftovers(m.Config.Root)
		}
		att := Attempt{Upstream: up}
		if err != nil {
			att.Error = err.Error()
			if len(att.Error) > maxErrorLen {
				att.Error = att.Error[:maxErrorLen] + "…"
			}
		}
		run.Attempts = append(run.Attempts, att)
		var inc *IncompleteError
		switch {
		case err == nil:
			run.Upstream = up
			return nil
		case errors.As(err, &inc):
			run.Upstream = up
			incomplete = err
		}
		if ctx.Err() != nil || errors.Is(err, ErrDiskSpace) || errors.Is(err, ErrDiskFull) {
			return err
		}
		m.Log.Warn("sync: upstream failed", "upstream", up, "err", att.Error)
	}
	if incomplete != nil {
		return incomplete
	}
	if len(m.Config.Upstreams) > 1 {
		return fmt.Errorf("all %d upstreams failed; last: %w", len(m.Config.Upstreams), err)
	}
	return err
}

// normalizeUpstream makes sure the source names a directory's contents.
func normalizeUpstream(u string) string {
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}

func (m *Manager) rsync(ctx context.Context, run *Run, tail *lineRing, phase string, stdin []byte, args ...string) (*rsyncRun, error) {
	return m.rsyncProgress(ctx, run, tail, phase, stdin, nil, args...)
}

// rsyncProgress runs one rsync of a run; percent, when set, turns rsync's progress into
// the run's (one phase may take several rsyncs).
func (m *Manager) rsyncProgress(ctx context.Context, run *Run, tail *lineRing, phase string, stdin []byte, percent func(Progress) int, args ...string) (*rsyncRun, error) {
	m.update(func(s *State) { s.Phase, s.Percent, s.File = phase, 0, "" })
	bin := m.Config.RsyncBin
	if bin == "" {
		bin = "rsync"
	}
	grace := m.Config.KillGrace
	if grace == 0 {
		grace = 10 * time.Second
	}
	base := run.Stats
	r := &rsyncRun{Bin: bin, Args: args, Guard: m.Config.GuardBin, KillGrace: grace, tail: tail, OnStart: m.lock.rsyncStarted}
	if stdin != nil {
		r.Stdin = bytes.NewReader(stdin)
	}
	r.OnProgress = func(p Progress) {
		pct := p.Percent
		if percent != nil {
			pct = percent(p)
		}
		m.update(func(s *State) {
			s.Bytes, s.Files = base.TransferredSize+p.Bytes, base.FilesTransferred+p.Files
			s.Percent, s.RateBps, s.File = pct, p.RateBps, p.File
		})
	}
	var throttleDone chan time.Duration
	var stopThrottle context.CancelFunc
	if m.Busy != nil {
		r.OnStart = func(pgid int) {
			m.lock.rsyncStarted(pgid)
			var tctx context.Context
			tctx, stopThrottle = context.WithCancel(ctx)
			throttleDone = make(chan time.Duration, 1)
			pausedBefore := run.PausedSeconds
			fromConfig := float64(m.Config.IOBusyPercent)
			threshold := func() float64 {
				if v := m.ioBusy.Load(); v >= 0 {
					return float64(v)
				}
				return fromConfig
			}
			t := &Throttle{Busy: m.Busy, Threshold: threshold, Log: m.Log, Now: m.Now,
				OnChange: func(paused bool, total time.Duration) {
					m.update(func(s *State) { s.Paused, s.PausedSeconds = paused, pausedBefore+total.Seconds() })
				}}
			go func() { throttleDone <- t.Run(tctx, ProcessGroup(pgid)) }()
		}
	}
	err := r.run(ctx)
	if throttleDone != nil {
		stopThrottle()
		run.PausedSeconds += (<-throttleDone).Seconds()
		m.update(func(s *State) { s.Paused = false })
	}
	run.Stats.add(r.stats)
	if err != nil {
		if ctx.Err() != nil {
			return r, fmt.Errorf("%s: %w", phase, context.Cause(ctx))
		}
		if tail.diskFull() {
			free, _ := m.freeBytes(m.Config.Root)
			return r, fmt.Errorf("%s: %w on %s (%s free): the mirror is unchanged; make room and sync again (%w)", phase, ErrDiskFull, m.Config.Root, gib(free), err)
		}
		var re *RsyncError
		if errors.As(err, &re) && re.Code == 24 {
			// Files vanished upstream mid-run: normal on a live mirror (the next run
			// picks up the new state), as Arch's own scripts treat it.
			m.Log.Info("sync: some files vanished upstream during the transfer", "phase", phase)
			return r, nil
		}
		return r, fmt.Errorf("%s: %w", phase, err)
	}
	return r, nil
}

// flags is Arch's flag set plus --bwlimit when set.
func (m *Manager) flags(extra ...string) []string {
	out := append(append([]string(nil), archFlags...), m.bwlimit()...)
	return append(out, extra...)
}
