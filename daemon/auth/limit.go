package auth

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate is a token bucket: Burst failures at once, then one more per Every.
type Rate struct {
	Burst int
	Every time.Duration
}

// perHour is the most failures r allows in any one hour: the burst plus an hour's refill.
func (r Rate) perHour() int { return r.Burst + int(time.Hour/r.Every) }

// Limits are the limits on failed logins (and wrong setup codes). Zero fields take the
// defaults, which the README states. Only failures count: a right password spends nothing.
//
// The account's limits must stop a guesser with many addresses, but must not become a way
// for a stranger to lock the owner out. So the account has two budgets: PerAccount, open
// to every address, and Fresh, open only to addresses with no failure for Clean, once
// PerAccount is spent. A guesser that drained PerAccount has failed recently on every
// address it used, so the owner typing the right password on another address gets in
// through Fresh; draining Fresh too takes a new address for every guess. And a browser
// holding a device token of the account (from a login with the right password, see
// Service.LoginFrom) has a budget of its own, PerDevice, and no other limit applies to it.
type Limits struct {
	// PerClient limits failures from one address, on any account. An IPv6 address counts
	// alone, not its /64: on a LAN every host shares one /64, and a stranger's failures
	// must not hold back the owner. Default 10 at once, then 1 per 2 minutes.
	PerClient Rate
	// PerAccount limits failures on one user name from any address. Default 5 at once,
	// then 1 per 3 minutes.
	PerAccount Rate
	// Fresh is the account's budget for clean addresses (see Clean) once PerAccount is
	// spent. Default 10 at once, then 1 per 3 minutes.
	Fresh Rate
	// PerDevice limits failures from a browser with a valid device token for the account.
	// Default 10 at once, then 1 per 2 minutes.
	PerDevice Rate
	// Clean is how long an address must have gone without a failure to use Fresh.
	// Default 1 hour.
	Clean time.Duration
	// MaxTracked bounds how many addresses, accounts and devices are tracked (each), so
	// that an attacker sending many names or addresses cannot grow memory. Default 4096.
	MaxTracked int
}

func (l Limits) withDefaults() Limits {
	def := func(r *Rate, burst int, every time.Duration) {
		if r.Burst <= 0 {
			r.Burst = burst
		}
		if r.Every <= 0 {
			r.Every = every
		}
	}
	def(&l.PerClient, 10, 2*time.Minute)
	def(&l.PerAccount, 5, 3*time.Minute)
	def(&l.Fresh, 10, 3*time.Minute)
	def(&l.PerDevice, 10, 2*time.Minute)
	if l.Clean <= 0 {
		l.Clean = time.Hour
	}
	if l.MaxTracked <= 0 {
		l.MaxTracked = 4096
	}
	return l
}

// GuessesPerHour is the most guesses at one account's password that browsers without its
// device token can make in any one hour, from any number of addresses.
func (l Limits) GuessesPerHour() int {
	l = l.withDefaults()
	return l.PerAccount.perHour() + l.Fresh.perHour()
}

// throttle decides who may try a password now. Attempts are admitted against the budgets
// before the password is checked, and counted as in flight until done: parallel requests
// cannot all squeeze through a budget with one failure left.
type throttle struct {
	mu       sync.Mutex
	l        Limits
	clients  *buckets
	accounts *buckets
	fresh    *buckets
	devices  *buckets
}

func newThrottle(l Limits) *throttle {
	return &throttle{l: l,
		clients:  newBuckets(l.PerClient, l.MaxTracked, l.Clean),
		accounts: newBuckets(l.PerAccount, l.MaxTracked, 0),
		fresh:    newBuckets(l.Fresh, l.MaxTracked, 0),
		devices:  newBuckets(l.PerDevice, l.MaxTracked, 0),
	}
}

// ticket is one admitted attempt: done says how it went.
type ticket struct {
	t      *throttle
	charge []*bucket // spent from on a failure
	client *bucket   // marked as failed on a failure (nil for a device)
	done1  sync.Once
}

// admit lets an attempt on account from client (a clientKey) go ahead, or says how long
// to wait. device, when not "", is the nonce of a valid device token of the account.
func (t *throttle) admit(client, account, device string, now time.Time) (*ticket, *RateLimitError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if device != "" {
		d := t.devices.get(account+"\x00"+device, now)
		if wait := d.wait(now); wait > 0 {
			return nil, &RateLimitError{RetryAfter: wait}
		}
		d.inflight++
		return &ticket{t: t, charge: []*bucket{d}}, nil
	}
	c := t.clients.get(client, now)
	if wait := c.wait(now); wait > 0 {
		return nil, &RateLimitError{RetryAfter: wait}
	}
	a := t.accounts.get(account, now)
	via := a
	if wait := a.wait(now); wait > 0 {
		via = nil
		if c.clean(now, t.l.Clean) {
			f := t.fresh.get(account, now)
			if fw := f.wait(now); fw == 0 {
				via = f
			} else {
				wait = min(wait, fw)
			}
		}
		if via == nil {
			return nil, &RateLimitError{RetryAfter: wait, Account: true}
		}
	}
	c.inflight++
	via.inflight++
	return &ticket{t: t, charge: []*bucket{c, via}, client: c}, nil
}

// admitClient lets an attempt from client go ahead against its address's budget alone, or
// says how long to wait: for guesses no account budget needs to cap (setup codes).
func (t *throttle) admitClient(client string, now time.Time) (*ticket, *RateLimitError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.clients.get(client, now)
	if wait := c.wait(now); wait > 0 {
		return nil, &RateLimitError{RetryAfter: wait}
	}
	c.inflight++
	return &ticket{t: t, charge: []*bucket{c}, client: c}, nil
}

// done ends the attempt: a failure spends from every budget it was admitted against (and
// marks the address as having failed), a success spends nothing. Only the first call counts.
func (k *ticket) done(failed bool, now time.Time) {
	k.done1.Do(func() {
		k.t.mu.Lock()
		defer k.t.mu.Unlock()
		for _, b := range k.charge {
			b.inflight--
			if failed {
				// Into debt if need be (never cancelled): the next token comes later.
				b.lim.ReserveN(now, 1)
			}
		}
		if failed && k.client != nil {
			k.client.lastFail = now
		}
	})
}

// bucket is one key's token bucket.
type bucket struct {
	lim      *rate.Limiter
	inflight int       // admitted attempts not yet done
	lastFail time.Time // addresses only
}

// wait is 0 when one more attempt fits beside those in flight, else how long until one
// does, in whole seconds rounded up (a client retrying after exactly that long gets in).
func (b *bucket) wait(now time.Time) time.Duration {
	tokens := b.lim.TokensAt(now) - float64(b.inflight)
	if tokens >= 1 {
		return 0
	}
	w := time.Duration((1 - tokens) / float64(b.lim.Limit()) * float64(time.Second))
	return max(time.Second, (w + time.Second - 1).Truncate(time.Second))
}

// clean reports whether the address had no failure within window.
func (b *bucket) clean(now time.Time, window time.Duration) bool {
	return b.lastFail.IsZero() || now.Sub(b.lastFail) >= window
}

// buckets is a bounded map of token buckets driven by an explicit clock.
type buckets struct {
	rate  Rate
	max   int
	clean time.Duration // how long a failure marks an address (0: buckets of accounts)
	items map[string]*bucket
}

func newBuckets(r Rate, max int, clean time.Duration) *buckets {
	return &buckets{rate: r, max: max, clean: clean, items: make(map[string]*bucket)}
}

func (bs *buckets) get(key string, now time.Time) *bucket {
	b := bs.items[key]
	if b == nil {
		bs.makeRoom(now)
		b = &bucket{lim: rate.NewLimiter(rate.Every(bs.rate.Every), bs.rate.Burst)} // full
		bs.items[key] = b
	}
	return b
}

// forgettable: dropping b loses nothing, as a new bucket would be the same.
func (bs *buckets) forgettable(b *bucket, now time.Time) bool {
	return b.inflight == 0 && b.lim.TokensAt(now) >= float64(bs.rate.Burst) && (bs.clean == 0 || b.clean(now, bs.clean))
}

// makeRoom evicts entries until a new one fits. Forgettable ones go first. If every
// tracked key is still refilling (many keys busy within one refill period, which takes many
// addresses), the fullest bucket goes: an attacker churning through names or addresses then
// only pushes out its own fresh keys, not an account's drained bucket. A bucket with an
// attempt in flight stays; if all have one, the map grows past max for a moment (the
// number in flight is bounded by the connections).
func (bs *buckets) makeRoom(now time.Time) {
	if len(bs.items) < bs.max {
		return
	}
	for k, b := range bs.items {
		if bs.forgettable(b, now) {
			delete(bs.items, k)
		}
	}
	for len(bs.items) >= bs.max {
		var victim string
		best := -1e18
		for k, b := range bs.items {
			if tok := b.lim.TokensAt(now); b.inflight == 0 && tok > best {
				victim, best = k, tok
			}
		}
		if victim == "" {
			return
		}
		delete(bs.items, victim)
	}
}

func (bs *buckets) len() int { return len(bs.items) }

// clientKey is the address a client's failures count against: one per IPv4 address and
// one per IPv6 address (unmapped, without zone). Not per /64: on a LAN all hosts share
// one, and the per-account budgets, not this one, are what hold a guesser with many
// addresses.
func clientKey(a netip.Addr) string {
	return a.Unmap().WithZone("").String() // "invalid IP" for the zero Addr: all unknown clients share a bucket
}
