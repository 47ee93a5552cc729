package mirrorsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/amwi/amwi/hw"
	"golang.org/x/sys/unix"
)

// throttleClock is a fake clock; the mutex keeps the race detector honest when a test
// reads it while Run is live.
type throttleClock struct {
	mu    sync.Mutex
	start time.Time
	t     time.Time
}

func newThrottleClock() *throttleClock {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	return &throttleClock{start: t0, t: t0}
}

func (c *throttleClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *throttleClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// at is the fake time since the start, for event logs: "3s".
func (c *throttleClock) at() string { return c.Now().Sub(c.start).String() }

// throttleProcess is a fake Pausable that records its calls with the fake time.
type throttleProcess struct {
	clock    *throttleClock
	pauseErr func() error // nil: Pause succeeds
	calls    []string
	paused   bool
}

var _ Pausable = (*throttleProcess)(nil)

func (p *throttleProcess) Pause() error {
	p.calls = append(p.calls, "pause@"+p.clock.at())
	if p.pauseErr != nil {
		if err := p.pauseErr(); err != nil {
			return err
		}
	}
	p.paused = true
	return nil
}

func (p *throttleProcess) Resume() error {
	p.calls = append(p.calls, "resume@"+p.clock.at())
	p.paused = false
	return nil
}

// throttleFail in a busy script makes Busy return an error for that tick.
const throttleFail = -1

// throttleOutcome is what a driven Run did.
type throttleOutcome struct {
	changes []string // OnChange calls
	total   time.Duration
	paused  bool   // the process's state after Run returned
	log     string // Run's log, at debug level
	panic   any    // recovered from Run
}

// driveThrottle runs th against a fake process with one tick per second of fake time: for
// each tick it advances the clock, calls before (when set), sends the tick and waits until
// Run has handled it. Then it cancels ctx and waits for Run. Run starts at fake time 0.
func driveThrottle(t *testing.T, th Throttle, clock *throttleClock, p *throttleProcess, n int, before func(i int)) throttleOutcome {
	t.Helper()
	var out throttleOutcome
	var log bytes.Buffer
	ticks := make(chan time.Time)
	waiting := make(chan struct{})
	th.ticks = ticks
	th.waiting = func() { waiting <- struct{}{} }
	th.Now = clock.Now
	th.Log = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	next := th.OnChange
	th.OnChange = func(paused bool, total time.Duration) {
		out.changes = append(out.changes, fmt.Sprintf("%v,%v@%s", paused, total, clock.at()))
		if next != nil {
			next(paused, total)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { out.panic = recover() }()
		out.total = th.Run(ctx, p)
	}()
	select {
	case <-waiting: // Run has read the start time
	case <-done:
	}
	for i := 1; i <= n; i++ {
		clock.Advance(time.Second)
		if before != nil {
			before(i)
		}
		select {
		case ticks <- clock.Now():
		case <-done: // Run panicked
		}
		select {
		case <-waiting:
		case <-done:
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx was cancelled")
	}
	out.paused, out.log = p.paused, log.String()
	return out
}

// scriptedBusy returns a Busy that answers script[i-1] at tick i, and the before hook that
// sets i.
func scriptedBusy(script []float64) (func() (float64, error), func(int)) {
	var i int
	busy := func() (float64, error) {
		if script[i-1] == throttleFail {
			return 0, errors.New("diskstats: disk sda (8:0) is not in /proc/diskstats")
		}
		return script[i-1], nil
	}
	return busy, func(n int) { i = n }
}

func TestThrottleScripted(t *testing.T) {
	const F = throttleFail
	tests := []struct {
		name        string
		throttle    Throttle // Busy, Now, Log, OnChange are filled in
		script      []float64
		pauseErr    error
		wantCalls   []string
		wantChanges []string // checked when set
		wantTotal   time.Duration
		wantLog     map[string]int // substring → times it must appear
	}{
		{
			name:      "pauses above the threshold once MinRun has passed, resumes on cancel",
			throttle:  Throttle{PauseAbove: 80},
			script:    []float64{95, 95, 95, 95},
			wantCalls: []string{"pause@3s", "resume@4s"},
			wantTotal: time.Second,
		},
		{
			name:        "stays paused for MinPause, then resumes",
			throttle:    Throttle{PauseAbove: 80},
			script:      []float64{50, 50, 95, 5, 5, 5},
			wantCalls:   []string{"pause@3s", "resume@5s"},
			wantChanges: []string{"true,0s@3s", "false,2s@5s"},
			wantTotal:   2 * time.Second,
		},
		{
			name:     "hysteresis: between ResumeBelow and PauseAbove nothing changes",
			throttle: Throttle{PauseAbove: 80}, // ResumeBelow defaults to 60
			script: []float64{80, 80, 80, 80, 81, // 80 is not above 80; 81 at 5 s pauses
				70, 60, 79, 60, 59, // paused until 59 < 60 at 10 s
				79, 80, 70, 75, 80}, // running: never above 80
			wantCalls: []string{"pause@5s", "resume@10s"},
			wantTotal: 5 * time.Second,
		},
		{
			name:      "explicit ResumeBelow",
			throttle:  Throttle{PauseAbove: 50, ResumeBelow: 10},
			script:    []float64{60, 60, 60, 30, 20, 11, 9, 9},
			wantCalls: []string{"pause@3s", "resume@7s"},
			wantTotal: 4 * time.Second,
		},
		{
			name:      "ResumeBelow above PauseAbove does not flap",
			throttle:  Throttle{PauseAbove: 50, ResumeBelow: 90},
			script:    []float64{60, 60, 60, 60, 60, 60, 60, 40},
			wantCalls: []string{"pause@3s", "resume@8s"},
			wantTotal: 5 * time.Second,
		},
		{
			name:     "MinRun applies again after a resume",
			throttle: Throttle{PauseAbove: 80},
			script: []float64{95, 95, 95, 5, 5, // pause at 3 s, resume at 5 s
				95, 95, 95, 95}, // may pause again at 8 s
			wantCalls: []string{"pause@3s", "resume@5s", "pause@8s", "resume@9s"},
			wantTotal: 3 * time.Second,
		},
		{
			name:      "custom MinRun and MinPause",
			throttle:  Throttle{PauseAbove: 80, MinRun: time.Second, MinPause: 4 * time.Second},
			script:    []float64{95, 5, 5, 5, 5, 95},
			wantCalls: []string{"pause@1s", "resume@5s", "pause@6s", "resume@6s"},
			wantTotal: 4 * time.Second,
		},
		{
			name:     "MaxPause forces a resume for at least MinRun",
			throttle: Throttle{PauseAbove: 80, MaxPause: 5 * time.Second},
			script: []float64{95, 95, 95, 95, 95, 95, 95, 95, // paused at 3 s, forced out at 8 s
				95, 95, 95, 95}, // still busy: runs 8–11 s, pauses again at 11 s
			wantCalls:   []string{"pause@3s", "resume@8s", "pause@11s", "resume@12s"},
			wantChanges: []string{"true,0s@3s", "false,5s@8s", "true,5s@11s", "false,6s@12s"},
			wantTotal:   6 * time.Second,
			wantLog:     map[string]int{"paused for the maximum 5s": 1},
		},
		{
			name:     "Busy failing resumes at once and is logged once",
			throttle: Throttle{PauseAbove: 80},
			script: []float64{95, 95, 95, F, F, F, // paused at 3 s, resumed at 4 s
				95, 95}, // measured again at 7 s, MinRun since 4 s has passed: pause
			wantCalls: []string{"pause@3s", "resume@4s", "pause@7s", "resume@8s"},
			wantTotal: 2 * time.Second,
			wantLog:   map[string]int{"cannot measure disk busy": 1, "measuring disk busy again": 1, "not in /proc/diskstats": 1},
		},
		{
			name:      "Busy failing from the start never pauses",
			throttle:  Throttle{PauseAbove: 80},
			script:    []float64{F, F, F, F, F, F},
			wantCalls: nil,
			wantLog:   map[string]int{"cannot measure disk busy": 1},
		},
		{
			name:      "failing Pause is undone and not retried every tick",
			throttle:  Throttle{PauseAbove: 80},
			script:    []float64{95, 95, 95, 95, 95, 95},
			pauseErr:  errors.New("kill: operation not permitted"),
			wantCalls: []string{"pause@3s", "resume@3s", "pause@6s", "resume@6s"},
			wantTotal: 0,
			wantLog:   map[string]int{"cannot pause rsync": 2},
		},
		{
			name:      "PauseAbove 100 never pauses",
			throttle:  Throttle{PauseAbove: 100},
			script:    []float64{100, 100, 100, 100, 100},
			wantCalls: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newThrottleClock()
			p := &throttleProcess{clock: clock}
			if tt.pauseErr != nil {
				p.pauseErr = func() error { return tt.pauseErr }
			}
			th := tt.throttle
			busy, before := scriptedBusy(tt.script)
			th.Busy = busy
			out := driveThrottle(t, th, clock, p, len(tt.script), before)
			if out.panic != nil {
				t.Fatalf("Run panicked: %v", out.panic)
			}
			if !reflect.DeepEqual(p.calls, tt.wantCalls) {
				t.Errorf("calls = %q, want %q", p.calls, tt.wantCalls)
			}
			if tt.wantChanges != nil && !reflect.DeepEqual(out.changes, tt.wantChanges) {
				t.Errorf("OnChange calls = %q, want %q", out.changes, tt.wantChanges)
			}
			if out.total != tt.wantTotal {
				t.Errorf("paused total = %v, want %v", out.total, tt.wantTotal)
			}
			if out.paused {
				t.Error("process left paused")
			}
			for s, n := range tt.wantLog {
				if got := strings.Count(out.log, s); got != n {
					t.Errorf("log has %q %d times, want %d; log:\n%s", s, got, n, out.log)
				}
			}
		})
	}
}

// TestThrottleDisabled: PauseAbove 0 (io_busy_percent = 0) never samples nor pauses.
func TestThrottleDisabled(t *testing.T) {
	clock := newThrottleClock()
	p := &throttleProcess{clock: clock}
	var samples atomic.Int32
	th := &Throttle{
		Busy:     func() (float64, error) { samples.Add(1); return 100, nil },
		Interval: time.Millisecond,
		MinRun:   time.Nanosecond,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if total := th.Run(ctx, p); total != 0 {
		t.Errorf("paused total = %v, want 0", total)
	}
	if len(p.calls) != 0 || samples.Load() != 0 {
		t.Errorf("disabled throttle made calls %q and %d samples", p.calls, samples.Load())
	}
}

// TestThrottlePanic: a panicking callback still leaves the process resumed, and the panic
// is not swallowed.
func TestThrottlePanic(t *testing.T) {
	for _, tt := range []struct {
		where      string
		wantResume string
	}{{"OnChange", "resume@3s"}, {"Busy", "resume@4s"}} {
		t.Run(tt.where, func(t *testing.T) {
			clock := newThrottleClock()
			p := &throttleProcess{clock: clock}
			busy, before := scriptedBusy([]float64{95, 95, 95, 95, 95})
			th := Throttle{PauseAbove: 80, Busy: busy}
			switch tt.where {
			case "OnChange":
				th.OnChange = func(paused bool, _ time.Duration) {
					if paused {
						panic("boom in OnChange")
					}
				}
			case "Busy":
				th.Busy = func() (float64, error) {
					if p.paused {
						panic("boom in Busy")
					}
					return busy()
				}
			}
			out := driveThrottle(t, th, clock, p, 5, before)
			if out.panic == nil {
				t.Fatal("Run swallowed the panic")
			}
			if want := []string{"pause@3s", tt.wantResume}; !reflect.DeepEqual(p.calls, want) {
				t.Errorf("calls = %q, want %q", p.calls, want)
			}
			if p.paused {
				t.Error("process left paused after a panic")
			}
			if tt.where == "OnChange" && len(out.changes) != 1 {
				t.Errorf("OnChange called %d times, want once (not again while unwinding)", len(out.changes))
			}
		})
	}
}

// TestThrottleDiskBusy drives the throttle end to end from a diskstats file through
// hw.DiskBusy, the way the daemon wires it.
func TestThrottleDiskBusy(t *testing.T) {
	proc := t.TempDir()
	clock := newThrottleClock()
	p := &throttleProcess{clock: clock}
	sda := hw.BlockDevice{Name: "sda", Major: 8, Minor: 0}
	disk := hw.NewDiskBusy(proc, sda, clock.Now)

	// io_ticks gained per second of fake time, tick by tick; the first sample primes.
	perSecond := []uint64{0, 950, 950, 950, 950, 100, 100, 100, 100}
	var ioTicks uint64
	writeStats := func(i int) {
		ioTicks += perSecond[i-1]
		line := fmt.Sprintf("   8       0 sda 4410231 12882 1290338218 39022871 1812003 400122 811203344 90332110 2 %d 129355021 0 0 0 0 0 0\n", ioTicks)
		if err := os.WriteFile(filepath.Join(proc, "diskstats"), []byte(line), 0o644); err != nil {
			t.Error(err)
		}
	}
	th := Throttle{PauseAbove: 80, Busy: disk.Sample}
	out := driveThrottle(t, th, clock, p, len(perSecond), writeStats)
	// 95% from 2 s; MinRun lets it pause at 3 s; 10% from 6 s, past MinPause: resume.
	if want := []string{"pause@3s", "resume@6s"}; !reflect.DeepEqual(p.calls, want) {
		t.Errorf("calls = %q, want %q", p.calls, want)
	}
	if out.total != 3*time.Second {
		t.Errorf("paused total = %v, want 3s", out.total)
	}

	// The disk vanishing from diskstats resumes the process.
	clock = newThrottleClock()
	p = &throttleProcess{clock: clock}
	disk = hw.NewDiskBusy(proc, sda, clock.Now)
	ioTicks = 0
	perSecond = []uint64{0, 950, 950, 950, 950}
	out = driveThrottle(t, Throttle{PauseAbove: 80, Busy: disk.Sample}, clock, p, 6, func(i int) {
		if i <= len(perSecond) {
			writeStats(i)
			return
		}
		if err := os.WriteFile(filepath.Join(proc, "diskstats"), []byte("   8      16 sdb 1 0 0 0 0 0 0 0 0 0 0\n"), 0o644); err != nil {
			t.Error(err)
		}
	})
	if want := []string{"pause@3s", "resume@6s"}; !reflect.DeepEqual(p.calls, want) {
		t.Errorf("calls = %q, want %q", p.calls, want)
	}
	if !strings.Contains(out.log, "disk sda (8:0) is not in") {
		t.Errorf("log does not say the disk vanished:\n%s", out.log)
	}
}

func TestThrottleProcessGroupRefusesOwnGroup(t *testing.T) {
	// kill(0) and kill(-1) would stop the test itself, or everything: must be refused.
	for _, g := range []ProcessGroup{0, 1, -5} {
		if err := g.Pause(); err == nil {
			t.Errorf("ProcessGroup(%d).Pause() = nil, want an error", g)
		}
		if err := g.Resume(); err == nil {
			t.Errorf("ProcessGroup(%d).Resume() = nil, want an error", g)
		}
	}
}

// procState is the state letter of /proc/PID/stat: R, S, T (stopped), Z, …
func procState(t *testing.T, pid int) byte {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read process state: %v", err)
	}
	// "PID (comm) S ...": comm may hold spaces and parentheses, the state follows the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		t.Fatalf("cannot parse /proc/%d/stat: %q", pid, data)
	}
	return data[i+2]
}

func waitProcState(t *testing.T, pid int, want byte) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := procState(t, pid)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d is in state %c, want %c", pid, got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestThrottleProcessGroup pauses and resumes a real process group.
func TestThrottleProcessGroup(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep (needed to test signals on a real process group): %v", err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		unix.Kill(-pid, unix.SIGKILL)
		cmd.Wait()
	})

	var busy atomic.Int64
	busy.Store(95)
	th := &Throttle{
		Busy:       func() (float64, error) { return float64(busy.Load()), nil },
		PauseAbove: 80,
		MinRun:     time.Millisecond,
		MinPause:   time.Millisecond,
		Interval:   2 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan time.Duration, 1)
	go func() { done <- th.Run(ctx, ProcessGroup(pid)) }()

	waitProcState(t, pid, 'T')
	busy.Store(5)
	waitProcState(t, pid, 'S')
	busy.Store(95)
	waitProcState(t, pid, 'T')
	cancel()
	total := <-done
	if s := procState(t, pid); s == 'T' {
		t.Fatal("process left stopped after ctx was cancelled")
	}
	if total <= 0 {
		t.Errorf("paused total = %v, want > 0", total)
	}

	// Signalling a group that is gone is an error naming the group.
	unix.Kill(-pid, unix.SIGKILL)
	cmd.Wait()
	if err := ProcessGroup(pid).Resume(); !errors.Is(err, unix.ESRCH) || !strings.Contains(err.Error(), fmt.Sprint(pid)) {
		t.Errorf("Resume of a dead group = %v, want ESRCH naming %d", err, pid)
	}
}
