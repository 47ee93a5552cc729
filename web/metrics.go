package web

import (
	"fmt"
	"net/http"
	"sync"

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
}

func newMetrics(o Options, active *Active) *promMetrics {
	m := &promMetrics{set: metrics.NewSet(), status: map[int]*metrics.Counter{}}
	m.sent = m.set.NewCounter("amwi_http_sent_bytes_total")
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
}

func (m *promMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m.set.WritePrometheus(w)
	metrics.WriteProcessMetrics(w) // go_* and process_*: memory, goroutines, file descriptors
}
