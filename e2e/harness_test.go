// Package e2e starts the real amwi binary against real Arch trees, real pacman, real
// systemd-socket-activate and qemu-user, and checks what a user would see.
package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// amwiBin is the binary under test, built once by TestMain.
var amwiBin string

// goTags is the Makefile's GOTAGS: the build tags every build of amwi uses (read by TestMain).
var goTags string

// makeGoTags reads the GOTAGS line of the Makefile, so the binaries tested are built the
// way `make` builds the shipped ones.
func makeGoTags() (string, error) {
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		return "", fmt.Errorf("read the Makefile for its GOTAGS: %w", err)
	}
	m := regexp.MustCompile(`(?m)^GOTAGS\s*:?=[ \t]*(.*)$`).FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("../Makefile has no GOTAGS line")
	}
	return strings.TrimSpace(string(m[1])), nil
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "amwi-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	amwiBin = filepath.Join(dir, "amwi")
	if goTags, err = makeGoTags(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-trimpath", "-tags", goTags, "-o", amwiBin, "../cmd/amwi")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build amwi: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// writeConfig writes an amwi.toml in dir serving mirror with state under dir. extra is
// appended TOML (whole sections).
func writeConfig(t *testing.T, dir, mirror, server string) string {
	t.Helper()
	if server == "" {
		server = `listen = "127.0.0.1:0"`
	}
	cfg := fmt.Sprintf("[server]\n%s\n\n[mirror]\nroot = %q\n\n[state]\ndir = %q\n", server, mirror, filepath.Join(dir, "state"))
	path := filepath.Join(dir, "amwi.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// proc is a running amwi with its output captured.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer // stderr (logs)
	done chan struct{}
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// start runs the binary (or name, when the test wraps it) with args and waits for nothing.
func start(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = p
	p.cmd.Stderr = p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, p.Output())
		}
	})
	return p
}

var servingRe = regexp.MustCompile(`msg=serving .*listen=(\S+)`)

// waitServing waits for the "serving" log line and returns the first listen address.
func (p *proc) waitServing(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := servingRe.FindStringSubmatch(p.Output()); m != nil {
			return strings.Split(strings.Trim(m[1], `"`), ",")[0]
		}
		select {
		case <-p.done:
			t.Fatalf("amwi exited before serving: %v\n%s", p.err, p.Output())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("amwi did not log that it serves within 20s:\n%s", p.Output())
	return ""
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("process still running after %s:\n%s", within, p.Output())
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

// serve starts `amwi -c cfg serve` and returns it and its base URL.
func serve(t *testing.T, cfg string, env ...string) (*proc, string) {
	t.Helper()
	p := start(t, env, amwiBin, "-c", cfg, "serve")
	return p, "http://" + p.waitServing(t)
}

// run runs amwi to completion and returns stdout+stderr and the exit code.
func run(t *testing.T, stdin io.Reader, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(amwiBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("run amwi %v: %v", args, err)
	}
	return string(out), 0
}

// lines returns the lines of s that contain sub.
func lines(s, sub string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.Contains(sc.Text(), sub) {
			out = append(out, sc.Text())
		}
	}
	return out
}
