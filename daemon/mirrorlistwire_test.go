package daemon

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/bench"
	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/mirrorlists"
	"github.com/amwi/amwi/web"
)

// realStatus reads a real archlinux.org mirror status capture in place (see
// shared/data/arch-real/README.md beside the repository).
func realStatus(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "shared", "data", "arch-real", name))
	if err != nil {
		t.Fatalf("real Arch data missing: %v", err)
	}
	return data
}

// TestFindUpstreamHTTP: the configured rsync upstream's HTTP address comes from what
// AMWI knows (settings, the last benchmark, the real mirror status), never from a guess.
func TestFindUpstreamHTTP(t *testing.T) {
	status, err := mirrorlists.ParseStatus(realStatus(t, "mirrors-status.json"))
	if err != nil {
		t.Fatal(err)
	}
	rep := &web.BenchReport{Results: []bench.Result{
		{Host: "fast.example", URL: "https://fast.example/arch/", RsyncURL: "rsync://rsync.fast.example/arch/"},
		{Host: "bad.example", URL: "https://bad.example/$repo/", RsyncURL: "rsync://bad.example/arch/"},
	}}
	cfg := func(up, httpUp string) *config.Config {
		c := config.Default()
		c.Sync.Upstream, c.Sync.HTTPUpstream = up, httpUp
		return c
	}
	tests := []struct {
		name           string
		src            upstreamSources
		url, from, say string
	}{
		{"nothing configured", upstreamSources{Config: cfg("", "")}, "", "", "No upstream is configured yet"},
		{"http upstream only", upstreamSources{Config: cfg("", "https://h.example/arch/")}, "https://h.example/arch/", "sync.http_upstream", ""},
		{"http upstream on the same host", upstreamSources{Config: cfg("rsync://h.example/arch/", "https://H.example/archlinux/"), Bench: rep, Status: status},
			"https://H.example/archlinux/", "sync.http_upstream", ""},
		{"benchmark, URL form", upstreamSources{Config: cfg("rsync://rsync.fast.example/arch", ""), Bench: rep}, "https://fast.example/arch/", "the last upstream benchmark", ""},
		{"benchmark, HOST::MODULE form", upstreamSources{Config: cfg("RSYNC.fast.example::arch/", ""), Bench: rep}, "https://fast.example/arch/", "the last upstream benchmark", ""},
		{"benchmark URL not a mirror root", upstreamSources{Config: cfg("rsync://bad.example/arch/", ""), Bench: rep}, "", "", "has no HTTP address AMWI knows of"},
		// Real archlinux.org data: the http path differs from the rsync module.
		{"status, other path", upstreamSources{Config: cfg("rsync://mirror.aarnet.edu.au/archlinux/", ""), Bench: rep, Status: status},
			"https://mirror.aarnet.edu.au/pub/archlinux/", "archlinux.org's mirror status", ""},
		{"status, https preferred", upstreamSources{Config: cfg("rsync://mirrors.rit.edu/archlinux/", ""), Status: status},
			"https://mirrors.rit.edu/archlinux/", "archlinux.org's mirror status", ""},
		{"status, rsync on another name", upstreamSources{Config: cfg("rsync.gtlib.gatech.edu::archlinux/", ""), Status: status},
			"http://www.gtlib.gatech.edu/pub/archlinux/", "archlinux.org's mirror status", ""},
		{"status, same host, other module", upstreamSources{Config: cfg("rsync://mirror.aarnet.edu.au/other/", ""), Status: status},
			"https://mirror.aarnet.edu.au/pub/archlinux/", "archlinux.org's mirror status", ""},
		{"unknown host, http upstream elsewhere", upstreamSources{Config: cfg("rsync://unknown.example/arch/", "https://h.example/arch/"), Bench: rep, Status: status},
			"https://h.example/arch/", "sync.http_upstream", ""},
		{"unknown host", upstreamSources{Config: cfg("rsync://unknown.example/arch/", ""), Bench: rep, Status: status},
			"", "", "The upstream rsync://unknown.example/arch/ has no HTTP address AMWI knows of"},
		{"unknown host, rsync user kept out of the public note", upstreamSources{Config: cfg("rsync://tier2user@unknown.example/arch/", "")},
			"", "", "The upstream rsync://unknown.example/arch/ has no HTTP address AMWI knows of"},
		{"unknown host, daemon form", upstreamSources{Config: cfg("tier2user@Unknown.example::arch", "")},
			"", "", "The upstream rsync://unknown.example/arch/ has no HTTP address AMWI knows of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, from, note := findUpstreamHTTP(tt.src)
			if u != tt.url || from != tt.from {
				t.Errorf("got %q from %q (note %q), want %q from %q", u, from, note, tt.url, tt.from)
			}
			if u != "" && config.CheckHTTPUpstream(u) != nil {
				t.Errorf("%q is not a mirror root", u)
			}
			if (u == "") != (note != "") || !strings.Contains(note, tt.say) {
				t.Errorf("note %q, want one saying %q exactly when no URL is known", note, tt.say)
			}
		})
	}
}

// TestUpstreamFinderFollowsFiles: the answer is kept between requests and worked out
// again when the benchmark's results or the mirror status change on disk.
func TestUpstreamFinderFollowsFiles(t *testing.T) {
	c := config.Default()
	c.State.Dir = t.TempDir()
	c.Sync.Upstream = "rsync://mirror.aarnet.edu.au/archlinux/"
	var f upstreamFinder
	if u, _, note := f.find(c); u != "" || note == "" {
		t.Fatalf("with nothing known: %q, note %q", u, note)
	}
	// The status cache as the benchmark keeps it.
	cache, _ := json.Marshal(map[string]any{"url": c.Bench.StatusURL, "fetched_at": time.Now().UTC(), "status": json.RawMessage(realStatus(t, "mirrors-status.json"))})
	if err := os.WriteFile(filepath.Join(c.State.Dir, statusCacheFile), cache, 0o644); err != nil {
		t.Fatal(err)
	}
	if u, from, _ := f.find(c); u != "https://mirror.aarnet.edu.au/pub/archlinux/" || from != "archlinux.org's mirror status" {
		t.Fatalf("after the status was kept: %q from %q", u, from)
	}
	rep, _ := json.Marshal(web.BenchReport{Results: []bench.Result{{Host: "mirror.aarnet.edu.au", URL: "https://mirror.aarnet.edu.au/measured/", RsyncURL: c.Sync.Upstream}}})
	if err := os.WriteFile(filepath.Join(c.State.Dir, benchResultsFile), rep, 0o644); err != nil {
		t.Fatal(err)
	}
	if u, from, _ := f.find(c); u != "https://mirror.aarnet.edu.au/measured/" || from != "the last upstream benchmark" {
		t.Fatalf("after a benchmark: %q from %q", u, from)
	}
	c2 := c.Clone()
	c2.Sync.HTTPUpstream = "https://mirror.aarnet.edu.au/set/"
	if u, from, _ := f.find(c2); u != "https://mirror.aarnet.edu.au/set/" || from != "sync.http_upstream" {
		t.Fatalf("after a settings change: %q from %q", u, from)
	}
}

// TestPublicURLAcceptedIsUsed: a server.public_url the config check (and so the Settings
// page) accepts is the base /mirrorlist writes, never silently replaced by the request's
// host because web finds it unfit for a Server line.
func TestPublicURLAcceptedIsUsed(t *testing.T) {
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, v := range []string{
		"http://pi.lan:8000/", "https://Proxy.LAN/mirror", "http://[fd00::5]:8080/", "http://192.168.1.5/a~b_c-d.e/",
		"http://pi.lan/a;b=c,d/", "http://pi.lan/!x*(y)+/", "http://pi.lan/a:b@c/", "http://pi.lan/a&b/",
		"http://pi.lan/%23/", "http://pi.lan/%7Ex/", "http://pi.lan/a%20b/", "http://pi.lan/?x", "http://pi.lan/#x",
	} {
		base, err := config.CheckPublicURL(v)
		if err != nil {
			continue // refused at load and in Settings: nothing to use
		}
		h := web.NewHandler(web.Options{MirrorRoot: root, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test",
			Now:        time.Now,
			Proxies:    func() web.Proxies { return web.Proxies{} },
			Mirrorlist: func() web.MirrorlistInfo { return web.MirrorlistInfo{PublicBase: base} }})
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/mirrorlist", nil)
		r.Host = "other.lan"
		h.ServeHTTP(w, r)
		if want := "\nServer = " + base + web.MirrorPrefix + "$repo/os/$arch\n"; !strings.Contains(w.Body.String(), want) {
			t.Errorf("public_url %q accepted (base %q), but /mirrorlist does not write %q:\n%s", v, base, want, w.Body.String())
		}
	}
}
