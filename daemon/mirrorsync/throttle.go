package mirrorsync

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sys/unix"
)

// Pausable is a running process (group) that can be stopped and continued.
type Pausable interface {
	Pause() error
	Resume() error
}

// ProcessGroup pauses and resumes a whole process group: rsync forks a generator and a
// receiver, and stopping only the parent would leave them writing to the disk.
type ProcessGroup int

var _ Pausable = ProcessGroup(0)

// Pause sends SIGSTOP to the group.
func (g ProcessGroup) Pause() error { return g.signal(unix.SIGSTOP) }

// Resume sends SIGCONT to the group.
func (g ProcessGroup) Resume() error { return g.signal(unix.SIGCONT) }

func (g ProcessGroup) signal(sig unix.Signal) error {
	// kill(-0) is our own group and kill(-1) every process we may signal: never send
	// SIGSTOP there because a pgid was left unset.
	if g <= 1 {
		return fmt.Errorf("%s process group %d: not a child's process group", unix.SignalName(sig), int(g))
	}
	if err := unix.Kill(-int(g), sig); err != nil {
		return fmt.Errorf("%s process group %d: %w", unix.SignalName(sig), int(g), err)
	}
	return nil
}

// Throttle pauses a process while the disk is busier than PauseAbove percent, so that the
// mirror yields the disk to whoever else needs it (pacman clients, the NAS's own users).
//
// Busy measures the whole disk, rsync's own I/O included: an rsync that alone saturates a
// slow SD card pauses itself too, and runs in MinRun/MinPause bursts. That is deliberate —
// the box stays responsive — and bwlimit is the knob for a steadier pace.
type Throttle struct {
	Busy        func() (float64, error) // e.g. (*hw.DiskBusy).Sample
	PauseAbove  float64                 // pause while busy% > this (config sync.io_busy_percent; 0 disables the throttle)
	ResumeBelow float64                 // hysteresis: resume when busy% < this (default PauseAbove*0.75)
	// Threshold, when set, is read at every sample instead of PauseAbove (ResumeBelow
	// follows at 0.75 of it): a changed sync.io_busy_percent applies to a running rsync,
	// 0 meaning never pause.
	Threshold func() float64
	MinRun    time.Duration // once running, keep running at least this long (default 3s)
	MinPause  time.Duration // once paused, stay paused at least this long (default 2s)
	// MaxPause bounds one pause (default 60s): rsync runs with --timeout=600 and the
	// upstream drops idle clients, so after MaxPause the process runs for MinRun whatever
	// the disk says.
	MaxPause time.Duration
	Interval time.Duration // sampling period (default 1s)
	Now      func() time.Time
	Log      *slog.Logger
	OnChange func(paused bool, pausedTotal time.Duration) // optional, for live state

	// Tests drive the loop through ticks instead of a time.Ticker, and learn from waiting
	// that Run is idle: started, or done with the last tick.
	ticks   <-chan time.Time
	waiting func()
}

// throttleRun is the state of one Run.
type throttleRun struct {
	Throttle // with defaults applied
	p        Pausable

	paused      bool
	since       time.Time // when the current run or pause began
	pausedTotal time.Duration
	failing     bool // Busy is erroring; logged when it started
}

func (t *Throttle) withDefaults() Throttle {
	c := *t
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.ResumeBelow <= 0 {
		c.ResumeBelow = c.PauseAbove * 0.75
	}
	// Resuming above the pause threshold would flap between the two every MinPause.
	c.ResumeBelow = min(c.ResumeBelow, c.PauseAbove)
	if c.MinRun <= 0 {
		c.MinRun = 3 * time.Second
	}
	if c.MinPause <= 0 {
		c.MinPause = 2 * time.Second
	}
	if c.MaxPause <= 0 {
		c.MaxPause = 60 * time.Second
	}
	c.MinPause = min(c.MinPause, c.MaxPause)
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	return c
}

// Run samples Busy every Interval and pauses or resumes p until ctx ends. It returns the
// total time p spent paused, and always leaves p resumed: on ctx's end, on a panic in a
// callback, and whenever Busy fails (the process then runs unthrottled until Busy works
// again; the failure is logged once).
func (t *Throttle) Run(ctx context.Context, p Pausable) (pausedTotal time.Duration) {
	r := &throttleRun{Throttle: t.withDefaults(), p: p}
	if (r.PauseAbove <= 0 && r.Threshold == nil) || r.Busy == nil {
		<-ctx.Done()
		return 0
	}
	r.since = r.Now()
	normal := false
	defer func() {
		if r.paused {
			r.resume("throttle stopped", normal)
		}
		pausedTotal = r.pausedTotal
	}()

	ticks := r.ticks
	if ticks == nil {
		tk := time.NewTicker(r.Interval)
		defer tk.Stop()
		ticks = tk.C
	}
	for {
		if r.waiting != nil {
			r.waiting()
		}
		select {
		case <-ctx.Done():
			normal = true
			return
		case <-ticks:
			r.step()
		}
	}
}

// step takes one sample and acts on it.
func (r *throttleRun) step() {
	if r.Threshold != nil {
		if th := r.Threshold(); th != r.PauseAbove {
			r.PauseAbove, r.ResumeBelow = th, th*0.75
		}
		if r.PauseAbove <= 0 {
			if r.paused {
				r.resume("throttle turned off", true)
			}
			return
		}
	}
	busy, err := r.Busy()
	if err != nil {
		if !r.failing {
			r.failing = true
			r.Log.Warn("sync: cannot measure disk busy; rsync runs unthrottled until it can", "err", err)
		}
		if r.paused {
			r.resume("disk busy unknown", true)
		}
		return
	}
	if r.failing {
		r.failing = false
		r.Log.Info("sync: measuring disk busy again; throttle back on")
	}

	now := r.Now()
	in := now.Sub(r.since)
	switch {
	case !r.paused && busy > r.PauseAbove && in >= r.MinRun:
		r.pause(busy)
	case r.paused && in >= r.MaxPause:
		r.resume(fmt.Sprintf("paused for the maximum %v", r.MaxPause), true)
	case r.paused && busy < r.ResumeBelow && in >= r.MinPause:
		r.resume(fmt.Sprintf("disk %.0f%% busy", busy), true)
	}
}

func (r *throttleRun) pause(busy float64) {
	// Paused from before the call: should Pause panic, Run's deferred resume still runs.
	r.paused, r.since = true, r.Now()
	if err := r.p.Pause(); err != nil {
		r.Log.Warn("sync: cannot pause rsync", "err", err)
		// A group signal may have reached some of its processes: do not leave those stopped.
		if err := r.p.Resume(); err != nil {
			r.Log.Debug("sync: resume after failed pause", "err", err)
		}
		r.paused = false // and r.since restarts MinRun: no retry every Interval
		return
	}
	r.Log.Debug("sync: disk busy, pausing rsync", "busy_percent", busy, "above", r.PauseAbove)
	if r.OnChange != nil {
		r.OnChange(true, r.pausedTotal)
	}
}

// resume continues p and counts the pause; notify is false while unwinding a panic, so a
// panicking OnChange is not called twice.
func (r *throttleRun) resume(why string, notify bool) {
	err := r.p.Resume()
	now := r.Now()
	r.pausedTotal += now.Sub(r.since)
	r.paused, r.since = false, now
	if err != nil {
		r.Log.Warn("sync: cannot resume rsync", "why", why, "err", err)
	} else {
		r.Log.Debug("sync: resuming rsync", "why", why)
	}
	if notify && r.OnChange != nil {
		r.OnChange(false, r.pausedTotal)
	}
}
