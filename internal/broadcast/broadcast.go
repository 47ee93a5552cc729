// Package broadcast hands a changing value to any number of subscribers, latest only: the
// sync engine's live state and the machine sampler's snapshots go to the dashboard's live
// streams and to `amwi sync`'s progress line this way.
package broadcast

import "sync"

// Latest delivers each published value to every subscriber. A subscriber that falls
// behind finds the newest value waiting, never a queue, and never slows the publisher.
// The zero value is ready to use.
type Latest[T any] struct {
	mu     sync.Mutex
	subs   map[chan T]struct{}
	closed bool
}

// Publish hands v to every subscriber (replacing a value one has not taken yet).
func (l *Latest[T]) Publish(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ch := range l.subs {
		// The publisher is the only sender and holds mu: after the drain the second send
		// always finds room.
		select {
		case ch <- v:
		default:
			select {
			case <-ch:
			default:
			}
			select {
			case ch <- v:
			default:
			}
		}
	}
}

// Subscribe returns a channel that gets the values published from now on and a func that
// unsubscribes and closes it. After Close the channel comes closed.
func (l *Latest[T]) Subscribe() (<-chan T, func()) {
	ch := make(chan T, 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		close(ch)
		return ch, func() {}
	}
	if l.subs == nil {
		l.subs = map[chan T]struct{}{}
	}
	l.subs[ch] = struct{}{}
	return ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if _, ok := l.subs[ch]; ok {
			delete(l.subs, ch)
			close(ch)
		}
	}
}

// Close closes every subscriber's channel: a `for range` over one ends.
func (l *Latest[T]) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for ch := range l.subs {
		close(ch)
		delete(l.subs, ch)
	}
}
