package web

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/amwi/amwi/daemon/mirrorsync"
)

// promMetrics is /metrics in Prometheus text format, for people who already run Grafana.
//
// Every family is declared once, in newMetrics, with its HELP text and TYPE, and is read
// from the services when scraped, so nothing is sampled twice. A family whose source is
// unknown (no temperature sensor, no sync yet, a repo no longer selected) writes no series
// at all rather than an invented 0: absent is what Prometheus' absent() and alerts expect.
//
// VictoriaMetrics/metrics keeps the binary small (~0.3 MB on arm64 against ~2.6 MB for
// client_golang) and writes the go_* and process_* families; its metadata support writes
// empty HELP lines, so those families get theirs from processFamilies, and ours are
// written by writeFamily.
type promMetrics struct {
	families []family

	mu sync.Mutex
	// Requests by status: the mirror's (under MirrorPrefix) and the rest (dashboard, API,
	// health, metrics), apart, so dashboards can tell LAN downloads from page views.
	mirrorStatus, httpStatus map[int]*counter
	mirrorSent, httpSent     counter
	// pkgSent counts the body bytes of package files (and .sig) sent in 2xx answers (not
	// a 404's page), from disk or from a "used" mode fetch alike: less
	// UsedStats.MissServedBytes, it is what the disk served.
	pkgSent counter

	runs *runTally // nil without a sync engine
}

// counter is a monotonic count updated from request goroutines.
type counter struct{ v atomic.Uint64 }

func (c *counter) Add(n int64) {
	if n > 0 {
		c.v.Add(uint64(n))
	}
}

func (c *counter) Get() uint64 { return c.v.Load() }

// family is one metric family: its name, HELP text, TYPE and what reads its series.
type family struct {
	name, help, typ string
	collect         func(emit emitFunc)
}

// emitFunc writes one series of the family; labels are name, value pairs.
type emitFunc func(v float64, labels ...string)

const (
	counterType = "counter"
	gaugeType   = "gauge"
)

func newMetrics(o Options, active *Active) *promMetrics {
	m := &promMetrics{mirrorStatus: map[int]*counter{}, httpStatus: map[int]*counter{}}
	add := func(name, typ, help string, collect func(emit emitFunc)) {
		m.families = append(m.families, family{name: name, help: help, typ: typ, collect: collect})
	}
	// one is a family with a single unlabelled series; ok false leaves it out.
	one := func(name, typ, help string, read func() (float64, bool)) {
		add(name, typ, help, func(emit emitFunc) {
			if v, ok := read(); ok {
				emit(v)
			}
		})
	}
	always := func(f func() float64) func() (float64, bool) { return func() (float64, bool) { return f(), true } }

	commit := o.Commit
	if commit == "" {
		commit = "unknown"
	}
	version := o.Version
	if version == "" {
		version = "unknown"
	}
	add("amwi_build_info", gaugeType, "Always 1; the labels say which build of amwi is running.", func(emit emitFunc) {
		emit(1, "version", version, "commit", commit, "goversion", runtime.Version())
	})

	// The mirror's traffic, and everything else's.
	byStatus := func(statuses map[int]*counter) func(emit emitFunc) {
		return func(emit emitFunc) {
			m.mu.Lock()
			codes := make([]int, 0, len(statuses))
			for code := range statuses {
				codes = append(codes, code)
			}
			slices.Sort(codes)
			counts := make([]uint64, len(codes))
			for i, code := range codes {
				counts[i] = statuses[code].Get()
			}
			m.mu.Unlock()
			for i, code := range codes {
				emit(float64(counts[i]), "status", strconv.Itoa(code))
			}
		}
	}
	add("amwi_mirror_requests_total", counterType, "Finished requests for mirror files (under "+MirrorPrefix+"), by HTTP status.", byStatus(m.mirrorStatus))
	one("amwi_mirror_sent_bytes_total", counterType, "Body bytes sent for requests under "+MirrorPrefix+" (aborted downloads count what was sent).", always(func() float64 { return float64(m.mirrorSent.Get()) }))
	one("amwi_package_sent_bytes_total", counterType, "Body bytes of package files and their signatures sent, from disk or from a used-mode fetch.", always(func() float64 { return float64(m.pkgSent.Get()) }))
	add("amwi_http_requests_total", counterType, "Finished requests other than mirror files (dashboard, API, /healthz, /metrics), by HTTP status.", byStatus(m.httpStatus))
	one("amwi_http_sent_bytes_total", counterType, "Body bytes sent for requests other than mirror files.", always(func() float64 { return float64(m.httpSent.Get()) }))
	one("amwi_active_downloads", gaugeType, "Requests being answered right now.", always(func() float64 { return float64(active.Len()) }))
	if o.Conns != nil {
		one("amwi_http_connections_open", gaugeType, "Client connections open now.", always(func() float64 { return float64(o.Conns().Open) }))
		one("amwi_http_connections_max", gaugeType, "The most client connections served at once (server.max_connections).", always(func() float64 { return float64(o.Conns().Max) }))
		// A rate of accepted against requests shows keep-alive at work.
		one("amwi_http_connections_accepted_total", counterType, "Client connections accepted.", always(func() float64 { return float64(o.Conns().Accepted) }))
		one("amwi_http_connections_refused_total", counterType, "Client connections refused because server.max_connections were open.", always(func() float64 { return float64(o.Conns().Refused) }))
	}

	// The mirror's state.
	stamp := func(name string) func() (float64, bool) {
		return func() (float64, bool) {
			t := mirrorStamp(o.MirrorRoot, name)
			return float64(t.Unix()), !t.IsZero()
		}
	}
	one("amwi_mirror_lastupdate_timestamp_seconds", gaugeType, "The mirror's lastupdate file: when the repository databases it is complete with last changed upstream.", stamp("lastupdate"))
	one("amwi_mirror_lastsync_timestamp_seconds", gaugeType, "The mirror's lastsync file: the upstream's lastsync at the last sync that found the mirror current.", stamp("lastsync"))
	if o.Machine != nil {
		fs := func(f func(size, free uint64) uint64) func() (float64, bool) {
			return func() (float64, bool) {
				s := o.Machine.Latest()
				if s.FS == nil {
					return 0, false
				}
				return float64(f(s.FS.TotalBytes, s.FS.FreeBytes)), true
			}
		}
		one("amwi_mirror_fs_size_bytes", gaugeType, "Size of the filesystem holding the mirror.", fs(func(size, _ uint64) uint64 { return size }))
		one("amwi_mirror_fs_free_bytes", gaugeType, "Bytes the daemon may still write on the mirror's filesystem (root's reserve excluded).", fs(func(_, free uint64) uint64 { return free }))
	}
	if o.Settings != nil {
		one("amwi_sync_min_free_bytes", gaugeType, "sync.min_free_gib in bytes: a sync refuses to start, or stops, with less free space on the mirror's filesystem.", func() (float64, bool) {
			c := o.Settings.Current()
			if c == nil {
				return 0, false
			}
			return math.Round(c.Sync.MinFreeGiB * (1 << 30)), true
		})
	}

	if s := o.Sync; s != nil {
		m.runs = newRunTally(s)
		runs := m.runs
		add("amwi_sync_runs_total", counterType, "Finished syncs by result (success, up to date, incomplete, failed, cancelled); counted from the run history when amwi starts.", func(emit emitFunc) {
			for _, rc := range runs.counts() {
				emit(float64(rc.n), "result", rc.result)
			}
		})
		one("amwi_sync_running", gaugeType, "1 while a sync runs.", always(func() float64 { return b2f(s.State().Running) }))
		one("amwi_sync_last_success_timestamp_seconds", gaugeType, "When the last sync that left the mirror current and complete ended (success or up to date).", func() (float64, bool) {
			t := runs.lastSuccess()
			return float64(t.Unix()), !t.IsZero()
		})
		one("amwi_mirror_upstream_lastsync_timestamp_seconds", gaugeType, "The upstream's lastsync file as the last sync's check of the upstream saw it (absent when no check has read one).", func() (float64, bool) {
			v := runs.upstream().lastSync
			return float64(v), v > 0
		})
		one("amwi_mirror_upstream_lastupdate_timestamp_seconds", gaugeType, "The upstream's lastupdate file as the last sync's check of the upstream saw it: newer than amwi_mirror_lastupdate_timestamp_seconds means the mirror is behind.", func() (float64, bool) {
			v := runs.upstream().lastUpdate
			return float64(v), v > 0
		})
		finished := func(f func(r *mirrorsync.Run) (float64, bool)) func() (float64, bool) {
			return func() (float64, bool) {
				if r := lastFinished(s); r != nil {
					return f(r)
				}
				return 0, false
			}
		}
		one("amwi_sync_last_duration_seconds", gaugeType, "How long the last finished sync took.", finished(func(r *mirrorsync.Run) (float64, bool) { return r.Duration(r.End).Seconds(), true }))
		one("amwi_sync_last_bytes", gaugeType, "Bytes the last finished sync received from the upstream.", finished(func(r *mirrorsync.Run) (float64, bool) { return float64(r.Stats.BytesReceived), true }))
		one("amwi_sync_last_ok", gaugeType, "1 when the last finished sync left the mirror current and complete, else 0.", finished(func(r *mirrorsync.Run) (float64, bool) { return b2f(r.OK()), true }))
		one("amwi_mirror_problem_files", gaugeType, "Files the mirror's own databases name that the check at the end of the last sync found missing, of the wrong size or dangling, plus staging leftovers; 0 is a consistent mirror.", finished(func(r *mirrorsync.Run) (float64, bool) {
			if r.Check == nil {
				return 0, false
			}
			return float64(r.Check.Gaps() + r.Check.Leftovers), true
		}))
		one("amwi_sync_last_prefetched_files", gaugeType, "Used mode: package files the last finished sync fetched because clients use them.", finished(func(r *mirrorsync.Run) (float64, bool) { return float64(r.Prefetched), true }))
		one("amwi_sync_last_missing_files", gaugeType, "Files the upstream's databases name that the last finished sync could not fetch.", finished(func(r *mirrorsync.Run) (float64, bool) { return float64(r.Missing), true }))
		verification := func(f func(v *mirrorsync.Verification) float64) func() (float64, bool) {
			return func() (float64, bool) {
				v, err := s.LastVerification()
				if err != nil || v == nil {
					return 0, false
				}
				return f(v), true
			}
		}
		one("amwi_verify_problem_files", gaugeType, "Files the last `amwi verify` found missing, of the wrong size or checksum, or dangling, plus staging leftovers; 0 is a consistent mirror.", verification(func(v *mirrorsync.Verification) float64 { return float64(v.Report.Gaps() + v.Report.Leftovers) }))
		one("amwi_verify_last_timestamp_seconds", gaugeType, "When the last `amwi verify` ended.", verification(func(v *mirrorsync.Verification) float64 { return float64(v.End.Unix()) }))
	}

	if o.Used != nil {
		// One reading of the figures serves every family of a scrape.
		used := cachedUsed(o.Used, time.Second)
		g := func(name, typ, help string, f func(u UsedStats) float64) {
			one(name, typ, help, always(func() float64 { return f(used()) }))
		}
		g("amwi_used_mode", gaugeType, `1 when mirror.packages = "used" (the other amwi_used_* families are then about it), else 0.`, func(u UsedStats) float64 { return b2f(u.Used) })
		g("amwi_used_hits_total", counterType, "Used mode: package requests answered from disk.", func(u UsedStats) float64 { return float64(u.Hits) })
		g("amwi_used_misses_total", counterType, "Used mode: package requests fetched from the upstream on request.", func(u UsedStats) float64 { return float64(u.Misses) })
		g("amwi_used_misses_shared_total", counterType, "Used mode: misses that joined a fetch another client had started.", func(u UsedStats) float64 { return float64(u.Shared) })
		g("amwi_used_misses_failed_total", counterType, "Used mode: misses whose fetch failed.", func(u UsedStats) float64 { return float64(u.Failed) })
		g("amwi_used_fetched_bytes_total", counterType, "Used mode: bytes fetched from the upstream on request.", func(u UsedStats) float64 { return float64(u.FetchedBytes) })
		g("amwi_used_miss_served_bytes_total", counterType, "Used mode: bytes sent to clients from on-request fetches.", func(u UsedStats) float64 { return float64(u.MissServedBytes) })
		g("amwi_used_prefetched_bytes", gaugeType, "Used mode: bytes the last sync prefetched because clients use those packages.", func(u UsedStats) float64 { return float64(u.PrefetchedBytes) })
		g("amwi_used_held_bytes", gaugeType, "Used mode: bytes the package files held on disk take.", func(u UsedStats) float64 { return float64(u.HeldBytes) })
		g("amwi_used_budget_bytes", gaugeType, "Used mode: mirror.max_gib in bytes (0: no budget).", func(u UsedStats) float64 { return float64(u.BudgetBytes) })
		g("amwi_used_full_mirror_bytes", gaugeType, "Used mode: what a full mirror of the selected repos would take.", func(u UsedStats) float64 { return float64(u.FullBytes) })
	}

	if o.Search != nil {
		// Read per scrape: a repo dropped from mirror.repos leaves the index, and its series
		// goes with it.
		add("amwi_packages", gaugeType, "Packages in each selected repository's database (0 until it is synced).", func(emit emitFunc) {
			ix := o.Search.Index()
			for _, repo := range ix.Repos {
				emit(float64(ix.RepoLen(repo)), "repo", repo)
			}
		})
	}

	if mach := o.Machine; mach != nil {
		one("amwi_cpu_busy_percent", gaugeType, "Share of CPU time busy (all but idle and iowait) over the last sample, 0-100, all cores together.", func() (float64, bool) {
			s := mach.Latest()
			if s.CPU == nil {
				return 0, false
			}
			return s.CPU.Total, true
		})
		one("amwi_memory_available_bytes", gaugeType, "Memory available for new work without swapping (MemAvailable).", func() (float64, bool) {
			s := mach.Latest()
			if s.Memory == nil {
				return 0, false
			}
			return float64(s.Memory.AvailableBytes), true
		})
		one("amwi_memory_total_bytes", gaugeType, "Total usable memory (MemTotal).", func() (float64, bool) {
			s := mach.Latest()
			if s.Memory == nil {
				return 0, false
			}
			return float64(s.Memory.TotalBytes), true
		})
		one("amwi_mirror_disk_busy_percent", gaugeType, "Share of time the mirror's disk was busy with I/O over the last sample, 0-100.", func() (float64, bool) {
			s := mach.Latest()
			if s.Disk == nil {
				return 0, false
			}
			return s.Disk.BusyPercent, true
		})
		one("amwi_load1", gaugeType, "One-minute load average.", func() (float64, bool) {
			s := mach.Latest()
			if s.Load == nil {
				return 0, false
			}
			return s.Load.Load1, true
		})
		one("amwi_temperature_celsius", gaugeType, "Temperature of the hottest thermal zone; absent when the machine has no sensor.", func() (float64, bool) {
			s := mach.Latest()
			if s.TempC == nil {
				return 0, false
			}
			return *s.TempC, true
		})
	}
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// observe counts a finished request: under MirrorPrefix as the mirror's traffic, anything
// else (dashboard pages, the API, /healthz, /metrics itself) apart.
func (m *promMetrics) observe(t Transfer) {
	mirror := t.Request != nil && strings.HasPrefix(t.Request.URL.Path, MirrorPrefix)
	statuses, sent := m.httpStatus, &m.httpSent
	if mirror {
		statuses, sent = m.mirrorStatus, &m.mirrorSent
	}
	m.mu.Lock()
	c := statuses[t.Status]
	if c == nil {
		// HTTP statuses are three digits: at most 900 series per map.
		c = &counter{}
		statuses[t.Status] = c
	}
	m.mu.Unlock()
	c.Add(1)
	sent.Add(t.Bytes)
	if mirror && t.Status/100 == 2 && isPackageFile(t.Request.URL.Path) {
		m.pkgSent.Add(t.Bytes)
	}
}

// cachedUsed reads f at most once per ttl, for the families of one scrape (and many).
func cachedUsed(f func() UsedStats, ttl time.Duration) func() UsedStats {
	var mu sync.Mutex
	var at time.Time
	var last UsedStats
	return func() UsedStats {
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); now.Sub(at) >= ttl {
			last, at = f(), now
		}
		return last
	}
}

func (m *promMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriter(w)
	m.write(bw)
	_ = bw.Flush()
}

// write writes every family: ours, then the Go runtime's and the process's.
func (m *promMetrics) write(w io.Writer) {
	if m.runs != nil {
		m.runs.update()
	}
	for _, f := range m.families {
		writeFamily(w, f)
	}
	var buf bytes.Buffer
	metrics.WriteProcessMetrics(&buf)
	writeProcessFamilies(w, buf.Bytes())
}

// writeFamily writes a family's HELP, TYPE and series; nothing when it has no series.
func writeFamily(w io.Writer, f family) {
	var series []byte
	f.collect(func(v float64, labels ...string) {
		series = append(series, f.name...)
		if len(labels) > 0 {
			series = append(series, '{')
			for i := 0; i+1 < len(labels); i += 2 {
				if i > 0 {
					series = append(series, ',')
				}
				series = append(series, labels[i]...)
				series = append(series, `="`...)
				series = append(series, escapeLabel(labels[i+1])...)
				series = append(series, '"')
			}
			series = append(series, '}')
		}
		series = append(series, ' ')
		series = append(series, formatValue(v)...)
		series = append(series, '\n')
	})
	if len(series) == 0 {
		return
	}
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.typ)
	_, _ = w.Write(series)
}

// formatValue writes integers as integers (byte counts read better than 8.589934592e+10).
func formatValue(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }

// runTally follows the sync history for the families that must not go back: the runs
// counted by result (seeded from the whole kept history when amwi starts, then each run
// once as it finishes) and what the last checks of the upstream saw. The history holds
// the last 500 runs at most, so counting it at every scrape would make the counter fall.
type runTally struct {
	s  SyncService
	mu sync.Mutex
	// upTo is the highest run ID counted; every run up to it has finished.
	upTo    uint64
	byRes   map[string]uint64
	success time.Time
	up      upstreamSeen
}

type upstreamSeen struct{ lastSync, lastUpdate int64 }

type resultCount struct {
	result string
	n      uint64
}

// runHistoryKept is how many runs the store keeps (mirrorsync's historyKeep).
const runHistoryKept = 500

func newRunTally(s SyncService) *runTally {
	// Every result a run can end with is there from the start, at 0 until one ends so:
	// increase() then sees the first failure too.
	t := &runTally{s: s, byRes: map[string]uint64{}}
	for _, r := range []string{mirrorsync.ResultSuccess, mirrorsync.ResultUpToDate, mirrorsync.ResultIncomplete, mirrorsync.ResultFailed, mirrorsync.ResultCancelled} {
		t.byRes[r] = 0
	}
	t.updateFrom(runHistoryKept)
	return t
}

// update counts the runs that finished since the last update: a look at the newest few,
// and at the whole history when more than those are new.
func (t *runTally) update() {
	const few = 8
	if !t.updateFrom(few) {
		t.updateFrom(runHistoryKept)
	}
}

// updateFrom counts the finished runs among the newest n, oldest first, up to the first
// one still running; false when the n runs may not reach back to what was counted.
func (t *runTally) updateFrom(n int) bool {
	h, err := t.s.History(n)
	if err != nil {
		return true // the next scrape tries again
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(h) == n && h[len(h)-1].ID > t.upTo+1 && n < runHistoryKept {
		return false
	}
	for i := len(h) - 1; i >= 0; i-- {
		r := h[i]
		if r.ID <= t.upTo {
			continue
		}
		if r.Result == mirrorsync.ResultRunning {
			break
		}
		t.byRes[r.Result]++
		t.upTo = r.ID
		if r.OK() && r.End.After(t.success) {
			t.success = r.End
		}
		if r.LastSync > 0 || r.LastUpdate > 0 {
			t.up = upstreamSeen{lastSync: r.LastSync, lastUpdate: r.LastUpdate}
		}
	}
	return true
}

func (t *runTally) counts() []resultCount {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]resultCount, 0, len(t.byRes))
	for r, n := range t.byRes {
		out = append(out, resultCount{r, n})
	}
	slices.SortFunc(out, func(a, b resultCount) int { return strings.Compare(a.result, b.result) })
	return out
}

func (t *runTally) lastSuccess() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.success
}

func (t *runTally) upstream() upstreamSeen {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.up
}

// processFamily describes a go_* or process_* family VictoriaMetrics/metrics writes.
type processFamily struct{ typ, help string }

// processFamilies are the go_* and process_* families written, with their HELP and TYPE.
// The library's others are left out: go_sched_latencies_seconds and go_gc_pauses_seconds
// (buckets without _sum, _count or +Inf: not Prometheus histograms), go_cgo_calls_count
// and go_gc_forced_count (counters without _total; amwi has no cgo anyway), go_info_ext
// (the build machine's GOROOT; amwi_build_info says what matters), go_cpu_count (a gauge
// with a suffix reserved for summaries and histograms; go_gomaxprocs says as much) and anything a newer
// version of the library adds, until it is described here.
var processFamilies = map[string]processFamily{
	"go_mutex_wait_seconds_total":                   {counterType, "Seconds goroutines spent blocked on a sync.Mutex or sync.RWMutex."},
	"go_gc_mark_assist_cpu_seconds_total":           {counterType, "CPU seconds goroutines spent helping the garbage collector mark."},
	"go_gc_cpu_seconds_total":                       {counterType, "CPU seconds spent in the garbage collector."},
	"go_scavenge_cpu_seconds_total":                 {counterType, "CPU seconds spent returning unused memory to the operating system."},
	"go_memlimit_bytes":                             {gaugeType, "The Go runtime's soft memory limit (GOMEMLIMIT)."},
	"go_memstats_alloc_bytes":                       {gaugeType, "Bytes of allocated heap objects."},
	"go_memstats_alloc_bytes_total":                 {counterType, "Bytes allocated for heap objects, freed ones included."},
	"go_memstats_buck_hash_sys_bytes":               {gaugeType, "Bytes of memory in profiling bucket hash tables."},
	"go_memstats_frees_total":                       {counterType, "Heap objects freed."},
	"go_memstats_gc_cpu_fraction":                   {gaugeType, "Fraction of the CPU time available since start used by the garbage collector."},
	"go_memstats_gc_sys_bytes":                      {gaugeType, "Bytes of memory in garbage collection metadata."},
	"go_memstats_heap_alloc_bytes":                  {gaugeType, "Bytes of allocated heap objects."},
	"go_memstats_heap_idle_bytes":                   {gaugeType, "Bytes in idle (unused) heap spans."},
	"go_memstats_heap_inuse_bytes":                  {gaugeType, "Bytes in in-use heap spans."},
	"go_memstats_heap_objects":                      {gaugeType, "Allocated heap objects."},
	"go_memstats_heap_released_bytes":               {gaugeType, "Bytes of heap memory returned to the operating system."},
	"go_memstats_heap_sys_bytes":                    {gaugeType, "Bytes of heap memory obtained from the operating system."},
	"go_memstats_last_gc_time_seconds":              {gaugeType, "When the last garbage collection finished, in seconds since the epoch (0: none yet)."},
	"go_memstats_lookups_total":                     {counterType, "Pointer lookups done by the runtime."},
	"go_memstats_mallocs_total":                     {counterType, "Heap objects allocated."},
	"go_memstats_mcache_inuse_bytes":                {gaugeType, "Bytes of allocated mcache structures."},
	"go_memstats_mcache_sys_bytes":                  {gaugeType, "Bytes of memory obtained from the operating system for mcache structures."},
	"go_memstats_mspan_inuse_bytes":                 {gaugeType, "Bytes of allocated mspan structures."},
	"go_memstats_mspan_sys_bytes":                   {gaugeType, "Bytes of memory obtained from the operating system for mspan structures."},
	"go_memstats_next_gc_bytes":                     {gaugeType, "Heap size at which the next garbage collection starts."},
	"go_memstats_other_sys_bytes":                   {gaugeType, "Bytes of memory in other runtime allocations."},
	"go_memstats_stack_inuse_bytes":                 {gaugeType, "Bytes in goroutine stack spans."},
	"go_memstats_stack_sys_bytes":                   {gaugeType, "Bytes of stack memory obtained from the operating system."},
	"go_memstats_sys_bytes":                         {gaugeType, "Bytes of memory obtained from the operating system by the Go runtime."},
	"go_gc_duration_seconds":                        {"summary", "Pause durations of the last garbage collections (up to 256)."},
	"go_gomaxprocs":                                 {gaugeType, "GOMAXPROCS: how many threads may run Go code at once."},
	"go_goroutines":                                 {gaugeType, "Goroutines that exist now."},
	"go_threads":                                    {gaugeType, "Operating system threads created."},
	"go_info":                                       {gaugeType, "Always 1; the label says which Go version built amwi."},
	"process_cpu_seconds_system_total":              {counterType, "CPU seconds the process spent in the kernel."},
	"process_cpu_seconds_total":                     {counterType, "CPU seconds the process spent, user and kernel."},
	"process_cpu_seconds_user_total":                {counterType, "CPU seconds the process spent in user space."},
	"process_major_pagefaults_total":                {counterType, "Page faults that needed a read from disk."},
	"process_minor_pagefaults_total":                {counterType, "Page faults served without a read from disk."},
	"process_num_threads":                           {gaugeType, "Operating system threads of the process."},
	"process_resident_memory_bytes":                 {gaugeType, "Resident memory (RSS)."},
	"process_start_time_seconds":                    {gaugeType, "When the process started, in seconds since the epoch."},
	"process_virtual_memory_bytes":                  {gaugeType, "Virtual memory size."},
	"process_virtual_memory_peak_bytes":             {gaugeType, "Peak virtual memory size (VmPeak)."},
	"process_resident_memory_peak_bytes":            {gaugeType, "Peak resident memory (VmHWM)."},
	"process_resident_memory_anon_bytes":            {gaugeType, "Resident anonymous memory (RssAnon)."},
	"process_resident_memory_file_bytes":            {gaugeType, "Resident file-backed memory (RssFile)."},
	"process_resident_memory_shared_bytes":          {gaugeType, "Resident shared memory (RssShmem)."},
	"process_io_read_bytes_total":                   {counterType, "Bytes the process read through system calls, page cache included (rchar)."},
	"process_io_written_bytes_total":                {counterType, "Bytes the process wrote through system calls, page cache included (wchar)."},
	"process_io_read_syscalls_total":                {counterType, "Read system calls (syscr)."},
	"process_io_write_syscalls_total":               {counterType, "Write system calls (syscw)."},
	"process_io_storage_read_bytes_total":           {counterType, "Bytes the process caused to be read from storage (read_bytes)."},
	"process_io_storage_written_bytes_total":        {counterType, "Bytes the process caused to be written to storage (write_bytes)."},
	"process_pressure_cpu_waiting_seconds_total":    {counterType, "Seconds some of the process's cgroup's tasks waited for a CPU since amwi started (PSI cpu some)."},
	"process_pressure_cpu_stalled_seconds_total":    {counterType, "Seconds all of the process's cgroup's tasks waited for a CPU since amwi started (PSI cpu full)."},
	"process_pressure_io_waiting_seconds_total":     {counterType, "Seconds some of the process's cgroup's tasks waited for I/O since amwi started (PSI io some)."},
	"process_pressure_io_stalled_seconds_total":     {counterType, "Seconds all of the process's cgroup's tasks waited for I/O since amwi started (PSI io full)."},
	"process_pressure_memory_waiting_seconds_total": {counterType, "Seconds some of the process's cgroup's tasks waited for memory since amwi started (PSI memory some)."},
	"process_pressure_memory_stalled_seconds_total": {counterType, "Seconds all of the process's cgroup's tasks waited for memory since amwi started (PSI memory full)."},
}

// writeProcessFamilies writes the library's go_* and process_* series that processFamilies
// describes, each family once with its HELP and TYPE, and drops the rest.
func writeProcessFamilies(w io.Writer, text []byte) {
	var order []string
	series := map[string][]byte{}
	for line := range bytes.Lines(text) {
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		end := bytes.IndexAny(line, "{ ")
		if end <= 0 {
			continue
		}
		fam := string(line[:end])
		if _, ok := processFamilies[fam]; !ok {
			// A summary's _sum and _count belong to its family.
			base, found := strings.CutSuffix(fam, "_sum")
			if !found {
				base, found = strings.CutSuffix(fam, "_count")
			}
			if pf, ok := processFamilies[base]; !found || !ok || pf.typ != "summary" {
				continue
			}
			fam = base
		}
		if _, seen := series[fam]; !seen {
			order = append(order, fam)
		}
		series[fam] = append(series[fam], line...)
	}
	for _, fam := range order {
		pf := processFamilies[fam]
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", fam, escapeHelp(pf.help), fam, pf.typ)
		_, _ = w.Write(series[fam])
	}
}
