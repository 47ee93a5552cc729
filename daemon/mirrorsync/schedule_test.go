package mirrorsync

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/store"
)

func TestNextRun(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	noJitter := func(time.Duration) time.Duration { return 0 }
	iv := 6 * time.Hour
	tests := []struct {
		name string
		last *Run
		want time.Time
	}{
		{"first ever: soon after start", nil, now.Add(startDelay)},
		{"recent success: an interval after it", &Run{Start: now.Add(-time.Hour), Result: ResultSuccess}, now.Add(5 * time.Hour)},
		{"up to date counts as success", &Run{Start: now.Add(-2 * time.Hour), Result: ResultUpToDate}, now.Add(4 * time.Hour)},
		{"overdue (box was off): soon", &Run{Start: now.Add(-30 * time.Hour), Result: ResultSuccess}, now.Add(startDelay)},
		{"failed: retried after a quarter interval, at most 1h", &Run{Start: now.Add(-time.Minute), Result: ResultFailed}, now.Add(59 * time.Minute)},
		{"cancelled: same as failed", &Run{Start: now.Add(-time.Minute), Result: ResultCancelled}, now.Add(59 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextRun(tt.last, iv, now, noJitter); !got.Equal(tt.want) {
				t.Errorf("next = %s, want %s", got, tt.want)
			}
		})
	}
	// Failed runs are retried no sooner than 5 minutes, even with a short interval.
	if got := nextRun(&Run{Start: now, Result: ResultFailed}, 10*time.Minute, now, noJitter); !got.Equal(now.Add(startDelay)) && got.Before(now.Add(5*time.Minute)) {
		t.Errorf("failed with a 10m interval: retry at %s", got)
	}
	// Jitter stays within its bound.
	for i := 0; i < 100; i++ {
		got := nextRun(&Run{Start: now, Result: ResultSuccess}, iv, now, randJitter)
		if got.Before(now.Add(iv)) || got.After(now.Add(iv+10*time.Minute)) {
			t.Fatalf("jittered next run %s outside [interval, interval+10m]", got.Sub(now))
		}
	}
}

// TestNewUpstreamScheduledSoon: after the primary upstream changes, the next scheduled
// sync is soon, not an interval after the last run against the old one; a trailing slash
// or new fallbacks are no change.
func TestNewUpstreamScheduledSoon(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	noJitter := func(time.Duration) time.Duration { return 0 }
	last := &Run{Start: now.Add(-time.Hour), Result: ResultSuccess, Attempts: []Attempt{{Upstream: "rsync://a.example/archlinux/"}}}
	for _, tc := range []struct {
		ups  []string
		want time.Time
	}{
		{[]string{"rsync://b.example/archlinux/"}, now.Add(startDelay)},
		{[]string{"rsync://a.example/archlinux"}, now.Add(5 * time.Hour)},
		{[]string{"rsync://a.example/archlinux/", "rsync://c.example/archlinux/"}, now.Add(5 * time.Hour)},
	} {
		if got := nextRun(planFrom(last, tc.ups), 6*time.Hour, now, noJitter); !got.Equal(tc.want) {
			t.Errorf("upstreams %v: next %s, want %s", tc.ups, got.Sub(now), tc.want.Sub(now))
		}
	}
	// A run that failed before trying any upstream counts as it is.
	early := &Run{Start: now.Add(-time.Minute), Result: ResultFailed}
	if planFrom(early, []string{"rsync://b.example/archlinux/"}) != early {
		t.Error("a run without attempts was dropped")
	}
}

// TestScheduleAfterSuspend: the box sleeps (or its clock jumps) past the next scheduled
// sync; the sync runs soon after, not a whole interval of monotonic time later.
func TestScheduleAfterSuspend(t *testing.T) {
	defer func(d time.Duration) { wakeCheck = d }(wakeCheck)
	wakeCheck = 20 * time.Millisecond
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var mu sync.Mutex
	clock := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	os.MkdirAll(filepath.Join(dir, "mirror"), 0o755)
	m := &Manager{Config: Config{Root: filepath.Join(dir, "mirror"), Repos: []string{"core"}, Upstreams: []string{"rsync://127.0.0.1:1/archlinux/"},
		StateDir: filepath.Join(dir, "state"), KillGrace: time.Second}, Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: now}
	id, _ := st.NextRunID()
	m.save(Run{ID: id, Trigger: TriggerCLI, Start: clock, End: clock, Result: ResultSuccess})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Schedule(ctx, func() (time.Duration, bool) { return 6 * time.Hour, true }); close(done) }()
	defer func() { cancel(); <-done }()
	for i := 0; m.State().NextScheduled.IsZero(); i++ {
		if i > 200 {
			t.Fatal("nothing scheduled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if next := m.State().NextScheduled; next.Before(clock.Add(6*time.Hour)) || next.After(clock.Add(6*time.Hour+10*time.Minute)) {
		t.Fatalf("next scheduled at %s", next)
	}
	// A night asleep: the wall clock moves, the monotonic one did not.
	mu.Lock()
	clock = clock.Add(9 * time.Hour)
	mu.Unlock()
	for i := 0; ; i++ {
		if runs, _ := m.History(1); len(runs) == 1 && runs[0].ID > id && runs[0].Trigger == TriggerSchedule {
			break
		}
		if i > 500 {
			t.Fatal("the sync that fell due while asleep did not run after waking")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
