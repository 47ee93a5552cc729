package hw

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// countingRead stands in for Reader.Read: snapshot n has Time base+n s.
type countingRead struct {
	mu sync.Mutex
	n  int
}

var base = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

func (c *countingRead) read() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return Snapshot{Time: base.Add(time.Duration(c.n) * time.Second)}
}

func (c *countingRead) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func at(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }

// start runs s until the test ends; stop ends it early and waits for Run to return.
func start(t *testing.T, s *Sampler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func times(h []Snapshot) []time.Time {
	var ts []time.Time
	for _, s := range h {
		ts = append(ts, s.Time)
	}
	return ts
}

func TestSamplerRing(t *testing.T) {
	c := &countingRead{}
	s := &Sampler{Keep: 3}
	if got := s.Latest(); !got.Time.IsZero() || got.CPU != nil {
		t.Fatalf("Latest() before any read = %+v, want a zero Snapshot", got)
	}
	if got := s.History(); len(got) != 0 {
		t.Fatalf("History() before any read = %v, want empty", got)
	}
	tests := []struct {
		reads int
		want  []time.Time
	}{
		{1, []time.Time{at(1)}},
		{2, []time.Time{at(1), at(2)}},
		{3, []time.Time{at(1), at(2), at(3)}},
		{4, []time.Time{at(2), at(3), at(4)}},
		{8, []time.Time{at(6), at(7), at(8)}},
		{9, []time.Time{at(7), at(8), at(9)}},
	}
	for _, tt := range tests {
		for c.count() < tt.reads {
			s.add(c.read())
		}
		got := times(s.History())
		if len(got) != len(tt.want) {
			t.Fatalf("after %d reads History() = %v, want %v", tt.reads, got, tt.want)
		}
		for i := range got {
			if !got[i].Equal(tt.want[i]) {
				t.Fatalf("after %d reads History() = %v, want %v", tt.reads, got, tt.want)
			}
		}
		if l := s.Latest(); !l.Time.Equal(at(tt.reads)) {
			t.Fatalf("after %d reads Latest() = %v, want %v", tt.reads, l.Time, at(tt.reads))
		}
	}
	// History is a copy.
	h := s.History()
	h[0].Time = time.Time{}
	if s.History()[0].Time.IsZero() {
		t.Fatal("changing History()'s result changed the sampler")
	}
}

func TestSamplerDefaults(t *testing.T) {
	s := &Sampler{}
	s.add(Snapshot{})
	if len(s.ring) != 600 {
		t.Fatalf("default ring holds %d, want 600 (10 minutes at 1 s)", len(s.ring))
	}
}

func TestSamplerRunStopsWithContext(t *testing.T) {
	c := &countingRead{}
	s := &Sampler{Interval: time.Millisecond, Keep: 5, read: c.read}
	stop := start(t, s)
	waitFor(t, "10 reads", func() bool { return c.count() >= 10 })
	stop()
	n := c.count()
	time.Sleep(20 * time.Millisecond)
	if c.count() != n {
		t.Fatalf("reads went on after Run returned: %d, then %d", n, c.count())
	}
	if got := len(s.History()); got != 5 {
		t.Fatalf("History() holds %d, want Keep = 5", got)
	}
	if !s.Latest().Time.Equal(at(n)) {
		t.Fatalf("Latest() = %v, want the last read %v", s.Latest().Time, at(n))
	}

	// A context that has already ended reads nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s2 := &Sampler{Interval: time.Millisecond, read: c.read}
	s2.Run(ctx)
	if c.count() != n {
		t.Fatalf("Run with an ended context read %d times", c.count()-n)
	}
}

func TestSamplerSubscribe(t *testing.T) {
	c := &countingRead{}
	s := &Sampler{Interval: time.Millisecond, Keep: 10, read: c.read}
	ch, unsubscribe := s.Subscribe()
	start(t, s)

	var last time.Time
	for i := range 3 {
		select {
		case snap := <-ch:
			if !snap.Time.After(last) {
				t.Fatalf("update %d at %v, not after the previous %v", i, snap.Time, last)
			}
			last = snap.Time
		case <-time.After(5 * time.Second):
			t.Fatalf("no update %d", i)
		}
	}
	unsubscribe()
	unsubscribe()  // twice is harmless
	for range ch { // at most the one waiting, then closed
	}
	n := c.count()
	waitFor(t, "reads after unsubscribing", func() bool { return c.count() > n+3 })
}

func TestSamplerSlowSubscriber(t *testing.T) {
	c := &countingRead{}
	s := &Sampler{Interval: time.Millisecond, Keep: 10, read: c.read}
	slow, _ := s.Subscribe() // never reads until the end
	fast, unsubscribe := s.Subscribe()
	defer unsubscribe()
	stop := start(t, s)

	// The sampler goes on reading while one subscriber sleeps, and the other keeps up.
	waitFor(t, "50 reads with a subscriber not reading", func() bool { return c.count() >= 50 })
	select {
	case <-fast:
	case <-time.After(5 * time.Second):
		t.Fatal("the fast subscriber got nothing")
	}
	stop()

	// What waits for the slow one is the newest snapshot, not the first it missed.
	got, ok := <-slow
	if !ok || !got.Time.Equal(s.Latest().Time) {
		t.Fatalf("slow subscriber got %v (ok %v), want the latest %v", got.Time, ok, s.Latest().Time)
	}
	// Run ended: the channel is closed, so a live stream ends with the sampler.
	if _, ok := <-slow; ok {
		t.Fatal("channel still open after Run returned")
	}
	// Subscribing to a stopped sampler gives a closed channel, not one that waits forever.
	late, unsubscribeLate := s.Subscribe()
	defer unsubscribeLate()
	if _, ok := <-late; ok {
		t.Fatal("a subscription after Run returned got a snapshot")
	}
}

// TestSamplerWithReader runs the real Reader on a fixture tree.
func TestSamplerWithReader(t *testing.T) {
	clock := &fakeClock{t: base}
	r := fixtureReader(filepath.Join("testdata", "rpi4"), 179, 2, clock)
	var mu sync.Mutex
	r.Now = func() time.Time { // the sampler's goroutine advances it, the test reads it
		mu.Lock()
		defer mu.Unlock()
		clock.Advance(time.Second)
		return clock.Now()
	}
	s := &Sampler{Reader: r, Interval: time.Millisecond, Keep: 4}
	start(t, s)
	waitFor(t, "a full ring", func() bool { return len(s.History()) == 4 })
	for _, snap := range s.History() {
		if snap.Errors != nil || snap.CPU == nil || snap.Board != "Raspberry Pi 4 Model B Rev 1.4" {
			t.Fatalf("snapshot %+v (errors %v)", snap, snap.Errors)
		}
	}
}
