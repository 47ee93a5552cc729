package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBadConfigStartsNothing: each broken config makes `amwi serve` exit 1 with a message
// naming the file, line and key, and nothing is started: no port bound, no state created.
func TestBadConfigStartsNothing(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, text, want string }{
		{"unknown key", "[mirror]\nroot = \"m\"\n[server]\nlisen = \":8000\"\n", `amwi.toml:4: server.lisen: unknown key`},
		{"bad type", "[mirror]\nroot = \"m\"\n[sync]\nenabled = \"yes\"\n", `amwi.toml:4: sync.enabled: must be true or false, not a string`},
		{"bad duration", "[mirror]\nroot = \"m\"\n[sync]\ninterval = \"daily\"\n", `amwi.toml:4: sync.interval: "daily" is not a duration`},
		{"bad cidr", "[mirror]\nroot = \"m\"\n[server]\ntrusted_proxies = [\"192.168.1.0/40\"]\n", `amwi.toml:4: server.trusted_proxies[0]: "192.168.1.0/40" is not a CIDR`},
		{"bad listen", "[mirror]\nroot = \"m\"\n[server]\nlisten = \"localhost\"\n", `amwi.toml:4: server.listen: "localhost" is not an address`},
		{"missing root", "[mirror]\nroot = \"nowhere\"\n", `amwi.toml:2: mirror.root: cannot open `},
		{"syntax", "[mirror\nroot = \"m\"\n", `TOML syntax: expected '.' or ']' to end table name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.Mkdir(filepath.Join(dir, "m"), 0o755)
			// Unreadable root: a mirror dir amwi may not list (we are root in CI, so use a
			// file where a dir is expected instead of permissions).
			text := tt.text + fmt.Sprintf("\n[state]\ndir = %q\n", filepath.Join(dir, "state"))
			if strings.HasPrefix(tt.text, "[mirror\n") {
				text = tt.text
			}
			cfg := filepath.Join(dir, "amwi.toml")
			os.WriteFile(cfg, []byte(text), 0o644)
			out, code := run(t, nil, nil, "-c", cfg, "serve")
			if code != 1 || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit 1 and %q", code, out, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "state")); !os.IsNotExist(err) {
				t.Errorf("a broken config still created the state dir (err %v)", err)
			}
			if strings.Contains(out, "msg=serving") {
				t.Errorf("a broken config still served:\n%s", out)
			}
		})
	}
}

// TestConfigCheck: `amwi config check` lists every problem at once; -c, $AMWI_CONFIG and -c
// after the command all select the file.
func TestConfigCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "mirror"), 0o755)
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[server]\nlisten = \"x\"\ntrusted_proxies = [\"nope\"]\n[mirror]\nroot = \"mirror\"\n[sync]\nupstream = \"http://x/\"\n[search]\nper_page = 0\n"), 0o644)
	out, code := run(t, nil, nil, "-c", bad, "config", "check")
	if code != 1 {
		t.Fatalf("exit %d for a bad config:\n%s", code, out)
	}
	for _, w := range []string{"bad.toml:2: server.listen", "bad.toml:3: server.trusted_proxies[0]", "bad.toml:7: sync.upstream", "bad.toml:9: search.per_page", "4 problem(s)"} {
		if !strings.Contains(out, w) {
			t.Errorf("config check output lacks %q:\n%s", w, out)
		}
	}

	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("[mirror]\nroot = \"mirror\"\n"), 0o644)
	for _, tc := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"-c", good, "config", "check"}},
		{nil, []string{"config", "check", "--config", good}},
		{[]string{"AMWI_CONFIG=" + good}, []string{"config", "check"}},
	} {
		out, code := run(t, nil, tc.env, tc.args...)
		if code != 0 || !strings.Contains(out, "good.toml: ok") {
			t.Errorf("amwi %v (env %v): exit %d:\n%s", tc.args, tc.env, code, out)
		}
	}
	if out, code := run(t, nil, nil, "frobnicate"); code != 2 || !strings.Contains(out, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d:\n%s", code, out)
	}
}

// TestMakeRunConfig: the config `make run` writes (config default --local) starts as is.
func TestMakeRunConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, code := run(t, nil, nil, "config", "default", "--local")
	if code != 0 {
		t.Fatalf("config default: %d\n%s", code, out)
	}
	text := strings.Replace(out, `listen = ":8000"`, `listen = "127.0.0.1:0"`, 1)
	cfg := filepath.Join(dir, "amwi.toml")
	os.WriteFile(cfg, []byte(text), 0o644)
	os.Mkdir(filepath.Join(dir, "mirror"), 0o755)
	os.WriteFile(filepath.Join(dir, "mirror", "lastupdate"), []byte("1700000000\n"), 0o644)
	_, base := serve(t, cfg)
	if code, body := httpGet(t, base+"/archlinux/lastupdate"); code != 200 || body != "1700000000\n" {
		t.Fatalf("GET lastupdate: %d %q", code, body)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "amwi.db")); err != nil {
		t.Fatalf("state not kept beside the config: %v", err)
	}
}

// buildFor cross-builds amwi like `make cross` does, with a version stamped in.
func buildFor(t *testing.T, out, goos, goarch, goarm string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-tags", goTags, "-ldflags", "-s -w -X github.com/amwi/amwi/daemon.version=v9.9.9-test -X github.com/amwi/amwi/daemon.commit=abc123", "-o", out, "../cmd/amwi")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOARM="+goarm)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s/%s%s: %v\n%s", goos, goarch, goarm, err, b)
	}
}

// arm64Budget is DESIGN.md's ceiling for the stripped linux/arm64 binary (12 MB, read as
// MiB as make bench does).
const arm64Budget = 12 << 20

// checkArm64Size fails when a stripped arm64 build of amwi has outgrown arm64Budget. It
// is a size, not a timing: the same sources and toolchain give the same bytes.
func checkArm64Size(t *testing.T, bin string) {
	t.Helper()
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > arm64Budget {
		t.Errorf("the stripped arm64 binary is %d bytes (%.2f MiB), over the %d MiB budget: see what grew with `go tool nm -size -sort size` on an unstripped build",
			fi.Size(), float64(fi.Size())/(1<<20), arm64Budget>>20)
	}
}

// armTargets are the ARM builds amwi ships, with the qemu-user binary that runs each and
// the platform `amwi version` reports.
var armTargets = []struct{ arch, arm, qemu, platform string }{
	{"arm", "6", "qemu-arm-static", "linux/arm"},
	{"arm", "7", "qemu-arm-static", "linux/arm"},
	{"arm64", "", "qemu-aarch64-static", "linux/arm64"},
}

// TestARMBinariesServe: the armv6, armv7 and arm64 static binaries start under
// qemu-user-static and serve a file; `amwi version` reports the stamped version and platform;
// the arm64 one, built as `make cross` builds it, stays within arm64Budget.
func TestARMBinariesServe(t *testing.T) {
	t.Parallel()
	targets := armTargets
	for _, tg := range targets {
		requireTool(t, tg.qemu, "qemu-user-static")
	}
	dir := t.TempDir()
	root, data := mirrorWithFile(t, dir, "arm.pkg.tar.zst", 300_000)
	huge := sparseBeyond4GiB(t, filepath.Join(root, "core", "os", "x86_64", "huge.pkg.tar.zst"))
	var mu sync.Mutex // two cores: build one at a time, run under qemu in parallel
	for _, tg := range targets {
		t.Run(tg.arch+tg.arm, func(t *testing.T) {
			t.Parallel()
			bin := filepath.Join(dir, "amwi-"+tg.arch+tg.arm)
			mu.Lock()
			buildFor(t, bin, "linux", tg.arch, tg.arm)
			mu.Unlock()
			if tg.arch == "arm64" {
				checkArm64Size(t, bin)
			}
			ver, err := exec.Command(tg.qemu, bin, "version").CombinedOutput()
			if err != nil || !bytes.Contains(ver, []byte("amwi v9.9.9-test")) || !bytes.Contains(ver, []byte("commit abc123")) || !bytes.Contains(ver, []byte(tg.platform)) {
				t.Fatalf("version under %s: %v\n%s", tg.qemu, err, ver)
			}
			sub := filepath.Join(dir, tg.arch+tg.arm)
			os.Mkdir(sub, 0o755)
			cfg := writeConfig(t, sub, root, "")
			p := start(t, nil, tg.qemu, bin, "-c", cfg, "serve")
			base := "http://" + p.waitServing(t)
			code, body := httpGet(t, base+"/archlinux/core/os/x86_64/arm.pkg.tar.zst")
			if code != 200 || body != string(data) {
				t.Fatalf("GET under %s: status %d, %d bytes", tg.qemu, code, len(body))
			}
			// Offsets past 2 and 4 GiB, where a 32-bit offset fails or wraps (a Range goes
			// through Go's own sendfile; amwi's is TestARMSendFile's).
			for off, want := range huge {
				req, _ := http.NewRequest("GET", base+"/archlinux/core/os/x86_64/huge.pkg.tar.zst", nil)
				req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+int64(len(want))-1))
				resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
				if err != nil {
					t.Fatalf("Range at %d under %s: %v", off, tg.qemu, err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusPartialContent || err != nil || string(got) != want {
					t.Errorf("Range at %d under %s: status %d, %q (%v); want 206 %q", off, tg.qemu, resp.StatusCode, got, err, want)
				}
			}
		})
	}
}

// TestARMSendFile: the web package's sendfile tests pass on the ARM targets, run under
// qemu-user: 64-bit offsets on 32-bit ARM (TestSendFileBeyond4GiB), the voluntary-switch
// count and the deadline-moving send on each ABI. Not the page-cache probe's tests:
// Debian's qemu-user does not implement preadv2, so there every download goes the
// ordinary way (inMemory's safe side).
func TestARMSendFile(t *testing.T) {
	t.Parallel()
	targets := armTargets
	for _, tg := range targets {
		requireTool(t, tg.qemu, "qemu-user-static")
	}
	dir := t.TempDir()
	var mu sync.Mutex // build one at a time, run under qemu in parallel
	for _, tg := range targets {
		t.Run(tg.arch+tg.arm, func(t *testing.T) {
			t.Parallel()
			bin := filepath.Join(dir, "web-"+tg.arch+tg.arm+".test")
			mu.Lock()
			cmd := exec.Command("go", "test", "-c", "-tags", goTags, "-o", bin, "../web")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+tg.arch, "GOARM="+tg.arm)
			out, err := cmd.CombinedOutput()
			mu.Unlock()
			if err != nil {
				t.Fatalf("go test -c for linux/%s%s: %v\n%s", tg.arch, tg.arm, err, out)
			}
			cmd = exec.Command(tg.qemu, bin, "-test.run", "^(TestSendFile|TestSendFileDeadline|TestSendFileBeyond4GiB|TestVoluntarySwitches|TestSendProgress)$", "-test.count=1", "-test.v")
			cmd.Dir = "../web"
			out, err = cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("web sendfile tests under %s: %v\n%s", tg.qemu, err, out)
			}
			if n := len(regexp.MustCompile(`(?m)^--- PASS: `).FindAll(out, -1)); n != 5 {
				t.Fatalf("web sendfile tests under %s: %d passed, want 5 (a test renamed?)\n%s", tg.qemu, n, out)
			}
		})
	}
}

// sparseBeyond4GiB makes path a sparse file of 5 GiB with a different marker at 0, 3 GiB
// and 4 GiB + 4 KiB, and returns the markers by offset.
func sparseBeyond4GiB(t *testing.T, path string) map[int64]string {
	t.Helper()
	marks := map[int64]string{0: "first bytes, 0 ", 3 << 30: "at three GiB...", 4<<30 + 4096: "past four GiB.."}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off, m := range marks {
		if _, err := f.WriteAt([]byte(m), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(5 << 30); err != nil {
		t.Fatal(err)
	}
	return marks
}

// TestVersion: version, commit, Go version and GOOS/GOARCH.
func TestVersion(t *testing.T) {
	t.Parallel()
	out, code := run(t, nil, nil, "version")
	if code != 0 || !regexp.MustCompile(`(?s)^amwi \S+\ncommit \S+\ngo1\.\d+\S* linux/`+runtime.GOARCH+`\n$`).MatchString(out) {
		t.Fatalf("amwi version: exit %d\n%q", code, out)
	}
}

// TestSystemdUnits: the shipped units pass `systemd-analyze verify`, and the service's
// sandbox rates an exposure of at most 2.0 in `systemd-analyze security`.
func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	requireTool(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	svc, err := os.ReadFile("../etc/amwi.service")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "amwi.service"), bytes.ReplaceAll(svc, []byte("@BINDIR@"), []byte(filepath.Dir(amwiBin))), 0o644)
	sock, _ := os.ReadFile("../etc/amwi.socket")
	os.WriteFile(filepath.Join(dir, "amwi.socket"), sock, 0o644)
	cmd := exec.Command("systemd-analyze", "verify", "amwi.service", "amwi.socket")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	cmd = exec.Command("systemd-analyze", "security", "--offline=true", "amwi.service")
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for amwi.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no exposure level:\n%s", out)
	}
	if v, _ := strconv.ParseFloat(string(m[1]), 64); v > 2.0 {
		t.Fatalf("amwi.service exposure %.1f > 2.0:\n%s", v, out)
	}
	for _, f := range []string{"../etc/sysusers.d/amwi.conf", "../etc/tmpfiles.d/amwi.conf"} {
		if b, err := os.ReadFile(f); err != nil || !bytes.Contains(b, []byte("amwi")) {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
}

// TestInstall: make install lays out binary, config, units, sysusers and tmpfiles, the
// Grafana dashboard and the Prometheus alert rules under DESTDIR, and never overwrites an
// existing amwi.toml.
func TestInstall(t *testing.T) {
	t.Parallel()
	dest := t.TempDir()
	install := func() string {
		cmd := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest, "PREFIX=/usr")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
		return string(out)
	}
	install()
	for _, f := range []string{"usr/bin/amwi", "etc/amwi/amwi.toml", "usr/lib/systemd/system/amwi.service",
		"usr/lib/systemd/system/amwi.socket", "usr/lib/sysusers.d/amwi.conf", "usr/lib/tmpfiles.d/amwi.conf", "etc/amwi/mirrorlists",
		"usr/share/amwi/grafana/amwi-dashboard.json", "usr/share/amwi/prometheus/amwi-alerts.yml"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("not installed: %s", f)
		}
	}
	svc, _ := os.ReadFile(filepath.Join(dest, "usr/lib/systemd/system/amwi.service"))
	if !bytes.Contains(svc, []byte("ExecStart=/usr/bin/amwi ")) {
		t.Errorf("amwi.service ExecStart not pointed at PREFIX/bin:\n%s", svc)
	}
	conf := filepath.Join(dest, "etc/amwi/amwi.toml")
	os.WriteFile(conf, []byte("# mine\n"), 0o644)
	if out := install(); !strings.Contains(out, "keeping existing") {
		t.Errorf("second install did not say it keeps the config:\n%s", out)
	}
	if b, _ := os.ReadFile(conf); string(b) != "# mine\n" {
		t.Errorf("make install overwrote an existing amwi.toml")
	}
}

// TestHelpDoesNothing: a command's --help prints its usage and does nothing else, even
// with flags that would act (`verify --repair --help` removes nothing).
func TestHelpDoesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := syncConfig(t, dir, "rsync://127.0.0.1:1/archlinux/", `["core"]`, "")
	for _, args := range [][]string{{"sync", "--help"}, {"sync", "--force", "--help"}, {"verify", "--repair", "--help"},
		{"serve", "--help"}, {"bench", "--help"}, {"search", "--help"},
		{"db", "--help"}, {"db", "repair", "--help"}, {"db", "repair", "--from-backup", "--help"}, {"db", "backup", "--help"}} {
		out, code := run(t, nil, nil, append([]string{"-c", cfg}, args...)...)
		if code != 0 || !strings.Contains(out, "--") {
			t.Errorf("amwi %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	if des, _ := os.ReadDir(filepath.Join(dir, "state")); len(des) > 0 {
		t.Errorf("--help left state behind: %v", des)
	}
}

// TestCtrlCAtPasswordPrompt: Ctrl-C at `amwi user add`'s password prompt (a real
// terminal, script(1)) aborts with nothing created; the Enter that follows creates nothing.
func TestCtrlCAtPasswordPrompt(t *testing.T) {
	t.Parallel()
	requireTool(t, "script", "bsdutils")
	dir := t.TempDir()
	cfg := syncConfig(t, dir, "rsync://127.0.0.1:1/archlinux/", `["core"]`, "")
	cmd := exec.Command("script", "-qfec", amwiBin+" -c "+cfg+" user add alice", "/dev/null")
	stdin, _ := cmd.StdinPipe()
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; !strings.Contains(out.String(), "password:"); i++ {
		if i > 500 {
			t.Fatalf("no password prompt: %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stdin.Write([]byte("\x03"))
	time.Sleep(300 * time.Millisecond)
	stdin.Write([]byte("secret-password\n"))
	stdin.Close()
	cmd.Wait()
	if !strings.Contains(out.String(), "interrupted: no user created") {
		t.Errorf("Ctrl-C at the prompt: %q", out.String())
	}
	// alice does not exist: adding her now works.
	if o, code := run(t, strings.NewReader("another-password\n"), nil, "-c", cfg, "user", "add", "alice"); code != 0 {
		t.Errorf("alice existed after the interrupted prompt: exit %d\n%s", code, o)
	}
}

// lockedBuffer is a bytes.Buffer a command writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
