package hw

import (
	"context"
	"github.com/amwi/amwi/internal/broadcast"
	"sync"
	"time"
)

// Sampler reads every Interval (default 1 s) and keeps the last Keep snapshots (default
// 600, 10 minutes at 1 s) in a ring buffer: one sampler feeds every viewer, so the cost of
// reading /proc does not grow with the number of open dashboards.
//
// Set the fields before Run; the methods are safe for concurrent use.
type Sampler struct {
	Reader   *Reader
	Interval time.Duration
	Keep     int

	read func() Snapshot // tests; nil means Reader.Read

	mu    sync.Mutex
	ring  []Snapshot                 // allocated once, Keep long
	next  int                        // where the next snapshot goes
	n     int                        // snapshots held, ≤ len(ring)
	snaps broadcast.Latest[Snapshot] // Run's end closes it: new subscriptions are closed at once
}

// Run reads one snapshot at once and then one every Interval until ctx ends. When it
// returns, every subscription's channel is closed, so live streams end with it. Call it once.
func (s *Sampler) Run(ctx context.Context) {
	interval := s.Interval
	if interval <= 0 {
		interval = time.Second
	}
	read := s.read
	if read == nil {
		read = s.Reader.Read
	}
	defer s.stop()

	t := time.NewTicker(interval)
	defer t.Stop()
	for ctx.Err() == nil {
		s.add(read())
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

func (s *Sampler) add(snap Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ring == nil {
		keep := s.Keep
		if keep <= 0 {
			keep = 600
		}
		s.ring = make([]Snapshot, keep)
	}
	s.ring[s.next] = snap
	s.next = (s.next + 1) % len(s.ring)
	s.n = min(s.n+1, len(s.ring))
	s.snaps.Publish(snap)
}

func (s *Sampler) stop() { s.snaps.Close() }

// Latest returns the newest snapshot, or a zero Snapshot before the first read.
func (s *Sampler) Latest() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return Snapshot{}
	}
	return s.ring[(s.next-1+len(s.ring))%len(s.ring)]
}

// History returns the snapshots held, oldest first, in a new slice.
func (s *Sampler) History() []Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := make([]Snapshot, s.n)
	if s.n == 0 {
		return h
	}
	start := (s.next - s.n + len(s.ring)) % len(s.ring)
	k := copy(h, s.ring[start:min(start+s.n, len(s.ring))])
	copy(h[k:], s.ring[:s.n-k])
	return h
}

// Subscribe delivers each new snapshot on the channel, latest only: a subscriber that
// falls behind finds the newest one waiting, never a queue, and never slows the sampler.
// The returned func unsubscribes and closes the channel; so does Run when it returns.
// To draw history and then follow live without a gap, subscribe first and then call
// History; a snapshot may then come twice (compare Time).
func (s *Sampler) Subscribe() (<-chan Snapshot, func()) { return s.snaps.Subscribe() }
