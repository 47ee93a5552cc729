package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/amwi/amwi/internal/archtest"
)

// httpUpstream serves an Arch tree over HTTP on 127.0.0.1, as an upstream mirror's web
// server does, and logs every request. slow, when set, makes package bodies trickle.
type httpUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	log  []string
	slow time.Duration // per 64 KiB
}

func newHTTPUpstream(t *testing.T, root string) *httpUpstream {
	t.Helper()
	u := &httpUpstream{}
	files := http.FileServer(http.Dir(root))
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.log = append(u.log, r.Method+" "+r.URL.Path+" "+r.Header.Get("Range"))
		slow := u.slow
		u.mu.Unlock()
		if slow > 0 {
			w = &slowWriter{ResponseWriter: w, per: slow}
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// requests returns the logged requests whose path contains sub.
func (u *httpUpstream) requests(sub string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, l := range u.log {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

func (u *httpUpstream) setSlow(d time.Duration) { u.mu.Lock(); u.slow = d; u.mu.Unlock() }

type slowWriter struct {
	http.ResponseWriter
	per time.Duration
}

func (s *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 64<<10)
		m, err := s.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		if f, ok := s.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		time.Sleep(s.per)
		p = p[k:]
	}
	return n, nil
}

// usedConfig writes an amwi.toml for a used-mode mirror syncing from rsyncURL with
// httpURL for misses.
func usedConfig(t *testing.T, dir, mirror, rsyncURL, httpURL, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`[server]
listen = "127.0.0.1:0"

[mirror]
root = %q
repos = ["core", "extra"]
packages = "used"
%s
[sync]
upstream = %q
http_upstream = %q
interval = "24h"
min_free_gib = 0

[state]
dir = %q
`, mirror, extra, rsyncURL, httpURL, filepath.Join(dir, "state"))
	path := filepath.Join(dir, "amwi.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// usedEnv is a used-mode amwi's world: an upstream tree behind a real rsync daemon and an
// HTTP server, a mirror dir and its config, synced once (databases only).
type usedEnv struct {
	dir, up, mirror, cfg string
	tree                 *archtest.Tree
	rsync                *archtest.Rsyncd
	http                 *httpUpstream
}

func newUsedEnv(t *testing.T, extra string, repos ...archtest.Repo) *usedEnv {
	t.Helper()
	e := &usedEnv{dir: t.TempDir()}
	e.up, e.mirror = filepath.Join(e.dir, "upstream"), filepath.Join(e.dir, "mirror")
	e.tree = archtest.BuildTree(t, e.up, repos...)
	e.rsync = archtest.StartRsyncd(t, e.up)
	e.http = newHTTPUpstream(t, e.up)
	os.MkdirAll(e.mirror, 0o755)
	e.cfg = usedConfig(t, e.dir, e.mirror, e.rsync.URL, e.http.URL+"/", extra)
	e.sync(t)
	return e
}

func (e *usedEnv) sync(t *testing.T) {
	t.Helper()
	if out, code := run(t, nil, nil, "-c", e.cfg, "sync"); code != 0 {
		t.Fatalf("amwi sync: exit %d\n%s", code, out)
	}
}

func poolOf(t *testing.T, mirror string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(mirror, "pool"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, filepath.Base(p))
		}
		return nil
	})
	return out
}

func fetchURL(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := http.Client{Timeout: 60 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp, b
}

var usedRepos = []archtest.Repo{
	{Name: "core", Pkgs: []archtest.Pkg{
		{Name: "glibc", Version: "2.40+r16-1", Desc: "GNU C Library"},
		{Name: "bash", Version: "5.2.037-1", Desc: "The GNU Bourne Again shell", Depends: []string{"glibc>=2.40"}},
	}},
	{Name: "extra", Pkgs: []archtest.Pkg{
		{Name: "hello", Version: "2:2.12.1-3", Desc: "Prints a friendly greeting", Depends: []string{"bash"}},
		{Name: "nodesc", Version: "0.1-1"},
		{Name: "bigdata", Version: "1.0-1", Desc: "A large package", PayloadSize: 20 << 20},
		{Name: "resumed", Version: "1.0-1", Desc: "resumed by pacman", PayloadSize: 4 << 20},
	}},
}

// TestUsedMode is "used" mode end to end, with a real rsync daemon for the databases, an
// HTTP upstream on loopback over the same tree, and real pacman clients.
func TestUsedMode(t *testing.T) {
	t.Parallel()
	archtest.Require(t, "pacman", "repo-add", "bsdtar", "rsync")
	// A fresh used-mode mirror: the databases, no package files.
	e := newUsedEnv(t, "", usedRepos...)
	dir, up, tr, hu, mirror, cfg := e.dir, e.up, e.tree, e.http, e.mirror, e.cfg
	if p := poolOf(t, mirror); len(p) != 0 {
		t.Fatalf("a fresh used-mode mirror holds package files: %v", p)
	}
	if out, code := run(t, nil, nil, "-c", cfg, "verify"); code != 0 || !strings.Contains(out, "fetched on first request") {
		t.Errorf("amwi verify of a fresh used-mode mirror: exit %d\n%s", code, out)
	}
	_, base := serve(t, cfg)

	// pacman -S hello: four misses (hello, bash, glibc and nothing else), each fetched
	// once, checked, kept and installed.
	conf := archtest.PacmanConf(t, filepath.Join(dir, "client1"), base+"/archlinux", "core", "extra")
	archtest.Pacman(t, conf, "-Sy")
	out := archtest.Pacman(t, conf, "-S", "hello")
	for _, f := range []string{"usr/share/hello/README", "usr/share/bash/README", "usr/share/glibc/README"} {
		if _, err := os.Stat(filepath.Join(dir, "client1", "root", f)); err != nil {
			t.Errorf("after pacman -S hello, %s is not installed: %v\n%s", f, err, out)
		}
	}
	pkgs := usedRepos[0].Pkgs[:2:2]
	pkgs = append(pkgs, usedRepos[1].Pkgs[0])
	for _, p := range pkgs {
		if n := len(hu.requests(p.FileName())); n == 0 || n > 2 { // the package, and its .sig if pacman asked
			t.Errorf("upstream saw %d requests for %s, want the package once", n, p.FileName())
		}
		if _, err := os.Stat(filepath.Join(mirror, "pool", "packages", p.FileName())); err != nil {
			t.Errorf("%s was not kept after its miss: %v", p.FileName(), err)
		}
	}
	before := len(hu.requests(".pkg.tar"))

	// A second client: all hits, the upstream hears nothing.
	conf2 := archtest.PacmanConf(t, filepath.Join(dir, "client2"), base+"/archlinux", "core", "extra")
	archtest.Pacman(t, conf2, "-Sy")
	archtest.Pacman(t, conf2, "-S", "hello")
	if n := len(hu.requests(".pkg.tar")); n != before {
		t.Errorf("the second client's install reached the upstream: %v", hu.requests(".pkg.tar")[before:])
	}

	// A file no database names: 404 without any upstream traffic.
	if resp, _ := fetchURL(t, base+"/archlinux/extra/os/x86_64/made-up-1-1-x86_64.pkg.tar.zst"); resp.StatusCode != 404 {
		t.Errorf("unnamed file: %d, want 404", resp.StatusCode)
	}
	if r := hu.requests("made-up"); len(r) != 0 {
		t.Errorf("an unnamed file reached the upstream: %v", r)
	}

	// Five clients at once for one uncached 20 MiB package: one upstream fetch, five
	// complete, identical files.
	big := usedRepos[1].Pkgs[2]
	want, err := os.ReadFile(filepath.Join(up, big.PoolPath()))
	if err != nil {
		t.Fatal(err)
	}
	hu.setSlow(5 * time.Millisecond) // ~13 MB/s: the five overlap
	var wg sync.WaitGroup
	sums := make([][32]byte, 5)
	codes := make([]int, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, b := fetchURL(t, base+"/archlinux/extra/os/x86_64/"+big.FileName())
			codes[i], sums[i] = resp.StatusCode, sha256.Sum256(b)
		}()
	}
	wg.Wait()
	hu.setSlow(0)
	for i := range 5 {
		if codes[i] != 200 || sums[i] != sha256.Sum256(want) {
			t.Errorf("concurrent client %d: status %d, body differs from upstream's: %v", i, codes[i], sums[i] != sha256.Sum256(want))
		}
	}
	if r := hu.requests(big.FileName()); len(r) != 1 {
		t.Errorf("five concurrent misses made %d upstream requests, want 1: %v", len(r), r)
	}

	// pacman resumes a .part on a miss: the Range request is answered from the fetch.
	res := usedRepos[1].Pkgs[3]
	resWant, _ := os.ReadFile(filepath.Join(up, res.PoolPath()))
	cache := filepath.Join(dir, "client2", "cache", res.FileName())
	os.WriteFile(cache+".part", resWant[:len(resWant)/3], 0o644)
	out = archtest.Pacman(t, conf2, "-Sw", "resumed", "--debug")
	if !strings.Contains(out, "attempting continuation from") {
		t.Errorf("pacman did not resume the .part download:\n%s", strings.Join(lines(out, "resumed"), "\n"))
	}
	if got, err := os.ReadFile(cache); err != nil || !bytes.Equal(got, resWant) {
		t.Errorf("resumed package differs from upstream's (err %v, %d vs %d bytes)", err, len(got), len(resWant))
	}

	// Upstream publishes a new hello: the next sync has it on disk before anyone asks;
	// nodesc, which nobody used, never arrives.
	hello2 := usedRepos[1].Pkgs[0]
	hello2.Version = "2:2.12.1-4"
	tr.AddPackages(t, "extra", hello2)
	before = len(hu.requests(".pkg.tar"))
	e.sync(t)
	if _, err := os.Stat(filepath.Join(mirror, hello2.PoolPath())); err != nil {
		t.Errorf("the new hello is not on disk after the sync: %v", err)
	}
	if _, err := os.Stat(filepath.Join(mirror, usedRepos[1].Pkgs[1].PoolPath())); err == nil {
		t.Errorf("nodesc, never downloaded, is on disk")
	}
	archtest.Pacman(t, conf, "-Syu")
	if n := len(hu.requests(".pkg.tar")); n != before {
		t.Errorf("pacman -Syu after the sync reached the upstream: %v", hu.requests(".pkg.tar")[before:])
	}
}

// TestUsedModeUpstreamDown: an upstream that refuses or never answers costs a client at
// most ~15 s and a 502/504, so pacman moves on to its next Server line; a kill -9 during a
// miss leaves nothing partial to serve after the restart.
func TestUsedModeUpstreamTrouble(t *testing.T) {
	t.Parallel()
	archtest.Require(t, "repo-add", "bsdtar", "rsync")
	e := newUsedEnv(t, "", usedRepos...)
	dir, up, rd, hu, mirror, cfg := e.dir, e.up, e.rsync, e.http, e.mirror, e.cfg

	// kill -9 in the middle of a miss.
	big := usedRepos[1].Pkgs[2]
	hu.setSlow(20 * time.Millisecond) // ~3 MB/s: 20 MiB take ~7 s
	p, base := serve(t, cfg)
	resp, err := http.Get(base + "/archlinux/extra/os/x86_64/" + big.FileName())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1<<20)); err != nil {
		t.Fatalf("reading the start of a miss: %v", err)
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	resp.Body.Close()
	hu.setSlow(0)
	if _, err := os.Stat(filepath.Join(mirror, big.PoolPath())); err == nil {
		t.Errorf("after kill -9 during its miss, %s is in the pool", big.FileName())
	}
	p, base = serve(t, cfg)
	want, _ := os.ReadFile(filepath.Join(up, big.PoolPath()))
	if resp, got := fetchURL(t, base+"/archlinux/extra/os/x86_64/"+big.FileName()); resp.StatusCode != 200 || !bytes.Equal(got, want) {
		t.Errorf("after the restart: status %d, %d bytes, want the whole package (%d)", resp.StatusCode, len(got), len(want))
	}
	if left, _ := os.ReadDir(filepath.Join(mirror, ".amwi", "fetch")); len(left) != 0 {
		t.Errorf("leftovers of the killed fetch: %v", left)
	}

	// Upstream down (connection refused), then one that accepts and never answers.
	hu.Close()
	start := time.Now()
	resp, _ = fetchURL(t, base+"/archlinux/core/os/x86_64/"+usedRepos[0].Pkgs[0].FileName())
	if resp.StatusCode != 502 && resp.StatusCode != 504 || time.Since(start) > 16*time.Second {
		t.Errorf("upstream down: %d after %s, want 502/504 within ~15 s", resp.StatusCode, time.Since(start).Round(time.Millisecond))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepted, never answered
		}
	}()
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, 30*time.Second)
	cfg = usedConfig(t, dir, mirror, rd.URL, "http://"+l.Addr().String()+"/", "")
	_, base = serve(t, cfg)
	start = time.Now()
	resp, _ = fetchURL(t, base+"/archlinux/core/os/x86_64/"+usedRepos[0].Pkgs[1].FileName())
	if resp.StatusCode != 504 && resp.StatusCode != 502 || time.Since(start) > 16*time.Second {
		t.Errorf("upstream hangs: %d after %s, want 504 within ~15 s", resp.StatusCode, time.Since(start).Round(time.Millisecond))
	}
}

// TestUsedModeBudgetBetweenSyncs: misses that take the pool past mirror.max_gib make the
// least recently downloaded packages go at once, not only at the next sync.
func TestUsedModeBudgetBetweenSyncs(t *testing.T) {
	t.Parallel()
	archtest.Require(t, "repo-add", "bsdtar", "rsync")
	var pkgs []archtest.Pkg
	for _, n := range []string{"one", "two", "three"} {
		pkgs = append(pkgs, archtest.Pkg{Name: n, Version: "1-1", Desc: n, PayloadSize: 3 << 20})
	}
	e := newUsedEnv(t, "max_gib = 0.007\n", archtest.Repo{Name: "core"}, archtest.Repo{Name: "extra", Pkgs: pkgs}) // ~7.2 MiB: two of the three
	mirror := e.mirror
	_, base := serve(t, e.cfg)
	for _, p := range pkgs {
		for _, f := range []string{p.FileName(), p.FileName() + ".sig"} {
			if resp, _ := fetchURL(t, base+"/archlinux/extra/os/x86_64/"+f); resp.StatusCode != 200 {
				t.Fatalf("GET %s: %d", f, resp.StatusCode)
			}
		}
	}
	want := []string{pkgs[1].FileName(), pkgs[1].FileName() + ".sig", pkgs[2].FileName(), pkgs[2].FileName() + ".sig"}
	sort.Strings(want)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := poolOf(t, mirror)
		sort.Strings(got)
		if strings.Join(got, " ") == strings.Join(want, " ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool over the budget after three misses: %v, want %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUsedModeInBrowser: what an owner sees of used mode in a real browser — the
// Overview's card after a client installed through misses, search marking what is on
// disk, the Settings page's Packages section — with screenshots in e2e/artifacts.
func TestUsedModeInBrowser(t *testing.T) {
	t.Parallel()
	archtest.Require(t, "pacman", "repo-add", "bsdtar", "rsync", "chromium")
	e := newUsedEnv(t, "max_gib = 10\n", usedRepos[0], archtest.Repo{Name: "extra", Pkgs: usedRepos[1].Pkgs[:2]})
	p, base := serve(t, e.cfg)
	conf := archtest.PacmanConf(t, filepath.Join(e.dir, "client"), base+"/archlinux", "core", "extra")
	archtest.Pacman(t, conf, "-Sy")
	archtest.Pacman(t, conf, "-S", "bash")
	ctx := browser(t)
	shots := artifacts(t)
	do := func(step string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v\ndaemon:\n%s", step, err, p.Output())
		}
	}
	var text string
	do("register", registerForm(t, base, p), registered)
	do("overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(`main`, chromedp.ByQuery),
		chromedp.Text(`main`, &text, chromedp.ByQuery), screenshot(shots, "used-01-overview"))
	for _, want := range []string{"packages: used mode", "2 fetched on request", "a full mirror of these repos would need", "of them fetched on first request"} {
		if !strings.Contains(strings.ToLower(text), want) { // headings are upper-cased by CSS
			t.Errorf("overview lacks %q:\n%s", want, text)
		}
	}
	do("search", chromedp.Navigate(base+"/search?q=e"), chromedp.WaitVisible(`main`, chromedp.ByQuery),
		chromedp.Text(`main`, &text, chromedp.ByQuery), screenshot(shots, "used-02-search"))
	if !strings.Contains(text, "on disk") || !strings.Contains(text, "fetched on first request") {
		t.Errorf("search does not mark what is on disk:\n%s", text)
	}
	do("settings", chromedp.Navigate(base+"/settings"), chromedp.WaitVisible(`select[name="mirror.packages"]`, chromedp.ByQuery),
		chromedp.Text(`main`, &text, chromedp.ByQuery), screenshot(shots, "used-03-settings"))
	if !strings.Contains(text, "Switching to all would fetch about") {
		t.Errorf("settings page does not say what switching does:\n%.2000s", text)
	}
}

// TestUsedModeSwitching: used → all fetches the rest at the next sync (and a client asking
// before it is served from the upstream, not told 404); all → used frees what nobody used.
func TestUsedModeSwitching(t *testing.T) {
	t.Parallel()
	archtest.Require(t, "repo-add", "bsdtar", "rsync")
	e := newUsedEnv(t, "", usedRepos[0], archtest.Repo{Name: "extra", Pkgs: usedRepos[1].Pkgs[:2]})
	hello := usedRepos[1].Pkgs[0]
	p, base := serve(t, e.cfg)
	if resp, _ := fetchURL(t, base+"/archlinux/extra/os/x86_64/"+hello.FileName()); resp.StatusCode != 200 {
		t.Fatalf("miss: %d", resp.StatusCode)
	}
	p.cmd.Process.Signal(syscall.SIGTERM) // flushes the traffic record: hello is used
	p.wait(t, 30*time.Second)

	// used → all.
	all := strings.Replace(readFile(t, e.cfg), `packages = "used"`, `packages = "all"`, 1)
	os.WriteFile(e.cfg, []byte(all), 0o644)
	p, base = serve(t, e.cfg)
	nodesc := usedRepos[1].Pkgs[1]
	if resp, _ := fetchURL(t, base+"/archlinux/extra/os/x86_64/"+nodesc.FileName()); resp.StatusCode != 200 {
		t.Errorf("a package the just-switched full mirror lacks: %d, want it fetched", resp.StatusCode)
	}
	e.sync(t)
	if got := len(poolOf(t, e.mirror)); got != 8 {
		t.Errorf("after used → all and a sync the pool holds %d files, want all 4 packages and their .sig: %v", got, poolOf(t, e.mirror))
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, 30*time.Second)

	// all → used: what was not downloaded goes (nodesc was, through its miss).
	used := strings.Replace(all, `packages = "all"`, `packages = "used"`, 1)
	os.WriteFile(e.cfg, []byte(used), 0o644)
	e.sync(t)
	want := []string{hello.FileName(), nodesc.FileName()}
	sort.Strings(want)
	got := poolOf(t, e.mirror)
	sort.Strings(got)
	var pkgs []string
	for _, f := range got {
		if !strings.HasSuffix(f, ".sig") {
			pkgs = append(pkgs, f)
		}
	}
	if strings.Join(pkgs, " ") != strings.Join(want, " ") {
		t.Errorf("after all → used the pool holds %v, want the downloaded packages %v", got, want)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
