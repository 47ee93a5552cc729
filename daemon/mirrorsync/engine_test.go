package mirrorsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/amwi/amwi/daemon/mirrorsync"
	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/internal/archtest"
)

var (
	glibc    = archtest.Pkg{Name: "glibc", Version: "2.40-1", Desc: "GNU C Library"}
	bash     = archtest.Pkg{Name: "bash", Version: "5.2-1", Desc: "shell", Depends: []string{"glibc"}}
	vim      = archtest.Pkg{Name: "vim", Version: "9.1-1", Desc: "editor", Depends: []string{"glibc"}}
	big      = archtest.Pkg{Name: "bigpkg", Version: "1-1", Desc: "big", PayloadSize: 6 << 20}
	lib32    = archtest.Pkg{Name: "lib32-glibc", Version: "2.40-1", Desc: "32-bit glibc"}
	testing_ = archtest.Pkg{Name: "glibc", Version: "2.41-1", Desc: "GNU C Library (testing)"}
)

// upstream builds an Arch-style tree with repos, plus what a selective mirror must not
// fetch (iso/, other/, sources/, a testing repo), and serves it with a real rsync daemon.
func upstream(t *testing.T) (*archtest.Tree, *archtest.Rsyncd) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "upstream")
	tr := archtest.BuildTree(t, root,
		archtest.Repo{Name: "core", Pkgs: []archtest.Pkg{glibc, bash}},
		archtest.Repo{Name: "extra", Pkgs: []archtest.Pkg{vim, big}},
		archtest.Repo{Name: "multilib", Pkgs: []archtest.Pkg{lib32}},
		archtest.Repo{Name: "core-testing", Pkgs: []archtest.Pkg{testing_}},
	)
	for _, d := range []string{"iso/2026.11.01", "other/x", "sources/y", "images/z"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
		os.WriteFile(filepath.Join(root, d, "file"), []byte("not wanted"), 0o644)
	}
	os.WriteFile(filepath.Join(root, "core", "os", "x86_64", "core.links.tar.gz"), []byte("excluded"), 0o644)
	return tr, archtest.StartRsyncd(t, root)
}

type env struct {
	m      *mirrorsync.Manager
	mirror string
	state  string
	logs   *bytes.Buffer
	events *events
}

type events struct {
	mu   sync.Mutex
	list []mirrorsync.Event
}

func (e *events) add(ev mirrorsync.Event) { e.mu.Lock(); e.list = append(e.list, ev); e.mu.Unlock() }
func (e *events) kinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.list {
		out = append(out, ev.Kind)
	}
	return out
}

func newBenchEnv(b *testing.B, upstream string) *mirrorsync.Manager {
	b.Helper()
	dir := b.TempDir()
	os.MkdirAll(filepath.Join(dir, "mirror"), 0o755)
	st, err := store.Open(filepath.Join(dir, "state"), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return &mirrorsync.Manager{
		Config: mirrorsync.Config{Root: filepath.Join(dir, "mirror"), Repos: []string{"core", "extra"}, Upstreams: []string{upstream}, StateDir: filepath.Join(dir, "state")},
		Store:  st,
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func newEnv(t *testing.T, repos []string, upstreams ...string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{mirror: filepath.Join(dir, "mirror"), state: filepath.Join(dir, "state"), logs: &bytes.Buffer{}, events: &events{}}
	os.MkdirAll(e.mirror, 0o755)
	st, err := store.Open(e.state, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.m = &mirrorsync.Manager{
		Config:  mirrorsync.Config{Root: e.mirror, Repos: repos, Upstreams: upstreams, StateDir: e.state, KillGrace: 2 * time.Second},
		Store:   st,
		Log:     slog.New(slog.NewTextHandler(&lockedWriter{w: e.logs}, nil)),
		OnEvent: e.events.add,
	}
	return e
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (e *env) sync(t *testing.T, o mirrorsync.Options) mirrorsync.Run {
	t.Helper()
	if o.Trigger == "" {
		o.Trigger = mirrorsync.TriggerCLI
	}
	run, err := e.m.Sync(context.Background(), o)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return run
}

// tree lists a directory tree: path → "file:<content>" / "link:<target>" / "dir".
func tree(t *testing.T, root string, under ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, u := range under {
		base := filepath.Join(root, u)
		filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				out[rel] = "link:" + target
			case d.IsDir():
				out[rel] = "dir"
			default:
				b, _ := os.ReadFile(p)
				out[rel] = "file:" + string(b)
			}
			return nil
		})
	}
	return out
}

// sameRepos checks that the mirror holds exactly upstream's selected repos and the pool
// files they link to.
func sameRepos(t *testing.T, up, mirror string, repos ...string) {
	t.Helper()
	var dirs []string
	for _, r := range repos {
		dirs = append(dirs, r+"/os/x86_64")
	}
	want, got := tree(t, up, dirs...), tree(t, mirror, dirs...)
	delete(want, "core/os/x86_64/core.links.tar.gz")
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: mirror has %.40q, upstream %.40q", k, got[k], v)
		}
	}
	// Packages a sync replaced stay reachable for an hour (mirrorsync.Retired).
	kept := map[string]bool{}
	for _, p := range mirrorsync.Retired(filepath.Join(filepath.Dir(mirror), "state")) {
		kept[p] = true
	}
	for k := range got {
		if _, ok := want[k]; !ok && !kept[k] {
			t.Errorf("%s: on the mirror but not upstream", k)
		}
	}
	// Every link resolves on the mirror.
	for k, v := range got {
		if strings.HasPrefix(v, "link:") {
			if _, err := os.Stat(filepath.Join(mirror, k)); err != nil {
				t.Errorf("%s: dangling link on the mirror: %v", k, err)
			}
		}
	}
}

func TestFullSyncThenUpToDate(t *testing.T) {
	tr, rd := upstream(t)
	e := newEnv(t, []string{"core", "extra", "multilib"}, rd.URL)

	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultSuccess || run.Upstream != rd.URL {
		t.Fatalf("first sync: %+v\nlogs:\n%s", run, e.logs)
	}
	sameRepos(t, tr.Root, e.mirror, "core", "extra", "multilib")
	for _, absent := range []string{"iso", "other", "sources", "images", "core-testing", "core/os/x86_64/core.links.tar.gz",
		"pool/packages/" + testing_.FileName()} {
		if _, err := os.Lstat(filepath.Join(e.mirror, absent)); !os.IsNotExist(err) {
			t.Errorf("%s was fetched; a selective mirror must not have it", absent)
		}
	}
	for _, f := range []string{"lastupdate", "lastsync"} {
		a, _ := os.ReadFile(filepath.Join(tr.Root, f))
		b, _ := os.ReadFile(filepath.Join(e.mirror, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s: mirror %q, upstream %q", f, b, a)
		}
	}
	if run.Stats.FilesTransferred == 0 || run.Stats.BytesReceived < 6<<20 {
		t.Errorf("stats not read from rsync: %+v", run.Stats)
	}
	if k := e.events.kinds(); strings.Join(k, ",") != "started,succeeded" {
		t.Errorf("events %v, want started,succeeded", k)
	}

	// Nothing changed upstream: only lastupdate and lastsync cross the wire.
	rd.ClearLog(t)
	run = e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultUpToDate {
		t.Fatalf("second sync: %s (%s), want up to date", run.Result, run.Error)
	}
	for _, f := range rd.Sent(t) {
		if f != "lastupdate" && f != "lastsync" {
			t.Errorf("an up-to-date check made the upstream send %s; want only lastupdate and lastsync", f)
		}
	}
	if run.Stats.BytesReceived > 4096 {
		t.Errorf("up-to-date check received %d bytes", run.Stats.BytesReceived)
	}
	if k := e.events.kinds(); len(k) != 2 {
		t.Errorf("an up-to-date check notified: %v", k)
	}

	// --force skips the gate: a full walk, nothing new to fetch.
	rd.ClearLog(t)
	run = e.sync(t, mirrorsync.Options{Force: true})
	if run.Result != mirrorsync.ResultSuccess {
		t.Errorf("forced sync of an unchanged tree: %s", run.Result)
	}
	for _, f := range rd.Sent(t) {
		if f != "lastupdate" && f != "lastsync" {
			t.Errorf("forced sync of an unchanged tree fetched %s again", f)
		}
	}

	hist, err := e.m.History(10)
	if err != nil || len(hist) != 3 || hist[0].Result != mirrorsync.ResultSuccess || hist[1].Result != mirrorsync.ResultUpToDate || !hist[0].Force {
		t.Errorf("history: %v %+v", err, hist)
	}
}

func TestMirrorFollowsUpstream(t *testing.T) {
	tr, rd := upstream(t)
	e := newEnv(t, []string{"core", "extra"}, rd.URL)
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("%+v", run)
	}
	nano := archtest.Pkg{Name: "nano", Version: "8.2-1", Desc: "small editor"}
	vim2 := archtest.Pkg{Name: "vim", Version: "9.1.1-1", Desc: "editor", Depends: []string{"glibc"}}
	tr.AddPackages(t, "extra", nano, vim2)
	os.Remove(filepath.Join(tr.Root, "extra", "os", "x86_64", vim.FileName()))
	os.Remove(filepath.Join(tr.Root, "pool", "packages", vim.FileName()))
	tr.RemovePackages(t, "core", bash)

	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("%+v\n%s", run, e.logs)
	}
	sameRepos(t, tr.Root, e.mirror, "core", "extra")
	// What upstream removed stays reachable for an hour, then goes.
	later := time.Now().Add(2 * time.Hour)
	e.m.Now = func() time.Time { return later }
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultUpToDate {
		t.Fatalf("two hours later: %+v", run)
	}
	for _, gone := range []string{"pool/packages/" + bash.FileName(), "pool/packages/" + vim.FileName(), "core/os/x86_64/" + bash.FileName()} {
		if _, err := os.Lstat(filepath.Join(e.mirror, gone)); !os.IsNotExist(err) {
			t.Errorf("%s removed upstream but still on the mirror", gone)
		}
	}

	// Dropping a repo from the selection frees its space.
	e.m.Config.Repos = []string{"core"}
	run = e.sync(t, mirrorsync.Options{Force: true})
	if _, err := os.Stat(filepath.Join(e.mirror, "extra")); !os.IsNotExist(err) || run.Result != mirrorsync.ResultSuccess {
		t.Errorf("extra/ still there after it left mirror.repos (%s)", run.Result)
	}
	if _, err := os.Stat(filepath.Join(e.mirror, "pool", "packages", big.FileName())); !os.IsNotExist(err) {
		t.Errorf("extra's pool files still there after it left mirror.repos")
	}
}

func TestFullMirrorMode(t *testing.T) {
	tr, rd := upstream(t)
	e := newEnv(t, []string{mirrorsync.FullMirror}, rd.URL)
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("%+v\n%s", run, e.logs)
	}
	want := tree(t, tr.Root, ".")
	got := tree(t, e.mirror, ".")
	for k, v := range want {
		excluded := strings.HasPrefix(k, "other") || strings.HasPrefix(k, "sources") || strings.HasSuffix(k, ".links.tar.gz")
		if excluded && got[k] != "" {
			t.Errorf("%s is excluded from a full mirror but was fetched", k)
		}
		if !excluded && got[k] != v {
			t.Errorf("%s: full mirror has %.30q, upstream %.30q", k, got[k], v)
		}
	}
}

func TestFailover(t *testing.T) {
	_, rd := upstream(t)
	dead := "rsync://127.0.0.1:1/archlinux/"
	e := newEnv(t, []string{"core"}, dead, rd.URL)
	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultSuccess || run.Upstream != rd.URL {
		t.Fatalf("failover: %+v", run)
	}
	if len(run.Attempts) != 2 || run.Attempts[0].Upstream != dead || run.Attempts[0].Error == "" || run.Attempts[1].Error != "" {
		t.Errorf("attempts: %+v", run.Attempts)
	}
}

func TestAllUpstreamsDown(t *testing.T) {
	e := newEnv(t, []string{"core"}, "rsync://127.0.0.1:1/archlinux/", "127.0.0.1::nomodule/")
	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultFailed || run.ExitCode == 0 || run.ExitMeaning == "" || !strings.Contains(run.Error, "all 2 upstreams failed") {
		t.Fatalf("%+v", run)
	}
	if len(run.StderrTail) == 0 {
		t.Errorf("no rsync stderr kept")
	}
	if k := e.events.kinds(); strings.Join(k, ",") != "failed" {
		t.Errorf("events %v, want failed", k)
	}
}

func TestMissingRepoUpstream(t *testing.T) {
	_, rd := upstream(t)
	e := newEnv(t, []string{"core", "nosuchrepo"}, rd.URL)
	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultFailed || !strings.Contains(run.Error, "has no nosuchrepo/os/x86_64") {
		t.Fatalf("%+v", run)
	}
}

func TestDiskSpaceFloor(t *testing.T) {
	_, rd := upstream(t)
	e := newEnv(t, []string{"core", "extra"}, rd.URL)
	e.m.Config.MinFreeBytes = 2 << 30
	e.m.FreeBytes = func(string) (uint64, error) { return 1 << 30, nil }
	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultFailed || !strings.Contains(run.Error, "1.0 GiB free, sync needs at least 2.0 GiB") {
		t.Fatalf("%+v", run)
	}
	if _, err := os.Stat(filepath.Join(e.mirror, "core")); !os.IsNotExist(err) {
		t.Errorf("a sync refused for space still fetched files")
	}

	// Not enough room for what the new databases name: refused before fetching, saying
	// how much is needed.
	e.m.FreeBytes = func(string) (uint64, error) { return 2<<30 + 1<<20, nil }
	run = e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultFailed || !strings.Contains(run.Error, "MiB for 8 new files, 2.0 GiB free") {
		t.Fatalf("estimate: %+v", run)
	}
	if pool, _ := os.ReadDir(filepath.Join(e.mirror, "pool", "packages")); len(pool) != 0 {
		t.Errorf("a sync refused for its estimate fetched %d pool files", len(pool))
	}

	// Space runs out during the transfer: the run stops cleanly and says so.
	e.m.Config.BWLimitKiB = 512
	e.m.FreeBytes = func(string) (uint64, error) {
		if e.m.State().Phase == mirrorsync.PhasePool {
			return 1 << 20, nil
		}
		return 10 << 30, nil
	}
	run = e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultFailed || !strings.Contains(run.Error, "stopped") || !strings.Contains(run.Error, "free") {
		t.Fatalf("space ran out mid-run: %+v", run)
	}
}

// TestOneAtATime: a second sync while one runs is refused with who holds it; --wait queues.
func TestOneAtATime(t *testing.T) {
	_, rd := upstream(t)
	e := newEnv(t, []string{"core", "extra"}, rd.URL)
	e.m.Config.BWLimitKiB = 2048 // ~3 s for the big package
	done := make(chan mirrorsync.Run)
	go func() { done <- e.sync(t, mirrorsync.Options{Trigger: mirrorsync.TriggerSchedule}) }()
	waitRunning(t, e.m)
	_, err := e.m.Sync(context.Background(), mirrorsync.Options{Trigger: mirrorsync.TriggerCLI})
	if !errors.Is(err, mirrorsync.ErrBusy) || !strings.Contains(err.Error(), "schedule, since") {
		t.Fatalf("second sync: %v, want ErrBusy naming the holder", err)
	}
	// Another process (here: another Manager on the same state dir) sees the flock.
	other := &mirrorsync.Manager{Config: e.m.Config, Store: nil, Log: e.m.Log}
	_, err = other.Sync(context.Background(), mirrorsync.Options{Trigger: mirrorsync.TriggerCLI})
	if !errors.Is(err, mirrorsync.ErrBusy) || !strings.Contains(err.Error(), "pid ") {
		t.Fatalf("sync from another process: %v, want ErrBusy with the holder's pid", err)
	}
	queued, err := e.m.Sync(context.Background(), mirrorsync.Options{Trigger: mirrorsync.TriggerCLI, Wait: true})
	first := <-done
	if err != nil || first.Result != mirrorsync.ResultSuccess || queued.Result != mirrorsync.ResultUpToDate || !queued.Start.After(first.End.Add(-time.Millisecond)) {
		t.Fatalf("queued: %v %+v after %+v", err, queued, first)
	}
}

func waitRunning(t *testing.T, m *mirrorsync.Manager) {
	t.Helper()
	// Up to 30 s: TestThrottleAndPriority starts with the disk "95 % busy", so the
	// databases' fetch runs only in the throttle's short slots, and a loaded CI machine
	// took more than 5 s to get through it.
	for i := 0; i < 3000; i++ {
		if s := m.State(); s.Running && (s.Phase == mirrorsync.PhasePool) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("sync never reached the transfer; state %+v", m.State())
}

func TestCancelThenResume(t *testing.T) {
	tr, rd := upstream(t)
	e := newEnv(t, []string{"core", "extra"}, rd.URL)
	e.m.Config.BWLimitKiB = 256
	done := make(chan mirrorsync.Run)
	go func() { done <- e.sync(t, mirrorsync.Options{}) }()
	waitRunning(t, e.m)
	time.Sleep(500 * time.Millisecond)
	if err := e.m.Cancel(); err != nil {
		t.Fatal(err)
	}
	run := <-done
	if run.Result != mirrorsync.ResultCancelled {
		t.Fatalf("cancelled run: %+v", run)
	}
	if err := e.m.Cancel(); !errors.Is(err, mirrorsync.ErrNotRunning) {
		t.Errorf("cancel with nothing running: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.mirror, "lastupdate")); !os.IsNotExist(err) {
		t.Errorf("a cancelled first sync wrote lastupdate: the next one would think it is current")
	}
	e.m.Config.BWLimitKiB = 0
	run = e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("after cancel: %+v", run)
	}
	sameRepos(t, tr.Root, e.mirror, "core", "extra")
	if n := len(tree(t, e.mirror, ".")); n == 0 {
		t.Fatal("empty mirror")
	}
	filepath.WalkDir(e.mirror, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.Name() == ".~tmp~" {
			t.Errorf("staging dir left: %s", p)
		}
		return nil
	})
}

func TestStaleTmpRemoved(t *testing.T) {
	_, rd := upstream(t)
	e := newEnv(t, []string{"core"}, rd.URL)
	stale := filepath.Join(e.mirror, "core", "os", "x86_64", ".~tmp~")
	os.MkdirAll(stale, 0o755)
	os.WriteFile(filepath.Join(stale, "core.db.tar.gz"), []byte("half"), 0o644)
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("%+v", run)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale .~tmp~ survived")
	}
	if !strings.Contains(e.logs.String(), "removed what an interrupted run left") {
		t.Errorf("removal not logged:\n%s", e.logs)
	}
}

func TestNoUpstream(t *testing.T) {
	e := newEnv(t, []string{"core"})
	if _, err := e.m.Sync(context.Background(), mirrorsync.Options{}); !errors.Is(err, mirrorsync.ErrNoUpstream) {
		t.Fatalf("%v", err)
	}
}

// procStat returns the state letter and nice value of pid from /proc/PID/stat.
func procStat(pid string) (state string, nice string, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", "", false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// f[0] is field 3 (state); nice is field 19.
	return f[0], f[16], true
}

// TestThrottleAndPriority: rsync runs at nice 19 and idle I/O priority, is stopped (state
// T) while the disk reads busy and continued when it calms down, and is never left stopped.
func TestThrottleAndPriority(t *testing.T) {
	_, rd := upstream(t)
	e := newEnv(t, []string{"core", "extra"}, rd.URL)
	e.m.Config.BWLimitKiB = 1536 // ~4 s for the big package
	e.m.Config.IOBusyPercent = 80
	var mu sync.Mutex
	busy := 95.0
	e.m.Busy = func() (float64, error) { mu.Lock(); defer mu.Unlock(); return busy, nil }
	done := make(chan mirrorsync.Run)
	go func() { done <- e.sync(t, mirrorsync.Options{}) }()
	waitRunning(t, e.m)

	pgid := func() string {
		var holder struct {
			PGID int `json:"rsync_pgid"`
		}
		b, _ := os.ReadFile(filepath.Join(e.state, mirrorsync.LockFile))
		if json.Unmarshal(b, &holder) != nil || holder.PGID <= 1 {
			return ""
		}
		return strconv.Itoa(holder.PGID)
	}
	var sawStopped, sawNice, sawIdle bool
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !(sawStopped && sawNice && sawIdle) {
		if st, nice, ok := procStat(pgid()); ok {
			sawStopped = sawStopped || st == "T"
			sawNice = sawNice || nice == "19"
			pid, _ := strconv.Atoi(pgid())
			prio, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, 1, uintptr(pid), 0)
			sawIdle = sawIdle || (errno == 0 && prio>>13 == 3)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !sawNice {
		t.Errorf("rsync never ran at nice 19")
	}
	if !sawIdle {
		t.Errorf("rsync never ran in the idle I/O class")
	}
	if !sawStopped {
		t.Errorf("rsync was never stopped while the disk read 95%% busy")
	}
	if s := e.m.State(); !s.Paused {
		t.Errorf("live state does not say paused: %+v", s)
	}
	mu.Lock()
	busy = 5
	mu.Unlock()
	run := <-done
	if run.Result != mirrorsync.ResultSuccess || run.PausedSeconds < 1 {
		t.Fatalf("throttled run: %s, paused %.1fs (%s)", run.Result, run.PausedSeconds, run.Error)
	}
}

// TestCancelWhilePaused: a stopped rsync is continued so SIGTERM can end it.
func TestCancelWhilePaused(t *testing.T) {
	_, rd := upstream(t)
	e := newEnv(t, []string{"core", "extra"}, rd.URL)
	e.m.Config.BWLimitKiB = 512
	e.m.Config.IOBusyPercent = 50
	e.m.Busy = func() (float64, error) { return 100, nil }
	done := make(chan mirrorsync.Run)
	go func() { done <- e.sync(t, mirrorsync.Options{}) }()
	waitRunning(t, e.m)
	for i := 0; i < 200 && !e.m.State().Paused; i++ {
		time.Sleep(25 * time.Millisecond)
	}
	start := time.Now()
	e.m.Cancel()
	select {
	case run := <-done:
		if run.Result != mirrorsync.ResultCancelled {
			t.Fatalf("%+v", run)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("cancelling a paused rsync took %s", time.Since(start))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("cancel of a paused sync never finished: rsync left stopped?")
	}
}

// TestRsyncKilled: rsync dying mid-run (OOM killer, an admin's kill -9) fails the run with
// a record that says so, and the next run completes the mirror.
func TestRsyncKilled(t *testing.T) {
	tr, rd := upstream(t)
	e := newEnv(t, []string{"core", "extra"}, rd.URL)
	e.m.Config.BWLimitKiB = 512
	done := make(chan mirrorsync.Run)
	go func() { done <- e.sync(t, mirrorsync.Options{}) }()
	waitRunning(t, e.m)
	pid := runningRsync(t, e.state)
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	run := <-done
	if run.Result != mirrorsync.ResultFailed || run.ExitMeaning != "killed by a signal" {
		t.Fatalf("run with rsync killed: %+v", run)
	}
	e.m.Config.BWLimitKiB = 0
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("next run: %+v", run)
	}
	sameRepos(t, tr.Root, e.mirror, "core", "extra")
}

// runningRsync waits for the lock to name an rsync that is running and returns its pid.
func runningRsync(t *testing.T, state string) int {
	t.Helper()
	var b []byte
	for i := 0; i < 500; i++ {
		var holder struct {
			PGID int `json:"rsync_pgid"`
		}
		b, _ = os.ReadFile(filepath.Join(state, mirrorsync.LockFile))
		if json.Unmarshal(b, &holder) == nil && holder.PGID > 1 {
			if comm, err := os.ReadFile("/proc/" + strconv.Itoa(holder.PGID) + "/comm"); err == nil && strings.TrimSpace(string(comm)) == "rsync" {
				return holder.PGID
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the lock never named a running rsync: %s", b)
	return 0
}

// TestStartRegistersTheRun: Start returns once its run shows as running, or with why it
// could not start; of two quick starts one runs and the other is told so.
func TestStartRegistersTheRun(t *testing.T) {
	e := newEnv(t, []string{"core"})
	if err := e.m.Start(context.Background(), mirrorsync.Options{Trigger: mirrorsync.TriggerWeb}); !errors.Is(err, mirrorsync.ErrNoUpstream) {
		t.Fatalf("start without an upstream: %v", err)
	}
	_, rd := upstream(t)
	e.m.Config.Upstreams = []string{rd.URL}
	e.m.Config.BWLimitKiB = 1024
	first := e.m.Start(context.Background(), mirrorsync.Options{Trigger: mirrorsync.TriggerWeb})
	if first != nil || !e.m.State().Running {
		t.Fatalf("first start: %v, running %v", first, e.m.State().Running)
	}
	if second := e.m.Start(context.Background(), mirrorsync.Options{Trigger: mirrorsync.TriggerWeb}); !errors.Is(second, mirrorsync.ErrBusy) {
		t.Fatalf("second start: %v", second)
	}
	e.m.Cancel()
	e.m.WaitIdle(context.Background())
}

// TestRecoverSparesOtherRsync: after a crash or a reboot the lock may name a process
// group that is now someone else's rsync; the next start leaves it alone.
func TestRecoverSparesOtherRsync(t *testing.T) {
	root := filepath.Join(t.TempDir(), "someone-elses")
	os.MkdirAll(root, 0o755)
	other := archtest.StartRsyncd(t, root)
	out, err := exec.Command("pgrep", "-f", "rsync --daemon.*"+strings.Split(other.Addr, ":")[1]).Output()
	pid, _ := strconv.Atoi(strings.Fields(string(out) + " 0")[0])
	if err != nil || pid <= 1 {
		t.Fatalf("find the other rsync: %v %q", err, out)
	}
	e := newEnv(t, []string{"core"}, "rsync://127.0.0.1:1/archlinux/")
	os.WriteFile(filepath.Join(e.state, mirrorsync.LockFile), []byte(fmt.Sprintf(`{"pid":12345,"rsync_pgid":%d,"trigger":"cli"}`, pid)), 0o640)
	if err := e.m.Recover(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if c, err := net.Dial("tcp", other.Addr); err != nil {
		t.Fatalf("another user's rsync daemon was killed: %v", err)
	} else {
		c.Close()
	}
}
