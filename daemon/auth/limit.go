package auth

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate is a token bucket: Burst attempts at once, then one per Every.
type Rate struct {
	Burst int
	Every time.Duration
}

// Limits are the login rate limits. Zero fields take the defaults.
type Limits struct {
	// PerAccount limits attempts on one user name from anywhere: it is what stops a
	// distributed guesser. Default 5 at once, then 1 per 10 s.
	PerAccount Rate
	// PerClient limits attempts from one address (one /64 for IPv6, where a single host
	// usually owns the whole prefix). Default 10 at once, then 1 per 2 s.
	PerClient Rate
	// MaxTracked bounds how many accounts, and how many clients, are tracked at a time, so
	// that an attacker sending many names or addresses cannot grow memory. Default 4096.
	MaxTracked int
}

func (l Limits) withDefaults() Limits {
	if l.PerAccount.Burst <= 0 {
		l.PerAccount.Burst = 5
	}
	if l.PerAccount.Every <= 0 {
		l.PerAccount.Every = 10 * time.Second
	}
	if l.PerClient.Burst <= 0 {
		l.PerClient.Burst = 10
	}
	if l.PerClient.Every <= 0 {
		l.PerClient.Every = 2 * time.Second
	}
	if l.MaxTracked <= 0 {
		l.MaxTracked = 4096
	}
	return l
}

// limiters is a bounded map of token buckets driven by an explicit clock.
type limiters struct {
	mu    sync.Mutex
	rate  Rate
	max   int
	items map[string]*limiterItem
}

type limiterItem struct {
	lim *rate.Limiter
}

func newLimiters(r Rate, max int) *limiters {
	return &limiters{rate: r, max: max, items: make(map[string]*limiterItem)}
}

// take spends one token of key's bucket at now. If there is none it spends nothing and
// returns how long until there is one.
func (l *limiters) take(key string, now time.Time) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	it := l.items[key]
	if it == nil {
		l.makeRoom(now)
		it = &limiterItem{lim: rate.NewLimiter(rate.Every(l.rate.Every), l.rate.Burst)}
		l.items[key] = it
	}
	if tokens := it.lim.TokensAt(now); tokens < 1 {
		wait = time.Duration((1 - tokens) / float64(it.lim.Limit()) * float64(time.Second))
		// Whole seconds, rounded up: a client retrying after exactly that long gets in.
		return false, (wait + time.Second - 1).Truncate(time.Second)
	}
	it.lim.AllowN(now, 1)
	return true, 0
}

// makeRoom evicts entries until a new one fits. Full buckets go first: forgetting them loses
// nothing, as a new bucket starts full. If every tracked key is still refilling (many keys
// busy within one refill period, which takes many addresses), the fullest bucket goes: an
// attacker churning through names then only pushes out its own fresh keys, not an account's
// drained bucket.
func (l *limiters) makeRoom(now time.Time) {
	if len(l.items) < l.max {
		return
	}
	burst := float64(l.rate.Burst)
	for k, it := range l.items {
		if it.lim.TokensAt(now) >= burst {
			delete(l.items, k)
		}
	}
	for len(l.items) >= l.max {
		var victim string
		best := -1.0
		for k, it := range l.items {
			if tok := it.lim.TokensAt(now); tok > best {
				victim, best = k, tok
			}
		}
		delete(l.items, victim)
	}
}

func (l *limiters) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.items)
}

// clientKey groups addresses that one attacker cheaply has many of.
func clientKey(a netip.Addr) string {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String() // also "invalid IP" for the zero Addr: all unknown clients share a bucket
}
