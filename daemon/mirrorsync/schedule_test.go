package mirrorsync

import (
	"testing"
	"time"
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
