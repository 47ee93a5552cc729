package archtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Rsyncd is a real `rsync --daemon` on 127.0.0.1 exporting one module, "archlinux".
type Rsyncd struct {
	URL     string // rsync://127.0.0.1:PORT/archlinux/
	Addr    string
	LogPath string // transfer log: one "send" line per file sent
	cmd     *exec.Cmd
}

// StartRsyncd serves dir as module "archlinux" until the test ends.
func StartRsyncd(t testing.TB, dir string) *Rsyncd {
	t.Helper()
	Require(t, "rsync")
	work := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	ids := ""
	if os.Getuid() == 0 {
		// As root the daemon would drop to nobody, who cannot enter t.TempDir() (0700).
		ids = "uid = root\ngid = root\n"
	}
	conf := filepath.Join(work, "rsyncd.conf")
	logPath := filepath.Join(work, "rsyncd.log")
	must(t, os.WriteFile(conf, []byte(fmt.Sprintf(`pid file = %s/rsyncd.pid
log file = %s
transfer logging = yes
log format = %%o %%f
use chroot = no
max connections = 20
%s
[archlinux]
path = %s
read only = yes
list = yes
`, work, logPath, ids, dir)), 0o644))
	cmd := exec.Command("rsync", "--daemon", "--no-detach", "--config="+conf, "--port="+port, "--address=127.0.0.1")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(t, cmd.Start())
	r := &Rsyncd{URL: "rsync://" + addr + "/archlinux/", Addr: addr, LogPath: logPath, cmd: cmd}
	t.Cleanup(r.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsync --daemon did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

// Stop ends the daemon (and the per-connection processes it forked).
func (r *Rsyncd) Stop() {
	if r.cmd.Process != nil {
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		r.cmd.Wait()
	}
}

// Sent returns the file names the daemon has logged as sent so far.
func (r *Rsyncd) Sent(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(r.LogPath)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		// "2026/11/24 03:00:00 [123] send archlinux/core/os/x86_64/core.db.tar.gz" (log format %o %f)
		_, name, ok := strings.Cut(line, "] send ")
		if ok {
			out = append(out, strings.TrimPrefix(name, "archlinux/"))
		}
	}
	return out
}

// ClearLog forgets what was logged so far.
func (r *Rsyncd) ClearLog(t testing.TB) {
	t.Helper()
	must(t, os.WriteFile(r.LogPath, nil, 0o644))
}
