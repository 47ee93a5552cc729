package web

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// TestPackagesKeepAlive: a client fetching 20 packages (3 MiB each, sent with sendfile),
// ranges, HEADs and 304s one after another uses one connection, and every body is whole.
func TestPackagesKeepAlive(t *testing.T) {
	f := newFixture(t)
	var accepted, files atomic.Int64
	srv, tr := f.server(t, func(l net.Listener) net.Listener {
		return countingListener{sendfileListener{l, &files}, &accepted}
	})
	c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer c.CloseIdleConnections()
	get := func(method, path string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Close {
			t.Errorf("%s %s: the server closed the connection", method, path)
		}
		return resp, b
	}
	for i := 0; i < 20; i++ {
		resp, b := get("GET", pkgURL)
		if resp.StatusCode != 200 || string(b) != string(f.pkg) {
			t.Fatalf("package %d: %d, %d bytes", i, resp.StatusCode, len(b))
		}
	}
	resp, b := get("GET", pkgURL, "Range", "bytes=2000000-")
	if resp.StatusCode != 206 || string(b) != string(f.pkg[2000000:]) {
		t.Errorf("resume: %d, %d bytes", resp.StatusCode, len(b))
	}
	resp, b = get("HEAD", pkgURL)
	if resp.StatusCode != 200 || len(b) != 0 || resp.ContentLength != int64(len(f.pkg)) {
		t.Errorf("HEAD: %d, %d bytes, length %d", resp.StatusCode, len(b), resp.ContentLength)
	}
	resp, _ = get("GET", pkgURL, "If-None-Match", resp.Header.Get("ETag"))
	if resp.StatusCode != 304 {
		t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
	}
	resp, b = get("GET", "/archlinux/core/os/x86_64/")
	if resp.StatusCode != 200 || !strings.Contains(string(b), "foo-1.0-1-x86_64.pkg.tar.zst") {
		t.Errorf("index: %d", resp.StatusCode)
	}
	resp, _ = get("GET", "/archlinux/nope")
	if resp.StatusCode != 404 {
		t.Errorf("missing file: %d", resp.StatusCode)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("%d connections for one client's 26 requests, want 1", n)
	}
	if files.Load() < 21 {
		t.Errorf("sendfile used %d times for 21 package bodies", files.Load())
	}
	if x := tr.wait(t, pkgURL); x.Bytes != int64(len(f.pkg)) || x.Status != 200 {
		t.Errorf("accounting: %d %d bytes", x.Status, x.Bytes)
	}
}

// dialRaw opens a connection and returns it with a reader for responses.
func dialRaw(t *testing.T, srv *testServer) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c, bufio.NewReader(c)
}

func readResp(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading a %s response: %v", method, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading a %s body: %v", method, err)
	}
	return resp, string(b)
}

// TestFrontPipelinedAndHandedOff: requests sent together are answered in order; a
// request that is not a mirror download (here /healthz), before or after mirror ones,
// goes to net/http on the same connection with nothing lost.
func TestFrontPipelinedAndHandedOff(t *testing.T) {
	f := newFixture(t)
	srv, _ := f.server(t, nil)
	c, br := dialRaw(t, srv)
	fmt.Fprintf(c, "GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\n\r\n"+
		"HEAD %s HTTP/1.1\r\nHost: m\r\n\r\n"+
		"GET /healthz HTTP/1.1\r\nHost: m\r\n\r\n"+
		"GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n", pkgURL)
	resp, body := readResp(t, br, "GET")
	if resp.StatusCode != 200 || body != "1700000000\n" {
		t.Errorf("first: %d %q", resp.StatusCode, body)
	}
	resp, body = readResp(t, br, "HEAD")
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != int64(len(f.pkg)) {
		t.Errorf("HEAD: %d %q %d", resp.StatusCode, body, resp.ContentLength)
	}
	resp, body = readResp(t, br, "GET")
	if resp.StatusCode != 200 || !strings.Contains(body, `"status"`) {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}
	resp, body = readResp(t, br, "GET")
	if resp.StatusCode != 200 || body != "1700000000\n" || !resp.Close {
		t.Errorf("last (handed off, Connection: close): %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection still open after Connection: close: %v", err)
	}
}

// TestFrontHTTP10: an HTTP/1.0 client without keep-alive gets its file and the connection
// closes; with "Connection: keep-alive" it is kept and said so.
func TestFrontHTTP10(t *testing.T) {
	f := newFixture(t)
	srv, _ := f.server(t, nil)
	c, br := dialRaw(t, srv)
	fmt.Fprintf(c, "GET /archlinux/lastupdate HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	resp, body := readResp(t, br, "GET")
	if resp.StatusCode != 200 || body != "1700000000\n" || resp.Header.Get("Connection") != "keep-alive" {
		t.Errorf("1.0 keep-alive: %d %q %q", resp.StatusCode, body, resp.Header.Get("Connection"))
	}
	fmt.Fprintf(c, "GET /archlinux/lastupdate HTTP/1.0\r\n\r\n")
	resp, body = readResp(t, br, "GET")
	if resp.StatusCode != 200 || body != "1700000000\n" {
		t.Errorf("1.0: %d %q", resp.StatusCode, body)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("HTTP/1.0 connection without keep-alive still open: %v", err)
	}
}

// TestFrontHeadNotHeld: on a kept-alive connection every answer arrives whole and at once,
// whatever follows its head: a file (sent with MSG_MORE before the sendfile), an empty
// file, a one-byte range, a HEAD, a 304. A head held back for bytes that never come
// would stall the client here, where a closed connection would have flushed it.
func TestFrontHeadNotHeld(t *testing.T) {
	f := newFixture(t)
	os.WriteFile(filepath.Join(f.root, "empty"), nil, 0o644)
	srv, _ := f.server(t, nil)
	c, br := dialRaw(t, srv)
	for _, tc := range []struct {
		method, target, hdr string
		status              int
		body                string
	}{
		{"GET", pkgURL, "", 200, string(f.pkg)},
		{"GET", "/archlinux/empty", "", 200, ""},
		{"GET", pkgURL, "Range: bytes=7-7\r\n", 206, string(f.pkg[7:8])},
		{"HEAD", pkgURL, "", 200, ""},
		{"GET", "/archlinux/lastupdate", "", 200, "1700000000\n"},
		{"GET", pkgURL, "If-Modified-Since: " + f.modTime.UTC().Format(http.TimeFormat) + "\r\n", 304, ""},
	} {
		fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: mirror.lan\r\n%s\r\n", tc.method, tc.target, tc.hdr)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, body := readResp(t, br, tc.method)
		if resp.StatusCode != tc.status || body != tc.body {
			t.Errorf("%s %s %q: %d, %d bytes; want %d, %d bytes", tc.method, tc.target, tc.hdr, resp.StatusCode, len(body), tc.status, len(tc.body))
		}
	}
}

// TestFrontBadHeads: what net/http refuses, the front refuses too.
func TestFrontBadHeads(t *testing.T) {
	f := newFixture(t)
	srv, _ := f.server(t, nil)
	for _, tc := range []struct {
		name, req string
		want      int
	}{
		{"no Host in 1.1", "GET /archlinux/lastupdate HTTP/1.1\r\n\r\n", 400},
		{"bad Host", "GET /archlinux/lastupdate HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"bad header line", "GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\nno colon here\r\n\r\n", 400},
		{"head over 16 KiB", "GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\nX-Big: " + strings.Repeat("a", 17<<10) + "\r\n\r\n", 431},
		{"GET with a body", "GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\nContent-Length: 5\r\n\r\nhello", 400},
		// A space before the colon: taken for no header at all, the body would be read as
		// a second request (smuggling through a lenient proxy). net/http says 400.
		{"space before colon", "GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\nContent-Length : 42\r\n\r\n" +
			"GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\n\r\n", 400},
		{"space before colon, chunked", "GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
	} {
		c, br := dialRaw(t, srv)
		io.WriteString(c, tc.req)
		resp, _ := readResp(t, br, "GET")
		if resp.StatusCode != tc.want || !resp.Close {
			t.Errorf("%s: %d (close %v), want %d and close", tc.name, resp.StatusCode, resp.Close, tc.want)
		}
		c.Close()
	}
}

// TestFrontHeaderTimeout: a head that does not arrive within 10 s is cut.
func TestFrontHeaderTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 10 s")
	}
	f := newFixture(t)
	srv, _ := f.server(t, nil)
	c, br := dialRaw(t, srv)
	start := time.Now()
	io.WriteString(c, "GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\n")
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("a head that never ends: %v, want the connection closed", err)
	}
	if d := time.Since(start); d < 9*time.Second || d > 20*time.Second {
		t.Errorf("closed after %s, want ~10 s", d)
	}
}

// waitActive waits until n of the front loop's connections are reading or answering a
// request.
func waitActive(t *testing.T, s *Server, n int) {
	t.Helper()
	for i := 0; i < 500; i++ {
		s.mu.Lock()
		k := 0
		for fc := range s.conns {
			if fc.state.Load() == stateActive {
				k++
			}
		}
		s.mu.Unlock()
		if k >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("fewer than %d connections active", n)
}

// limitedServer serves a fixture with MaxConns set to max.
func limitedServer(t *testing.T, max int) *testServer {
	t.Helper()
	f := newFixture(t)
	root, _ := os.OpenRoot(f.root)
	t.Cleanup(func() { root.Close() })
	h := NewHandler(Options{MirrorRoot: root, SendTimeout: time.Minute, Log: quiet(), Version: "test"})
	return startServer(t, h, ServerOptions{Log: quiet(), MaxConns: max}, nil)
}

// TestFrontConnectionLimit: connections beyond MaxConns, when none is idle, get a 503
// and are closed; the ones within keep working, and a freed slot is usable again.
func TestFrontConnectionLimit(t *testing.T) {
	srv := limitedServer(t, 2)
	a, abr := dialRaw(t, srv)
	b, bbr := dialRaw(t, srv)
	for _, cc := range []struct {
		c  net.Conn
		br *bufio.Reader
	}{{a, abr}, {b, bbr}} {
		io.WriteString(cc.c, "GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\n\r\n")
		if resp, _ := readResp(t, cc.br, "GET"); resp.StatusCode != 200 {
			t.Fatalf("within the limit: %d", resp.StatusCode)
		}
		// Busy: the next request's head has begun, so it cannot be closed for room.
		io.WriteString(cc.c, "GET /archlinux/lastupdate HTTP/1.1\r\n")
	}
	waitActive(t, srv.Server, 2)
	_, cbr := dialRaw(t, srv)
	resp, body := readResp(t, cbr, "GET")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "too many connections") {
		t.Errorf("over the limit: %d %q", resp.StatusCode, body)
	}
	a.Close()
	for i := 0; srv.Open() > 1 && i < 200; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	d, dbr := dialRaw(t, srv)
	io.WriteString(d, "GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\n\r\n")
	if resp, _ := readResp(t, dbr, "GET"); resp.StatusCode != 200 {
		t.Errorf("after a slot was freed: %d", resp.StatusCode)
	}
}

// TestFrontLimitClosesIdle: at MaxConns, connections that only wait (kept alive after a
// request, or opened and silent) are closed to make room, as nginx does, instead of the
// newcomer getting a 503: idle sockets alone cannot lock pacman clients out.
func TestFrontLimitClosesIdle(t *testing.T) {
	srv := limitedServer(t, 2)
	a, abr := dialRaw(t, srv)
	io.WriteString(a, "GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\n\r\n")
	if resp, _ := readResp(t, abr, "GET"); resp.StatusCode != 200 {
		t.Fatalf("first: %d", resp.StatusCode)
	}
	dialRaw(t, srv) // silent
	for i := 0; srv.Open() < 2 && i < 200; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 3; i++ {
		c, br := dialRaw(t, srv)
		io.WriteString(c, "GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\n\r\n")
		if resp, body := readResp(t, br, "GET"); resp.StatusCode != 200 || body != "1700000000\n" {
			t.Errorf("newcomer %d with only idle connections open: %d %q", i, resp.StatusCode, body)
		}
	}
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := abr.ReadByte(); err != io.EOF {
		t.Errorf("an idle kept-alive connection was not closed for room: %v", err)
	}
	for i := 0; srv.Open() > 2 && i < 200; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.Open(); n > 2 {
		t.Errorf("%d connections open, over MaxConns 2", n)
	}
}

// TestFrontLargeIndexChunked: a directory index bigger than the write buffer goes out
// chunked and whole, and the connection stays usable.
func TestFrontLargeIndexChunked(t *testing.T) {
	f := newFixture(t)
	dir := filepath.Join(f.root, "pool", "many")
	os.MkdirAll(dir, 0o755)
	for i := 0; i < 300; i++ {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("pkg-%03d-1.0-1-x86_64.pkg.tar.zst", i)), nil, 0o644)
	}
	srv, _ := f.server(t, nil)
	c, br := dialRaw(t, srv)
	io.WriteString(c, "GET /archlinux/pool/many/ HTTP/1.1\r\nHost: m\r\n\r\n")
	resp, body := readResp(t, br, "GET")
	if resp.StatusCode != 200 || len(resp.TransferEncoding) == 0 || strings.Count(body, ".pkg.tar.zst</a>") != 300 {
		t.Errorf("index: %d, transfer-encoding %v, %d entries", resp.StatusCode, resp.TransferEncoding, strings.Count(body, ".pkg.tar.zst</a>"))
	}
	io.WriteString(c, "GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\n\r\n")
	if resp, body := readResp(t, br, "GET"); resp.StatusCode != 200 || body != "1700000000\n" {
		t.Errorf("after the chunked index: %d %q", resp.StatusCode, body)
	}
}

// TestFrontChunksGathered: a body without a length written a few bytes at a time (a
// template) goes out in chunks of kilobytes, not one chunk per write, and whole.
func TestFrontChunksGathered(t *testing.T) {
	const writes, piece = 5000, "0123456789"
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < writes; i++ {
			io.WriteString(w, piece)
		}
		w.(http.Flusher).Flush()
		io.WriteString(w, "end")
	})
	srv := startServer(t, h, ServerOptions{Log: quiet()}, nil)
	c, br := dialRaw(t, srv)
	io.WriteString(c, "GET /archlinux/x HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
	raw, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := strings.Cut(string(raw), "\r\n\r\n")
	if !strings.Contains(head, "Transfer-Encoding: chunked") {
		t.Fatalf("not chunked: %q", head)
	}
	want := strings.Repeat(piece, writes) + "end"
	if len(body) > len(want)+len(want)/50 {
		t.Errorf("%d bytes on the wire for a %d-byte body: a chunk per write", len(body), len(want))
	}
	resp, got := readResp(t, bufio.NewReader(strings.NewReader(string(raw))), "GET")
	if resp.StatusCode != 200 || got != want {
		t.Errorf("%d, %d bytes, want %d", resp.StatusCode, len(got), len(want))
	}
}

// TestFrontShutdown: Shutdown closes idle connections at once, lets a download in flight
// finish, and then returns; a download that outlasts the context is cut by Close.
func TestFrontShutdown(t *testing.T) {
	f := newFixture(t)
	big := make([]byte, 16<<20)
	os.WriteFile(filepath.Join(f.root, "big.iso"), big, 0o644)
	srv, _ := f.server(t, nil)
	idle, ibr := dialRaw(t, srv)
	io.WriteString(idle, "GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\n\r\n")
	readResp(t, ibr, "GET")
	dl, dbr := dialRaw(t, srv)
	dl.(*net.TCPConn).SetReadBuffer(16 << 10)
	io.WriteString(dl, "GET /archlinux/big.iso HTTP/1.1\r\nHost: m\r\n\r\n")
	resp, err := http.ReadResponse(dbr, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	go func() {
		n := 0
		buf := make([]byte, 64<<10)
		for {
			time.Sleep(5 * time.Millisecond) // a slow reader: ~13 MB/s at most
			m, err := resp.Body.Read(buf)
			n += m
			if err != nil {
				break
			}
		}
		got <- n
	}()
	time.Sleep(100 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	if _, err := ibr.ReadByte(); err != io.EOF {
		t.Errorf("idle connection at shutdown: %v, want closed", err)
	}
	if n := <-got; n != len(big) {
		t.Errorf("download in flight got %d of %d bytes", n, len(big))
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", srv.Listener.Addr().String()); err == nil {
		t.Errorf("still accepting after Shutdown")
	}

	// Cut short: a stalled download outlasting the grace period.
	srv2, _ := f.server(t, nil)
	st, _ := dialRaw(t, srv2)
	st.(*net.TCPConn).SetReadBuffer(4 << 10)
	io.WriteString(st, "GET /archlinux/big.iso HTTP/1.1\r\nHost: m\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := srv2.Shutdown(ctx); err == nil {
		t.Errorf("Shutdown returned nil with a stalled download in flight")
	}
	srv2.Close()
	for i := 0; srv2.Open() > 0 && i < 200; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv2.Open(); n != 0 {
		t.Errorf("%d connections open after Close", n)
	}
}

// TestBeneathMatchesRoot: the one-call openat2 open and os.Root's walk (the fallback) let
// through and refuse the same names.
func TestBeneathMatchesRoot(t *testing.T) {
	f := newFixture(t)
	root, err := os.OpenRoot(f.root)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	fast := newBeneath(root)
	slow := newBeneath(root)
	slow.off.Store(true)
	for _, name := range []string{
		"core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst", "core/os/x86_64/core.db", "lastupdate", ".",
		"abs-link", "escape-link", "escape-dir", "escape-dir/secret.txt", "broken-link", "nope",
		"core/os/x86_64/core.db/x", "../secret.txt",
	} {
		a, fa, errA := fast.OpenSized(name)
		b, fb, errB := slow.OpenSized(name)
		if (errA == nil) != (errB == nil) || (errA != nil && notServed(errA) != notServed(errB)) {
			t.Errorf("%s: openat2 %v, os.Root %v", name, errA, errB)
		} else if errA == nil {
			if fa.Size() != fb.Size() || fa.IsDir() != fb.IsDir() || fa.Mode().IsRegular() != fb.Mode().IsRegular() ||
				!fa.ModTime().Equal(fb.ModTime()) || fa.Name() != fb.Name() {
				t.Errorf("%s: fstat says %s %d %v %v, os.Root %s %d %v %v", name, fa.Name(), fa.Size(), fa.Mode(), fa.ModTime(), fb.Name(), fb.Size(), fb.Mode(), fb.ModTime())
			}
			for _, x := range []*sizedFile{a, b} {
				if !fa.IsDir() {
					got, _ := io.ReadAll(x)
					if strings.Contains(string(got), secret) {
						t.Errorf("%s: read the secret outside the root", name)
					}
				}
				x.Close()
			}
		}
		if name == "abs-link" || name == "escape-link" || name == "escape-dir/secret.txt" {
			if errA == nil || !notServed(errA) {
				t.Errorf("%s: openat2 gave %v, want a refusal served as 404", name, errA)
			}
		}
	}
}

// TestBeneathFIFO: a FIFO in the mirror is a 404 at once, through openat2 and through
// os.Root, instead of an open that waits for a writer for ever.
func TestBeneathFIFO(t *testing.T) {
	f := newFixture(t)
	if err := syscall.Mkfifo(filepath.Join(f.root, "core/os/x86_64/fifo.pkg.tar.zst"), 0o644); err != nil {
		t.Skip("mkfifo:", err)
	}
	root, err := os.OpenRoot(f.root)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, off := range []bool{false, true} {
		m := NewMirror(root, MirrorPrefix, time.Minute, quiet())
		m.files.off.Store(off)
		done := make(chan int, 1)
		go func() {
			rec := httptest.NewRecorder()
			m.ServeHTTP(rec, httptest.NewRequest("GET", "/archlinux/core/os/x86_64/fifo.pkg.tar.zst", nil))
			done <- rec.Code
		}()
		select {
		case code := <-done:
			if code != 404 {
				t.Errorf("os.Root only %v: a FIFO gave %d, want 404", off, code)
			}
		case <-time.After(5 * time.Second):
			// Unblock the open so the test can end.
			if w, err := os.OpenFile(filepath.Join(f.root, "core/os/x86_64/fifo.pkg.tar.zst"), os.O_WRONLY, 0); err == nil {
				w.Close()
			}
			t.Fatalf("os.Root only %v: the request for a FIFO still waits after 5 s", off)
		}
	}
}

// TestConnectionMemory measures what one connection costs in each state the README names
// (heap in use plus goroutine stacks, after a GC, over 200 connections), and fails when a
// change makes one cost far more than the figures quoted there.
func TestConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 600 connections")
	}
	f := newFixture(t)
	big := make([]byte, 64<<20)
	os.WriteFile(filepath.Join(f.root, "big.iso"), big, 0o644)
	srv, _ := f.server(t, nil)
	const n = 200
	used := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc + m.StackInuse
	}
	// open n connections; each sends req and, when wait, reads the head of the response.
	open := func(req string, rcvbuf int, readHead bool) []net.Conn {
		cs := make([]net.Conn, 0, n)
		for i := 0; i < n; i++ {
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			if rcvbuf > 0 {
				c.(*net.TCPConn).SetReadBuffer(rcvbuf)
			}
			c.SetDeadline(time.Now().Add(time.Minute))
			io.WriteString(c, req)
			if readHead {
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				if req[len(req)-4:] == "\r\n\r\n" && resp.ContentLength < 100 {
					io.ReadAll(io.LimitReader(resp.Body, resp.ContentLength))
				}
			}
			cs = append(cs, c)
		}
		return cs
	}
	settle := func() { time.Sleep(300 * time.Millisecond) }
	settle()
	base := used()
	idle := open("GET /archlinux/lastupdate HTTP/1.1\r\nHost: m\r\n\r\n", 0, true)
	settle()
	afterIdle := used()
	// Downloads in flight whose client reads nothing more: the server is parked in
	// sendfile with the socket full, as for a slow or a stalled client.
	dl := open("GET /archlinux/big.iso HTTP/1.1\r\nHost: m\r\n\r\n", 16<<10, true)
	settle()
	afterDL := used()
	// Connections that began with a request that is not a download belong to net/http.
	std := open("GET /healthz HTTP/1.1\r\nHost: m\r\n\r\n", 0, true)
	settle()
	afterStd := used()
	for _, c := range std {
		io.WriteString(c, "GET /archlinux/big.iso HTTP/1.1\r\nHost: m\r\n\r\n")
	}
	settle()
	afterStdDL := used()
	perIdle := float64(afterIdle-base) / n
	perDL := float64(afterDL-afterIdle) / n
	t.Logf("per connection: kept-alive idle %.1f KiB, download in flight %.1f KiB; net/http's: idle %.1f KiB, downloading %.1f KiB (heap + stacks)",
		perIdle/1024, perDL/1024, float64(afterStd-afterDL)/n/1024, float64(afterStdDL-afterDL)/n/1024)
	// The figures include the test's own client sockets (under 1 KiB each).
	if perIdle > 10<<10 || perDL > 24<<10 {
		t.Errorf("a connection costs more than the README says: idle %.1f KiB (≤ 10), download %.1f KiB (≤ 24)", perIdle/1024, perDL/1024)
	}
	for _, c := range append(append(idle, dl...), std...) {
		c.Close()
	}
}

// TestRouterNeutral: only paths the router would hand to the mirror unchanged skip it.
func TestRouterNeutral(t *testing.T) {
	for target, want := range map[string]bool{
		"/archlinux/":                         true,
		"/archlinux/core/os/x86_64/core.db":   true,
		"/archlinux/core/os/x86_64/":          true,
		"/archlinux//core":                    false,
		"/archlinux/core/../core/os/":         false,
		"/archlinux/./core":                   false,
		"/archlinux/core/.":                   false,
		"/archlinux/a%2Fb":                    false,
		"/archlinux/python-2:3.12.7-1-x86_64": true,
		"/healthz":                            false,
	} {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: m\r\n\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		if got := routerNeutral(r); got != want {
			t.Errorf("%s: %v, want %v", target, got, want)
		}
	}
	// What the router does with the others still happens: its redirect to the clean path.
	f := newFixture(t)
	srv, _ := f.server(t, nil)
	resp, _ := raw(t, srv, "GET", "/archlinux//lastupdate")
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "/archlinux/lastupdate" {
		t.Errorf("//: %d → %q, want the router's 307 to the clean path", resp.StatusCode, resp.Header.Get("Location"))
	}
}
