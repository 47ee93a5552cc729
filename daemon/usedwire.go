package daemon

import (
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/amwi/amwi/daemon/mirrorsync"
	"github.com/amwi/amwi/daemon/ondemand"
	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/web"
)

// "used" mode, the daemon's part: the on-demand fetcher answers misses while the running
// configuration says "used" (in "all" a file the disk lacks stays a 404: the sync's check
// reports it), and the Overview and /metrics get their figures from here.

// newFetcher makes the on-demand fetcher, reading the live configuration at every miss.
func (d *Daemon) newFetcher() (*ondemand.Fetcher, error) {
	return ondemand.New(ondemand.Config{
		Root:         d.Config.Mirror.Root,
		Upstreams:    func() []string { return d.live.Current().Sync.HTTPUpstreams() },
		MinFreeBytes: func() uint64 { return uint64(d.live.Current().Sync.MinFreeGiB * (1 << 30)) },
		Log:          d.Log,
		Now:          d.Now,
	})
}

// usedMisses is web.Misses for the daemon: misses are fetched in "used" mode only, with
// the fetcher's index of the databases brought up to date first when they changed.
type usedMisses struct {
	d *Daemon

	mu     sync.Mutex
	loaded *search.Index // the index whose databases the fetcher last read
}

func (u *usedMisses) ServeMiss(w http.ResponseWriter, r *http.Request, name string) bool {
	if !u.d.live.Current().Mirror.Used() {
		return false
	}
	u.reload()
	return u.d.fetcher.ServeMiss(w, r, name)
}

// reload re-reads the databases into the fetcher when search's index moved on (a sync
// published, the repos changed): both follow the same files, and search notices first.
func (u *usedMisses) reload() {
	ix := u.d.search.Index()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.loaded == ix {
		return
	}
	if err := u.d.fetcher.Reload(searchRepos(u.d.live.Current())); err != nil {
		u.d.Log.Warn("used mode: some databases could not be read; their packages are not fetched on demand", "err", err)
	}
	u.loaded = ix
}

// usedStats gathers the figures of web.UsedStats (Hits is filled by web).
type usedStats struct {
	d *Daemon

	mu       sync.Mutex
	at       time.Time
	held     int64
	full     int64
	fullFrom *search.Index
}

// heldEvery bounds how often the pool is walked for its size (the Overview polls).
const heldEvery = 30 * time.Second

func (s *usedStats) get() web.UsedStats {
	c := s.d.live.Current()
	if !c.Mirror.Used() {
		return web.UsedStats{}
	}
	st := s.d.fetcher.Stats()
	u := web.UsedStats{
		Used: true, KeepDays: c.Mirror.KeepDays,
		Misses: st.Misses, Shared: st.Shared, Failed: st.Failed,
		FetchedBytes: st.FetchedBytes, MissServedBytes: st.ServedBytes,
		BudgetBytes: budgetBytes(c.Mirror.MaxGiB),
	}
	if h, err := s.d.syncer.History(20); err == nil {
		// The last run that fetched (an up-to-date one fetches nothing).
		for _, r := range h {
			if r.Result == mirrorsync.ResultSuccess || r.Result == mirrorsync.ResultIncomplete {
				u.PrefetchedFiles, u.PrefetchedBytes = r.Prefetched, r.PrefetchedBytes
				break
			}
		}
	}
	now := time.Now()
	ix := s.d.search.Index()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.at) > heldEvery {
		s.held, s.at = poolBytes(c.Mirror.Root), now
	}
	if s.fullFrom != ix {
		var n int64
		ix.Each(func(p *search.Package) { n += p.CSize })
		s.full, s.fullFrom = n, ix
	}
	u.HeldBytes, u.FullBytes = s.held, s.full
	return u
}

// poolBytes is what the files in the mirror's pool take (packages and signatures).
func poolBytes(root string) int64 {
	var n int64
	walkPool(filepath.Join(root, "pool"), func(_ string, size int64) { n += size })
	return n
}
