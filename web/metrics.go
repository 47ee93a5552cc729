package web

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/amwi/amwi/daemon/mirrorsync"
)

// promMetrics is /metrics in Prometheus text format, for people who already run Grafana.
// VictoriaMetrics/metrics keeps the binary small (~0.3 MB on arm64 against ~2.6 MB for
// client_golang); gauges are read from the services when scraped, so nothing is sampled
// twice.
type promMetrics struct {
	set    *metrics.Set
	mu     sync.Mutex
	status map[int]*metrics.Counter
	sent   *metrics.Counter
	// pkgSent counts the body bytes of package files (and .sig) sent, from disk or from
	// a "used" mode fetch alike: less UsedStats.MissServedBytes, it is what the disk served.
	pkgSent *metrics.Counter
}

func newMetrics(o Options, active *Active) *promMetrics {
	m := &promMetrics{set: metrics.NewSet(), status: map[int]*metrics.Counter{}}
	m.sent = m.set.NewCounter("amwi_http_sent_bytes_total")
	m.pkgSent = m.set.NewCounter("amwi_package_sent_bytes_total")
	m.set.NewGauge("amwi_active_downloads", func() float64 { return float64(active.Len()) })
	if o.Conns != nil {
		m.set.NewGauge("amwi_http_connections_open", func() float64 { return float64(o.Conns().Open) })
		m.set.NewGauge("amwi_http_connections_max", func() float64 { return float64(o.Conns().Max) })
		// Counters read from the server: a rate of accepted against requests shows
		// keep-alive at work; refused ones met server.max_connections.
		m.set.NewGauge("amwi_http_connections_accepted_total", func() float64 { return float64(o.Conns().Accepted) })
		m.set.NewGauge("amwi_http_connections_refused_total", func() float64 { return float64(o.Conns().Refused) })
	}
	if o.Sync != nil {
		s := o.Sync
		m.set.NewGauge("amwi_sync_running", func() float64 { return b2f(s.State().Running) })
		m.set.NewGauge(`amwi_sync_last_success_timestamp_seconds`, func() float64 {
			h, _ := s.History(100)
			for _, r := range h {
				if r.OK() {
					return float64(r.End.Unix())
				}
			}
			return 0
		})
		last := func(f func(r runInfo) float64) func() float64 {
			return func() float64 {
				h, _ := s.History(1)
				if len(h) == 0 {
					return 0
				}
				return f(runInfo{h[0].Duration(h[0].End).Seconds(), float64(h[0].Stats.BytesReceived)})
			}
		}
		m.set.NewGauge("amwi_sync_last_duration_seconds", last(func(r runInfo) float64 { return r.seconds }))
		m.set.NewGauge("amwi_sync_last_bytes", last(func(r runInfo) float64 { return r.bytes }))
		finished := func(f func(r *mirrorsync.Run) float64) func() float64 {
			return func() float64 {
				if r := lastFinished(s); r != nil {
					return f(r)
				}
				return 0
			}
		}
		// 1 when the last finished sync left the mirror current and complete.
		m.set.NewGauge("amwi_sync_last_ok", finished(func(r *mirrorsync.Run) float64 { return b2f(r.OK()) }))
		// Files the mirror's databases name that the last sync's check found missing or
		// damaged (0: complete).
		m.set.NewGauge("amwi_mirror_problem_files", finished(func(r *mirrorsync.Run) float64 {
			if r.Check == nil {
				return 0
			}
			return float64(r.Check.Gaps() + r.Check.Leftovers)
		}))
		// The upstream's lastupdate the mirror is complete with (its freshness).
		m.set.NewGauge("amwi_mirror_lastupdate_timestamp_seconds", func() float64 {
			if t := mirrorStamp(o.MirrorRoot, "lastupdate"); !t.IsZero() {
				return float64(t.Unix())
			}
			return 0
		})
		// "used" mode: package files the last sync fetched because clients use them.
		m.set.NewGauge("amwi_sync_last_prefetched_files", finished(func(r *mirrorsync.Run) float64 { return float64(r.Prefetched) }))
		// Files the upstream's databases name that the last sync could not fetch.
		m.set.NewGauge("amwi_sync_last_missing_files", finished(func(r *mirrorsync.Run) float64 { return float64(r.Missing) }))
		// What the last `amwi verify` found.
		m.set.NewGauge("amwi_verify_problem_files", func() float64 {
			if v, err := s.LastVerification(); err == nil && v != nil {
				return float64(v.Report.Gaps() + v.Report.Leftovers)
			}
			return 0
		})
	}
	if o.Used != nil {
		// One reading of the figures serves every gauge of a scrape.
		used := cachedUsed(o.Used, time.Second)
		g := func(name string, f func(u UsedStats) float64) {
			m.set.NewGauge(name, func() float64 { return f(used()) })
		}
		// 1 when mirror.packages = "used" (the rest are then about it; 0 otherwise).
		g("amwi_used_mode", func(u UsedStats) float64 { return b2f(u.Used) })
		g("amwi_used_hits_total", func(u UsedStats) float64 { return float64(u.Hits) })
		g("amwi_used_misses_total", func(u UsedStats) float64 { return float64(u.Misses) })
		g("amwi_used_misses_shared_total", func(u UsedStats) float64 { return float64(u.Shared) })
		g("amwi_used_misses_failed_total", func(u UsedStats) float64 { return float64(u.Failed) })
		g("amwi_used_fetched_bytes_total", func(u UsedStats) float64 { return float64(u.FetchedBytes) })
		g("amwi_used_miss_served_bytes_total", func(u UsedStats) float64 { return float64(u.MissServedBytes) })
		g("amwi_used_prefetched_bytes", func(u UsedStats) float64 { return float64(u.PrefetchedBytes) })
		g("amwi_used_held_bytes", func(u UsedStats) float64 { return float64(u.HeldBytes) })
		g("amwi_used_budget_bytes", func(u UsedStats) float64 { return float64(u.BudgetBytes) })
		g("amwi_used_full_mirror_bytes", func(u UsedStats) float64 { return float64(u.FullBytes) })
	}
	if o.Search != nil {
		for _, repo := range o.Search.Index().Repos {
			m.set.NewGauge(fmt.Sprintf(`amwi_packages{repo=%q}`, repo), func() float64 { return float64(o.Search.Index().RepoLen(repo)) })
		}
	}
	if o.Machine != nil {
		mach := o.Machine
		g := func(name string, f func() (float64, bool)) {
			m.set.NewGauge(name, func() float64 { v, _ := f(); return v })
		}
		g("amwi_cpu_busy_percent", func() (float64, bool) {
			s := mach.Latest()
			if s.CPU == nil {
				return 0, false
			}
			return s.CPU.Total, true
		})
		g("amwi_memory_available_bytes", func() (float64, bool) {
			s := mach.Latest()
			if s.Memory == nil {
				return 0, false
			}
			return float64(s.Memory.AvailableBytes), true
		})
		g("amwi_memory_total_bytes", func() (float64, bool) {
			s := mach.Latest()
			if s.Memory == nil {
				return 0, false
			}
			return float64(s.Memory.TotalBytes), true
		})
		g("amwi_mirror_fs_free_bytes", func() (float64, bool) {
			s := mach.Latest()
			if s.FS == nil {
				return 0, false
			}
			return float64(s.FS.FreeBytes), true
		})
		g("amwi_mirror_disk_busy_percent", func() (float64, bool) {
			s := mach.Latest()
			if s.Disk == nil {
				return 0, false
			}
			return s.Disk.BusyPercent, true
		})
		g("amwi_load1", func() (float64, bool) {
			s := mach.Latest()
			if s.Load == nil {
				return 0, false
			}
			return s.Load.Load1, true
		})
		g("amwi_temperature_celsius", func() (float64, bool) {
			s := mach.Latest()
			if s.TempC == nil {
				return 0, false
			}
			return *s.TempC, true
		})
	}
	return m
}

type runInfo struct{ seconds, bytes float64 }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// observe counts a finished request.
func (m *promMetrics) observe(t Transfer) {
	m.mu.Lock()
	c := m.status[t.Status]
	if c == nil {
		c = m.set.NewCounter(fmt.Sprintf(`amwi_http_requests_total{status="%d"}`, t.Status))
		m.status[t.Status] = c
	}
	m.mu.Unlock()
	c.Inc()
	m.sent.Add(int(t.Bytes))
	if t.Request != nil && strings.HasPrefix(t.Request.URL.Path, MirrorPrefix) && isPackageFile(t.Request.URL.Path) {
		m.pkgSent.Add(int(t.Bytes))
	}
}

// cachedUsed reads f at most once per ttl, for the gauges of one scrape (and many).
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
	m.set.WritePrometheus(w)
	metrics.WriteProcessMetrics(w) // go_* and process_*: memory, goroutines, file descriptors
}
