package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/amwi/amwi/daemon/auth"
	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/daemon/mirrorsync"
	"github.com/amwi/amwi/daemon/notify"
	"github.com/amwi/amwi/daemon/ondemand"
	"github.com/amwi/amwi/daemon/rdns"
	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/daemon/systemd"
	"github.com/amwi/amwi/daemon/traffic"
	"github.com/amwi/amwi/hw"
	"github.com/amwi/amwi/internal/netguard"
	"github.com/amwi/amwi/internal/units"
	"github.com/amwi/amwi/web"
)

// storeLockWait is how long Open waits for another process to release the database before
// saying that another amwi is running.
const storeLockWait = 2 * time.Second

// Daemon is `amwi serve`: Open acquires everything (errors come back synchronously, before
// READY=1), Run serves until its context ends, Close releases what Open acquired.
type Daemon struct {
	Config *config.Config
	Log    *slog.Logger
	Notify *systemd.Notifier
	Now    func() time.Time
	// Listeners, when set before Open, are used instead of systemd's or server.listen.
	Listeners []net.Listener

	store   *store.Store
	root    *os.Root
	srv     *web.Server
	syncer  *mirrorsync.Manager
	search  *search.Service
	control net.Listener
	machine *hw.Sampler
	traffic *traffic.Recorder
	rdns    *rdns.Cache // client names for the traffic pages, while traffic.reverse_dns
	// fetcher answers "used" mode's misses; made at Open in "used" mode, at the first miss
	// after a switch to it otherwise (see usedFetcher): an "all" mirror's root may be
	// read-only.
	fetcherMu    stdsync.Mutex
	fetcher      *ondemand.Fetcher
	fetcherTried time.Time
	fetcherDone  bool    // Close ran: no new fetcher
	evict        evicter // "used" mode's budget between syncs
	auth         *auth.Service
	// live owns the config in force: the dashboard's changes go through it, and every
	// part reads it or hears from it.
	live    *config.Live
	proxies atomic.Pointer[web.Proxies]
	// runCtx ends when Run begins to stop (or Close without Run): live streams close,
	// every part below stops.
	runCtx  context.Context
	stopRun context.CancelFunc
	// parts are the long-lived goroutines (servers, sampler, schedule, recorder, index
	// watcher, notifier, benchmark): Run starts them all, and they are all waited for.
	parts group

	// backupErr is the last daily backup's trouble (nil: none).
	backupErr atomic.Pointer[error]

	discordMu   stdsync.Mutex
	discord     *notify.Discord
	discordStop context.CancelFunc

	requests atomic.Int64
	served   atomic.Int64

	// upstreams finds the upstream's HTTP address for /mirrorlist.
	upstreams upstreamFinder
}

// Open takes the store lock, opens the mirror root and the listeners.
func (d *Daemon) Open() error {
	if d.Now == nil {
		d.Now = time.Now
	}
	if netguard.PrivateAllowed() {
		d.Log.Warn(netguard.UnsafeEnv + " is set: the Discord webhook may reach loopback and private addresses (for tests only)")
	}
	d.Notify.Status("opening store in %s", d.Config.State.Dir)
	st, err := store.Open(d.Config.State.Dir, storeLockWait)
	if err != nil {
		return err
	}
	d.store = st
	st.OnBroken = func(err error) {
		d.Log.Error("store: stopped using the state database after a failure: the dashboard's accounts, history and statistics are unavailable; the mirror goes on serving", "err", err)
		d.Notify.Status("state database failed: %v", err)
	}
	root, err := os.OpenRoot(d.Config.Mirror.Root)
	if err != nil {
		d.Close()
		return fmt.Errorf("open mirror root: %w", err)
	}
	d.root = root
	d.search = &search.Service{Root: d.Config.Mirror.Root, Repos: searchRepos(d.Config), Log: d.Log}
	d.Notify.Status("indexing packages")
	if _, err := d.search.Load(); err != nil {
		d.Log.Warn("search: some databases could not be read; search covers the rest", "err", err)
	}
	d.live = config.NewLive(d.Config)
	d.setProxies(d.Config)
	d.live.Subscribe(d.applied)
	d.runCtx, d.stopRun = context.WithCancel(context.Background())
	d.traffic = &traffic.Recorder{Store: d.store, Log: d.Log}
	d.rdns = &rdns.Cache{Now: d.Now}
	d.syncer = newSyncManager(d.Config, d.store, d.traffic.LastUsed, d.Log, false)
	d.syncer.Changes = d.reindex
	d.syncer.OnEvent = func(e mirrorsync.Event) { d.notifier().Notify(syncEvent(e)) }
	d.setDiscord(d.Config)
	d.machine = &hw.Sampler{Reader: &hw.Reader{ProcRoot: procRoot(), SysRoot: sysRoot(), MirrorRoot: d.Config.Mirror.Root}}
	// The dashboard's sampler reads the mirror disk every second already; the throttle
	// takes its figure (and so works as soon as sync.io_busy_percent leaves 0, without a
	// restart).
	d.syncer.Busy = d.mirrorDiskBusy
	d.auth = &auth.Service{Store: d.store, Log: d.Log, OnFirstAdmin: d.removeSetupCode}
	if err := d.setupFirstAdmin(); err != nil {
		d.Close()
		return fmt.Errorf("check for accounts: %w", err)
	}
	if err := d.syncer.Recover(); err != nil {
		d.Log.Warn("sync: cannot check the history for interrupted runs", "err", err)
	}
	if d.control, err = listenControl(d.Config.State.Dir); err != nil {
		d.Close()
		return err
	}
	if d.Listeners == nil {
		if d.Listeners, err = listeners(d.Config.Server.Listen); err != nil {
			d.Close()
			return err
		}
	}
	d.evict.d = d
	if d.Config.Mirror.Used() {
		if d.fetcher, err = d.newFetcher(); err != nil {
			d.Close()
			return fmt.Errorf("used mode: %w", err)
		}
	}
	d.srv = web.NewServer(web.NewHandler(web.Options{
		MirrorRoot:    d.root,
		SendTimeout:   d.Config.Server.SendTimeout.D(),
		Log:           d.Log,
		Now:           d.Now,
		Health:        d.health,
		OnTransfer:    d.count,
		Version:       Version().Version,
		Sync:          d.syncer,
		Search:        d.search,
		PerPage:       func() int { return d.live.Current().Search.PerPage },
		Auth:          d.auth,
		Machine:       d.machine,
		Traffic:       d.traffic,
		Settings:      &settings{d: d},
		Bench:         &benchService{d: d},
		SetupCodeFile: filepath.Join(d.Config.State.Dir, setupCodeName),
		Proxies:       d.trustedProxies,
		Ctx:           d.runCtx,
		Conns:         func() web.ConnStats { return d.srv.Stats() },
		Misses:        &usedMisses{d: d},
		Used:          (&usedStats{d: d}).get,
		Commit:        Version().Commit,
		ClientName:    d.clientName,
		Mirrorlist:    d.mirrorlistInfo,
	}), web.ServerOptions{Log: d.Log, MaxConns: d.Config.Server.MaxConnections})
	return nil
}

// every calls f each interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// group runs goroutines and waits for them all.
type group struct{ wg stdsync.WaitGroup }

// Go runs f in a goroutine of the group.
func (g *group) Go(f func()) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
}

// Wait returns when every goroutine of the group has returned.
func (g *group) Wait() { g.wg.Wait() }

// listeners takes the sockets systemd passed, or listens on addr when there are none.
func listeners(addr string) ([]net.Listener, error) {
	ls, err := systemd.Listeners()
	if err != nil {
		return nil, err
	}
	if len(ls) > 0 {
		return ls, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on server.listen %q: %w", addr, err)
	}
	return []net.Listener{l}, nil
}

// Addrs are the addresses being served.
func (d *Daemon) Addrs() []string {
	out := make([]string, len(d.Listeners))
	for i, l := range d.Listeners {
		out[i] = l.Addr().String()
	}
	return out
}

// Run serves until ctx ends, then shuts down gracefully: listeners close at once, in-flight
// downloads get server.shutdown_grace to finish, then the rest are cut.
func (d *Daemon) Run(ctx context.Context) error {
	rctx := d.runCtx
	errc := make(chan error, len(d.Listeners))
	for _, l := range d.Listeners {
		d.parts.Go(func() {
			if err := d.srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve on %s: %w", l.Addr(), err)
			}
		})
	}
	ctl := &http.Server{Handler: dbControl(controlHandler(rctx, d.syncer, d.auth, d.Log), d.store, d.Log), ReadHeaderTimeout: 10 * time.Second}
	d.parts.Go(func() { ctl.Serve(d.control) })
	d.parts.Go(func() { d.search.Watch(rctx, 30*time.Second) })
	d.parts.Go(func() { d.machine.Run(rctx) })
	d.parts.Go(func() { every(rctx, time.Hour, func() { d.auth.Prune() }) }) // expired sessions go hourly
	d.parts.Go(func() { d.traffic.Run(rctx) })                               // flushes its last batch on the way out
	d.parts.Go(func() { d.backupLoop(rctx) })
	switch {
	case !d.Config.Sync.Enabled:
		d.Log.Info("sync: scheduled syncs are off (sync.enabled = false); `amwi sync` still works")
	case len(d.syncer.Upstreams()) == 0:
		d.Log.Warn("sync: no upstream set; set sync.upstream (amwi bench can pick one) to keep the mirror current")
	}
	// The schedule always runs: it idles while syncs are off or no upstream is set, and
	// plans again the moment the settings give it one.
	d.parts.Go(func() {
		d.syncer.Schedule(rctx, func() (time.Duration, bool) {
			c := d.live.Current()
			return c.Sync.Interval.D(), c.Sync.Enabled
		})
	})
	addrs := strings.Join(d.Addrs(), ", ")
	d.Log.Info("serving", "mirror", d.Config.Mirror.Root, "listen", addrs, "state", d.Config.State.Dir)
	d.Notify.Ready()
	d.Notify.Status("serving %s on %s", d.Config.Mirror.Root, addrs)

	var tick <-chan time.Time
	if iv := d.Notify.WatchdogInterval(); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = err
			break loop
		case <-tick:
			d.Notify.Watchdog()
		}
	}

	grace := d.Config.Server.ShutdownGrace.D()
	d.Notify.Stopping()
	d.stopRun() // live streams and every part end now; downloads get the grace period
	if d.syncer.Cancel() == nil {
		d.Log.Info("stopping: cancelling the running sync")
	}
	d.Notify.Status("stopping: letting downloads finish (up to %s)", grace)
	d.Log.Info("stopping", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := d.srv.Shutdown(sctx); err != nil {
		d.Log.Warn("grace period over; closing remaining connections", "err", err)
		d.srv.Close()
	}
	ctl.Close()
	d.parts.Wait()
	// A sync started by hand also ends with ctx; let it record its run before the store closes.
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	d.syncer.WaitIdle(wctx)
	wcancel()
	d.syncer.Close() // what still follows the sync's state hears it end
	d.Log.Info("stopped", "requests", d.requests.Load(), "bytes_sent", d.served.Load())
	return runErr
}

// Close releases the store lock and the mirror root. Safe after a failed Open.
func (d *Daemon) Close() error {
	if d.srv == nil {
		for _, l := range d.Listeners {
			l.Close()
		}
	}
	if d.stopRun != nil {
		d.stopRun()
	}
	d.parts.Wait() // what Open started (the notifier) when Run never ran
	if d.control != nil {
		d.control.Close()
	}
	d.fetcherMu.Lock()
	d.fetcherDone = true
	if d.fetcher != nil {
		d.fetcher.Close() // cancels fetches still running (Run's shutdown let the clients finish)
	}
	d.fetcherMu.Unlock()
	d.evict.running.Wait()
	if d.rdns != nil {
		d.rdns.Close() // cancels the lookups running
	}
	if d.root != nil {
		d.root.Close()
	}
	if d.store != nil {
		return d.store.Close()
	}
	return nil
}

// mirrorDiskBusy is the mirror disk's busy % from the latest machine sample.
func (d *Daemon) mirrorDiskBusy() (float64, error) {
	s := d.machine.Latest()
	if s.Disk == nil {
		return 0, fmt.Errorf("mirror disk not sampled: %s", s.Errors["disk"])
	}
	return s.Disk.BusyPercent, nil
}

// maxRecordedChanges bounds the package changes a run's record lists (per kind).
const maxRecordedChanges = 50

// reindex rebuilds the search index after a sync and returns what changed, for the run's
// record.
func (d *Daemon) reindex(mirrorsync.Run) json.RawMessage {
	ch, err := d.search.Load()
	if err != nil {
		d.Log.Warn("search: reindex after sync", "err", err)
	}
	b, _ := json.Marshal(ch.Bounded(maxRecordedChanges))
	return b
}

func (d *Daemon) health() map[string]error {
	checks := map[string]error{"store": d.storeHealth(), "backup": d.backupHealth()}
	if _, err := d.root.Stat("."); err != nil {
		checks["mirror"] = fmt.Errorf("mirror root %s: %w", d.Config.Mirror.Root, err)
	} else {
		checks["mirror"] = nil
	}
	checks["sync"] = d.syncHealth()
	checks["verify"] = d.verifyHealth()
	return checks
}

// syncHealth says what the last finished sync left: a failed or incomplete one is
// degraded (the mirror serves its last good state), with what is missing.
func (d *Daemon) syncHealth() error {
	h, err := d.syncer.History(5)
	if err != nil {
		return fmt.Errorf("sync history: %w", err)
	}
	for _, r := range h {
		switch r.Result {
		case mirrorsync.ResultRunning:
			continue
		case mirrorsync.ResultIncomplete:
			return &web.Degraded{Reason: fmt.Sprintf("sync %d incomplete %s ago: %s missing: %s", r.ID, d.Now().Sub(r.End).Round(time.Second), units.Plural(r.Missing, "file"), r.Error)}
		case mirrorsync.ResultFailed:
			return &web.Degraded{Reason: fmt.Sprintf("sync %d failed %s ago: %s", r.ID, d.Now().Sub(r.End).Round(time.Second), r.Error)}
		}
		if r.Check != nil && !r.Check.OK() {
			return &web.Degraded{Reason: fmt.Sprintf("the mirror is incomplete: %s missing or damaged", units.Plural(r.Check.Gaps()+r.Check.Leftovers, "file"))}
		}
		return nil
	}
	return nil
}

// verifyHealth reports damage the last `amwi verify` found, until a later sync.
func (d *Daemon) verifyHealth() error {
	v, err := d.syncer.LastVerification()
	if err != nil || v == nil || v.Report.OK() {
		return nil
	}
	if h, _ := d.syncer.History(1); len(h) > 0 && h[0].End.After(v.End) && h[0].Check != nil && h[0].Check.OK() && v.Report.Corrupt == 0 {
		return nil // a later sync repaired what the sizes showed
	}
	return &web.Degraded{Reason: fmt.Sprintf("amwi verify found %s missing or damaged %s ago (amwi verify --repair, then amwi sync)", units.Plural(v.Report.Gaps()+v.Report.Leftovers, "file"), d.Now().Sub(v.End).Round(time.Second))}
}

// count is the traffic hook. Only mirror downloads are mirror traffic: every other
// request (dashboard, API, /metrics) is marked so the recorder keeps it apart. A request
// under the mirror that served nothing (a scanner's 404, a folder's 301, a 405, a 5xx) is
// no download and no dashboard use either: /metrics counts it by status, the statistics
// leave it out, so a stranger's probing ranks nowhere.
func (d *Daemon) count(t web.Transfer) {
	d.requests.Add(1)
	d.served.Add(t.Bytes)
	h := traffic.Hit{Time: t.End, Duration: t.End.Sub(t.Start), Client: t.Client, Path: t.Request.URL.Path, Status: t.Status, Bytes: t.Bytes}
	if t.Mirror() {
		if !servedFile(t.Status) {
			return
		}
		h.Repo = traffic.RepoOf(strings.TrimPrefix(h.Path, web.MirrorPrefix))
		h.Head = t.Request.Method == http.MethodHead
	} else {
		h.Dashboard = true
	}
	d.traffic.Record(h)
}

// servedFile says whether a mirror answer served the file: whole or a range of it, or
// "not modified" (pacman -Sy asking whether a database changed).
func servedFile(status int) bool {
	return status == http.StatusOK || status == http.StatusPartialContent || status == http.StatusNotModified
}

// clientName is a client's name by reverse DNS while traffic.reverse_dns is on, "" while
// it is off or no name is known yet; it never waits for DNS.
func (d *Daemon) clientName(a netip.Addr) string {
	if !d.live.Current().Traffic.ReverseDNS {
		return ""
	}
	return d.rdns.Name(a)
}

// trustedProxies is server.trusted_proxies and server.client_ip_header, parsed once per
// config (every request asks).
func (d *Daemon) trustedProxies() web.Proxies {
	if p := d.proxies.Load(); p != nil {
		return *p
	}
	return web.Proxies{}
}

// setProxies parses server.trusted_proxies and server.client_ip_header once per config.
func (d *Daemon) setProxies(c *config.Config) {
	var p web.Proxies
	for _, s := range c.Server.TrustedProxies {
		if pr, err := config.ParseCIDR(s); err == nil { // validated already
			p.Trusted = append(p.Trusted, pr)
		}
	}
	p.Header, _ = config.CheckClientIPHeader(c.Server.ClientIPHeader) // validated already
	d.proxies.Store(&p)
}
