package bench

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Candidate is one mirror host to measure.
type Candidate struct {
	Host, Country string
	HTTPURL       string     // mirror root over http(s), with trailing slash ("" when none)
	RsyncURL      string     // rsync://host/module/path/ ("" when none: cannot be an upstream)
	LastSync      *time.Time // what the status JSON said, nil when unknown
}

// Result is one measured candidate, in the JSON form `amwi bench --json` prints (keep these tags).
type Result struct {
	Rank     int        `json:"rank"`
	Host     string     `json:"host"`
	Country  string     `json:"country"`
	URL      string     `json:"url"` // http(s) root
	RsyncURL string     `json:"rsync_url"`
	LastSync *time.Time `json:"lastsync"` // RFC 3339; the mirror's own lastsync read over http(s), else the status JSON's (Why says so); nil when neither is known
	Fresh    bool       `json:"fresh"`
	RsyncOK  bool       `json:"rsync_ok"`
	// LatencyMS is the TCP connect time to the http(s) host, median of a few tries; 0
	// when not measured.
	LatencyMS float64 `json:"latency_ms"`
	// ThroughputBps is bytes/s of a bounded download of ThroughputPath, timed from the
	// response headers to the last byte read.
	ThroughputBps float64 `json:"throughput_bps"`
	Usable        bool    `json:"usable"` // can be chosen as upstream: fresh, rsync_ok and measured
	Why           string  `json:"why"`    // one line saying why it ranks where it does
	Error         string  `json:"error,omitempty"`

	note notes // what the measurement saw, for Why; not part of the JSON form
}

// notes keeps the details of a measurement that only Why shows.
type notes struct {
	lastsyncErr    string // why the mirror's own lastsync could not be read ("" when it was)
	lastsyncStatus bool   // LastSync came from the status JSON
	rsyncErr       string // why the rsync check failed ("no rsync URL", "connection refused")
	noHTTP         bool   // the candidate has no http(s) URL: nothing but rsync was measured
	throughput     string // caveat on the throughput figure ("download cut after 500.0 KiB: …")
}

// Options tune a run. The zero value is the defaults.
type Options struct {
	Concurrency    int           // parallel candidates (default 8)
	PerMirror      time.Duration // limit for one candidate's whole measurement (default 10 s)
	Total          time.Duration // limit for the whole run (default 60 s); candidates not done by then get Error "timed out"
	ConnectTimeout time.Duration // TCP/rsync connect timeout (default 3 s)
	ThroughputPath string        // default "extra/os/x86_64/extra.db"
	MaxBytes       int64         // cap of the throughput download (default 2 MiB)
	MaxSeconds     time.Duration // cap of the throughput download time (default 5 s)
	StaleAfter     time.Duration // a mirror whose lastsync is older than this (vs now) is stale (default 6 h)
	BehindBy       time.Duration // ... or that lags the freshest candidate by more than this (default 2 h)
	RsyncBin       string        // default "rsync"
	Now            func() time.Time
	Client         *http.Client                       // default: a direct (no proxy) client with timeouts from the options
	Progress       func(done, total int, last Result) // called as candidates finish (from one goroutine at a time)
}

func (o Options) withDefaults() Options {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	set(&o.PerMirror, 10*time.Second)
	set(&o.Total, 60*time.Second)
	set(&o.ConnectTimeout, 3*time.Second)
	set(&o.MaxSeconds, 5*time.Second)
	set(&o.StaleAfter, 6*time.Hour)
	set(&o.BehindBy, 2*time.Hour)
	if o.ThroughputPath == "" {
		o.ThroughputPath = "extra/os/x86_64/extra.db"
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 2 << 20
	}
	if o.RsyncBin == "" {
		o.RsyncBin = "rsync"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// newClient is the default client. It goes direct, ignoring HTTP(S)_PROXY: the upstream
// is reached by rsync, which does not use them, and a proxy would be measured instead of
// the mirror. Compression is off so the bytes counted are the bytes on the wire.
func newClient(o Options) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: o.ConnectTimeout}).DialContext,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ResponseHeaderTimeout: 2 * o.ConnectTimeout,
		DisableCompression:    true,
		MaxIdleConnsPerHost:   1,
		IdleConnTimeout:       o.PerMirror,
		ForceAttemptHTTP2:     true,
	}}
}

// runGrace is how long Run waits, once its context is done, for measurements in flight to
// notice and hand back what they had. Every step honours the context, so this is short.
const runGrace = 500 * time.Millisecond

// Run measures every candidate and returns them ranked. It returns within o.Total (plus
// a short grace), however the mirrors behave, and promptly when ctx is cancelled;
// candidates not done by then are reported with Error "timed out" (or "cancelled").
func Run(ctx context.Context, cands []Candidate, o Options) []Result {
	o = o.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Total)
	defer cancel()

	m := &meter{o: o, client: o.Client}
	if m.client == nil {
		m.client = newClient(o)
		defer m.client.CloseIdleConnections()
	}
	tmp, err := os.MkdirTemp("", "amwi-bench-")
	if err != nil {
		m.tmpErr = "temp dir: " + short(err)
	}

	type finished struct {
		i   int
		r   Result
		cut bool // the run's context ended while this candidate was measured
	}
	out := make(chan finished, len(cands)) // buffered: a late worker never blocks
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for i, c := range cands {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				return
			}
			if ctx.Err() != nil {
				return
			}
			dir := ""
			if tmp != "" {
				dir = filepath.Join(tmp, strconv.Itoa(i))
			}
			r := m.measure(ctx, c, dir)
			out <- finished{i, r, ctx.Err() != nil}
		})
	}
	workersDone := make(chan struct{})
	go func() { wg.Wait(); close(workersDone) }()

	results := make([]Result, len(cands))
	have := make([]bool, len(cands))
	n := 0
	stopped := func() string {
		if errors.Is(ctx.Err(), context.Canceled) {
			return "cancelled"
		}
		return "timed out"
	}
	record := func(f finished) {
		if f.cut {
			f.r.Error = stopped()
		}
		results[f.i], have[f.i] = f.r, true
		n++
		if o.Progress != nil {
			p := f.r
			judge(&p, p.LastSync, o.Now(), o) // no freshest yet: judged against the clock only
			o.Progress(n, len(cands), p)
		}
	}
wait:
	for n < len(cands) {
		select {
		case f := <-out:
			record(f)
		case <-ctx.Done():
			break wait
		}
	}
	if n < len(cands) {
		grace := time.NewTimer(runGrace)
		defer grace.Stop()
	drain:
		for n < len(cands) {
			select {
			case f := <-out:
				record(f)
			case <-workersDone:
				for {
					select {
					case f := <-out:
						record(f)
					default:
						break drain
					}
				}
			case <-grace.C:
				break drain
			}
		}
		for i, c := range cands {
			if !have[i] {
				record(finished{i: i, r: Result{Host: c.Host, Country: c.Country, URL: c.HTTPURL, RsyncURL: c.RsyncURL}, cut: true})
			}
		}
	}

	if tmp != "" {
		if ctx.Err() == nil {
			// Every worker has sent its result and is returning: wait for the last to
			// be gone, then clean up before Run returns (it used to race them).
			<-workersDone
		}
		select {
		case <-workersDone:
			os.RemoveAll(tmp)
		default:
			// Cut short: a straggler's rsync may still be writing there; clean up once it
			// has gone.
			go func() { <-workersDone; os.RemoveAll(tmp) }()
		}
	}
	return Rank(results, o.Now(), o)
}
