package e2e

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var setupCodeRe = regexp.MustCompile(`setup code: ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})`)

// setupCode is the one-time setup code a serving amwi printed in its log.
func setupCode(t *testing.T, p *proc) string {
	t.Helper()
	m := setupCodeRe.FindStringSubmatch(p.Output())
	if m == nil {
		t.Fatalf("no \"setup code: CODE\" line in the log of amwi serve without accounts:\n%s", p.Output())
	}
	return m[1]
}

// TestFirstAdminSetupCode: the real binary, started without accounts, prints a setup code
// in its log and keeps it in the state dir, readable by its owner only; a restart keeps
// it; registering needs it; once the admin exists the file is gone and a restart prints
// no code.
func TestFirstAdminSetupCode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root, _ := mirrorWithFile(t, dir, "x", 10)
	cfg := writeConfig(t, dir, root, "")
	file := filepath.Join(dir, "state", "setup-code")

	p, _ := serve(t, cfg)
	code := setupCode(t, p)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("no setup code file in the state dir: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600 (root and the amwi user only)", file, fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(file); strings.TrimSpace(string(b)) != code {
		t.Errorf("the file holds %q, the log says %q", b, code)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, 20*time.Second)

	p, base := serve(t, cfg)
	if again := setupCode(t, p); again != code {
		t.Errorf("a restart before anyone registered changed the code from %q to %q", code, again)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := url.Values{"name": {"admin"}, "password": {"a long password"}, "password2": {"a long password"}}
	for _, wrong := range []string{"", "AAAA-BBBB-CCCC"} {
		form.Set("setup_code", wrong)
		resp, err := c.PostForm(base+"/register", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("registration with setup code %q: %d, want 403", wrong, resp.StatusCode)
		}
	}
	form.Set("setup_code", code)
	resp, err := c.PostForm(base+"/register", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("registration with the code from the log: %d\n%s", resp.StatusCode, p.Output())
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("the setup code file outlived the first admin: %v", err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, 20*time.Second)

	p, _ = serve(t, cfg)
	if strings.Contains(p.Output(), "setup code:") {
		t.Errorf("amwi serve with an account printed a setup code:\n%s", p.Output())
	}
}
