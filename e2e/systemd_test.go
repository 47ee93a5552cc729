package e2e

import (
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func requireTool(t *testing.T, cmd, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(cmd); err != nil {
		t.Fatalf("%s not found: install Debian package %s (make test-deps does)", cmd, pkg)
	}
}

// freePort returns a loopback address nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSocketActivation: under systemd-socket-activate with two sockets, amwi serves on
// both and does not try server.listen (here an address already taken, which would fail).
func TestSocketActivation(t *testing.T) {
	t.Parallel()
	requireTool(t, "systemd-socket-activate", "systemd")
	dir := t.TempDir()
	root, data := mirrorWithFile(t, dir, "a.pkg.tar.zst", 1000)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := writeConfig(t, dir, root, "listen = \""+taken.Addr().String()+"\"")
	a, b := freePort(t), freePort(t)
	p := start(t, nil, "systemd-socket-activate", "-l", a, "-l", b, "--fdname=http:http", amwiBin, "-c", cfg, "serve")
	// systemd-socket-activate starts amwi on the first connection, as systemd would.
	for _, addr := range []string{a, b} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("socket %s never listened: %v\n%s", addr, err, p.Output())
			}
			time.Sleep(50 * time.Millisecond)
		}
		code, body := httpGet(t, "http://"+addr+"/archlinux/core/os/x86_64/a.pkg.tar.zst")
		if code != 200 || body != string(data) {
			t.Fatalf("GET via activated socket %s: status %d, %d bytes", addr, code, len(body))
		}
	}
	out := p.Output()
	if !strings.Contains(out, a) || !strings.Contains(out, b) {
		t.Errorf("log does not name both activated sockets %s and %s:\n%s", a, b, out)
	}
	if strings.Contains(out, taken.Addr().String()) {
		t.Errorf("amwi used server.listen although systemd passed sockets:\n%s", out)
	}
}

// TestSocketActivationRejectsDatagram: a passed socket that is not a stream listener is a
// clear start-up error, not silently ignored.
func TestSocketActivationRejectsDatagram(t *testing.T) {
	t.Parallel()
	requireTool(t, "systemd-socket-activate", "systemd")
	dir := t.TempDir()
	root, _ := mirrorWithFile(t, dir, "a", 1)
	cfg := writeConfig(t, dir, root, "")
	addr := freePort(t)
	p := start(t, nil, "systemd-socket-activate", "--datagram", "-l", addr, amwiBin, "-c", cfg, "serve")
	// A datagram arriving makes systemd-socket-activate start amwi.
	time.Sleep(300 * time.Millisecond)
	if c, err := net.Dial("udp", addr); err == nil {
		c.Write([]byte("x"))
		c.Close()
	}
	if code := p.wait(t, 15*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if !strings.Contains(p.Output(), "not a listening stream socket") {
		t.Fatalf("no clear error about the datagram socket:\n%s", p.Output())
	}
}

// TestSdNotify reads what amwi tells systemd: READY=1 once serving, STATUS= lines,
// watchdog pings when WATCHDOG_USEC is set, STOPPING=1 on SIGTERM.
func TestSdNotify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root, _ := mirrorWithFile(t, dir, "a", 1)
	cfg := writeConfig(t, dir, root, "")
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	p, _ := serve(t, cfg, "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")

	var got []string
	want := func(re string) {
		t.Helper()
		rx := regexp.MustCompile(re)
		timeout := time.After(10 * time.Second)
		for {
			for _, m := range got {
				if rx.MatchString(m) {
					return
				}
			}
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("notify socket closed; got %q", got)
				}
				got = append(got, m)
			case <-timeout:
				t.Fatalf("no sd_notify message matching %q; got %q", re, got)
			}
		}
	}
	want(`^STATUS=opening store in `)
	want(`^READY=1$`)
	want(`^STATUS=serving .* on 127\.0\.0\.1:\d+$`)
	want(`^WATCHDOG=1$`)
	p.cmd.Process.Signal(syscall.SIGTERM)
	want(`^STOPPING=1$`)
	want(`^STATUS=stopping: letting downloads finish`)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	// READY comes after the store is opened, and before any STOPPING.
	idx := func(s string) int {
		for i, m := range got {
			if m == s {
				return i
			}
		}
		return -1
	}
	if r, s := idx("READY=1"), idx("STOPPING=1"); r < 0 || s < r {
		t.Errorf("READY=1 at %d, STOPPING=1 at %d: wrong order in %q", r, s, got)
	}
}
