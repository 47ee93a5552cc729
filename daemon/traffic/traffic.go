package traffic

import (
	"math"
	"net/netip"
	"time"
)

// Hit is one finished request.
type Hit struct {
	// Time is when the request finished (zero: the Recorder's Now).
	Time   time.Time
	Client netip.Addr
	Path   string // URL path, e.g. /archlinux/extra/os/x86_64/vim-9.1-1-x86_64.pkg.tar.zst
	Status int
	// Bytes is the body bytes really sent: for a resumed, partial or aborted download, what
	// went out, not the file size.
	Bytes int64
	// Duration is how long the request took, optional. Rate spreads Bytes over it, so a
	// long download ending now adds its share to the last seconds rather than all of
	// itself at once.
	Duration time.Duration
	// Dashboard marks a request that is not a mirror download (a dashboard page, an API
	// call, /metrics): it is counted apart, in memory only (DashboardToday), and never in
	// the mirror's statistics.
	Dashboard bool
	// Repo is the repository the file belongs to, from its path under the mirror
	// (RepoOf): "core", "extra", …, Pool for a file asked for under pool/, "" for none
	// (lastupdate, iso/, the root index). Counted per repository for 2xx answers.
	Repo string
	// Head marks a HEAD request: a mirror request, not a download of its package (used
	// mode keeps what was downloaded).
	Head bool
}

// Count is bytes and requests.
type Count struct {
	Bytes    int64 `json:"bytes"`
	Requests int64 `json:"requests"`
}

// Add returns c plus o.
func (c Count) Add(o Count) Count {
	return Count{Bytes: addSat(c.Bytes, o.Bytes), Requests: addSat(c.Requests, o.Requests)}
}

// addSat adds two counts, stopping at the largest int64: a damaged record that decodes to
// nearly 2^63 must not turn a total negative.
func addSat(a, b int64) int64 {
	if s := a + b; s >= a == (b >= 0) {
		return s
	}
	if b > 0 {
		return math.MaxInt64
	}
	return math.MinInt64
}

// Hour is an hour on the absolute timeline: hours since 1970-01-01T00:00Z.
type Hour int64

// HourOf is the hour t falls in.
func HourOf(t time.Time) Hour {
	s := t.Unix()
	h := s / 3600
	if s%3600 < 0 {
		h--
	}
	return Hour(h)
}

// Start is the hour's first instant.
func (h Hour) Start() time.Time { return time.Unix(int64(h)*3600, 0) }

// Day is a calendar date as a number: days since 1970-01-01. Which zone the date was read
// in is up to whoever made it (the Recorder: its clock's).
type Day int32

// DayOf is t's date, in t's location.
func DayOf(t time.Time) Day {
	y, m, d := t.Date()
	s := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix()
	return Day(s / 86400)
}

// Start is midnight at the start of the day in loc.
func (d Day) Start(loc *time.Location) time.Time {
	y, m, dd := time.Unix(int64(d)*86400, 0).UTC().Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, loc)
}

// DayKey is a per-day count's key: a client address or package name on a day.
type DayKey struct {
	Day Day
	Key string
}

// Keys used for clients and packages that are not themselves: parentheses never appear in
// an address or a package name.
const (
	// Other collects the clients or packages past the day's cap (MaxClients, MaxPackages).
	Other = "(other)"
	// Unknown is a client without a valid address.
	Unknown = "(unknown)"
	// Pool is the "repository" of files asked for by their pool/ path: a pool file
	// belongs to whichever repos name it, which the path does not tell.
	Pool = "(pool)"
)

// Batch is the counts to add to the store in one transaction.
type Batch struct {
	Hours    map[Hour]Count
	Days     map[Day]Count
	Clients  map[DayKey]Count // Key: the address (netip.Addr.String), Other or Unknown
	Packages map[DayKey]Count // Key: the package name or Other
	Repos    map[DayKey]Count // Key: the repository (RepoOf), Pool or Other
}

// Store is what traffic needs from persistence (daemon/store implements it). Adds merge
// into what is stored; ranges are inclusive; returned maps are the caller's.
//
// The per-name side is a walk rather than sums or a top n: a period's names can be many
// (see topCandidates), and the Recorder adds its unflushed batch before ranking, or a
// client just below the stored top n that is busy right now would be missing.
type Store interface {
	// AddTraffic adds the counts in one write transaction, all or nothing (a failed batch
	// is kept and offered again). It must not keep b's maps after returning.
	AddTraffic(b Batch) error
	TrafficHours(from, to Hour) (map[Hour]Count, error)
	TrafficDays(from, to Day) (map[Day]Count, error)
	// WalkTraffic calls fn with each per-name count of kind over the days, day by day;
	// name is valid only during the call.
	WalkTraffic(kind Kind, from, to Day, fn func(name []byte, c Count)) error
	// TrafficPackagesLastDay gives, per package, the last day in the range it was
	// downloaded on.
	TrafficPackagesLastDay(from, to Day) (map[string]Day, error)
	// PruneTraffic drops hours before hoursBefore and days (totals, clients, packages, repos)
	// before daysBefore; with nothing to drop it writes nothing.
	PruneTraffic(hoursBefore Hour, daysBefore Day) error
}

// Top is one row of a ranking.
type Top struct {
	Key      string `json:"key"`
	Bytes    int64  `json:"bytes"`
	Requests int64  `json:"requests"`
}

// Bucket is one hour or day of a series.
type Bucket struct {
	Start    time.Time `json:"start"`
	Bytes    int64     `json:"bytes"`
	Requests int64     `json:"requests"`
}
