package web

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const secret = "SECRET-OUTSIDE-THE-MIRROR"

// fixture is a mirror root inside dir, with a secret file beside (outside) it and the
// kinds of links an Arch tree and an attacker would have.
type fixture struct {
	dir, root string
	pkg       []byte // core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst via ../../../pool
	modTime   time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "mirror")
	f := &fixture{dir: dir, root: root, pkg: make([]byte, 3<<20)}
	rand.Read(f.pkg)
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, b []byte) {
		if err := os.WriteFile(filepath.Join(root, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "secret.txt"), []byte(secret), 0o644)
	mk("pool/packages")
	mk("core/os/x86_64")
	mk("core/os/x86_64/.~tmp~")
	mk(".~tmp~")
	mk("iso/2026.11.01")
	write("pool/packages/foo-1.0-1-x86_64.pkg.tar.zst", f.pkg)
	write("pool/packages/python-2:3.12.7-1-x86_64.pkg.tar.zst", []byte("epoch"))
	link("../../../pool/packages/foo-1.0-1-x86_64.pkg.tar.zst", "core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst")
	link("../../../pool/packages/python-2:3.12.7-1-x86_64.pkg.tar.zst", "core/os/x86_64/python-2:3.12.7-1-x86_64.pkg.tar.zst")
	write("core/os/x86_64/core.db.tar.gz", []byte("db"))
	link("core.db.tar.gz", "core/os/x86_64/core.db")
	write("core/os/x86_64/.~tmp~/core.db.tar.gz", []byte(secret))
	write(".~tmp~/lastupdate", []byte(secret))
	write(".hidden", []byte(secret))
	write("lastupdate", []byte("1700000000\n"))
	write("a&b <c>.txt", []byte("odd name"))
	link(filepath.Join(dir, "secret.txt"), "abs-link")
	link("../secret.txt", "escape-link")
	link("..", "escape-dir")
	link("core/os/x86_64/missing", "broken-link")
	fi, _ := os.Stat(filepath.Join(root, "pool/packages/foo-1.0-1-x86_64.pkg.tar.zst"))
	f.modTime = fi.ModTime()
	return f
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// server starts the whole web handler over the fixture behind the real Server (the front
// loop serves the mirror); transfers are collected.
func (f *fixture) server(t *testing.T, wrap func(net.Listener) net.Listener) (*testServer, *transfers) {
	t.Helper()
	root, err := os.OpenRoot(f.root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	tr := &transfers{}
	h := NewHandler(Options{MirrorRoot: root, SendTimeout: time.Minute, Log: quiet(), OnTransfer: tr.add, Version: "test"})
	return startServer(t, h, ServerOptions{Log: quiet()}, wrap), tr
}

// testServer is a Server on a loopback port.
type testServer struct {
	*Server
	URL      string
	Listener net.Listener
}

func startServer(t *testing.T, h http.Handler, o ServerOptions, wrap func(net.Listener) net.Listener) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		l = wrap(l)
	}
	s := NewServer(h, o)
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return &testServer{Server: s, URL: "http://" + l.Addr().String(), Listener: l}
}

type transfers struct {
	mu   sync.Mutex
	list []Transfer
}

func (t *transfers) add(x Transfer) {
	t.mu.Lock()
	t.list = append(t.list, x)
	t.mu.Unlock()
}

// wait returns the transfer for path once it has finished.
func (t *transfers) wait(tb testing.TB, path string) Transfer {
	tb.Helper()
	for i := 0; i < 500; i++ {
		t.mu.Lock()
		for _, x := range t.list {
			if x.Request.URL.Path == path {
				t.mu.Unlock()
				return x
			}
		}
		t.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatalf("no transfer recorded for %s", path)
	return Transfer{}
}

// raw sends one request line as written (no client-side cleaning) and returns the response.
func raw(t *testing.T, srv *testServer, method, target string, hdr ...string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: mirror.lan\r\nConnection: close\r\n", method, target)
	for _, h := range hdr {
		fmt.Fprintf(c, "%s\r\n", h)
	}
	fmt.Fprintf(c, "\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const pkgURL = "/archlinux/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst"

func TestServeFileThroughPoolSymlink(t *testing.T) {
	f := newFixture(t)
	srv, tr := f.server(t, nil)
	resp, body := raw(t, srv, "GET", pkgURL)
	if resp.StatusCode != 200 || body != string(f.pkg) {
		t.Fatalf("GET package: %d, %d bytes", resp.StatusCode, len(body))
	}
	h := resp.Header
	if h.Get("Content-Length") != fmt.Sprint(len(f.pkg)) || h.Get("Accept-Ranges") != "bytes" ||
		h.Get("Last-Modified") != f.modTime.UTC().Format(http.TimeFormat) || h.Get("ETag") == "" ||
		h.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("headers: %v", h)
	}
	if x := tr.wait(t, "/archlinux/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst"); x.Bytes != int64(len(f.pkg)) || x.Status != 200 {
		t.Errorf("transfer counted %d bytes, status %d; want %d, 200", x.Bytes, x.Status, len(f.pkg))
	}
	// The database symlink and an epoch (colon) file name.
	if resp, body := raw(t, srv, "GET", "/archlinux/core/os/x86_64/core.db"); resp.StatusCode != 200 || body != "db" {
		t.Errorf("core.db symlink: %d %q", resp.StatusCode, body)
	}
	if resp, body := raw(t, srv, "GET", "/archlinux/core/os/x86_64/python-2:3.12.7-1-x86_64.pkg.tar.zst"); resp.StatusCode != 200 || body != "epoch" {
		t.Errorf("epoch file name: %d %q", resp.StatusCode, body)
	}
}

// TestRangeAndResume: pacman resumes a .part download with Range: bytes=N-.
func TestRangeAndResume(t *testing.T) {
	f := newFixture(t)
	srv, tr := f.server(t, nil)
	half := len(f.pkg) / 2
	resp, body := raw(t, srv, "GET", pkgURL, fmt.Sprintf("Range: bytes=%d-", half))
	if resp.StatusCode != 206 || body != string(f.pkg[half:]) {
		t.Fatalf("resume: status %d, %d bytes; want 206, %d", resp.StatusCode, len(body), len(f.pkg)-half)
	}
	if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", half, len(f.pkg)-1, len(f.pkg)) {
		t.Errorf("Content-Range %q", cr)
	}
	if x := tr.wait(t, "/archlinux/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst"); x.Bytes != int64(len(f.pkg)-half) || x.Status != 206 {
		t.Errorf("resume counted %d bytes, status %d", x.Bytes, x.Status)
	}
	resp, body = raw(t, srv, "GET", pkgURL, "Range: bytes=10-19")
	if resp.StatusCode != 206 || body != string(f.pkg[10:20]) {
		t.Errorf("bytes=10-19: %d, %q", resp.StatusCode, body)
	}
	resp, _ = raw(t, srv, "GET", pkgURL, fmt.Sprintf("Range: bytes=%d-", len(f.pkg)+5))
	if resp.StatusCode != 416 {
		t.Errorf("range past the end: %d, want 416", resp.StatusCode)
	}
	// If-Range with a stale validator: the whole file, not a wrong splice.
	resp, body = raw(t, srv, "GET", pkgURL, "Range: bytes=0-9", "If-Range: \"stale\"")
	if resp.StatusCode != 200 || len(body) != len(f.pkg) {
		t.Errorf("If-Range mismatch: %d, %d bytes; want 200 and the whole file", resp.StatusCode, len(body))
	}
}

func TestHeadAnd304(t *testing.T) {
	f := newFixture(t)
	srv, _ := f.server(t, nil)
	resp, body := raw(t, srv, "HEAD", pkgURL)
	if resp.StatusCode != 200 || body != "" || resp.Header.Get("Content-Length") != fmt.Sprint(len(f.pkg)) {
		t.Fatalf("HEAD: %d, body %d bytes, Content-Length %q", resp.StatusCode, len(body), resp.Header.Get("Content-Length"))
	}
	ims := f.modTime.UTC().Format(http.TimeFormat)
	if resp, body := raw(t, srv, "GET", pkgURL, "If-Modified-Since: "+ims); resp.StatusCode != 304 || body != "" {
		t.Errorf("If-Modified-Since = mtime: %d, want 304", resp.StatusCode)
	}
	old := f.modTime.Add(-time.Hour).UTC().Format(http.TimeFormat)
	if resp, _ := raw(t, srv, "GET", pkgURL, "If-Modified-Since: "+old); resp.StatusCode != 200 {
		t.Errorf("If-Modified-Since older: %d, want 200", resp.StatusCode)
	}
	etag := resp.Header.Get("ETag")
	if resp, _ := raw(t, srv, "GET", pkgURL, "If-None-Match: "+etag); resp.StatusCode != 304 {
		t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
	}
	if resp, _ := raw(t, srv, "POST", pkgURL); resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// TestNothingOutsideTheRoot: the traversal corpus. Whatever the path, the secret beside
// the mirror never comes back, and hidden names are never served.
func TestNothingOutsideTheRoot(t *testing.T) {
	f := newFixture(t)
	srv, _ := f.server(t, nil)
	corpus := []string{
		"/archlinux/../secret.txt",
		"/archlinux/../../../../etc/passwd",
		"/archlinux/%2e%2e/secret.txt",
		"/archlinux/%2E%2E/%2E%2E/etc/passwd",
		"/archlinux/..%2fsecret.txt",
		"/archlinux/core%2f..%2f..%2fsecret.txt",
		"/archlinux/core/os/x86_64/..%2F..%2F..%2F..%2Fsecret.txt",
		"/archlinux/core/../../secret.txt",
		"/archlinux/./../secret.txt",
		"//archlinux/../secret.txt",
		"/archlinux/core\\..\\..\\secret.txt",
		"/archlinux/%5c..%5c..%5csecret.txt",
		"/archlinux/abs-link",
		"/archlinux/escape-link",
		"/archlinux/escape-dir/secret.txt",
		"/archlinux/escape-dir/",
		"/archlinux/broken-link",
		"/archlinux/.hidden",
		"/archlinux/%2ehidden",
		"/archlinux/.~tmp~/lastupdate",
		"/archlinux/.~tmp~/",
		"/archlinux/core/os/x86_64/.~tmp~/core.db.tar.gz",
		"/archlinux/core/os/x86_64/%2e~tmp~/core.db.tar.gz",
		"/archlinux/lastupdate%00.txt",
		"/archlinux/lastupdate/",
		"/archlinux" + strings.Repeat("/core", 2000),
		"/archlinux/" + f.dir + "/secret.txt",
	}
	for _, p := range corpus {
		t.Run(p[:min(len(p), 60)], func(t *testing.T) {
			resp, body := raw(t, srv, "GET", p)
			if strings.Contains(body, secret) {
				t.Fatalf("served the secret for %s", p)
			}
			switch resp.StatusCode {
			case 400, 404, 431:
			case 301, 307, 308:
				// net/http cleans ".." by redirecting; follow once: still nothing.
				loc := resp.Header.Get("Location")
				if r2, b2 := raw(t, srv, "GET", loc); strings.Contains(b2, secret) {
					t.Fatalf("%s → %s → %d served the secret", p, loc, r2.StatusCode)
				}
			default:
				t.Fatalf("%s: status %d, want 400/404 or a redirect", p, resp.StatusCode)
			}
		})
	}
}

func TestDirectoryIndex(t *testing.T) {
	f := newFixture(t)
	srv, _ := f.server(t, nil)
	resp, _ := raw(t, srv, "GET", "/archlinux/core")
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "/archlinux/core/" {
		t.Fatalf("dir without slash: %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := raw(t, srv, "GET", "/archlinux/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("root index: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{`href="./core/"`, `href="./pool/"`, `href="./iso/"`, `href="./lastupdate"`, "a&amp;b &lt;c&gt;.txt", `href="./a&amp;b%20%3Cc%3E.txt"`} {
		if !strings.Contains(body, want) {
			t.Errorf("root index lacks %s:\n%s", want, body)
		}
	}
	for _, hidden := range []string{".hidden", ".~tmp~", "abs-link", "escape-link", "escape-dir", "broken-link", `href="../"`} {
		if strings.Contains(body, hidden) {
			t.Errorf("root index shows %q", hidden)
		}
	}
	_, body = raw(t, srv, "GET", "/archlinux/core/os/x86_64/")
	for _, want := range []string{`href="../"`, `href="./foo-1.0-1-x86_64.pkg.tar.zst"`, "3.0 MiB", `href="./python-2:3.12.7-1-x86_64.pkg.tar.zst"`, `href="./core.db"`} {
		if !strings.Contains(body, want) {
			t.Errorf("x86_64 index lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "tmp~") {
		t.Errorf("x86_64 index shows the .~tmp~ staging dir")
	}
	// The index of a real client's view: the escaped link works.
	if resp, body := raw(t, srv, "GET", "/archlinux/a&b%20%3Cc%3E.txt"); resp.StatusCode != 200 || body != "odd name" {
		t.Errorf("escaped name: %d %q", resp.StatusCode, body)
	}
}

// sendfileConn records whether net/http handed the connection an *os.File to ReadFrom:
// the path on which TCPConn.ReadFrom uses sendfile(2).
type sendfileConn struct {
	*net.TCPConn
	files *atomic.Int64
}

func (c sendfileConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if _, ok := lr.R.(*os.File); ok {
			c.files.Add(1)
		}
	}
	return c.TCPConn.ReadFrom(r)
}

// SyscallConn counts the raw connections handed out for writing: frontWriter's own
// sendfile(2) loop (sendFile) writes through one.
func (c sendfileConn) SyscallConn() (syscall.RawConn, error) {
	rc, err := c.TCPConn.SyscallConn()
	return countingRawConn{rc, c.files}, err
}

type countingRawConn struct {
	syscall.RawConn
	n *atomic.Int64
}

func (r countingRawConn) Write(f func(uintptr) bool) error {
	r.n.Add(1)
	return r.RawConn.Write(f)
}

type sendfileListener struct {
	net.Listener
	files *atomic.Int64
}

func (l sendfileListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return sendfileConn{c.(*net.TCPConn), l.files}, nil
}

// TestZeroCopyKept: through the accounting and deadline wrappers, the file still reaches
// the TCP connection's ReadFrom as an *os.File (sendfile), for full and ranged responses.
func TestZeroCopyKept(t *testing.T) {
	f := newFixture(t)
	var files atomic.Int64
	srv, tr := f.server(t, func(l net.Listener) net.Listener { return sendfileListener{l, &files} })
	resp, body := raw(t, srv, "GET", pkgURL)
	if resp.StatusCode != 200 || len(body) != len(f.pkg) {
		t.Fatalf("GET: %d %d", resp.StatusCode, len(body))
	}
	// Every deadline chunk goes to the socket with sendfile(2): through the connection's
	// ReadFrom with the *os.File, or frontWriter's own loop on the raw connection.
	if n := files.Load(); n == 0 {
		t.Fatalf("sendfile used %d times; the copy is not zero-copy", n)
	}
	files.Store(0)
	resp, _ = raw(t, srv, "GET", pkgURL, "Range: bytes=1000-")
	if resp.StatusCode != 206 || files.Load() == 0 {
		t.Fatalf("ranged GET: status %d, sendfile calls %d", resp.StatusCode, files.Load())
	}
	if x := tr.wait(t, "/archlinux/core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst"); x.Bytes != int64(len(f.pkg)) {
		t.Errorf("counted %d bytes, want %d", x.Bytes, len(f.pkg))
	}
}

// TestAbortedDownloadCounted: a client that hangs up midway is counted for what was sent.
func TestAbortedDownloadCounted(t *testing.T) {
	f := newFixture(t)
	big := make([]byte, 32<<20)
	os.WriteFile(filepath.Join(f.root, "big.iso"), big, 0o644)
	srv, tr := f.server(t, nil)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(c, "GET /archlinux/big.iso HTTP/1.1\r\nHost: x\r\n\r\n")
	io.ReadFull(c, make([]byte, 100<<10))
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	x := tr.wait(t, "/archlinux/big.iso")
	if x.Bytes <= 0 || x.Bytes >= int64(len(big)) {
		t.Fatalf("aborted download counted %d bytes of %d", x.Bytes, len(big))
	}
}

func TestHealthzAndHome(t *testing.T) {
	f := newFixture(t)
	srv, _ := f.server(t, nil)
	resp, body := raw(t, srv, "GET", "/healthz")
	if resp.StatusCode != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("healthz: %d %s", resp.StatusCode, body)
	}
	resp, body = raw(t, srv, "GET", "/")
	if resp.StatusCode != 200 || !strings.Contains(body, "Server = http://mirror.lan/archlinux/$repo/os/$arch") {
		t.Errorf("home page lacks the pacman Server line: %d\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(body, "curl -fsS http://mirror.lan/mirrorlist | sudo tee /etc/pacman.d/mirrorlist") {
		t.Errorf("home page lacks the one-line set-up:\n%s", body)
	}
	if resp, _ := raw(t, srv, "GET", "/nope"); resp.StatusCode != 404 {
		t.Errorf("unknown path: %d", resp.StatusCode)
	}
}

func TestHealthzFailing(t *testing.T) {
	rec := httptest.NewRecorder()
	healthz(rec, func() map[string]error { return map[string]error{"store": fmt.Errorf("broken"), "mirror": nil} })
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"store":"broken"`) {
		t.Errorf("failing check: %d %s", rec.Code, rec.Body)
	}
}

// deadlineRecorder is a ResponseRecorder that keeps the write deadlines set on it.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	deadlines []time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.deadlines = append(d.deadlines, t)
	return nil
}

// TestIndexWriteDeadline: a directory index is written under the send timeout, as a file
// is, and the deadline is cleared after it: a client that stops reading a listing larger
// than the socket buffers is cut instead of holding its connection and the listing's
// memory for ever.
func TestIndexWriteDeadline(t *testing.T) {
	f := newFixture(t)
	root, err := os.OpenRoot(f.root)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	m := NewMirror(root, MirrorPrefix, time.Minute, quiet())
	rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	m.ServeHTTP(rec, httptest.NewRequest("GET", "/archlinux/core/os/x86_64/", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "foo-1.0-1-x86_64.pkg.tar.zst") {
		t.Fatalf("index: %d", rec.Code)
	}
	if len(rec.deadlines) < 2 || rec.deadlines[0].IsZero() || !rec.deadlines[len(rec.deadlines)-1].IsZero() {
		t.Errorf("write deadlines %v: want one set while the index is written, then cleared", rec.deadlines)
	}
}
