package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRsyncdCheck: `amwi rsyncd-check` passes a full mirror silently, refuses "used" with
// the one line rsync shows the client (on stdout, where rsync reads it) even when only
// the dashboard's layer says "used", and refuses when the config cannot be read.
func TestRsyncdCheck(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "mirror"), 0o755)
	cfg := filepath.Join(dir, "amwi.toml")
	os.WriteFile(cfg, []byte("[mirror]\nroot = \"mirror\"\n[state]\ndir = \"state\"\n"), 0o644)
	check := func(args ...string) (stdout, stderr string, err error) {
		var o, e bytes.Buffer
		err = Main(context.Background(), Env{Args: append([]string{"-c", cfg, "rsyncd-check"}, args...), Stdout: &o, Stderr: &e, Getenv: func(string) string { return "" }})
		return o.String(), e.String(), err
	}
	if out, _, err := check(); err != nil || out != "" {
		t.Fatalf("full mirror: %v, stdout %q", err, out)
	}
	// "used" set from the dashboard: the effective config counts.
	os.Mkdir(filepath.Join(dir, "state"), 0o750)
	os.WriteFile(filepath.Join(dir, "state", "settings.toml"), []byte("[mirror]\npackages = \"used\"\n[sync]\nhttp_upstream = \"https://m.example/arch/\"\n"), 0o640)
	out, _, err := check()
	if !errors.Is(err, errReexportRefused) || out != rsyncdRefusal+"\n" {
		t.Fatalf("used mode: %v, stdout %q", err, out)
	}
	if !strings.Contains(out, `mirror.packages = "used"`) || strings.Count(out, "\n") != 1 {
		t.Errorf("the refusal is not one line naming the setting: %q", out)
	}
	os.Remove(cfg)
	if out, _, err := check(); !errors.Is(err, errReexportRefused) || !strings.Contains(out, "cannot read its configuration") || strings.Count(out, "\n") != 1 {
		t.Errorf("no config: %v, stdout %q", err, out)
	}
	if out, err := runMain(t, "help"); err != nil || !strings.Contains(out, "rsyncd-check") {
		t.Errorf("amwi help does not list rsyncd-check")
	}
	if out, err := runMain(t, "rsyncd-check", "--help"); err != nil || !strings.Contains(out, "Usage: amwi rsyncd-check") {
		t.Errorf("amwi rsyncd-check --help: %v %q", err, out)
	}
}
