package ondemand

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config is what a Fetcher needs. The functions are read on every fetch, so a settings
// change takes effect without a new Fetcher.
type Config struct {
	Root string // mirror root (absolute path)

	// Upstreams lists the HTTP mirrors to fetch from, in order of preference
	// (sync.http_upstream, then sync.http_fallback_upstreams), each "https://host/path/"
	// ending in "/". Nil or empty: nothing is fetched and every miss is a 502 saying so.
	Upstreams func() []string
	// MinFreeBytes is the free-space floor of the mirror's filesystem: a fetch that would
	// leave less free is not started (503). Nil: no floor.
	MinFreeBytes func() uint64
	FreeBytes    func(path string) (uint64, error) // default: statfs(2), blocks available to us

	Log    *slog.Logger
	Client *http.Client // default: transport timeouts, ≤5 redirects, http/https only
	Now    func() time.Time

	// HeaderTimeout bounds one upstream's connect and response headers (default 10s);
	// HeaderBudget bounds all of them together, until the client has its status (default
	// 15s): pacman gives up on a server after its own timeout and should then find the next
	// Server line, not a hung connection.
	HeaderTimeout time.Duration
	HeaderBudget  time.Duration
	// StallTimeout is how long an upstream body may send nothing before it counts as
	// broken and the fetch resumes elsewhere (default 30s).
	StallTimeout time.Duration
	// MaxFetches bounds concurrent distinct fetches (default 32); beyond, 503.
	MaxFetches int

	// OnStored is called (from the fetch's goroutine) after a file was verified and renamed
	// into place; name is the mirror-relative request name ("core/os/x86_64/FILE[.sig]").
	OnStored func(name string, size int64)
}

const (
	defaultHeaderTimeout = 10 * time.Second
	defaultHeaderBudget  = 15 * time.Second
	defaultStallTimeout  = 30 * time.Second
	defaultMaxFetches    = 32
	// maxSig bounds a detached signature: a real one is a few hundred bytes.
	maxSig = 16 << 10
	// maxResumes bounds how often a fetch whose upstream broke mid-body starts again from
	// where it stopped, each time asking every upstream once.
	maxResumes = 4
	// fetchDir holds temp files, beneath the root so a rename puts them in place; a dot
	// dir, which the mirror never serves.
	fetchDir = ".amwi/fetch"
)

// Stats are counters since New (Active is the current number of fetches).
type Stats struct {
	Misses       int64 // requests answered through a fetch (Shared included)
	Shared       int64 // requests that joined a running fetch
	Fetches      int64 // fetches started
	FetchedBytes int64 // bytes read from upstream bodies
	ServedBytes  int64 // body bytes written to clients by ServeMiss
	Failed       int64 // fetches that ended without a stored file
	Mismatched   int64 // upstream answers discarded because size, hash or signature disagreed with the database
	Active       int64 // fetches running now
}

// Fetcher serves misses of a "used"-mode mirror by fetching them. Its methods are safe for
// concurrent use.
type Fetcher struct {
	cfg       Config
	rootPath  string
	root      *os.Root // every path below is opened beneath it: a link cannot lead a write out
	log       *slog.Logger
	client    *http.Client
	ownClient bool

	reloadMu sync.Mutex
	index    atomic.Pointer[map[string]repoIndex]

	ctx    context.Context // cancelled by Close; fetches run under it, not under a request
	cancel context.CancelFunc
	wg     sync.WaitGroup
	seq    atomic.Uint64

	closing     atomic.Bool // set first in Close: ServeMiss stops using the root
	mu          sync.Mutex
	closed      bool
	fetches     map[string]*fetch // by target (mirror-relative pool path); removed when done
	reserved    uint64            // bytes the running fetches will still write, for the free-space check
	spaceLogged time.Time

	misses, shared, started, fetched, served, failed, mismatched atomic.Int64
}

// New checks the config, creates $root/.amwi/fetch/ and removes what a killed process
// left there. Reload must be called before anything is fetched.
func New(c Config) (*Fetcher, error) {
	if c.Root == "" || !filepath.IsAbs(c.Root) {
		return nil, fmt.Errorf("ondemand: mirror root %q must be an absolute path", c.Root)
	}
	if c.Upstreams == nil {
		c.Upstreams = func() []string { return nil }
	}
	if c.MinFreeBytes == nil {
		c.MinFreeBytes = func() uint64 { return 0 }
	}
	if c.FreeBytes == nil {
		c.FreeBytes = statfsFree
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HeaderTimeout <= 0 {
		c.HeaderTimeout = defaultHeaderTimeout
	}
	if c.HeaderBudget <= 0 {
		c.HeaderBudget = defaultHeaderBudget
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = defaultStallTimeout
	}
	if c.MaxFetches <= 0 {
		c.MaxFetches = defaultMaxFetches
	}
	f := &Fetcher{cfg: c, rootPath: filepath.Clean(c.Root), log: c.Log, client: c.Client, fetches: make(map[string]*fetch)}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.client == nil {
		f.client, f.ownClient = newClient(), true
	}
	root, err := os.OpenRoot(f.rootPath)
	if err != nil {
		return nil, fmt.Errorf("ondemand: open mirror root: %w", err)
	}
	// Leftovers of a killed process are partial downloads nobody will finish: a new fetch
	// starts from zero, and nothing but a rename ever made one visible.
	if err := root.RemoveAll(fetchDir); err != nil {
		root.Close()
		return nil, fmt.Errorf("ondemand: remove leftovers in %s: %w", filepath.Join(f.rootPath, fetchDir), err)
	}
	if err := root.MkdirAll(fetchDir, 0o755); err != nil {
		root.Close()
		return nil, fmt.Errorf("ondemand: create %s: %w", filepath.Join(f.rootPath, fetchDir), err)
	}
	f.root = root
	empty := map[string]repoIndex{}
	f.index.Store(&empty)
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f, nil
}

// Close cancels the running fetches (their clients are aborted, their temp files removed)
// and waits for every goroutine the Fetcher started. ServeMiss answers 503 afterwards.
func (f *Fetcher) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	f.closing.Store(true)
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
	if f.ownClient {
		f.client.CloseIdleConnections()
	}
	f.root.Close()
}

// Stats reads the counters.
func (f *Fetcher) Stats() Stats {
	f.mu.Lock()
	active := int64(len(f.fetches))
	f.mu.Unlock()
	return Stats{
		Misses: f.misses.Load(), Shared: f.shared.Load(), Fetches: f.started.Load(),
		FetchedBytes: f.fetched.Load(), ServedBytes: f.served.Load(), Failed: f.failed.Load(),
		Mismatched: f.mismatched.Load(), Active: active,
	}
}

// newClient has timeouts on every step that has no context deadline of its own (dial,
// TLS), keeps connections to the upstream for the next package, and asks for the bytes as
// they are (DisableCompression: the hash is over the file, not a re-encoding).
func newClient() *http.Client {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 4,
		DisableCompression:  true,
		ForceAttemptHTTP2:   true,
	}
	return &http.Client{Transport: tr, CheckRedirect: checkRedirect}
}

// checkRedirect follows at most 5 redirects, to http or https only (mirrors redirect to a
// CDN; anything else — file:, ftp:, a loop — is not a mirror).
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("more than 5 redirects")
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("redirect to a %q URL", req.URL.Scheme)
	}
	return nil
}

func statfsFree(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}
