package traffic

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Retention and defaults; see the package comment for why.
const (
	KeepHours = 14 * 24 // hourly buckets
	KeepDays  = 400     // daily totals, per client, per package

	DefaultFlushEvery  = 5 * time.Second
	DefaultMaxClients  = 1000 // distinct clients per day
	DefaultMaxPackages = 5000 // distinct packages per day; Arch has ~15000 in all
	DefaultMaxRepos    = 64   // distinct repositories per day; Arch has about a dozen

	pruneEvery = 24 * time.Hour
	// errLogEvery bounds how often a failing store is logged: the journal is on the same
	// SD card that is failing.
	errLogEvery = 10 * time.Minute
)

// Recorder aggregates hits in memory and writes them to Store in batches. Set the exported
// fields before the first call; Store is required. Run it once; Record, the live figures
// and the reports may be called from any goroutine.
type Recorder struct {
	Store      Store
	Now        func() time.Time // default time.Now; its Location is the zone of "days"
	Log        *slog.Logger     // default: discard
	FlushEvery time.Duration    // default 5 s
	// MaxClients and MaxPackages cap the distinct keys per day; the rest count as Other.
	// 0 means the default. The cap is per process, so a restart mid-day may let a day
	// reach twice the cap in the store.
	MaxClients  int
	MaxPackages int
	MaxRepos    int

	once sync.Once
	loc  *time.Location

	// flushMu is held for writing while a batch moves from memory to the store, and for
	// reading by reports, so that a report sees every hit exactly once: either still in
	// pend or already in the store. Record never takes it.
	flushMu sync.RWMutex

	mu   sync.Mutex // guards everything below
	pend *pending
	// The current day's bounds, so Record does not compute a date for every hit.
	dayFrom, dayTo time.Time
	dayNum         Day
	seenClients    seen[netip.Addr]
	seenPkgs       seen[string]
	seenRepos      seen[string]
	// today is Today's answer for todayDay, kept up to date by Record once loaded.
	todayDay Day
	today    Count
	todayOK  bool
	// dash is today's dashboard and API requests (Hit.Dashboard), on dashDay: memory
	// only, so a restart starts it again at zero.
	dashDay Day
	dash    Count

	// Run's state (only Run touches it).
	lastPrune  time.Time
	failing    bool
	lastErrLog time.Time
}

type clientKey struct {
	day   Day
	addr  netip.Addr // zero: Unknown
	other bool
}

func (k clientKey) String() string {
	switch {
	case k.other:
		return Other
	case !k.addr.IsValid():
		return Unknown
	}
	return k.addr.String()
}

// pending is the batch being gathered. Clients are keyed by netip.Addr, not its string,
// so Record does not allocate for a known client.
type pending struct {
	hours   map[Hour]Count
	days    map[Day]Count
	clients map[clientKey]Count
	pkgs    map[DayKey]Count
	repos   map[DayKey]Count
}

func newPending() *pending {
	return &pending{
		hours:   map[Hour]Count{},
		days:    map[Day]Count{},
		clients: map[clientKey]Count{},
		pkgs:    map[DayKey]Count{},
		repos:   map[DayKey]Count{},
	}
}

func (p *pending) empty() bool { return len(p.hours) == 0 }

func (p *pending) merge(o *pending) {
	addAll(p.hours, o.hours)
	addAll(p.days, o.days)
	addAll(p.clients, o.clients)
	addAll(p.pkgs, o.pkgs)
	addAll(p.repos, o.repos)
}

func (p *pending) batch() Batch {
	b := Batch{
		Hours:    p.hours,
		Days:     p.days,
		Clients:  make(map[DayKey]Count, len(p.clients)),
		Packages: p.pkgs,
		Repos:    p.repos,
	}
	for k, c := range p.clients {
		dk := DayKey{k.day, k.String()}
		b.Clients[dk] = b.Clients[dk].Add(c)
	}
	return b
}

func addAll[K comparable](dst, src map[K]Count) {
	for k, c := range src {
		dst[k] = dst[k].Add(c)
	}
}

// seen is the distinct keys per day, for the caps, each mapped to the copy that is kept.
// Only the newest two days are kept: hits arrive in about time order, and a day left
// behind needs no cap any more.
type seen[K comparable] map[Day]map[K]K

// admit returns the key to count k under on day d (the kept copy) and whether k is within
// the day's limit. own makes the copy to keep of a new key; nil keeps k itself.
func (s seen[K]) admit(d Day, k K, limit int, own func(K) K) (K, bool) {
	set := s[d]
	if set == nil {
		set = map[K]K{}
		s[d] = set
		for old := range s {
			if old < d-1 {
				delete(s, old)
			}
		}
	}
	if kept, ok := set[k]; ok {
		return kept, true
	}
	if len(set) >= limit {
		return k, false
	}
	if own != nil {
		k = own(k)
	}
	set[k] = k
	return k, true
}

func (r *Recorder) init() {
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Log == nil {
		r.Log = slog.New(slog.DiscardHandler)
	}
	if r.FlushEvery <= 0 {
		r.FlushEvery = DefaultFlushEvery
	}
	if r.MaxClients <= 0 {
		r.MaxClients = DefaultMaxClients
	}
	if r.MaxPackages <= 0 {
		r.MaxPackages = DefaultMaxPackages
	}
	if r.MaxRepos <= 0 {
		r.MaxRepos = DefaultMaxRepos
	}
	r.loc = r.Now().Location()
	r.pend = newPending()
	r.seenClients = seen[netip.Addr]{}
	r.seenPkgs = seen[string]{}
	r.seenRepos = seen[string]{}
}

// dayLocked is t's date in the recorder's zone.
func (r *Recorder) dayLocked(t time.Time) Day {
	if !t.Before(r.dayFrom) && t.Before(r.dayTo) {
		return r.dayNum
	}
	lt := t.In(r.loc)
	d := DayOf(lt)
	y, m, dd := lt.Date()
	r.dayFrom = time.Date(y, m, dd, 0, 0, 0, 0, r.loc)
	r.dayTo = time.Date(y, m, dd+1, 0, 0, 0, 0, r.loc)
	r.dayNum = d
	return d
}

// Record counts one finished request. It takes a mutex and updates a few maps; it never
// waits for the store. A dashboard request (Hit.Dashboard) only adds to DashboardToday.
func (r *Recorder) Record(h Hit) {
	r.once.Do(r.init)
	t := h.Time
	if t.IsZero() {
		t = r.Now()
	}
	c := Count{Bytes: max(h.Bytes, 0), Requests: 1}
	if h.Dashboard {
		r.mu.Lock()
		if day := r.dayLocked(t); day != r.dashDay {
			if day < r.dashDay {
				r.mu.Unlock()
				return // a request that began yesterday and ended just now: yesterday's
			}
			r.dashDay, r.dash = day, Count{}
		}
		r.dash = r.dash.Add(c)
		r.mu.Unlock()
		return
	}
	hour := HourOf(t)
	var pkg string
	isPkg := false
	if h.Status >= 200 && h.Status < 300 && !h.Head {
		pkg, isPkg = PackageName(h.Path)
	}
	addr := h.Client.Unmap().WithZone("")

	r.mu.Lock()
	defer r.mu.Unlock()
	day := r.dayLocked(t)
	p := r.pend
	p.hours[hour] = p.hours[hour].Add(c)
	p.days[day] = p.days[day].Add(c)

	ck := clientKey{day: day, addr: addr}
	if _, ok := r.seenClients.admit(day, addr, r.MaxClients, nil); !ok {
		ck = clientKey{day: day, other: true}
	}
	p.clients[ck] = p.clients[ck].Add(c)

	if isPkg {
		// The kept copy, so that maps never hold on to a whole URL path.
		key, ok := r.seenPkgs.admit(day, pkg, r.MaxPackages, strings.Clone)
		if !ok {
			key = Other
		}
		pk := DayKey{Day: day, Key: key}
		p.pkgs[pk] = p.pkgs[pk].Add(c)
	}

	if h.Repo != "" && h.Status >= 200 && h.Status < 300 {
		key, ok := r.seenRepos.admit(day, h.Repo, r.MaxRepos, strings.Clone)
		if !ok {
			key = Other
		}
		rk := DayKey{Day: day, Key: key}
		p.repos[rk] = p.repos[rk].Add(c)
	}

	if r.todayOK && day == r.todayDay {
		r.today = r.today.Add(c)
	}
}

// Today is today's bytes and requests (the date in the zone of Now), including what is not
// yet written. The stored part is read once per day; after that it comes from memory.
func (r *Recorder) Today() (bytes, requests int64) {
	r.once.Do(r.init)
	now := r.Now()
	r.mu.Lock()
	d := r.dayLocked(now)
	if r.todayOK && r.todayDay == d {
		c := r.today
		r.mu.Unlock()
		return c.Bytes, c.Requests
	}
	r.mu.Unlock()

	r.flushMu.RLock()
	defer r.flushMu.RUnlock()
	stored, err := r.Store.TrafficDays(d, d)
	r.mu.Lock()
	defer r.mu.Unlock()
	c := stored[d].Add(r.pend.days[d])
	r.todayDay, r.today, r.todayOK = d, c, err == nil
	if err != nil {
		// Debug only: the dashboard asks every second, and the store's trouble shows in
		// the flush errors anyway. Until it answers, today is what memory holds.
		r.Log.Debug("traffic: read today's total", "err", err)
	}
	return c.Bytes, c.Requests
}

// DashboardToday is today's dashboard pages and API calls (Hit.Dashboard): bytes and
// requests since midnight or since the daemon started, whichever is later. They are not
// mirror traffic and are kept in memory only.
func (r *Recorder) DashboardToday() (bytes, requests int64) {
	r.once.Do(r.init)
	now := r.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dayLocked(now) != r.dashDay {
		return 0, 0
	}
	return r.dash.Bytes, r.dash.Requests
}

// Flush writes what was recorded since the last flush, in one transaction; nothing at all
// when nothing was. On failure the batch stays in memory for the next try.
func (r *Recorder) Flush() error {
	r.once.Do(r.init)
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	p := r.pend
	if p.empty() {
		r.mu.Unlock()
		return nil
	}
	r.pend = newPending()
	r.mu.Unlock()

	if err := r.Store.AddTraffic(p.batch()); err != nil {
		r.mu.Lock()
		p.merge(r.pend) // the older batch absorbs the newer: it is usually the larger
		r.pend = p
		r.mu.Unlock()
		return fmt.Errorf("traffic: save batch: %w", err)
	}
	return nil
}

// Prune drops hourly buckets older than KeepHours and daily ones older than KeepDays.
func (r *Recorder) Prune() error {
	r.once.Do(r.init)
	now := r.Now()
	r.mu.Lock()
	today := r.dayLocked(now)
	r.mu.Unlock()
	if err := r.Store.PruneTraffic(HourOf(now)-KeepHours, today-KeepDays); err != nil {
		return fmt.Errorf("traffic: prune: %w", err)
	}
	return nil
}

// Run flushes every FlushEvery and once more when ctx ends, and prunes at start and then
// daily. Close the store only after Run has returned.
func (r *Recorder) Run(ctx context.Context) {
	r.once.Do(r.init)
	tick := time.NewTicker(r.FlushEvery)
	defer tick.Stop()
	r.maybePrune()
	for {
		select {
		case <-ctx.Done():
			r.flush()
			return
		case <-tick.C:
			r.flush()
			r.maybePrune()
		}
	}
}

func (r *Recorder) flush() {
	err := r.Flush()
	now := r.Now()
	switch {
	case err != nil && (!r.failing || now.Sub(r.lastErrLog) >= errLogEvery):
		r.Log.Error("traffic: statistics not saved, kept in memory", "err", err)
		r.lastErrLog = now
	case err == nil && r.failing:
		r.Log.Info("traffic: statistics saved again")
	}
	r.failing = err != nil
}

func (r *Recorder) maybePrune() {
	now := r.Now()
	if !r.lastPrune.IsZero() && now.Sub(r.lastPrune) < pruneEvery && !now.Before(r.lastPrune) {
		return
	}
	r.lastPrune = now
	if err := r.Prune(); err != nil {
		r.Log.Warn("traffic: prune", "err", err)
	}
}

// clampDays turns "the last days days" into an inclusive range ending today.
func (r *Recorder) clampDays(days int) (from, to Day) {
	days = min(max(days, 1), KeepDays)
	now := r.Now()
	r.mu.Lock()
	to = r.dayLocked(now)
	r.mu.Unlock()
	return to - Day(days) + 1, to
}

// TopClients ranks clients by bytes over the last days days (today included), n rows at
// most (n <= 0: all that topCandidates keeps). On a store error it returns what memory
// holds and the error.
func (r *Recorder) TopClients(days, n int) ([]Top, error) {
	t, err := r.top(Clients, days, n)
	if err != nil {
		err = fmt.Errorf("traffic: top clients: %w", err)
	}
	return t, err
}

// TopPackages ranks packages by bytes over the last days days (today included), n rows at
// most (n <= 0: all that topCandidates keeps). On a store error it returns what memory
// holds and the error.
func (r *Recorder) TopPackages(days, n int) ([]Top, error) {
	t, err := r.top(Packages, days, n)
	if err != nil {
		err = fmt.Errorf("traffic: top packages: %w", err)
	}
	return t, err
}

// TopRepos ranks repositories by bytes over the last days days (today included), n rows
// at most (n <= 0: all): every successful request under $repo/os/ counts, databases and
// signatures included; Pool collects files asked for by their pool/ path. On a store
// error it returns what memory holds and the error.
func (r *Recorder) TopRepos(days, n int) ([]Top, error) {
	t, err := r.top(Repos, days, n)
	if err != nil {
		err = fmt.Errorf("traffic: top repositories: %w", err)
	}
	return t, err
}

// top ranks kind over the last days days, stored and pending together, in memory bounded
// by topCandidates whatever the period holds.
func (r *Recorder) top(kind Kind, days, n int) ([]Top, error) {
	r.once.Do(r.init)
	from, to := r.clampDays(days)
	r.flushMu.RLock()
	defer r.flushMu.RUnlock()
	pend := r.pendingNames(kind, from, to)
	s := newSpaceSaving()
	err := r.Store.WalkTraffic(kind, from, to, s.add)
	for _, p := range pend {
		s.add([]byte(p.Key), Count{Bytes: p.Bytes, Requests: p.Requests})
	}
	if s.evicted && err == nil {
		// The candidates' counts include what they replaced: count them again, exactly.
		for _, e := range s.by {
			e.c = Count{}
		}
		add := func(name []byte, c Count) {
			if e, ok := s.by[string(name)]; ok {
				e.c = e.c.Add(c)
			}
		}
		err = r.Store.WalkTraffic(kind, from, to, add)
		for _, p := range pend {
			add([]byte(p.Key), Count{Bytes: p.Bytes, Requests: p.Requests})
		}
	}
	m := make(map[string]Count, len(s.by))
	for name, e := range s.by {
		m[name] = e.c
	}
	return rank(m, n), err
}

// pendingNames is the unflushed batch's counts of kind from from to to, per name and day.
func (r *Recorder) pendingNames(kind Kind, from, to Day) []Top {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Top
	switch kind {
	case Clients:
		for k, c := range r.pend.clients {
			if k.day >= from && k.day <= to {
				out = append(out, Top{k.String(), c.Bytes, c.Requests})
			}
		}
	case Packages, Repos:
		m := r.pend.pkgs
		if kind == Repos {
			m = r.pend.repos
		}
		for k, c := range m {
			if k.Day >= from && k.Day <= to {
				out = append(out, Top{k.Key, c.Bytes, c.Requests})
			}
		}
	}
	return out
}

// LastUsed gives, for every package downloaded within the last days days (today
// included), the start of the last day it was downloaded on: what "used" mode keeps, most
// recent first. Other (past the day's cap) is not a package and is left out.
func (r *Recorder) LastUsed(days int) (map[string]time.Time, error) {
	r.once.Do(r.init)
	from, to := r.clampDays(days)
	r.flushMu.RLock()
	defer r.flushMu.RUnlock()
	m, err := r.Store.TrafficPackagesLastDay(from, to)
	if err != nil {
		return nil, fmt.Errorf("traffic: packages used: %w", err)
	}
	r.mu.Lock()
	for k := range r.pend.pkgs {
		if k.Day >= from && k.Day <= to && k.Day > m[k.Key] {
			m[k.Key] = k.Day
		}
	}
	r.mu.Unlock()
	out := make(map[string]time.Time, len(m))
	for name, d := range m {
		if name != Other {
			out[name] = d.Start(r.loc)
		}
	}
	return out, nil
}

func rank(m map[string]Count, n int) []Top {
	out := make([]Top, 0, len(m))
	for k, c := range m {
		out = append(out, Top{Key: k, Bytes: c.Bytes, Requests: c.Requests})
	}
	slices.SortFunc(out, func(a, b Top) int {
		return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(b.Requests, a.Requests), cmp.Compare(a.Key, b.Key))
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// BytesPerDay is one bucket per day for the last days days, oldest first, today last;
// days without traffic are there with zeros. On a store error it returns what memory
// holds and the error.
func (r *Recorder) BytesPerDay(days int) ([]Bucket, error) {
	r.once.Do(r.init)
	from, to := r.clampDays(days)
	r.flushMu.RLock()
	defer r.flushMu.RUnlock()
	m, err := r.Store.TrafficDays(from, to)
	if err != nil {
		err = fmt.Errorf("traffic: bytes per day: %w", err)
	}
	out := make([]Bucket, 0, to-from+1)
	r.mu.Lock()
	defer r.mu.Unlock()
	for d := from; d <= to; d++ {
		c := m[d].Add(r.pend.days[d])
		out = append(out, Bucket{Start: d.Start(r.loc), Bytes: c.Bytes, Requests: c.Requests})
	}
	return out, err
}

// Hourly is one bucket per hour for the last hours hours (at most KeepHours), oldest
// first, the current hour last, zeros included. On a store error it returns what memory
// holds and the error.
func (r *Recorder) Hourly(hours int) ([]Bucket, error) {
	r.once.Do(r.init)
	hours = min(max(hours, 1), KeepHours)
	to := HourOf(r.Now())
	from := to - Hour(hours) + 1
	r.flushMu.RLock()
	defer r.flushMu.RUnlock()
	m, err := r.Store.TrafficHours(from, to)
	if err != nil {
		err = fmt.Errorf("traffic: hourly: %w", err)
	}
	out := make([]Bucket, 0, hours)
	r.mu.Lock()
	defer r.mu.Unlock()
	for h := from; h <= to; h++ {
		c := m[h].Add(r.pend.hours[h])
		out = append(out, Bucket{Start: h.Start().In(r.loc), Bytes: c.Bytes, Requests: c.Requests})
	}
	return out, err
}
