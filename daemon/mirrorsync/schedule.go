package mirrorsync

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// startDelay is how soon after start the first scheduled sync runs when one is due: long
// enough for the box to settle after boot, short enough to catch up quickly.
const startDelay = 45 * time.Second

// nextRun says when the next scheduled sync is due after last (nil: none yet). A failed
// run is retried sooner than the interval, but not in a tight loop.
func nextRun(last *Run, interval time.Duration, now time.Time, jitter func(time.Duration) time.Duration) time.Time {
	soon := now.Add(startDelay + jitter(time.Minute))
	if last == nil {
		return soon
	}
	wait := interval
	if !last.OK() {
		wait = min(max(interval/4, 5*time.Minute), time.Hour, interval)
	}
	next := last.Start.Add(wait + jitter(min(interval/20, 10*time.Minute)))
	if next.Before(soon) {
		return soon
	}
	return next
}

// planFrom is the run the schedule counts from: the last one, unless it started from
// another primary upstream than today's. A new upstream (set in Settings or from the
// benchmark) is tried soon, not an interval after a run against the old one.
func planFrom(last *Run, upstreams []string) *Run {
	if len(last.Attempts) > 0 && len(upstreams) > 0 && normalizeUpstream(last.Attempts[0].Upstream) != normalizeUpstream(upstreams[0]) {
		return nil
	}
	return last
}

func randJitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(max)))
}

// wakeCheck is how often the schedule looks at the wall clock while it waits.
var wakeCheck = time.Minute

// wallUntil is how long until t by the wall clock (monotonic readings stripped).
func wallUntil(t, now time.Time) time.Duration { return t.Round(0).Sub(now.Round(0)) }

// Plan says the schedule: the interval, and whether scheduled syncs are on. It is asked
// again after every run and every settings change.
type Plan func() (interval time.Duration, enabled bool)

// Schedule runs a sync every interval (plus a little jitter, so a LAN of AMWIs does not hit
// the upstream at the same second) until ctx ends. Runs started by hand count: the next
// scheduled one is due an interval after the latest run of any kind.
func (m *Manager) Schedule(ctx context.Context, plan Plan) {
	var next time.Time // zero: nothing scheduled
	replan := true
	for {
		if replan {
			replan = false
			interval, enabled := plan()
			next = time.Time{}
			if enabled && len(m.Upstreams()) > 0 {
				var last *Run
				if runs, err := m.History(1); err == nil && len(runs) > 0 {
					last = planFrom(&runs[0], m.Upstreams())
				}
				next = nextRun(last, interval, m.now(), randJitter)
				m.Log.Debug("sync: next scheduled run", "at", next)
			}
			m.update(func(s *State) { s.NextScheduled = next })
		}
		var wait <-chan time.Time
		var timer *time.Timer
		if !next.IsZero() {
			// Go's timers follow the monotonic clock, which stands still while the box is
			// suspended: a 6 h timer set before a night asleep fires 6 h after waking. The
			// schedule looks at the wall clock at least every wakeCheck instead, so a
			// sync that fell due while asleep (or before a clock jump) runs soon after.
			timer = time.NewTimer(max(0, min(wallUntil(next, m.now()), wakeCheck)))
			wait = timer.C
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-m.kicked():
			if timer != nil {
				timer.Stop()
			}
			replan = true
			continue
		case <-wait:
		}
		if wallUntil(next, m.now()) > 0 {
			continue // woke to look at the clock: not due yet
		}
		replan = true
		_, err := m.Sync(ctx, Options{Trigger: TriggerSchedule})
		switch {
		case errors.Is(err, ErrBusy):
			// A run by hand is going on: wait for it, then plan from it.
			m.WaitIdle(ctx)
		case errors.Is(err, ErrNoUpstream):
		case err != nil && ctx.Err() == nil:
			m.Log.Error("sync: scheduled run could not start", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Minute):
			}
		}
	}
}

// kicked fires when a run ends, so the schedule is planned from it.
func (m *Manager) kicked() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.kick == nil {
		m.kick = make(chan struct{}, 1)
	}
	return m.kick
}

// WaitIdle returns when no sync is running (or ctx ends).
func (m *Manager) WaitIdle(ctx context.Context) {
	m.mu.Lock()
	done := m.done
	m.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
}
