package mirrorsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/amwi/amwi/daemon/mirrorsync"
	"github.com/amwi/amwi/internal/archtest"
)

// The promise these tests try to break: after any run, every file the mirror's own
// databases name is there with its size (and SHA-256), no link dangles, nothing is left
// half-written; a gap is repaired or reported as incomplete, never hidden behind an
// advanced lastupdate.

var selected = []string{"core", "extra", "multilib"}

// realUpstream is a realistic Arch tree (archtest.Realistic) served by a real rsyncd.
func realUpstream(t *testing.T) (*archtest.Tree, *archtest.Rsyncd) {
	t.Helper()
	tr, _ := archtest.Realistic(t, filepath.Join(t.TempDir(), "upstream"))
	return tr, archtest.StartRsyncd(t, tr.Root)
}

// syncedUpstream is realUpstream with a mirror synced from it.
func syncedUpstream(t *testing.T) (*archtest.Tree, *archtest.Rsyncd, *env) {
	t.Helper()
	tr, rd := realUpstream(t)
	e := newEnv(t, selected, rd.URL)
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("initial sync: %s %s\n%s", run.Result, run.Error, e.logs)
	}
	return tr, rd, e
}

// nano is a package the tests add upstream.
var nano = archtest.Pkg{Name: "nano", Version: "8.2-1", Desc: "small editor", Pool: "community"}

// consistent fails t unless the mirror keeps the promise, checked the slow way: every
// file hashed, every link followed, every dir walked for leftovers.
func consistent(t *testing.T, mirror string, repos []string) {
	t.Helper()
	rep, err := mirrorsync.Verify(context.Background(), mirror, repos, mirrorsync.VerifyOptions{Full: true})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !rep.OK() {
		t.Errorf("mirror inconsistent: %d missing, %d wrong size, %d corrupt, %d dangling, %d leftovers, errors %v: %v",
			rep.Missing, rep.WrongSize, rep.Corrupt, rep.Dangling, rep.Leftovers, rep.Errors, rep.Problems)
	}
	filepath.WalkDir(mirror, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(mirror, p)
		switch {
		case d.Name() == ".~tmp~":
			t.Errorf("staging leftover: %s", rel)
		case strings.HasPrefix(rel, ".amwi/tmp/"):
			t.Errorf("temporary file left: %s", rel)
		case d.Type()&fs.ModeSymlink != 0 && !strings.HasPrefix(rel, ".amwi/"):
			if _, err := os.Stat(p); err != nil {
				t.Errorf("dangling link: %s", rel)
			}
		}
		return nil
	})
}

// stamp reads a lastupdate file.
func stamp(t *testing.T, path string) string {
	t.Helper()
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// equalsUpstream fails t unless the mirror holds exactly upstream's selected repos, the
// pool files they name, and its lastupdate.
func equalsUpstream(t *testing.T, up, mirror string, repos ...string) {
	t.Helper()
	sameRepos(t, up, mirror, repos...)
	if a, b := stamp(t, filepath.Join(up, "lastupdate")), stamp(t, filepath.Join(mirror, "lastupdate")); a != b {
		t.Errorf("lastupdate: mirror %s, upstream %s", b, a)
	}
}

// phaseWrapper is an rsync wrapper: before its target-th invocation it stops and lets the
// test change the upstream, then runs the real rsync.
type phaseWrapper struct {
	dir, bin string
}

func newPhaseWrapper(t *testing.T) *phaseWrapper {
	t.Helper()
	dir := t.TempDir()
	real, err := exec.LookPath("rsync")
	if err != nil {
		t.Fatal("rsync not found: install rsync (make test-deps does)")
	}
	script := fmt.Sprintf(`#!/bin/sh
d=%q
n=$(( $(cat "$d/count") + 1 ))
echo $n > "$d/count"
if [ "$n" = "$(cat "$d/target")" ]; then
	: > "$d/hit"
	while [ ! -e "$d/ack" ]; do sleep 0.02; done
fi
exec %q "$@"
`, dir, real)
	w := &phaseWrapper{dir: dir, bin: filepath.Join(dir, "rsync")}
	if err := os.WriteFile(w.bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	w.arm(t, 0)
	return w
}

// arm resets the count and stops before the n-th invocation (0: never).
func (w *phaseWrapper) arm(t *testing.T, n int) {
	t.Helper()
	os.Remove(filepath.Join(w.dir, "hit"))
	os.Remove(filepath.Join(w.dir, "ack"))
	os.WriteFile(filepath.Join(w.dir, "count"), []byte("0\n"), 0o644)
	os.WriteFile(filepath.Join(w.dir, "target"), []byte(strconv.Itoa(n)+"\n"), 0o644)
}

func (w *phaseWrapper) count(t *testing.T) int {
	n, _ := strconv.Atoi(stamp(t, filepath.Join(w.dir, "count")))
	return n
}

// runWith runs a sync; when the wrapper stops, change runs, then the sync goes on.
func (w *phaseWrapper) runWith(t *testing.T, e *env, change func()) mirrorsync.Run {
	t.Helper()
	done := make(chan mirrorsync.Run, 1)
	go func() { done <- e.sync(t, mirrorsync.Options{}) }()
	for {
		select {
		case run := <-done:
			return run
		case <-time.After(20 * time.Millisecond):
		}
		if _, err := os.Stat(filepath.Join(w.dir, "hit")); err == nil {
			os.Remove(filepath.Join(w.dir, "hit"))
			change()
			os.WriteFile(filepath.Join(w.dir, "ack"), nil, 0o644)
		}
	}
}

// TestUpstreamChangesAtEveryPhase: the upstream publishes new databases (and deletes the
// packages they replaced, as Arch's dbscripts do) just before each rsync of a run, one run
// per position. After every run the mirror is consistent, and one ordinary sync later it
// equals the upstream.
func TestUpstreamChangesAtEveryPhase(t *testing.T) {
	t.Parallel()
	vim2 := archtest.Pkg{Name: "vim", Version: "9.1.0900-1", Desc: "Vi Improved", Depends: []string{"glibc"}}
	vim3 := archtest.Pkg{Name: "vim", Version: "9.1.0950-1", Desc: "Vi Improved", Depends: []string{"glibc"}}
	bash2 := archtest.Pkg{Name: "bash", Version: "5.2.037-2", Desc: "The GNU Bourne Again shell", Depends: []string{"glibc"}}
	w := newPhaseWrapper(t)
	results := map[string]int{}
	for n := 1; ; n++ {
		tr, rd := realUpstream(t)
		e := newEnv(t, selected, rd.URL)
		if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
			t.Fatalf("initial sync: %+v\n%s", run, e.logs)
		}
		_, repos := archtest.Realistic(t, t.TempDir()) // the package list, to find the old versions
		oldVim, oldBash := repos[1].Pkgs[1], repos[0].Pkgs[1]
		// Change A, before the run: a new vim, a new package.
		tr.RemovePackages(t, "extra", oldVim)
		tr.AddPackages(t, "extra", vim2, nano)
		// Change B, at the n-th rsync: what A added is replaced or gone again.
		e.m.Config.RsyncBin = w.bin
		w.arm(t, n)
		run := w.runWith(t, e, func() {
			tr.RemovePackages(t, "extra", vim2, nano)
			tr.AddPackages(t, "extra", vim3)
			tr.RemovePackages(t, "core", oldBash)
			tr.AddPackages(t, "core", bash2)
		})
		calls := w.count(t)
		t.Logf("change before rsync #%d of %d: %s %s", n, calls, run.Result, run.Error)
		results[run.Result]++
		if run.Result != mirrorsync.ResultSuccess && run.Result != mirrorsync.ResultUpToDate && run.Result != mirrorsync.ResultIncomplete {
			t.Errorf("change before rsync #%d: %s: %s\n%s", n, run.Result, run.Error, e.logs)
		}
		consistent(t, e.mirror, selected)
		if run.Result == mirrorsync.ResultIncomplete && stamp(t, filepath.Join(e.mirror, "lastupdate")) == stamp(t, filepath.Join(tr.Root, "lastupdate")) {
			t.Errorf("an incomplete run advanced lastupdate")
		}
		// One ordinary sync later the mirror is the upstream.
		e.m.Config.RsyncBin = ""
		if run := e.sync(t, mirrorsync.Options{}); !run.OK() {
			t.Errorf("ordinary sync after change at #%d: %s %s", n, run.Result, run.Error)
		}
		equalsUpstream(t, tr.Root, e.mirror, selected...)
		consistent(t, e.mirror, selected)
		if t.Failed() || calls < n {
			break
		}
	}
	t.Logf("results: %v", results)
}

// TestGapIsIncomplete: a database that names a file its upstream does not have. The run
// says incomplete (not success), keeps the repo at its previous, complete state, does not
// advance lastupdate, notifies; once upstream has the file, an ordinary sync completes.
func TestGapIsIncomplete(t *testing.T) {
	t.Parallel()
	tr, _, e := syncedUpstream(t)
	before := stamp(t, filepath.Join(e.mirror, "lastupdate"))
	tr.AddPackages(t, "extra", nano)
	lost := filepath.Join(tr.Root, nano.PoolPath())
	saved, _ := os.ReadFile(lost)
	os.Remove(lost)

	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultIncomplete || !strings.Contains(run.Error, "1 file the upstream's databases name") || !strings.Contains(run.Error, nano.FileName()) {
		t.Fatalf("run with a file missing upstream: %s: %s", run.Result, run.Error)
	}
	if strings.Join(run.HeldBack, ",") != "extra" {
		t.Errorf("held back %v, want extra", run.HeldBack)
	}
	if got := stamp(t, filepath.Join(e.mirror, "lastupdate")); got != before {
		t.Errorf("lastupdate advanced to %s by an incomplete run", got)
	}
	if _, err := os.Lstat(filepath.Join(e.mirror, "extra", "os", "x86_64", nano.FileName())); err == nil {
		t.Errorf("extra was published with a package it lacks")
	}
	consistent(t, e.mirror, selected)
	if k := e.events.kinds(); k[len(k)-1] != "incomplete" {
		t.Errorf("events %v, want the last to be incomplete", k)
	}
	hist, _ := e.m.History(1)
	if len(hist) != 1 || hist[0].Result != mirrorsync.ResultIncomplete || hist[0].Check == nil {
		t.Errorf("history does not record the incomplete run with its check: %+v", hist)
	}

	// Upstream gets the file: the very next ordinary sync (not gated: lastupdate was not
	// advanced) completes the mirror.
	os.WriteFile(lost, saved, 0o644)
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("after upstream got the file: %s %s", run.Result, run.Error)
	}
	equalsUpstream(t, tr.Root, e.mirror, selected...)
	consistent(t, e.mirror, selected)
}

// TestFirstSyncWithGap: with nothing published yet, a repo with a gap is published (better
// than nothing) and the run and its check say what is missing.
func TestFirstSyncWithGap(t *testing.T) {
	t.Parallel()
	tr, rd := realUpstream(t)
	_, repos := archtest.Realistic(t, t.TempDir())
	os.Remove(filepath.Join(tr.Root, repos[1].Pkgs[2].PoolPath())) // hello
	e := newEnv(t, selected, rd.URL)
	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultIncomplete || run.Check == nil || run.Check.Missing != 1 {
		t.Fatalf("first sync with a gap: %s %s check %+v", run.Result, run.Error, run.Check)
	}
	if _, err := os.Stat(filepath.Join(e.mirror, "lastupdate")); err == nil {
		t.Errorf("an incomplete first sync wrote lastupdate")
	}
	if _, err := os.Stat(filepath.Join(e.mirror, "extra", "os", "x86_64", "extra.db")); err != nil {
		t.Errorf("extra not published: %v", err)
	}
}

// TestChecksumMismatch: the upstream serves a package whose bytes are not what its
// database's %SHA256SUM% says. It is fetched twice, then it is a gap of its repo, which
// keeps its previous state (the run says incomplete, naming it); other repos are updated.
func TestChecksumMismatch(t *testing.T) {
	t.Parallel()
	tr, rd, e := syncedUpstream(t)
	before := stamp(t, filepath.Join(e.mirror, "lastupdate"))
	tr.AddPackages(t, "extra", nano)
	newcore := archtest.Pkg{Name: "newcore", Version: "1-1", Desc: "new in core"}
	tr.AddPackages(t, "core", newcore)
	p := filepath.Join(tr.Root, nano.PoolPath())
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0x40 // one bit, same size
	os.WriteFile(p, b, 0o644)
	rd.ClearLog(t)

	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultIncomplete || strings.Join(run.HeldBack, ",") != "extra" ||
		!strings.Contains(run.Warning, "SHA-256") || !strings.Contains(run.Warning, nano.FileName()) {
		t.Fatalf("run with a corrupt upstream package: %s %q held back %v warning %q", run.Result, run.Error, run.HeldBack, run.Warning)
	}
	sent := 0
	for _, f := range rd.Sent(t) {
		if f == nano.PoolPath() {
			sent++
		}
	}
	if sent != 2 {
		t.Errorf("the corrupt package was fetched %d times, want 2 (once more after the mismatch)", sent)
	}
	if got := stamp(t, filepath.Join(e.mirror, "lastupdate")); got != before {
		t.Errorf("lastupdate advanced by an incomplete run")
	}
	if _, err := os.Lstat(filepath.Join(e.mirror, nano.PoolPath())); err == nil {
		t.Errorf("the corrupt package was kept")
	}
	if _, err := os.Lstat(filepath.Join(e.mirror, "core", "os", "x86_64", newcore.FileName())); err != nil {
		t.Errorf("core was not updated because of extra's corrupt package: %v", err)
	}
	consistent(t, e.mirror, selected)
}

// TestOlderUpstreamRefused: an upstream (here a fallback) whose lastupdate is older than
// the mirror's is refused with how far behind it is, and the mirror does not roll back;
// --force overrides, and so does a deliberate change of sync.upstream.
func TestOlderUpstreamRefused(t *testing.T) {
	t.Parallel()
	oldRoot := filepath.Join(t.TempDir(), "old")
	oldTree, _ := archtest.Realistic(t, oldRoot)
	// Three hours older than what follows.
	oldTree.LastUpdate = time.Now().Add(-3*time.Hour - time.Minute).Unix()
	for _, f := range []string{"lastupdate", "lastsync"} {
		os.WriteFile(filepath.Join(oldRoot, f), []byte(strconv.FormatInt(oldTree.LastUpdate, 10)+"\n"), 0o644)
	}
	old := archtest.StartRsyncd(t, oldRoot)
	newRoot := filepath.Join(t.TempDir(), "new")
	if out, err := exec.Command("cp", "-a", oldRoot, newRoot).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	newTree := &archtest.Tree{Root: newRoot, LastUpdate: oldTree.LastUpdate}
	newTree.AddPackages(t, "extra", nano) // lastupdate: now
	fresh := archtest.StartRsyncd(t, newRoot)

	e := newEnv(t, selected, fresh.URL)
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("initial sync: %+v", run)
	}
	e.m.Config.Upstreams = []string{"rsync://127.0.0.1:1/archlinux/", old.URL}
	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultFailed || len(run.Attempts) != 2 || !strings.Contains(run.Attempts[1].Error, "3 h behind this mirror") {
		t.Fatalf("older fallback: %s %s %+v", run.Result, run.Error, run.Attempts)
	}
	if _, err := os.Lstat(filepath.Join(e.mirror, "extra", "os", "x86_64", nano.FileName())); err != nil {
		t.Errorf("the mirror rolled back: %v", err)
	}
	equalsUpstream(t, newRoot, e.mirror, selected...)

	// The admin changes sync.upstream to the older mirror: their choice, taken.
	e.m.Config.Upstreams = []string{old.URL}
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("deliberately changed upstream: %s %s", run.Result, run.Error)
	}
	equalsUpstream(t, oldRoot, e.mirror, selected...)
	consistent(t, e.mirror, selected)

	// Back to the newer one, then the older again as a fallback: refused, unless forced.
	e.m.Config.Upstreams = []string{fresh.URL}
	e.sync(t, mirrorsync.Options{})
	e.m.Config.Upstreams = []string{"rsync://127.0.0.1:1/archlinux/", old.URL}
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultFailed {
		t.Fatalf("older fallback after going back: %s", run.Result)
	}
	if run := e.sync(t, mirrorsync.Options{Force: true}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("forced: %s %s", run.Result, run.Error)
	}
	equalsUpstream(t, oldRoot, e.mirror, selected...)
}

// TestHostileUpstream: names with control characters, absolute and escaping links are
// refused, counted and reported without failing the run; stamps that are not a short Unix
// time are refused with a short message; nothing upstream sends makes a record or a log
// line large.
func TestHostileUpstream(t *testing.T) {
	t.Parallel()
	tr, rd := realUpstream(t)
	dir := filepath.Join(tr.Root, "extra", "os", "x86_64")
	long := strings.Repeat("x", 200)
	os.WriteFile(filepath.Join(tr.Root, "pool", "packages", "evil\nname.pkg.tar.zst"), []byte("x"), 0o644)
	for name, target := range map[string]string{
		"evil\nname.pkg.tar.zst":     "../../../pool/packages/evil\nname.pkg.tar.zst",
		"abs.pkg.tar.zst":            "/etc/passwd",
		"escape.pkg.tar.zst":         "../../../../../../etc/passwd",
		"iso.pkg.tar.zst":            "../../../iso/2026.11.01/README",
		"bell\a" + long + ".pkg":     "../../../pool/packages/x",
		"ok-but-escaping-target.sig": "../../../pool/../../x",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "tab\tfile"), []byte("x"), 0o644)
	logs := &bytes.Buffer{}
	e := newEnv(t, selected, rd.URL)
	e.logs = logs
	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("sync with hostile names: %s %s\n%s", run.Result, run.Error, e.logs)
	}
	if run.Refused < 3 {
		t.Errorf("refused %d entries, want the control-character names and the unsafe links", run.Refused)
	}
	des, _ := os.ReadDir(filepath.Join(e.mirror, "extra", "os", "x86_64"))
	for _, de := range des {
		if strings.ContainsAny(de.Name(), "\n\t\a") || strings.Contains(de.Name(), "abs.") || strings.Contains(de.Name(), "escape") || strings.Contains(de.Name(), "iso.") {
			t.Errorf("published %q", de.Name())
		}
	}
	consistent(t, e.mirror, selected)

	for _, c := range []struct {
		name, content, want string
	}{
		{"oversized", strings.Repeat("1", 5<<20), "larger than 32 bytes"},
		{"letters", "abc\n", `lastupdate holds "abc", not a Unix time`},
		{"negative", "-5\n", "not a Unix time"},
		{"future", strconv.FormatInt(time.Now().Add(3*365*24*time.Hour).Unix(), 10) + "\n", "in the future"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "up")
			archtest.BuildTree(t, root, archtest.Repo{Name: "core", Pkgs: []archtest.Pkg{{Name: "glibc"}}})
			os.WriteFile(filepath.Join(root, "lastupdate"), []byte(c.content), 0o644)
			rd := archtest.StartRsyncd(t, root)
			e := newEnv(t, []string{"core"}, rd.URL)
			run := e.sync(t, mirrorsync.Options{})
			if run.Result != mirrorsync.ResultFailed || !strings.Contains(run.Error, c.want) {
				t.Fatalf("%s lastupdate: %s %q", c.name, run.Result, run.Error)
			}
			if len(run.Error) > 400 {
				t.Errorf("error is %d bytes", len(run.Error))
			}
			b, _ := json.Marshal(run)
			if len(b) > 8<<10 {
				t.Errorf("run record is %d bytes", len(b))
			}
			for _, l := range strings.Split(e.logs.String(), "\n") {
				if len(l) > 4<<10 {
					t.Errorf("log line of %d bytes", len(l))
				}
			}
		})
	}
}

// TestResumeKeepsFetchedPackages: a run stopped mid-transfer keeps the complete packages
// it fetched; the next run fetches only the rest, and checks the SHA-256 of what the
// stopped run could not.
func TestResumeKeepsFetchedPackages(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "up")
	var pkgs []archtest.Pkg
	for i := 0; i < 4; i++ {
		pkgs = append(pkgs, archtest.Pkg{Name: fmt.Sprintf("big%d", i), Desc: "big", PayloadSize: 1 << 20})
	}
	archtest.BuildTree(t, root, archtest.Repo{Name: "core", Pkgs: pkgs})
	rd := archtest.StartRsyncd(t, root)
	e := newEnv(t, []string{"core"}, rd.URL)
	e.m.Config.BWLimitKiB = 1024
	done := make(chan mirrorsync.Run)
	go func() { done <- e.sync(t, mirrorsync.Options{}) }()
	// Stop once two packages are complete in the pool.
	deadline := time.Now().Add(30 * time.Second)
	for {
		des, _ := os.ReadDir(filepath.Join(e.mirror, "pool", "packages"))
		n := 0
		for _, de := range des {
			if strings.HasSuffix(de.Name(), ".pkg.tar.zst") {
				n++
			}
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("two packages never arrived")
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.m.Cancel()
	if run := <-done; run.Result != mirrorsync.ResultCancelled {
		t.Fatalf("stopped run: %s %s", run.Result, run.Error)
	}
	have := 0
	des, _ := os.ReadDir(filepath.Join(e.mirror, "pool", "packages"))
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".pkg.tar.zst") {
			have++
		}
	}
	e.m.Config.BWLimitKiB = 0
	rd.ClearLog(t)
	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("resumed run: %s %s", run.Result, run.Error)
	}
	refetched := 0
	for _, f := range rd.Sent(t) {
		if strings.HasSuffix(f, ".pkg.tar.zst") {
			refetched++
		}
	}
	if refetched != 4-have {
		t.Errorf("the resumed run fetched %d packages; %d of 4 were complete already", refetched, have)
	}
	if run.Verified < 4 {
		t.Errorf("the resumed run checked %d packages' SHA-256; the stopped run checked none, so all 4 are due", run.Verified)
	}
	consistent(t, e.mirror, []string{"core"})
}

// TestReplacedPackagesStayAWhile: the packages a sync replaced stay in the pool for a
// while (a pacman that read the old database a moment ago still gets them), and a later
// run removes them.
func TestReplacedPackagesStayAWhile(t *testing.T) {
	t.Parallel()
	tr, rd := realUpstream(t)
	e := newEnv(t, selected, rd.URL)
	now := time.Now()
	e.m.Now = func() time.Time { return now }
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("initial sync: %+v", run)
	}
	_, repos := archtest.Realistic(t, t.TempDir())
	oldVim := repos[1].Pkgs[1]
	tr.RemovePackages(t, "extra", oldVim)
	tr.AddPackages(t, "extra", archtest.Pkg{Name: "vim", Version: "9.1.0900-1", Desc: "Vi Improved"})
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("sync: %+v", run)
	}
	if _, err := os.Stat(filepath.Join(e.mirror, oldVim.PoolPath())); err != nil {
		t.Errorf("the replaced vim went at once: %v", err)
	}
	now = now.Add(2 * time.Hour)
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultUpToDate {
		t.Fatalf("later sync: %+v", run)
	}
	if _, err := os.Stat(filepath.Join(e.mirror, oldVim.PoolPath())); err == nil {
		t.Errorf("the replaced vim is still there two hours later")
	}
	consistent(t, e.mirror, selected)
}

// mountTmpfs mounts a tmpfs of size at dir for the test: a real small disk to fill.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Fatal("this test fills a real disk, a small tmpfs it mounts: run it as root (CI does, and make test-deps needs root too)")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs at %s: %v %s", dir, err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// TestDiskFull: the disk fills up during the transfer (ENOSPC, on a real small
// filesystem). The run fails saying the disk is full, leaves nothing half-written and the
// previous mirror served and consistent; once there is room an ordinary sync completes.
// Then: leftovers of an interrupted run are what fills the disk; the next sync removes
// them before it checks the free space, and completes.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	tr, rd := realUpstream(t)
	e := newEnv(t, selected, rd.URL)
	mountTmpfs(t, e.mirror, "16m")
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("initial sync: %s %s", run.Result, run.Error)
	}
	before := stamp(t, filepath.Join(e.mirror, "lastupdate"))
	huge := archtest.Pkg{Name: "huge", Desc: "fills the disk", PayloadSize: 4 << 20}
	tr.AddPackages(t, "extra", huge)

	e.m.Config.BWLimitKiB = 1024
	filler := filepath.Join(e.mirror, "filler")
	done := make(chan mirrorsync.Run)
	go func() { done <- e.sync(t, mirrorsync.Options{}) }()
	waitRunning(t, e.m)
	time.Sleep(300 * time.Millisecond)
	// Leave 1 MiB: the 4 MiB package cannot fit.
	if err := os.WriteFile(filler, make([]byte, freeBytes(t, e.mirror)-1<<20), 0o644); err != nil {
		t.Fatalf("fill the disk: %v", err)
	}
	run := <-done
	if run.Result != mirrorsync.ResultFailed || !strings.Contains(run.Error, "disk is full") {
		t.Fatalf("run that filled the disk: %s %q\n%s", run.Result, run.Error, e.logs)
	}
	if got := stamp(t, filepath.Join(e.mirror, "lastupdate")); got != before {
		t.Errorf("lastupdate advanced by a run that filled the disk")
	}
	if _, err := os.Lstat(filepath.Join(e.mirror, "extra", "os", "x86_64", huge.FileName())); err == nil {
		t.Errorf("extra was published without room for its package")
	}
	consistent(t, e.mirror, selected)

	os.Remove(filler)
	e.m.Config.BWLimitKiB = 0
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("after making room: %s %s", run.Result, run.Error)
	}
	equalsUpstream(t, tr.Root, e.mirror, selected...)
	consistent(t, e.mirror, selected)

	// An interrupted run's leftovers fill the disk below sync.min_free_gib.
	tr.AddPackages(t, "extra", archtest.Pkg{Name: "medium", Desc: "1 MiB", PayloadSize: 1 << 20})
	for _, d := range []string{filepath.Join(e.mirror, "extra", "os", "x86_64", ".~tmp~"), filepath.Join(e.mirror, ".amwi", "tmp")} {
		os.MkdirAll(d, 0o755)
	}
	free := freeBytes(t, e.mirror)
	os.WriteFile(filepath.Join(e.mirror, "extra", "os", "x86_64", ".~tmp~", "extra.db.tar.gz"), make([]byte, free/2), 0o644)
	os.WriteFile(filepath.Join(e.mirror, ".amwi", "tmp", ".huge.pkg.tar.zst.Ab12Cd"), make([]byte, free/2-64<<10), 0o644)
	e.m.Config.MinFreeBytes = 2 << 20
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("with leftovers filling the disk: %s %s", run.Result, run.Error)
	}
	equalsUpstream(t, tr.Root, e.mirror, selected...)
	consistent(t, e.mirror, selected)
}

// TestVerifyFindsDamage: an SD card truncates one package and flips a bit in another.
// Verify (sizes) finds the truncated one, --full also the flipped one, and strays count as
// unreferenced; once the damaged files are removed, an ordinary sync (upstream unchanged)
// repairs the mirror.
func TestVerifyFindsDamage(t *testing.T) {
	t.Parallel()
	_, rd := realUpstream(t)
	e := newEnv(t, selected, rd.URL)
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("initial sync: %+v", run)
	}
	_, repos := archtest.Realistic(t, t.TempDir())
	truncated := filepath.Join(e.mirror, repos[1].Pkgs[3].PoolPath()) // bigdata
	flipped := filepath.Join(e.mirror, repos[0].Pkgs[0].PoolPath())   // glibc
	fi, _ := os.Stat(truncated)
	os.Truncate(truncated, fi.Size()/2)
	b, _ := os.ReadFile(flipped)
	b[len(b)-100] ^= 1
	os.WriteFile(flipped, b, 0o644)
	os.WriteFile(filepath.Join(e.mirror, "pool", "packages", "stray-1-1-x86_64.pkg.tar.zst"), []byte("x"), 0o644)

	rep, err := mirrorsync.Verify(context.Background(), e.mirror, selected, mirrorsync.VerifyOptions{})
	if err != nil || rep.WrongSize != 1 || rep.Corrupt != 0 || rep.Unreferenced != 1 || rep.OK() {
		t.Fatalf("verify (sizes): %v %+v", err, rep)
	}
	var damaged []string
	var last mirrorsync.VerifyProgress
	rep, err = mirrorsync.Verify(context.Background(), e.mirror, selected, mirrorsync.VerifyOptions{Full: true,
		OnDamaged: func(p string) { damaged = append(damaged, p) },
		Progress:  func(p mirrorsync.VerifyProgress) { last = p }})
	if err != nil || rep.WrongSize != 1 || rep.Corrupt != 1 || len(damaged) != 2 {
		t.Fatalf("verify --full: %v %+v, damaged %v", err, rep, damaged)
	}
	if last.Files != last.TotalFiles || last.TotalFiles == 0 || rep.Hashed == 0 {
		t.Errorf("progress at the end: %+v, hashed %d", last, rep.Hashed)
	}
	if !strings.Contains(strings.Join(rep.Problems, "\n"), "SHA-256 differs") {
		t.Errorf("problems do not name the corrupt file: %v", rep.Problems)
	}
	for _, p := range damaged {
		os.Remove(p)
	}
	// Upstream did not change: the sync finds the mirror current but incomplete, and
	// fetches what is missing.
	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("repairing sync: %s %s", run.Result, run.Error)
	}
	consistent(t, e.mirror, selected)
}

// TestUpstreamRepoDirIsALink: an upstream whose extra/os/x86_64 is a link (to core's) is
// refused: its content would be published as a repo it is not.
func TestUpstreamRepoDirIsALink(t *testing.T) {
	t.Parallel()
	tr, _, e := syncedUpstream(t)
	dir := filepath.Join(tr.Root, "extra", "os", "x86_64")
	os.RemoveAll(dir)
	os.Symlink("../../core/os/x86_64", dir)
	tr.Touch(t)
	run := e.sync(t, mirrorsync.Options{})
	// (rsync --safe-links may drop the link itself; either way the repo is refused.)
	if run.Result != mirrorsync.ResultFailed || !(strings.Contains(run.Error, `"extra/os/x86_64" is not a directory`) || strings.Contains(run.Error, "has no extra/os/x86_64")) {
		t.Fatalf("upstream with a linked repo dir: %s %q", run.Result, run.Error)
	}
	if fi, err := os.Lstat(filepath.Join(e.mirror, "extra", "os", "x86_64")); err != nil || !fi.IsDir() {
		t.Errorf("the live extra is no longer a directory: %v", err)
	}
	consistent(t, e.mirror, selected)
}

// TestUpstreamModesAndFolders: upstream's setuid bits and world-writable folders never
// reach the mirror, and folders inside a repo's os/x86_64 are not fetched.
func TestUpstreamModesAndFolders(t *testing.T) {
	t.Parallel()
	tr, rd := realUpstream(t)
	_, repos := archtest.Realistic(t, t.TempDir())
	glibc := repos[0].Pkgs[0]
	os.Chmod(filepath.Join(tr.Root, glibc.PoolPath()), 0o4755)
	os.Chmod(filepath.Join(tr.Root, "core", "os", "x86_64"), 0o777)
	os.Chmod(filepath.Join(tr.Root, "core", "os", "x86_64", "core.db.tar.gz"), 0o2777)
	sub := filepath.Join(tr.Root, "core", "os", "x86_64", "sub")
	os.MkdirAll(sub, 0o755)
	os.WriteFile(filepath.Join(sub, "blob"), make([]byte, 1<<20), 0o644)
	os.Symlink("../../../../", filepath.Join(sub, "rootlink"))
	e := newEnv(t, selected, rd.URL)
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("sync: %s %s", run.Result, run.Error)
	}
	for p, want := range map[string]os.FileMode{
		glibc.PoolPath():                0o644,
		"core/os/x86_64":                0o755 | os.ModeDir,
		"core/os/x86_64/core.db.tar.gz": 0o644,
	} {
		fi, err := os.Stat(filepath.Join(e.mirror, p))
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode(), err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(e.mirror, "core", "os", "x86_64", "sub")); err == nil {
		t.Errorf("a folder inside core/os/x86_64 was published")
	}
	consistent(t, e.mirror, selected)
}

// TestUpstreamFlipsToOlderDatabases: an upstream whose gate says new but whose databases,
// fetched a moment later, are older than the mirror's (hosts behind a load balancer that
// disagree) is refused; the mirror keeps its state and its lastupdate, and follows the
// upstream once it is consistent again.
func TestUpstreamFlipsToOlderDatabases(t *testing.T) {
	t.Parallel()
	tr, rd := realUpstream(t)
	older := filepath.Join(t.TempDir(), "older")
	if out, err := exec.Command("cp", "-a", tr.Root, older).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	tr.AddPackages(t, "extra", nano)
	e := newEnv(t, selected, rd.URL)
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("sync: %s %s", run.Result, run.Error)
	}
	synced := stamp(t, filepath.Join(e.mirror, "lastupdate"))
	tr.LastUpdate += 60
	tr.Touch(t) // the gate will see something new…
	newer := tr.Root + ".newer"
	w := newPhaseWrapper(t)
	e.m.Config.RsyncBin = w.bin
	w.arm(t, 2)
	run := w.runWith(t, e, func() { // …and the databases come from the older tree.
		os.Rename(tr.Root, newer)
		os.Rename(older, tr.Root)
	})
	if run.Result != mirrorsync.ResultFailed || !strings.Contains(run.Error, "behind this mirror") {
		t.Fatalf("upstream flipping to older databases: %s %q", run.Result, run.Error)
	}
	if got := stamp(t, filepath.Join(e.mirror, "lastupdate")); got != synced {
		t.Errorf("lastupdate %s after a refused run, want %s", got, synced)
	}
	if _, err := os.Lstat(filepath.Join(e.mirror, "extra", "os", "x86_64", nano.FileName())); err != nil {
		t.Errorf("the mirror rolled back to the older databases: %v", err)
	}
	consistent(t, e.mirror, selected)
	os.Rename(tr.Root, older)
	os.Rename(newer, tr.Root)
	e.m.Config.RsyncBin = ""
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("once upstream is consistent: %s %s", run.Result, run.Error)
	}
	equalsUpstream(t, tr.Root, e.mirror, selected...)
}

// TestSameNameRebuild: upstream rebuilds a package under the same file name, with another
// size, or with the same size and other bytes. The live file (which the live database
// names, pacman may be fetching it) is not touched until the repo switches: the new one is
// fetched aside, checked, and swapped in with the new database; the mirror then serves
// exactly what its databases name.
func TestSameNameRebuild(t *testing.T) {
	t.Parallel()
	tr, _, e := syncedUpstream(t)
	_, repos := archtest.Realistic(t, t.TempDir())
	vim := repos[1].Pkgs[1]
	upFile := filepath.Join(tr.Root, vim.PoolPath())
	orig, _ := os.ReadFile(upFile)
	// Same size, other bytes: another build date, tried until the package is as long.
	var same archtest.Pkg
	for i := 1; i < 40; i++ {
		p := vim
		p.BuildDate = time.Date(2026, 1, 2, 3, 4, 5+i, 0, time.UTC)
		tr.RemovePackages(t, "extra", vim)
		tr.AddPackages(t, "extra", p)
		if b, _ := os.ReadFile(upFile); len(b) == len(orig) && !bytes.Equal(b, orig) {
			same = p
			break
		}
	}
	if same.Name == "" {
		t.Fatal("could not rebuild vim to the same size")
	}
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("same-size rebuild: %s %q", run.Result, run.Error)
	}
	upBytes, _ := os.ReadFile(upFile)
	if live, _ := os.ReadFile(filepath.Join(e.mirror, vim.PoolPath())); !bytes.Equal(live, upBytes) {
		t.Errorf("the mirror still serves the old build of %s", vim.FileName())
	}
	consistent(t, e.mirror, selected)

	// Another size.
	bigger := same
	bigger.PayloadSize = 4096
	tr.RemovePackages(t, "extra", same)
	tr.AddPackages(t, "extra", bigger)
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("rebuild with another size: %s %q", run.Result, run.Error)
	}
	upBytes, _ = os.ReadFile(upFile)
	if live, _ := os.ReadFile(filepath.Join(e.mirror, vim.PoolPath())); !bytes.Equal(live, upBytes) {
		t.Errorf("the mirror still serves the old build of %s", vim.FileName())
	}
	consistent(t, e.mirror, selected)
}

// TestIncompleteThenOlderFallback: a primary that leaves a gap publishes what is complete
// (core, newer); a fallback older than that is then refused, although lastupdate was not
// advanced: the mirror never goes back behind databases it published.
func TestIncompleteThenOlderFallback(t *testing.T) {
	t.Parallel()
	tr, rd, e := syncedUpstream(t)
	fb := filepath.Join(t.TempDir(), "fallback")
	_, repos := archtest.Realistic(t, t.TempDir())
	oldBash := repos[0].Pkgs[1]
	bash2 := archtest.Pkg{Name: "bash", Version: "5.2.037-2", Desc: "The GNU Bourne Again shell", Depends: []string{"glibc"}}
	bash3 := archtest.Pkg{Name: "bash", Version: "5.2.037-3", Desc: "The GNU Bourne Again shell", Depends: []string{"glibc"}}
	// The fallback: one step ahead of the mirror.
	tr.RemovePackages(t, "core", oldBash)
	tr.AddPackages(t, "core", bash2)
	if out, err := exec.Command("cp", "-a", tr.Root, fb).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	fallback := archtest.StartRsyncd(t, fb)
	// The primary: two steps ahead, with a package its database names missing.
	tr.LastUpdate += 100
	tr.RemovePackages(t, "core", bash2)
	tr.AddPackages(t, "core", bash3)
	tr.AddPackages(t, "extra", nano)
	os.Remove(filepath.Join(tr.Root, nano.PoolPath()))
	e.m.Config.Upstreams = []string{rd.URL, fallback.URL}
	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultIncomplete {
		t.Fatalf("run: %s %q %+v", run.Result, run.Error, run.Attempts)
	}
	if len(run.Attempts) != 2 || !strings.Contains(run.Attempts[1].Error, "behind this mirror") {
		t.Errorf("the older fallback was not refused: %+v", run.Attempts)
	}
	if _, err := os.Lstat(filepath.Join(e.mirror, "core", "os", "x86_64", bash3.FileName())); err != nil {
		t.Errorf("core went back from the primary's bash: %v", err)
	}
	consistent(t, e.mirror, selected)
}

// TestDroppedRepoWithoutUpstreamChange: a repo dropped from mirror.repos goes at the next
// sync even when the upstream did not change.
func TestDroppedRepoWithoutUpstreamChange(t *testing.T) {
	t.Parallel()
	_, _, e := syncedUpstream(t)
	e.m.Config.Repos = []string{"core", "extra"}
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("sync after dropping multilib: %s %s", run.Result, run.Error)
	}
	if _, err := os.Stat(filepath.Join(e.mirror, "multilib")); !os.IsNotExist(err) {
		t.Errorf("multilib is still there after it left mirror.repos")
	}
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultUpToDate {
		t.Errorf("the sync after that: %s, want up to date", run.Result)
	}
	consistent(t, e.mirror, []string{"core", "extra"})
}

// TestTwoStateDirsOneMirror: two amwi with different state dirs (a copied config) cannot
// sync one mirror at the same time.
func TestTwoStateDirsOneMirror(t *testing.T) {
	t.Parallel()
	_, rd := realUpstream(t)
	e := newEnv(t, selected, rd.URL)
	e.m.Config.BWLimitKiB = 512
	done := make(chan mirrorsync.Run)
	go func() { done <- e.sync(t, mirrorsync.Options{}) }()
	waitRunning(t, e.m)
	other := newEnv(t, selected, rd.URL)
	other.m.Config.Root = e.mirror
	_, err := other.m.Sync(context.Background(), mirrorsync.Options{Trigger: mirrorsync.TriggerCLI})
	if !errors.Is(err, mirrorsync.ErrBusy) || !strings.Contains(err.Error(), "another amwi syncs this mirror") || !strings.Contains(err.Error(), e.state) {
		t.Fatalf("second amwi on the same mirror: %v", err)
	}
	e.m.Cancel()
	<-done
}

// TestFullMirrorRepoWithoutDatabase: in a full mirror, an upstream repo folder without its
// database yet (being set up) is left as it is; the rest syncs.
func TestFullMirrorRepoWithoutDatabase(t *testing.T) {
	t.Parallel()
	tr, rd := realUpstream(t)
	os.MkdirAll(filepath.Join(tr.Root, "gnome-unstable", "os", "x86_64"), 0o755)
	e := newEnv(t, []string{mirrorsync.FullMirror}, rd.URL)
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("full mirror with a repo without database: %s %q", run.Result, run.Error)
	}
	consistent(t, e.mirror, nil)
}
