package daemon

import (
	"cmp"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	stdsync "sync"
	"time"

	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/mirrorlists"
	"github.com/amwi/amwi/web"
)

// statusCacheFile is the mirror status JSON kept by the benchmark (candidates).
const statusCacheFile = "mirror-status.json"

// mirrorlistInfo is web.Options.Mirrorlist: server.public_url and the HTTP(S) address of
// the configured rsync upstream, for /mirrorlist's second Server line.
func (d *Daemon) mirrorlistInfo() web.MirrorlistInfo {
	c := d.live.Current()
	info := web.MirrorlistInfo{PublicBase: c.Server.PublicBase()}
	info.Upstream, info.From, info.Note = d.upstreams.find(c)
	return info
}

// upstreamFinder remembers the last answer of findUpstreamHTTP: /mirrorlist is public,
// and the mirror status it may read is ~0.6 MB of JSON. The answer is worked out again
// when the settings or the two files it reads change (their size and time, from a stat).
type upstreamFinder struct {
	mu              stdsync.Mutex
	key             finderKey
	url, from, note string
	done            bool
}

type finderKey struct {
	upstream, httpUpstream string
	bench, status          fileStamp
}

type fileStamp struct {
	size int64
	mod  time.Time
}

func stamp(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{size: -1}
	}
	return fileStamp{fi.Size(), fi.ModTime()}
}

func (f *upstreamFinder) find(c *config.Config) (string, string, string) {
	benchPath := filepath.Join(c.State.Dir, benchResultsFile)
	statusPath := filepath.Join(c.State.Dir, statusCacheFile)
	key := finderKey{c.Sync.Upstream, c.Sync.HTTPUpstream, stamp(benchPath), stamp(statusPath)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done && f.key == key {
		return f.url, f.from, f.note
	}
	src := upstreamSources{Config: c}
	if key.bench.size >= 0 {
		src.Bench, _ = readBenchReport(c.State.Dir) // unreadable: the other sources
	}
	if key.status.size >= 0 && c.Sync.Upstream != "" {
		src.Status, _ = (&mirrorlists.StatusCache{Path: statusPath}).Cached()
	}
	f.url, f.from, f.note = findUpstreamHTTP(src)
	f.key, f.done = key, true
	return f.url, f.from, f.note
}

// upstreamSources is what AMWI knows of mirrors: the settings, the last benchmark's
// results and archlinux.org's mirror status as last fetched (each may be nil).
type upstreamSources struct {
	Config *config.Config
	Bench  *web.BenchReport
	Status *mirrorlists.Status
}

// findUpstreamHTTP finds the HTTP(S) root of the configured rsync upstream: the mirror
// that rsync://HOST/MODULE/ is, spoken to over HTTP, for pacman clients to fall back on.
// In order:
//
//  1. sync.http_upstream when it is on the upstream's host (the benchmark's "use as
//     upstream" sets both from one mirror);
//  2. the last benchmark's result for that rsync URL (its measured http(s) URL);
//  3. archlinux.org's mirror status, as last fetched: the entry paired with that rsync
//     URL, else an http(s) entry of the same host;
//  4. sync.http_upstream on another host: still the HTTP mirror this box is set to use.
//
// Nothing is invented: when none knows one, url is "" and note says so and what to do.
// from says which source answered. Every URL returned passed config.CheckHTTPUpstream.
func findUpstreamHTTP(src upstreamSources) (u, from, note string) {
	c := src.Config
	httpUp := ""
	if c.Sync.HTTPUpstream != "" && config.CheckHTTPUpstream(c.Sync.HTTPUpstream) == nil {
		httpUp = c.Sync.HTTPUpstream
	}
	if c.Sync.Upstream == "" {
		if httpUp != "" {
			return httpUp, "sync.http_upstream", ""
		}
		return "", "", "No upstream is configured yet: run the upstream benchmark and use its best mirror, or set sync.upstream and sync.http_upstream."
	}
	want, host := normRsync(c.Sync.Upstream)
	if httpUp != "" && urlHost(httpUp) == host {
		return httpUp, "sync.http_upstream", ""
	}
	if src.Bench != nil {
		for _, r := range src.Bench.Results {
			if n, _ := normRsync(r.RsyncURL); n == want && r.URL != "" && config.CheckHTTPUpstream(r.URL) == nil {
				return r.URL, "the last upstream benchmark", ""
			}
		}
	}
	if src.Status != nil {
		var sameHost string
		for _, cand := range mirrorlists.CandidatesFromStatus(src.Status, "") {
			if cand.HTTPURL == "" || config.CheckHTTPUpstream(cand.HTTPURL) != nil {
				continue
			}
			if n, _ := normRsync(cand.RsyncURL); n == want {
				return cand.HTTPURL, "archlinux.org's mirror status", ""
			}
			if sameHost == "" && urlHost(cand.HTTPURL) == host {
				sameHost = cand.HTTPURL
			}
		}
		if sameHost != "" {
			return sameHost, "archlinux.org's mirror status", ""
		}
	}
	if httpUp != "" {
		return httpUp, "sync.http_upstream", ""
	}
	// want, not the setting: the note is public, and an rsync user name is no one's business.
	return "", "", "The upstream " + cmp.Or(want, "in sync.upstream") + " has no HTTP address AMWI knows of (not in the last benchmark nor in the mirror status): set sync.http_upstream, or run the upstream benchmark, to list it here."
}

// normRsync writes an rsync source as rsync://host[:port]/module/path/ (host lower-case,
// one trailing slash), so that HOST::MODULE/PATH and the URL form compare equal, and
// returns its host too.
func normRsync(s string) (norm, host string) {
	if s == "" {
		return "", ""
	}
	if h, rest, ok := strings.Cut(s, "::"); ok && !strings.Contains(h, "/") {
		s = "rsync://" + h + "/" + rest
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "rsync" {
		return "", ""
	}
	host = strings.ToLower(u.Hostname())
	return "rsync://" + strings.ToLower(u.Host) + "/" + strings.Trim(u.Path, "/") + "/", host
}

// urlHost is the lower-case host name of an http(s) URL ("" when it has none).
func urlHost(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}
