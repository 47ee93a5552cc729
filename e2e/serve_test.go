package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mirrorWithFile makes a mirror root holding one random file of size n at core/os/x86_64/NAME.
func mirrorWithFile(t *testing.T, dir, name string, n int) (root string, data []byte) {
	t.Helper()
	root = filepath.Join(dir, "mirror")
	pkgDir := filepath.Join(root, "core", "os", "x86_64")
	if err := os.MkdirAll(pkgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	data = make([]byte, n)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(pkgDir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return root, data
}

// slowConn dials with a tiny receive buffer so the server really has to wait for the reader.
func slowConn(t *testing.T, addr string, rcvbuf int) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// get sends a GET over c and returns the parsed response (body unread).
func get(t *testing.T, c net.Conn, path string) (*http.Response, *bufio.Reader) {
	t.Helper()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\nUser-Agent: pacman/6.0.2\r\n\r\n", path)
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp, br
}

// readPaced reads body at about rate bytes/s.
func readPaced(body io.Reader, rate int) ([]byte, error) {
	var out bytes.Buffer
	buf := make([]byte, rate/10)
	start := time.Now()
	for {
		n, err := body.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
		// Sleep until the bytes read so far are "due" at the target rate.
		due := start.Add(time.Duration(float64(out.Len()) / float64(rate) * float64(time.Second)))
		time.Sleep(time.Until(due))
	}
}

// TestSlowReaderGetsWholeFile: the old app cut slow LAN clients off after 30 s. A client
// reading at 20 KB/s keeps going for more than 40 s and gets every byte.
func TestSlowReaderGetsWholeFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root, data := mirrorWithFile(t, dir, "slow.pkg.tar.zst", 1_000_000)
	_, base := serve(t, writeConfig(t, dir, root, "listen = \"127.0.0.1:0\"\nsend_timeout = \"30s\""))

	c := slowConn(t, strings.TrimPrefix(base, "http://"), 8192)
	start := time.Now()
	resp, br := get(t, c, "/archlinux/core/os/x86_64/slow.pkg.tar.zst")
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(data)) {
		t.Fatalf("status %d, Content-Length %d; want 200, %d", resp.StatusCode, resp.ContentLength, len(data))
	}
	got, err := readPaced(io.LimitReader(br, resp.ContentLength), 20_000)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("slow download cut after %s and %d bytes: %v", elapsed, len(got), err)
	}
	if elapsed < 40*time.Second {
		t.Fatalf("download took %s; the test must read slowly for more than 40s", elapsed)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("slow download: got %d bytes that differ from the file's %d", len(got), len(data))
	}
	t.Logf("read %d bytes at ~20 KB/s in %s", len(got), elapsed.Round(time.Second))
}

// TestStalledClientIsCut: a client that stops reading entirely is disconnected after
// send_timeout (nginx's send_timeout), so dead clients do not pile up.
func TestStalledClientIsCut(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root, data := mirrorWithFile(t, dir, "big.pkg.tar.zst", 24<<20)
	_, base := serve(t, writeConfig(t, dir, root, "listen = \"127.0.0.1:0\"\nsend_timeout = \"30s\""))

	c := slowConn(t, strings.TrimPrefix(base, "http://"), 4096)
	resp, br := get(t, c, "/archlinux/core/os/x86_64/big.pkg.tar.zst")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	time.Sleep(40 * time.Second) // read nothing: more than send_timeout
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := io.Copy(io.Discard, io.LimitReader(br, resp.ContentLength))
	if err == nil && n == int64(len(data)) {
		t.Fatalf("a client that read nothing for 40s still got the whole file; want it cut after send_timeout")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("after %d bytes the connection is still open (read timed out): the server did not cut the stalled client", n)
	}
	t.Logf("stalled client cut after %d of %d bytes: %v", n, len(data), err)
}

// TestGracefulShutdown: on SIGTERM amwi stops accepting at once, lets a running download
// finish, and exits 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root, data := mirrorWithFile(t, dir, "pkg.pkg.tar.zst", 4<<20)
	p, base := serve(t, writeConfig(t, dir, root, ""))
	addr := strings.TrimPrefix(base, "http://")

	c := slowConn(t, addr, 8192)
	resp, br := get(t, c, "/archlinux/core/os/x86_64/pkg.pkg.tar.zst")
	done := make(chan error, 1)
	var got []byte
	go func() {
		var err error
		got, err = readPaced(io.LimitReader(br, resp.ContentLength), 1<<20) // ~4 s
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGTERM)

	// New connections are refused while the download goes on.
	refused := false
	for i := 0; i < 50 && !refused; i++ {
		if c2, err := net.DialTimeout("tcp", addr, time.Second); err != nil {
			refused = true
		} else {
			c2.Close()
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !refused {
		t.Error("after SIGTERM, new connections are still accepted")
	}
	if err := <-done; err != nil {
		t.Fatalf("in-flight download broken by SIGTERM after %d bytes: %v", len(got), err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("in-flight download: %d bytes, differ from the file", len(got))
	}
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(p.Output(), "msg=stopped") {
		t.Errorf("no 'stopped' log line:\n%s", p.Output())
	}
}

// TestShutdownGraceIsBounded: a download that would outlast shutdown_grace is cut and the
// process exits anyway.
func TestShutdownGraceIsBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root, _ := mirrorWithFile(t, dir, "big.pkg.tar.zst", 24<<20)
	p, base := serve(t, writeConfig(t, dir, root, "listen = \"127.0.0.1:0\"\nshutdown_grace = \"2s\""))
	c := slowConn(t, strings.TrimPrefix(base, "http://"), 4096)
	if resp, _ := get(t, c, "/archlinux/core/os/x86_64/big.pkg.tar.zst"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("exited after %s, before the 2s grace period", el)
	}
	if !strings.Contains(p.Output(), "grace period over") {
		t.Errorf("no log line about cutting connections after the grace period:\n%s", p.Output())
	}
}

// TestSecondSignalForcesExit: the first SIGINT lets a running download finish (up to
// shutdown_grace); a second one ends the process at once, as Ctrl-C twice does elsewhere.
func TestSecondSignalForcesExit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root, _ := mirrorWithFile(t, dir, "big.pkg.tar.zst", 24<<20)
	p, base := serve(t, writeConfig(t, dir, root, "listen = \"127.0.0.1:0\"\nshutdown_grace = \"60s\""))
	c := slowConn(t, strings.TrimPrefix(base, "http://"), 4096)
	if resp, _ := get(t, c, "/archlinux/core/os/x86_64/big.pkg.tar.zst"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Output(), "letting downloads finish") && !strings.Contains(p.Output(), `msg=stopping`) {
		if time.Now().After(deadline) {
			t.Fatalf("no sign of a graceful stop after SIGINT:\n%s", p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-p.done:
		t.Fatalf("exited during the grace period with a download running:\n%s", p.Output())
	case <-time.After(300 * time.Millisecond):
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("a second SIGINT did not end the process:\n%s", p.Output())
	}
	if ee, ok := p.err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT {
		t.Errorf("want death by SIGINT, got %v", p.err)
	}
}

// TestSecondInstanceRefused: a second `amwi serve` on the same state dir says another one
// is running and exits non-zero, without touching the first one.
func TestSecondInstanceRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root, _ := mirrorWithFile(t, dir, "x", 10)
	cfg := writeConfig(t, dir, root, "")
	_, base := serve(t, cfg)
	out, code := run(t, nil, nil, "-c", cfg, "serve")
	if code != 1 || !strings.Contains(out, "another `amwi serve`") || !strings.Contains(out, filepath.Join(dir, "state")) {
		t.Fatalf("second serve: exit %d, output:\n%s\nwant exit 1 saying another amwi uses the state dir", code, out)
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first instance unhealthy after the second was refused: %v %v", resp, err)
	}
}

// TestRestartAfterKill9: after kill -9 the next start needs no clean-up: the kernel dropped
// the store's lock and the database is intact.
func TestRestartAfterKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root, _ := mirrorWithFile(t, dir, "x", 10)
	cfg := writeConfig(t, dir, root, "")
	p, _ := serve(t, cfg)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(t, 10*time.Second)
	_, base := serve(t, cfg)
	code, body := httpGet(t, base+"/healthz")
	if code != 200 || !strings.Contains(body, `"store":"ok"`) {
		t.Fatalf("after kill -9 and restart: %d %s", code, body)
	}
}
