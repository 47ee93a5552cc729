package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amwi/amwi/internal/archtest"
)

// rsyncdConf is the shipped re-export config, as the tests read it.
const rsyncdConf = "../etc/rsyncd-amwi.conf"

// confValues reads an rsyncd.conf's "key = value" lines (last one wins, sections ignored).
func confValues(text string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// TestRsyncdUnits: the re-export's socket and per-connection service pass `systemd-analyze
// verify`, the service's sandbox rates at most 2.0, and the units and rsyncd.conf agree
// (config path, mirror path, lock file folder).
func TestRsyncdUnits(t *testing.T) {
	t.Parallel()
	requireTool(t, "systemd-analyze", "systemd")
	archtest.Require(t, "rsync")
	dir := t.TempDir()
	units := map[string]string{}
	for _, f := range []string{"amwi-rsyncd.socket", "amwi-rsyncd@.service"} {
		b, err := os.ReadFile(filepath.Join("..", "etc", f))
		if err != nil {
			t.Fatal(err)
		}
		units[f] = string(b)
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	cmd := exec.Command("systemd-analyze", "verify", "amwi-rsyncd.socket", "amwi-rsyncd@.service")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	cmd = exec.Command("systemd-analyze", "security", "--offline=true", "amwi-rsyncd@.service")
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for amwi-rsyncd@\S*\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no exposure level:\n%s", out)
	}
	if v, _ := strconv.ParseFloat(string(m[1]), 64); v > 2.0 {
		t.Fatalf("amwi-rsyncd@.service exposure %.1f > 2.0:\n%s", v, out)
	}

	text, err := os.ReadFile(rsyncdConf)
	if err != nil {
		t.Fatal(err)
	}
	conf := confValues(string(text))
	for k, want := range map[string]string{
		"path": "/srv/http/archlinux", "read only": "yes", "list": "yes", "use chroot": "yes", "uid": "amwi", "gid": "amwi",
		"max connections": "10", "timeout": "600", "transfer logging": "no",
	} {
		if conf[k] != want {
			t.Errorf("%s: %s = %q, want %q", rsyncdConf, k, conf[k], want)
		}
	}
	if !strings.Contains(" "+conf["refuse options"]+" ", " delete ") {
		t.Errorf("%s: refuse options = %q does not refuse delete", rsyncdConf, conf["refuse options"])
	}
	if !strings.Contains(" "+conf["exclude"]+" ", " .~tmp~/ ") || !strings.Contains(" "+conf["exclude"]+" ", " /.amwi/ ") {
		t.Errorf("%s: exclude = %q does not hide .~tmp~/ and /.amwi/", rsyncdConf, conf["exclude"])
	}
	if !strings.Contains(string(text), `upstream = "rsync://primary.lan/archlinux/"`) {
		t.Errorf("%s: the header does not show a secondary's upstream line", rsyncdConf)
	}
	svc, sock := units["amwi-rsyncd@.service"], units["amwi-rsyncd.socket"]
	for _, w := range []string{"ExecStart=/usr/bin/rsync --daemon --config=/etc/amwi/rsyncd.conf\n", "StandardInput=socket\n",
		"ReadOnlyPaths=" + conf["path"] + "\n", "RuntimeDirectory=" + filepath.Base(filepath.Dir(conf["lock file"])) + "\n",
		"CapabilityBoundingSet=CAP_SYS_CHROOT CAP_SETUID CAP_SETGID\n", "ProtectSystem=strict\n", "NoNewPrivileges=yes\n"} {
		if !strings.Contains(svc, w) {
			t.Errorf("amwi-rsyncd@.service lacks %q", strings.TrimSpace(w))
		}
	}
	// The refusal of a "used" mirror: the hook, and the group that lets it read the config.
	if conf["pre-xfer exec"] != "amwi -c /etc/amwi/amwi.toml rsyncd-check" || !strings.Contains(svc, "\nSupplementaryGroups=amwi\n") {
		t.Errorf("pre-xfer exec = %q, or amwi-rsyncd@.service lacks SupplementaryGroups=amwi", conf["pre-xfer exec"])
	}
	if filepath.Dir(conf["lock file"]) != "/run/amwi-rsyncd" {
		t.Errorf("lock file = %q is not in the service's RuntimeDirectory", conf["lock file"])
	}
	for _, w := range []string{"ListenStream=873\n", "Accept=yes\n"} {
		if !strings.Contains(sock, w) {
			t.Errorf("amwi-rsyncd.socket lacks %q", strings.TrimSpace(w))
		}
	}
}

// reexport serves mirror as the shipped etc/rsyncd-amwi.conf does, the way
// amwi-rsyncd.socket runs it: one `rsync --daemon` per connection on its standard input
// (systemd-socket-activate --inetd --accept standing in for systemd), on a loopback port.
// As root it chroots and runs as root (the test has no amwi user); otherwise without chroot.
// Its pre-xfer exec is the amwi under test reading amwiConfig, the primary's config.
func reexport(t *testing.T, mirror, amwiConfig string) (url, logPath string) {
	t.Helper()
	requireTool(t, "systemd-socket-activate", "systemd")
	archtest.Require(t, "rsync")
	text, err := os.ReadFile(rsyncdConf)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	logPath = filepath.Join(work, "rsyncd.log")
	conf := string(text)
	replace := func(old, new string) {
		t.Helper()
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(old) + `$`)
		if !re.MatchString(conf) {
			t.Fatalf("%s has no line %q to adapt for the test", rsyncdConf, old)
		}
		conf = re.ReplaceAllLiteralString(conf, new)
	}
	replace("path = /srv/http/archlinux", "path = "+mirror)
	replace("pre-xfer exec = amwi -c /etc/amwi/amwi.toml rsyncd-check", "pre-xfer exec = "+amwiBin+" -c "+amwiConfig+" rsyncd-check")
	replace("lock file = /run/amwi-rsyncd/rsyncd.lock", "lock file = "+filepath.Join(work, "rsyncd.lock")+"\nlog file = "+logPath)
	if os.Getuid() == 0 {
		replace("uid = amwi", "uid = root")
		replace("gid = amwi", "gid = root")
	} else {
		replace("uid = amwi", "")
		replace("gid = amwi", "")
		replace("use chroot = yes", "use chroot = no")
	}
	confPath := filepath.Join(work, "rsyncd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	cmd := exec.Command("systemd-socket-activate", "--inetd", "--accept", "-l", addr, "rsync", "--daemon", "--config="+confPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group: the per-connection rsyncs go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			t.Logf("re-export (systemd-socket-activate):\n%s\nrsyncd log:\n%s", out.String(), log)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the re-export never listened on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "rsync://" + addr + "/archlinux/", logPath
}

// runWithin runs amwi like run does, killed after d.
func runWithin(t *testing.T, d time.Duration, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, amwiBin, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("amwi %v did not finish within %s:\n%s", args, d, out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("run amwi %v: %v", args, err)
	}
	return string(out), 0
}

// treeOf describes every entry under root: "dir", "link → TARGET" or "file SHA256".
func treeOf(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case rel == ".":
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			m[rel] = "link → " + target
		case d.IsDir():
			m[rel] = "dir"
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m[rel] = fmt.Sprintf("file %x", sha256.Sum256(b))
		default:
			m[rel] = "other " + d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestScaleOut: two AMWI boxes on a LAN. The primary syncs from an upstream rsync daemon
// and serves; its mirror is re-exported with the shipped rsyncd.conf; the secondary syncs
// from that re-export and ends up with the same tree (files, symlinks, lastupdate and
// lastsync), without the primary's staging folders and half-written files. A pacman with
// both boxes as servers still installs when the first one is down.
func TestScaleOut(t *testing.T) {
	t.Parallel()
	tr, up := syncUpstream(t)
	const repos = `["core", "extra"]`

	// The primary: sync from the internet stand-in, then serve.
	pdir := t.TempDir()
	pcfg := syncConfig(t, pdir, up.URL, repos, "")
	if out, code := runWithin(t, 2*time.Minute, "-c", pcfg, "sync"); code != 0 || !strings.Contains(out, "sync 1: done from "+up.URL) {
		t.Fatalf("primary amwi sync: exit %d\n%s", code, out)
	}
	primary := filepath.Join(pdir, "mirror")
	p1, base1 := serve(t, pcfg)

	// What the primary's own sync leaves while it runs: its staged repos and temporary
	// files (.amwi/), rsync's staging folders (--delay-updates) and a file being written. A
	// secondary must see none of them.
	planted := []string{".~tmp~", "core/os/x86_64/.~tmp~", "pool/packages/.bash-5.2.037-1-x86_64.pkg.tar.zst.Xy12Ab"}
	for _, f := range []string{".~tmp~/lastupdate", "core/os/x86_64/.~tmp~/core.db.tar.gz", planted[2], ".amwi/tmp/.glibc.Ab12Cd"} {
		p := filepath.Join(primary, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("half-written\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	url, rsyncdLog := reexport(t, primary, pcfg)
	// What any rsync client sees of the re-export: the tree, none of the staging files.
	list, err := exec.Command("rsync", "-r", "--list-only", "--contimeout=10", "--timeout=30", url).CombinedOutput()
	if err != nil || !strings.Contains(string(list), "core/os/x86_64/core.db.tar.gz") {
		t.Fatalf("rsync --list-only %s: %v\n%s", url, err, list)
	}
	if strings.Contains(string(list), ".~tmp~") || strings.Contains(string(list), ".Xy12Ab") || strings.Contains(string(list), ".amwi") {
		t.Errorf("the re-export lists staging files:\n%s", list)
	}
	if out, err := exec.Command("rsync", "--contimeout=10", "--timeout=30", url+".~tmp~/lastupdate", t.TempDir()).CombinedOutput(); err == nil {
		t.Errorf("a staging file can be fetched from the re-export by name:\n%s", out)
	}
	if out, err := exec.Command("rsync", "-r", "--delete", "--contimeout=10", "--timeout=30", t.TempDir()+"/", url).CombinedOutput(); err == nil {
		t.Errorf("the re-export accepted an upload with --delete:\n%s", out)
	}

	// The secondary: its upstream is the primary's re-export.
	sdir := t.TempDir()
	scfg := syncConfig(t, sdir, url, repos, "")
	if out, code := runWithin(t, 2*time.Minute, "-c", scfg, "sync"); code != 0 || !strings.Contains(out, "sync 1: done from "+url) {
		t.Fatalf("secondary amwi sync from the re-export: exit %d\n%s", code, out)
	}
	secondary := filepath.Join(sdir, "mirror")
	want, got := treeOf(t, primary), treeOf(t, secondary)
	// Each box has its own .amwi/ (staging, temporary files): it is not part of the mirror.
	for _, tree := range []map[string]string{want, got} {
		for k := range tree {
			if k == ".amwi" || strings.HasPrefix(k, ".amwi/") {
				delete(tree, k)
			}
		}
	}
	for k := range want {
		for _, p := range planted {
			if k == p || strings.HasPrefix(k, p+"/") {
				delete(want, k)
			}
		}
	}
	var diffs []string
	for k, w := range want {
		if got[k] != w {
			diffs = append(diffs, fmt.Sprintf("%s: primary %s, secondary %q", k, w, got[k]))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only on the secondary (%s)", k, g))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("the secondary's mirror differs from the primary's:\n%s", strings.Join(diffs, "\n"))
	}
	links := 0
	for k, v := range got {
		if strings.HasPrefix(v, "link → ../../../pool/packages/") && strings.HasPrefix(k, "core/os/x86_64/") {
			links++
		}
	}
	if links != 6 || got["lastupdate"] == "" || got["lastsync"] == "" || got["pool/packages"] != "dir" {
		t.Errorf("secondary: %d symlinks into pool/ in core (want 3 packages and 3 .sig), lastupdate %q, lastsync %q", links, got["lastupdate"], got["lastsync"])
	}
	if b, _ := os.ReadFile(filepath.Join(secondary, "lastupdate")); strings.TrimSpace(string(b)) != strconv.FormatInt(tr.LastUpdate, 10) {
		t.Errorf("secondary lastupdate %q, upstream's %d", b, tr.LastUpdate)
	}
	// Nothing new on the primary: the secondary's next sync stops at the lastupdate check.
	if out, code := runWithin(t, time.Minute, "-c", scfg, "sync"); code != 0 || !strings.Contains(out, "sync 2: up to date") {
		t.Errorf("second secondary sync: exit %d\n%s", code, out)
	}
	if log, _ := os.ReadFile(rsyncdLog); !bytes.Contains(log, []byte("rsync on archlinux/")) {
		t.Errorf("the re-export's log shows no transfer:\n%s", log)
	}

	// A client with both boxes, the primary first; the primary goes down.
	_, base2 := serve(t, scfg)
	conf := archtest.PacmanConf(t, filepath.Join(t.TempDir(), "client"), base1+"/archlinux", "core", "extra")
	pc, _ := os.ReadFile(conf)
	first := "Server = " + base1 + "/archlinux/$repo/os/$arch\n"
	if !bytes.Contains(pc, []byte(first)) {
		t.Fatalf("pacman.conf has no line %q:\n%s", first, pc)
	}
	pc = bytes.ReplaceAll(pc, []byte(first), []byte(first+"Server = "+base2+"/archlinux/$repo/os/$arch\n"))
	os.WriteFile(conf, pc, 0o644)
	p1.cmd.Process.Signal(syscall.SIGTERM)
	if code := p1.wait(t, 40*time.Second); code != 0 {
		t.Errorf("primary amwi exit code %d after SIGTERM", code)
	}
	host1 := strings.TrimPrefix(base1, "http://")
	if c, err := net.DialTimeout("tcp", host1, 2*time.Second); err == nil {
		c.Close()
		t.Fatalf("the primary still answers on %s after it stopped", host1)
	}
	out := archtest.Pacman(t, conf, "-Sy")
	if !strings.Contains(out, host1) {
		t.Errorf("pacman -Sy does not mention the failed first server %s:\n%s", host1, out)
	}
	archtest.Pacman(t, conf, "-S", "hello")
	if q := archtest.Pacman(t, conf, "-Q"); !strings.Contains(q, "hello 2:2.12.1-3") || !strings.Contains(q, "bash 5.2.037-1") {
		t.Fatalf("pacman -Q after installing from the secondary:\n%s", q)
	}
}

// TestReexportRefusedInUsedMode: the shipped re-export (real rsync daemon, one per
// connection, its pre-xfer exec the amwi under test) lets a real rsync client copy a full
// mirror; once the dashboard's layer says mirror.packages = "used", the same client's
// transfer and listing fail, its stderr carries amwi's one line saying why, and nothing
// is copied; back to "all", it works again (the check reads the config per connection).
func TestReexportRefusedInUsedMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mirror := filepath.Join(dir, "mirror")
	archtest.BuildTree(t, mirror, archtest.Repo{Name: "core", Pkgs: []archtest.Pkg{{Name: "reexported"}}})
	cfg := syncConfig(t, dir, "rsync://127.0.0.1:1/archlinux/", `["core"]`, "")
	url, _ := reexport(t, mirror, cfg)
	pull := func() (dest, stderr string, err error) {
		dest = t.TempDir()
		cmd := exec.Command("rsync", "-rlt", "--contimeout=10", "--timeout=30", url, dest+"/")
		var e bytes.Buffer
		cmd.Stderr = &e
		err = cmd.Run()
		return dest, e.String(), err
	}
	pkg := filepath.Join("core", "os", "x86_64", archtest.Pkg{Name: "reexported"}.FileName())

	if dest, stderr, err := pull(); err != nil {
		t.Fatalf("full mirror: rsync %s: %v\n%s", url, err, stderr)
	} else if _, err := os.Stat(filepath.Join(dest, pkg)); err != nil {
		t.Fatalf("full mirror: %s not copied", pkg)
	}

	// Switched from the dashboard: its layer in the state dir, amwi.toml untouched.
	settings := filepath.Join(dir, "state", "settings.toml")
	os.MkdirAll(filepath.Dir(settings), 0o750)
	if err := os.WriteFile(settings, []byte("[mirror]\npackages = \"used\"\n[sync]\nhttp_upstream = \"https://mirror.example/archlinux/\"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	const why = `this AMWI keeps only the packages its LAN uses (mirror.packages = "used"); a secondary needs a full mirror: sync it from an internet mirror, or set mirror.packages = "all" here`
	dest, stderr, err := pull()
	if err == nil || !strings.Contains(stderr, why) {
		t.Fatalf("used mode: rsync %s: %v, stderr:\n%s\nwant the refusal", url, err, stderr)
	}
	t.Logf("the refused client saw:\n%s", stderr)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Errorf("used mode: rsync exit %v", err)
	}
	if _, err := os.Stat(filepath.Join(dest, pkg)); err == nil {
		t.Errorf("used mode: files were copied despite the refusal")
	}
	if out, err := exec.Command("rsync", "--list-only", "--contimeout=10", "--timeout=30", url).CombinedOutput(); err == nil || !strings.Contains(string(out), why) {
		t.Errorf("used mode: the module's listing is not refused: %v\n%s", err, out)
	}

	os.Remove(settings)
	if _, stderr, err := pull(); err != nil {
		t.Errorf("back to all: rsync %s: %v\n%s", url, err, stderr)
	}
}
