package ondemand

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amwi/amwi/internal/layout"
)

// pkg is one package of a test tree: its bytes, its detached signature and where its
// link points.
type pkg struct {
	repo, file string
	pool       string // "packages" or "community"
	data, sig  []byte
	noPGPSig   bool // the database has no %PGPSIG% for it
}

// name is the package's mirror-relative request name.
func (p *pkg) name() string { return layout.RepoDir(p.repo) + "/" + p.file }

// poolPath is where its link leads, under root.
func (p *pkg) poolPath(root string) string { return filepath.Join(root, "pool", p.pool, p.file) }

var seed atomic.Uint64

// mkpkg makes a package of size random bytes with a random ~300-byte signature.
func mkpkg(repo, file string, size int) *pkg {
	r := rand.NewChaCha8([32]byte{byte(seed.Add(1)), 7})
	p := &pkg{repo: repo, file: file, pool: "packages", data: make([]byte, size), sig: make([]byte, 300)}
	r.Read(p.data)
	r.Read(p.sig)
	return p
}

// tree is a mirror root in "used" mode (databases and dangling links, no pool files) and
// an upstream tree holding every file.
type tree struct {
	root, up string
	pkgs     []*pkg
}

func newTree(t testing.TB, pkgs ...*pkg) *tree {
	t.Helper()
	tr := &tree{root: t.TempDir(), up: t.TempDir(), pkgs: pkgs}
	byRepo := map[string][]*pkg{}
	for _, p := range pkgs {
		byRepo[p.repo] = append(byRepo[p.repo], p)
		dir := layout.RepoPath(tr.root, p.repo)
		must(t, os.MkdirAll(dir, 0o755))
		rel := "../../../pool/" + p.pool + "/" + p.file
		must(t, os.Symlink(rel, filepath.Join(dir, p.file)))
		must(t, os.Symlink(rel+".sig", filepath.Join(dir, p.file+".sig")))
		updir := layout.RepoPath(tr.up, p.repo)
		must(t, os.MkdirAll(updir, 0o755))
		must(t, os.WriteFile(filepath.Join(updir, p.file), p.data, 0o644))
		must(t, os.WriteFile(filepath.Join(updir, p.file+".sig"), p.sig, 0o644))
	}
	for repo, ps := range byRepo {
		tr.writeDB(t, repo, ps)
	}
	return tr
}

// writeDB writes repo's database as repo-add lays it out: REPO.db → REPO.db.tar.gz, a
// gzip'd tar of NAME-VER-REL/desc.
func (tr *tree) writeDB(t testing.TB, repo string, ps []*pkg) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for i, p := range ps {
		sum := sha256.Sum256(p.data)
		dir := fmt.Sprintf("pkg%d-1.0-1/", i)
		desc := fmt.Sprintf("%%FILENAME%%\n%s\n\n%%NAME%%\npkg%d\n\n%%VERSION%%\n1.0-1\n\n%%CSIZE%%\n%d\n\n%%SHA256SUM%%\n%s\n\n%%ARCH%%\nx86_64\n\n",
			p.file, i, len(p.data), hex.EncodeToString(sum[:]))
		if !p.noPGPSig {
			desc += "%PGPSIG%\n" + base64.StdEncoding.EncodeToString(p.sig) + "\n\n"
		}
		must(t, tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755}))
		must(t, tw.WriteHeader(&tar.Header{Name: dir + "desc", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(desc))}))
		_, err := io.WriteString(tw, desc)
		must(t, err)
	}
	must(t, tw.Close())
	must(t, zw.Close())
	dir := layout.RepoPath(tr.root, repo)
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, repo+".db.tar.gz"), b.Bytes(), 0o644))
	os.Remove(filepath.Join(dir, repo+".db"))
	must(t, os.Symlink(repo+".db.tar.gz", filepath.Join(dir, repo+".db")))
}

func (tr *tree) repos() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range tr.pkgs {
		if !seen[p.repo] {
			seen[p.repo] = true
			out = append(out, p.repo)
		}
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// upstream is an httptest mirror over a tree, served below /arch/, with a request log
// and ways to misbehave.
type upstream struct {
	srv  *httptest.Server
	dir  string
	base string // srv.URL + "/arch/"

	mu   sync.Mutex
	reqs []upReq

	// Set before the first request.
	status      int           // answer every request with this status
	hang        bool          // never send headers
	cut         int64         // per response: abort the connection after this many body bytes
	stallAt     int64         // per response: stop sending after this many body bytes, keep the connection
	corrupt     bool          // flip a byte in the middle
	extra       int           // append bytes
	short       int           // drop bytes from the end
	chunked     bool          // no Content-Length
	ignoreRange bool          // answer a Range request with the whole file, 200
	refuseRange bool          // answer a Range request with 404
	gateAt      int64         // with gate: pause the first response after this many bytes
	gate        chan struct{} // until this is closed
	reached     chan struct{} // closed when a response reached gateAt
	release     chan struct{} // closed at cleanup: ends hangs and stalls
	once        sync.Once
}

type upReq struct {
	path, rng string
}

func newUpstream(t testing.TB, dir string) *upstream {
	t.Helper()
	u := &upstream{dir: dir, release: make(chan struct{}), reached: make(chan struct{})}
	u.srv = httptest.NewServer(u)
	u.base = u.srv.URL + "/arch/"
	t.Cleanup(func() {
		close(u.release)
		u.srv.Close()
	})
	return u
}

func (u *upstream) requests() []upReq {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]upReq(nil), u.reqs...)
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.reqs = append(u.reqs, upReq{r.URL.Path, r.Header.Get("Range")})
	u.mu.Unlock()
	if u.hang {
		select {
		case <-r.Context().Done():
		case <-u.release:
		}
		return
	}
	if u.status != 0 {
		http.Error(w, "nope", u.status)
		return
	}
	rel, ok := strings.CutPrefix(r.URL.Path, "/arch/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	data, err := os.ReadFile(filepath.Join(u.dir, filepath.FromSlash(path.Clean(rel))))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if u.corrupt {
		data = bytes.Clone(data)
		data[len(data)/2] ^= 0xff
	}
	data = append(data[:len(data)-u.short:len(data)-u.short], bytes.Repeat([]byte{'x'}, u.extra)...)
	code, start := http.StatusOK, 0
	if rg := r.Header.Get("Range"); rg != "" {
		if u.refuseRange {
			http.NotFound(w, r)
			return
		}
		if !u.ignoreRange {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
			if err != nil || n >= len(data) {
				http.Error(w, "bad range", http.StatusRequestedRangeNotSatisfiable)
				return
			}
			start, code = n, http.StatusPartialContent
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(data)-1, len(data)))
		}
	}
	body := data[start:]
	if !u.chunked {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(code)
	rc := http.NewResponseController(w)
	var sent int64
	for len(body) > 0 {
		n := min(len(body), 32<<10)
		if u.gate != nil && sent+int64(n) > u.gateAt {
			first := false
			u.once.Do(func() { first = true })
			if first {
				n = int(u.gateAt - sent)
				w.Write(body[:n])
				sent += int64(n)
				body = body[n:]
				rc.Flush()
				close(u.reached)
				select {
				case <-u.gate:
				case <-r.Context().Done():
					return
				}
				continue
			}
		}
		if u.cut > 0 && sent+int64(n) > u.cut {
			w.Write(body[:u.cut-sent])
			rc.Flush()
			panic(http.ErrAbortHandler)
		}
		if u.stallAt > 0 && sent+int64(n) > u.stallAt {
			w.Write(body[:u.stallAt-sent])
			rc.Flush()
			select {
			case <-r.Context().Done():
			case <-u.release:
			}
			return
		}
		if _, err := w.Write(body[:n]); err != nil {
			return
		}
		sent += int64(n)
		body = body[n:]
	}
}

// refusedURL is an http base nobody listens on: a listener opened and closed.
func refusedURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL + "/"
	srv.Close()
	return u
}

// env is a Fetcher over a tree, a front server that hands every path to ServeMiss through
// a wrapping ResponseWriter (as web/mirror.go's deadlineWriter wraps), and a client.
type env struct {
	t       *testing.T
	tree    *tree
	f       *Fetcher
	front   *httptest.Server
	client  *http.Client
	logs    *syncBuffer
	stored  chan storedEvent
	free    uint64
	freeMu  sync.Mutex
	now     time.Time
	clockMu sync.Mutex
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// wrapWriter stands in for the caller's wrapping writers.
type wrapWriter struct{ http.ResponseWriter }

func (w *wrapWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func newEnv(t *testing.T, tr *tree, ups []string, tweak func(*Config)) *env {
	t.Helper()
	e := &env{t: t, tree: tr, logs: &syncBuffer{}, stored: make(chan storedEvent, 64), free: 1 << 40, now: time.Unix(1700000000, 0)}
	c := Config{
		Root:          tr.root,
		Upstreams:     func() []string { return ups },
		MinFreeBytes:  func() uint64 { return 1 << 20 },
		FreeBytes:     func(string) (uint64, error) { e.freeMu.Lock(); defer e.freeMu.Unlock(); return e.free, nil },
		Log:           slog.New(slog.NewTextHandler(e.logs, nil)),
		Now:           func() time.Time { e.clockMu.Lock(); defer e.clockMu.Unlock(); return e.now },
		HeaderTimeout: 2 * time.Second,
		HeaderBudget:  4 * time.Second,
		StallTimeout:  2 * time.Second,
		OnStored:      func(name string, size int64) { e.stored <- storedEvent{name, size} },
	}
	if tweak != nil {
		tweak(&c)
	}
	f, err := New(c)
	must(t, err)
	e.f = f
	if err := f.Reload(tr.repos()); err != nil {
		t.Fatal(err)
	}
	e.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.ServeMiss(&wrapWriter{w}, r, strings.TrimPrefix(r.URL.Path, "/")) {
			http.Error(w, "404 not found", http.StatusNotFound)
		}
	}))
	e.client = &http.Client{Transport: &http.Transport{DisableCompression: true}}
	t.Cleanup(func() {
		e.front.Close()
		f.Close()
		e.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("fetcher log:\n%s", e.logs.String())
		}
	})
	return e
}

func (e *env) advance(d time.Duration) {
	e.clockMu.Lock()
	e.now = e.now.Add(d)
	e.clockMu.Unlock()
}

// result is what a client saw.
type result struct {
	code   int
	header http.Header
	body   []byte
	err    error // reading the body (a truncated transfer: io.ErrUnexpectedEOF)
}

func (e *env) do(method, name string, hdr ...string) result {
	return e.doCtx(context.Background(), method, name, hdr...)
}

func (e *env) doCtx(ctx context.Context, method, name string, hdr ...string) result {
	e.t.Helper()
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.front.URL+"/"+strings.Join(parts, "/"), nil)
	must(e.t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return result{code: resp.StatusCode, header: resp.Header, body: body, err: err}
}

type storedEvent struct {
	name string
	size int64
}

// waitStored waits for OnStored to report name, and returns the size it said.
func (e *env) waitStored(name string) int64 {
	e.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-e.stored:
			if got.name == name {
				return got.size
			}
		case <-timeout:
			e.t.Fatalf("%s was not stored within 10s", name)
			return 0
		}
	}
}

// waitFor polls cond (for states no event reports, e.g. a client having joined a fetch).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fetchDirEmpty fails t when a temp file is left in $root/.amwi/fetch.
func fetchDirEmpty(t *testing.T, root string) {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(root, fetchDir))
	must(t, err)
	if len(des) != 0 {
		t.Errorf("temp files left in %s: %v", fetchDir, des)
	}
}

func noFile(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Errorf("%s exists (err %v), should not", p, err)
	}
}
