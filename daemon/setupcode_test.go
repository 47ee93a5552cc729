package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/amwi/amwi/daemon/config"
)

// logBuf is a log destination tests read while the daemon writes.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var setupCodeRe = regexp.MustCompile(`setup code: ([A-Z0-9-]+)`)

// runDaemon opens and runs a Daemon on cfg, logging into a fresh logBuf; stop ends it.
func runDaemon(t *testing.T, cfg *config.Config) (d *Daemon, log *logBuf, stop func()) {
	t.Helper()
	log = &logBuf{}
	d = &Daemon{Config: cfg, Log: slog.New(slog.NewTextHandler(log, nil))}
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			d.Close()
		})
	}
	t.Cleanup(stop)
	return d, log, stop
}

// TestSetupCode: while no account exists, serve prints a setup code in its log and keeps
// it in the state dir, mode 0600; a restart keeps it; a loose or spoiled file is replaced;
// the first admin, registered over HTTP with it, ends it, and a daemon with accounts
// removes a leftover file.
func TestSetupCode(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "mirror"), 0o755)
	cfg, err := config.Parse([]byte("[server]\nlisten = \"127.0.0.1:0\"\n[mirror]\nroot = \"mirror\"\n[state]\ndir = \"state\"\n"), filepath.Join(dir, "amwi.toml"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "state", "setup-code")
	codeOf := func(log *logBuf) string {
		t.Helper()
		m := setupCodeRe.FindAllStringSubmatch(log.String(), -1)
		if len(m) != 1 {
			t.Fatalf("want one line with \"setup code: CODE\" in the log:\n%s", log)
		}
		return m[0][1]
	}
	kept := func() string {
		t.Helper()
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", file, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(file)
		return strings.TrimSpace(string(b))
	}

	_, log, stop := runDaemon(t, cfg)
	code := codeOf(log)
	if got := kept(); got != code {
		t.Fatalf("the file holds %q, the log says %q", got, code)
	}
	stop()

	// A restart while no account exists keeps the code.
	_, log, stop = runDaemon(t, cfg)
	if again := codeOf(log); again != code {
		t.Errorf("after a restart the code is %q, was %q", again, code)
	}
	stop()

	// A file others could read, or without a code, gets a new code.
	for name, spoil := range map[string]func(){
		"readable by others": func() { os.Chmod(file, 0o644) },
		"no code":            func() { os.WriteFile(file, []byte("hello\n"), 0o600) },
	} {
		spoil()
		_, log, stop = runDaemon(t, cfg)
		if c := codeOf(log); c == code {
			t.Errorf("%s: the code was kept", name)
		} else {
			code = c
		}
		if got := kept(); got != code {
			t.Errorf("%s: the file holds %q, the log says %q", name, got, code)
		}
		stop()
	}

	// The first admin registers over HTTP with the code: the file goes.
	d, _, stop := runDaemon(t, cfg)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := url.Values{"name": {"admin"}, "password": {"a long password"}, "password2": {"a long password"}}
	resp, err := noRedirect.PostForm("http://"+d.Addrs()[0]+"/register", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("registration without the code: %d, want 403", resp.StatusCode)
	}
	form.Set("setup_code", code)
	if resp, err = noRedirect.PostForm("http://"+d.Addrs()[0]+"/register", form); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("registration with the code: %d", resp.StatusCode)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("the setup code file is still there after the first admin registered: %v", err)
	}
	stop()

	// A leftover file (say, the daemon was killed before removing it) goes at start, and
	// no code is printed.
	os.WriteFile(file, []byte(code+"\n"), 0o600)
	_, log, stop = runDaemon(t, cfg)
	stop()
	if strings.Contains(log.String(), "setup code:") {
		t.Errorf("a daemon with accounts printed a setup code:\n%s", log)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("a leftover setup code file was kept while an account exists: %v", err)
	}
}

// TestSetupCodeEndsWithUserAdd: `amwi user add` stays the command-line way in; run while
// the daemon serves, it makes the first admin through the daemon, and the code is spent.
func TestSetupCodeEndsWithUserAdd(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "mirror"), 0o755)
	path := filepath.Join(dir, "amwi.toml")
	os.WriteFile(path, []byte("[server]\nlisten = \"127.0.0.1:0\"\n[mirror]\nroot = \"mirror\"\n[state]\ndir = \"state\"\n"), 0o644)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "state", "setup-code")
	runDaemon(t, cfg)
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("no setup code file while no account exists: %v", err)
	}
	var out bytes.Buffer
	err = Main(context.Background(), Env{Args: []string{"-c", path, "user", "add", "admin"}, Stdin: strings.NewReader("a long password\n"),
		Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }})
	if err != nil || !strings.Contains(out.String(), "added administrator admin") {
		t.Fatalf("amwi user add: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("the setup code file outlived the first admin made by amwi user add: %v", err)
	}
}
