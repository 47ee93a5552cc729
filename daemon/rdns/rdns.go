package rdns

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Defaults for the zero values of Cache's fields.
const (
	DefaultMaxEntries  = 1024
	DefaultPositiveTTL = time.Hour
	DefaultNegativeTTL = 10 * time.Minute
	DefaultTimeout     = time.Second
	DefaultMaxInFlight = 4
)

// Resolver does the reverse lookups (*net.Resolver implements it).
type Resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

var _ Resolver = (*net.Resolver)(nil)

// Cache answers client names from memory and looks up the ones it lacks in the
// background. Set the fields before the first call; zero values take the defaults. Close
// it to cancel and wait for the lookups running.
type Cache struct {
	Resolver    Resolver // default net.DefaultResolver
	MaxEntries  int
	PositiveTTL time.Duration
	NegativeTTL time.Duration
	Timeout     time.Duration
	MaxInFlight int
	Now         func() time.Time // default time.Now

	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	m        map[netip.Addr]*entry
	inFlight int
	closed   bool
}

type entry struct {
	name    string    // "" for none (yet)
	expires time.Time // zero while the first lookup runs
	pending bool
}

func (c *Cache) init() {
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.PositiveTTL <= 0 {
		c.PositiveTTL = DefaultPositiveTTL
	}
	if c.NegativeTTL <= 0 {
		c.NegativeTTL = DefaultNegativeTTL
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.m = map[netip.Addr]*entry{}
}

// Name is a's name when one is known, else "" (and a lookup starts in the background
// when none is running for a and one may). An expired name is still given while its
// renewal runs. It never waits for DNS.
func (c *Cache) Name(a netip.Addr) string {
	c.once.Do(c.init)
	a = a.Unmap().WithZone("")
	if !a.IsValid() || a.IsUnspecified() {
		return ""
	}
	now := c.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[a]
	if e != nil && (e.pending || now.Before(e.expires)) {
		return e.name
	}
	if c.closed || c.inFlight >= c.MaxInFlight {
		if e != nil {
			return e.name
		}
		return ""
	}
	if e == nil {
		if len(c.m) >= c.MaxEntries && !c.evictLocked() {
			return ""
		}
		e = &entry{}
		c.m[a] = e
	}
	e.pending = true
	c.inFlight++
	c.wg.Add(1)
	go c.lookup(a, e)
	return e.name
}

// evictLocked drops the entry closest to expiry that no lookup is filling; false when
// there is none.
func (c *Cache) evictLocked() bool {
	var victim netip.Addr
	var first time.Time
	found := false
	for a, e := range c.m {
		if !e.pending && (!found || e.expires.Before(first)) {
			victim, first, found = a, e.expires, true
		}
	}
	if found {
		delete(c.m, victim)
	}
	return found
}

func (c *Cache) lookup(a netip.Addr, e *entry) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.ctx, c.Timeout)
	names, err := c.Resolver.LookupAddr(ctx, a.String())
	cancel()
	name := ""
	if err == nil {
		for _, n := range names {
			if n = strings.TrimSuffix(n, "."); validHost(n) {
				name = n
				break
			}
		}
	}
	ttl := c.PositiveTTL
	if name == "" {
		ttl = c.NegativeTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight--
	e.pending = false
	e.name = name
	e.expires = c.Now().Add(ttl)
}

// Len is the number of addresses in the cache.
func (c *Cache) Len() int {
	c.once.Do(c.init)
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Close cancels the lookups running and waits for them; Name starts no more after it.
func (c *Cache) Close() {
	c.once.Do(c.init)
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// validHost says whether s is a plausible host name: dot-separated labels of letters,
// digits, '-' and '_', 1 to 63 bytes each, 253 in all. A name a DNS server made up to
// carry markup or a screenful of text is not shown.
func validHost(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, r := range []byte(l) {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
