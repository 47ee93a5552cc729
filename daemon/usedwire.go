package daemon

import (
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amwi/amwi/daemon/mirrorsync"
	"github.com/amwi/amwi/daemon/ondemand"
	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/daemon/traffic"
	"github.com/amwi/amwi/web"
)

// "used" mode, the daemon's part: the on-demand fetcher answers misses, and the Overview
// and /metrics get their figures from here. Misses are fetched in "used" mode, and in
// "all" mode too while sync.http_upstream is set: a full mirror just switched from "used"
// lacks most packages until its next sync, and a client is better served than told 404
// (the sync's check still reports what a full mirror lacks).

// newFetcher makes the on-demand fetcher, reading the live configuration at every miss.
func (d *Daemon) newFetcher() (*ondemand.Fetcher, error) {
	return ondemand.New(ondemand.Config{
		Root:         d.Config.Mirror.Root,
		Upstreams:    func() []string { return d.live.Current().Sync.HTTPUpstreams() },
		MinFreeBytes: func() uint64 { return uint64(d.live.Current().Sync.MinFreeGiB * (1 << 30)) },
		Log:          d.Log,
		Now:          d.Now,
		OnStored:     func(name string, _ int64) { d.evict.kick(path.Base(name)) },
	})
}

// evicter keeps "used" mode's package files within mirror.max_gib between syncs: after a
// miss was stored it drops the least recently downloaded packages (with their .sig) until
// the pool fits again. (A sync applies the budget to what it holds, selectHeld in
// mirrorsync; this is the same rule for what misses add in between.)
type evicter struct {
	d       *Daemon
	mu      sync.Mutex // one pass at a time
	pending atomic.Bool
	running sync.WaitGroup // Close waits for a pass
}

// kick runs a pass in the background; kicks during a pass make one more pass after it.
// just is the file just stored: it is never the one to go (the client that asked for it
// may still be reading it, and it is the most recently used anyway).
func (e *evicter) kick(just string) {
	c := e.d.live.Current()
	if !c.Mirror.Used() || budgetBytes(c.Mirror.MaxGiB) == 0 || !e.pending.CompareAndSwap(false, true) {
		return
	}
	e.running.Add(1)
	go func() {
		defer e.running.Done()
		e.mu.Lock()
		defer e.mu.Unlock()
		e.pending.Store(false)
		e.pass(just)
	}()
}

func (e *evicter) pass(just string) {
	c := e.d.live.Current()
	budget := budgetBytes(c.Mirror.MaxGiB)
	last, err := e.d.traffic.LastUsed(c.Mirror.KeepDays)
	if err != nil {
		e.d.Log.Warn("used mode: cannot read which packages are used; the budget is applied at the next sync", "err", err)
		return
	}
	type file struct {
		dir, name, stem string // stem: the package file's name (a .sig goes with it)
		size            int64
		last            time.Time // the day of the package's last download
		stored          time.Time // the file's mtime: within a day, the later fetch stays
	}
	var files []file
	var total int64
	walkPool(filepath.Join(c.Mirror.Root, "pool"), func(dir string, fi fs.FileInfo) {
		total += fi.Size()
		stem := strings.TrimSuffix(fi.Name(), ".sig")
		if pkg, ok := traffic.PackageName(stem); ok && stem != just {
			files = append(files, file{dir: dir, name: fi.Name(), stem: stem, size: fi.Size(), last: last[pkg], stored: fi.ModTime()})
		}
	})
	if total <= budget {
		return
	}
	// A package and its .sig sort as one: by the later of their times.
	stored := map[string]time.Time{}
	for _, f := range files {
		if f.stored.After(stored[f.stem]) {
			stored[f.stem] = f.stored
		}
	}
	for i := range files {
		files[i].stored = stored[files[i].stem]
	}
	sort.Slice(files, func(i, j int) bool {
		if !files[i].last.Equal(files[j].last) {
			return files[i].last.Before(files[j].last) // never downloaded (zero) first
		}
		if !files[i].stored.Equal(files[j].stored) {
			return files[i].stored.Before(files[j].stored)
		}
		return files[i].name < files[j].name
	})
	n := 0
	for i, f := range files {
		if total <= budget && f.stem != files[i-1].stem { // a package goes with its .sig
			break
		}
		if os.Remove(filepath.Join(f.dir, f.name)) == nil {
			total -= f.size
			n++
		}
	}
	e.d.Log.Info("used mode: over mirror.max_gib; least recently downloaded package files removed", "files", n, "budget_gib", c.Mirror.MaxGiB)
}

// usedMisses is web.Misses for the daemon, with the fetcher's index of the databases
// brought up to date first when they changed.
type usedMisses struct {
	d *Daemon

	mu     sync.Mutex
	loaded *search.Index // the index whose databases the fetcher last read
}

func (u *usedMisses) ServeMiss(w http.ResponseWriter, r *http.Request, name string) bool {
	c := u.d.live.Current()
	if !c.Mirror.Used() && len(c.Sync.HTTPUpstreams()) == 0 {
		return false
	}
	f := u.d.usedFetcher()
	if f == nil && !c.Mirror.Used() {
		return false // a full mirror only helps out on demand; without a fetcher it is a 404
	}
	if f == nil {
		w.Header().Set("Retry-After", "30")
		http.Error(w, "503 this mirror cannot fetch packages on demand (see its log)", http.StatusServiceUnavailable)
		return true
	}
	u.reload(f)
	return f.ServeMiss(w, r, name)
}

// fetcherRetry bounds how often a fetcher that could not be made is tried again.
const fetcherRetry = 30 * time.Second

// usedFetcher is the fetcher, made now when the mode was switched to "used" at runtime;
// nil when it cannot be made (the mirror root is read-only, say), which is logged.
func (d *Daemon) usedFetcher() *ondemand.Fetcher {
	d.fetcherMu.Lock()
	defer d.fetcherMu.Unlock()
	if d.fetcher != nil || d.fetcherDone {
		return d.fetcher
	}
	if now := time.Now(); !d.fetcherTried.IsZero() && now.Sub(d.fetcherTried) < fetcherRetry {
		return nil
	}
	d.fetcherTried = time.Now()
	f, err := d.newFetcher()
	if err != nil {
		d.Log.Error("used mode: packages cannot be fetched on demand", "err", err)
		return nil
	}
	d.fetcher = f
	return f
}

// fetcherStats are the fetcher's counters; zero when there is none yet.
func (d *Daemon) fetcherStats() ondemand.Stats {
	d.fetcherMu.Lock()
	defer d.fetcherMu.Unlock()
	if d.fetcher == nil {
		return ondemand.Stats{}
	}
	return d.fetcher.Stats()
}

// reload re-reads the databases into the fetcher when search's index moved on (a sync
// published, the repos changed): both follow the same files, and search notices first.
func (u *usedMisses) reload(f *ondemand.Fetcher) {
	ix := u.d.search.Index()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.loaded == ix {
		return
	}
	if err := f.Reload(searchRepos(u.d.live.Current())); err != nil {
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
	st := s.d.fetcherStats()
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
	walkPool(filepath.Join(root, "pool"), func(_ string, fi fs.FileInfo) { n += fi.Size() })
	return n
}
