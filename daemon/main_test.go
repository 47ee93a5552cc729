package daemon

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/config"
)

func runMain(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Main(context.Background(), Env{Args: args, Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }})
	return out.String(), err
}

func TestConfigDefaultLocalParses(t *testing.T) {
	out, err := runMain(t, "config", "default", "--local")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "mirror"), 0o755)
	cfg, err := config.Parse([]byte(out), filepath.Join(dir, "amwi.toml"))
	if err != nil {
		t.Fatalf("config default --local does not parse: %v", err)
	}
	if cfg.Mirror.Root != filepath.Join(dir, "mirror") || cfg.State.Dir != filepath.Join(dir, "state") || cfg.Bench.MirrorlistsDir != filepath.Join(dir, "mirrorlists") {
		t.Errorf("--local paths: %s %s %s", cfg.Mirror.Root, cfg.State.Dir, cfg.Bench.MirrorlistsDir)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"config"}, {"config", "frob"}, {"version", "extra"}, {"--bogus", "serve"}} {
		if _, err := runMain(t, args...); !errors.Is(err, ErrUsage) {
			t.Errorf("amwi %v: %v, want ErrUsage", args, err)
		}
	}
	if out, err := runMain(t, "--help"); err != nil || !strings.Contains(out, "config check") {
		t.Errorf("--help: %v\n%s", err, out)
	}
	// Every way of asking for help answers on stdout with exit 0; the top-level usage
	// lists every command, help included.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "config show"},
		{[]string{"help", "-h"}, "help [COMMAND]"},
		{[]string{"help", "--help"}, "help [COMMAND]"},
		{[]string{"help", "help"}, "help [COMMAND]"},
		{[]string{"--help", "sync"}, "Usage: amwi sync"},
		{[]string{"help", "sync"}, "Usage: amwi sync"},
		{[]string{"help", "user", "add"}, "Usage: amwi user add [flags] NAME"},
		{[]string{"config", "-h", "extra"}, "Usage: amwi config"},
		{[]string{"user", "-h", "add"}, "Usage: amwi user add"},
		{[]string{"search", "--help"}, "Usage: amwi search [flags] TERM..."},
		{[]string{"help"}, "db check [FILE] | backup FILE | repair"},
		{[]string{"help", "db"}, "Usage: amwi db check [FILE] | backup FILE | repair"},
		{[]string{"db", "-h"}, "Usage: amwi db check [FILE] | backup FILE | repair"},
		{[]string{"--help", "db"}, "Usage: amwi db check [FILE] | backup FILE | repair"},
		{[]string{"help", "db", "backup"}, "Usage: amwi db backup [flags] FILE"},
		{[]string{"db", "check", "--help"}, "Usage: amwi db check [flags] [FILE]"},
		{[]string{"db", "repair", "--from-backup", "-h"}, "--from-backup"},
	} {
		var stdout, stderr bytes.Buffer
		err := Main(context.Background(), Env{Args: tc.args, Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }})
		if err != nil || !strings.Contains(stdout.String(), tc.want) || stderr.Len() != 0 {
			t.Errorf("amwi %v: %v, stdout %q, stderr %q; want %q on stdout", tc.args, err, stdout.String(), stderr.String(), tc.want)
		}
	}
	// Mistakes say which command and what, once.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "add"}, "amwi user add: missing NAME"},
		{[]string{"serve", "extra"}, "amwi serve: unexpected arguments: extra"},
		{[]string{"search", ""}, "amwi search: say what to search for"},
		{[]string{"search", " ", " "}, "amwi search: say what to search for"},
		{[]string{"db"}, "amwi db: say check, backup FILE or repair"},
		{[]string{"db", "backup"}, "amwi db backup: missing FILE"},
		{[]string{"db", "check", "a", "b"}, "amwi db check: unexpected arguments: b"},
		{[]string{"db", "repair", "--from-backup", "--from", "x"}, "amwi db repair: --from-backup or --from, not both"},
	} {
		out, err := runMain(t, tc.args...)
		if !errors.Is(err, ErrUsage) || !strings.Contains(out, tc.want) || strings.Contains(out, "amwi amwi") {
			t.Errorf("amwi %q: %v\n%s\nwant ErrUsage and %q", tc.args, err, out, tc.want)
		}
	}
}

// TestDaemonLifecycle builds the Daemon in-process as the end-to-end tests do with the
// binary: Open errors come back synchronously, Run ends with its context, Close frees the
// store for the next one.
func TestDaemonLifecycle(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "mirror"), 0o755)
	os.WriteFile(filepath.Join(dir, "mirror", "lastupdate"), []byte("1\n"), 0o644)
	cfg, err := config.Parse([]byte("[server]\nlisten = \"127.0.0.1:0\"\n[mirror]\nroot = \"mirror\"\n[state]\ndir = \"state\"\n"), filepath.Join(dir, "amwi.toml"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := 0; i < 2; i++ {
		d := &Daemon{Config: cfg, Log: log}
		if err := d.Open(); err != nil {
			t.Fatalf("open #%d: %v", i, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- d.Run(ctx) }()
		resp, err := http.Get("http://" + d.Addrs()[0] + "/archlinux/lastupdate")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET: %v %v", resp, err)
		}
		resp.Body.Close()
		// A second daemon on the same state is refused while this one runs.
		if err := (&Daemon{Config: cfg, Log: log}).Open(); err == nil || !strings.Contains(err.Error(), "another") {
			t.Fatalf("second Open: %v", err)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		d.Close()
	}
}

// TestConfigCheckWithoutConfig: a missing config file gets the same hint as every other
// command (where amwi looked and how to point at one), not a one-line "problem".
func TestConfigCheckWithoutConfig(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "amwi.toml")
	for _, args := range [][]string{{"-c", missing, "config", "check"}, {"-c", missing, "config", "show"}} {
		_, err := runMain(t, args...)
		if err == nil || !strings.Contains(err.Error(), "no config at "+missing+", from -c") || !strings.Contains(err.Error(), "amwi config default") {
			t.Errorf("amwi %v: %v", args, err)
		}
	}
}
