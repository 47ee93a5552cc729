package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	stdsync "sync"
	"time"

	"github.com/amwi/amwi/daemon/bench"
	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/mirrorlists"
	"github.com/amwi/amwi/web"
)

// maxDelay drops mirrors the status JSON says lag upstream by more than this, before any
// measuring (reflector's --delay does the same).
const maxDelay = 6 * time.Hour

// benchResultsFile holds the last benchmark in the state dir (JSON, written atomically),
// so `amwi bench` and the daemon share it without the store's lock.
const benchResultsFile = "bench-results.json"

// candidates gathers the candidate mirrors of country: Arch's status JSON (fetched, or the
// cached copy when offline) plus the user's own country file, filtered.
func candidates(ctx context.Context, cfg *config.Config, country string) ([]bench.Candidate, map[string]string, string, error) {
	sc := &mirrorlists.StatusCache{URL: cfg.Bench.StatusURL, Path: filepath.Join(cfg.State.Dir, "mirror-status.json")}
	status, source, age, note, err := sc.Get(ctx, false)
	var cands []mirrorlists.Candidate
	if err == nil {
		cands = mirrorlists.CandidatesFromStatus(status, country)
		source = fmt.Sprintf("mirror status %s, %s old", source, age.Round(time.Minute))
		if note != "" {
			source += "; " + note
		}
	}
	user, uerr := mirrorlists.FromMirrorlistDir(cfg.Bench.MirrorlistsDir, country)
	if uerr != nil {
		return nil, nil, "", uerr
	}
	if len(user) > 0 {
		cands = mirrorlists.Merge(cands, user)
		source += fmt.Sprintf(" + %d from %s", len(user), cfg.Bench.MirrorlistsDir)
	}
	if err != nil && len(cands) == 0 {
		return nil, nil, "", fmt.Errorf("no candidates: %w", err)
	}
	if len(cands) == 0 {
		var known []string
		if status != nil {
			seen := map[string]bool{}
			for _, u := range status.URLs {
				if u.Country != "" && !seen[u.Country] {
					seen[u.Country] = true
					known = append(known, u.Country)
				}
			}
		}
		sort.Strings(known)
		return nil, nil, "", fmt.Errorf("%w in %q; the mirror status knows: %s", mirrorlists.ErrNoMirrors, country, strings.Join(known, ", "))
	}
	kept, dropped := mirrorlists.Filter(cands, maxDelay)
	out := make([]bench.Candidate, len(kept))
	for i, c := range kept {
		out[i] = bench.Candidate{Host: c.Host, Country: c.Country, HTTPURL: c.HTTPURL, RsyncURL: c.RsyncURL, LastSync: c.LastSync}
	}
	return out, dropped, strings.TrimPrefix(source, " + "), nil
}

// runBench measures and ranks country's mirrors and saves the report in the state dir.
func runBench(ctx context.Context, cfg *config.Config, country string, progress func(done, total int, last bench.Result)) (*web.BenchReport, error) {
	cands, dropped, source, err := candidates(ctx, cfg, country)
	if err != nil {
		return nil, err
	}
	res := bench.Run(ctx, cands, bench.Options{Progress: progress})
	rep := &web.BenchReport{Time: time.Now(), Country: country, Source: source, Dropped: dropped, Results: res}
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := config.WriteFile(filepath.Join(cfg.State.Dir, benchResultsFile), b); err != nil {
		return rep, fmt.Errorf("keep the results: %w", err)
	}
	return rep, nil
}

// benchService is the dashboard's benchmark (web.BenchService): one run at a time, in the
// background, its progress in the live stream.
type benchService struct {
	d     *Daemon
	mu    stdsync.Mutex
	state web.BenchState
}

func (b *benchService) DefaultCountry() string { return b.d.live.Current().Bench.Country }

func (b *benchService) State() web.BenchState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

func (b *benchService) Start(country string) error {
	country = strings.TrimSpace(country)
	if country == "" {
		country = b.DefaultCountry()
	}
	if country == "" {
		return web.BadRequest("say which country to measure (or set bench.country)")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Running {
		return web.ErrBenchRunning
	}
	b.state = web.BenchState{Running: true, Country: country, Started: time.Now()}
	ctx, cancel := context.WithTimeout(b.d.runCtx, 5*time.Minute)
	b.d.parts.Go(func() {
		defer cancel()
		_, err := runBench(ctx, b.d.live.Current(), country, func(done, total int, last bench.Result) {
			b.mu.Lock()
			b.state.Done, b.state.Total, b.state.Last = done, total, last.Host
			b.mu.Unlock()
		})
		b.mu.Lock()
		b.state.Running = false
		if err != nil {
			b.state.Error = err.Error()
			b.d.Log.Warn("bench: failed", "country", country, "err", err)
		}
		b.mu.Unlock()
	})
	return nil
}

func (b *benchService) Last() (*web.BenchReport, error) {
	return readBenchReport(b.d.live.Current().State.Dir)
}

func readBenchReport(stateDir string) (*web.BenchReport, error) {
	raw, err := os.ReadFile(filepath.Join(stateDir, benchResultsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rep web.BenchReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", benchResultsFile, err)
	}
	return &rep, nil
}

// Use sets the chosen mirror as upstream and the next two usable ones as fallbacks, over
// rsync and, from the same hosts, over HTTP(S) (sync.http_upstream, what "used" mode
// fetches from): the URL the benchmark measured, https when the host offers it. A host
// the benchmark knows no HTTP URL for is left out of the HTTP list; when none has one the
// HTTP settings stay as they were.
func (b *benchService) Use(host string) error {
	rep, err := b.Last()
	if err != nil || rep == nil {
		return web.BadRequest("no benchmark results to use")
	}
	var chosen *bench.Result
	var rest []bench.Result
	for _, r := range rep.Results {
		switch {
		case !r.Usable || r.RsyncURL == "":
		case r.Host == host && chosen == nil:
			chosen = &r
		case len(rest) < 2:
			rest = append(rest, r)
		}
	}
	if chosen == nil {
		return web.BadRequest(quoteHost(host) + " is not a usable upstream in the last benchmark")
	}
	var fallbacks, httpURLs []string
	for _, r := range append([]bench.Result{*chosen}, rest...) {
		if r.Host != chosen.Host {
			fallbacks = append(fallbacks, r.RsyncURL)
		}
		if r.URL != "" && config.CheckHTTPUpstream(r.URL) == nil {
			httpURLs = append(httpURLs, r.URL)
		}
	}
	problems, err := (&settings{d: b.d}).update(func(c *config.Config) {
		c.Sync.Upstream, c.Sync.FallbackUpstreams = chosen.RsyncURL, fallbacks
		if len(httpURLs) > 0 {
			c.Sync.HTTPUpstream, c.Sync.HTTPFallbackUpstreams = httpURLs[0], httpURLs[1:]
		}
	})
	if err != nil {
		return err
	}
	for k, v := range problems {
		return web.BadRequest(fmt.Sprintf("%s: %s", k, v))
	}
	return nil
}

var _ web.BenchService = (*benchService)(nil)

// quoteHost shows a host name from a form, bounded.
func quoteHost(h string) string {
	if len(h) > 100 {
		h = h[:100]
	}
	return strconv.Quote(h)
}
