package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/amwi/amwi/internal/netguard"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amwi/amwi/internal/archtest"
)

// syncUpstream is an Arch tree served by a real rsync daemon.
func syncUpstream(t *testing.T, extra ...archtest.Pkg) (*archtest.Tree, *archtest.Rsyncd) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "upstream")
	tr := archtest.BuildTree(t, root,
		archtest.Repo{Name: "core", Pkgs: testRepos[0].Pkgs},
		archtest.Repo{Name: "extra", Pkgs: append(append([]archtest.Pkg(nil), testRepos[1].Pkgs...), extra...)},
	)
	return tr, archtest.StartRsyncd(t, root)
}

func syncConfig(t *testing.T, dir, upstream, repos, extra string) string {
	t.Helper()
	mirror := filepath.Join(dir, "mirror")
	os.MkdirAll(mirror, 0o755)
	cfg := fmt.Sprintf(`[server]
listen = "127.0.0.1:0"
[mirror]
root = %q
repos = %s
[sync]
upstream = %q
min_free_gib = 0
%s
[state]
dir = %q
`, mirror, repos, upstream, extra, filepath.Join(dir, "state"))
	path := filepath.Join(dir, "amwi.toml")
	os.WriteFile(path, []byte(cfg), 0o644)
	return path
}

// TestSyncAloneThenPacman: `amwi sync` with no daemon syncs by itself; with repos = core
// only nothing of extra lands on disk, and pacman installs from the result.
func TestSyncAloneThenPacman(t *testing.T) {
	t.Parallel()
	_, rd := syncUpstream(t)
	dir := t.TempDir()
	cfg := syncConfig(t, dir, rd.URL, `["core"]`, "")
	out, code := run(t, nil, nil, "-c", cfg, "sync")
	if code != 0 || !strings.Contains(out, "sync 1: done from "+rd.URL) {
		t.Fatalf("amwi sync: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "mirror", "extra")); !os.IsNotExist(err) {
		t.Errorf("extra/ fetched although repos = [\"core\"]")
	}
	if pool, _ := os.ReadDir(filepath.Join(dir, "mirror", "pool", "packages")); len(pool) != 6 {
		t.Errorf("pool holds %d files, want core's 3 packages and their .sig files", len(pool))
	}
	out, code = run(t, nil, nil, "-c", cfg, "sync")
	if code != 0 || !strings.Contains(out, "sync 2: up to date") {
		t.Fatalf("second amwi sync: exit %d\n%s", code, out)
	}

	_, base := serve(t, cfg)
	conf := archtest.PacmanConf(t, filepath.Join(dir, "client"), base+"/archlinux", "core")
	archtest.Pacman(t, conf, "-Sy")
	archtest.Pacman(t, conf, "-S", "bash")
	if q := archtest.Pacman(t, conf, "-Q"); !strings.Contains(q, "bash 5.2.037-1") || !strings.Contains(q, "glibc") {
		t.Fatalf("pacman -Q after installing from the synced core:\n%s", q)
	}
}

// TestCtrlCOnSyncThroughDaemon: Ctrl-C on an `amwi sync --wait` still in the queue
// withdraws it (nothing runs after the sync it waited for); on an `amwi sync` whose run is
// going, it cancels that run and no other. A client killed while queued leaves the queue
// too. The daemon serves on.
func TestCtrlCOnSyncThroughDaemon(t *testing.T) {
	t.Parallel()
	_, rd := syncUpstream(t, archtest.Pkg{Name: "huge", Version: "1-1", Desc: "slow to fetch", PayloadSize: 4 << 20})
	dir := t.TempDir()
	cfg := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "bwlimit_kib = 1024")
	p, base := serve(t, cfg)
	waitRunning := func(trigger string) float64 {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, _ := apiSync(t, base)
			if st["running"] == true && st["trigger"] == trigger {
				return st["run_id"].(float64)
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s sync running; daemon log:\n%s", trigger, p.Output())
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	waitOutput := func(q *proc, s string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(q.Output(), s) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q from amwi:\n%s", s, q.Output())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	first := start(t, nil, amwiBin, "-c", cfg, "sync")
	firstID := waitRunning("cli")
	queued := start(t, nil, amwiBin, "-c", cfg, "sync", "--wait", "--force")
	waitOutput(queued, "queued behind run")
	killed := start(t, nil, amwiBin, "-c", cfg, "sync", "--wait", "--force")
	waitOutput(killed, "queued behind run")
	killed.cmd.Process.Signal(syscall.SIGKILL)
	queued.cmd.Process.Signal(syscall.SIGINT)
	if code := queued.wait(t, 10*time.Second); code != 1 || !strings.Contains(queued.Output(), "left the queue before the sync started: nothing ran") {
		t.Errorf("Ctrl-C while queued: exit %d\n%s", code, queued.Output())
	}
	if st, _ := apiSync(t, base); st["run_id"] != firstID {
		t.Errorf("the running sync changed under a withdrawn request: %v", st)
	}
	if code := first.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("first sync: exit %d\n%s", code, first.Output())
	}
	time.Sleep(500 * time.Millisecond) // a run wrongly started from the queue would show now
	if st, hist := apiSync(t, base); st["running"] == true || len(hist) != 1 {
		t.Fatalf("after the first sync, with both queued requests gone: state %v, history %v", st, hist)
	}

	// Ctrl-C on our own run cancels it.
	own := start(t, nil, amwiBin, "-c", cfg, "sync", "--force")
	waitRunning("cli")
	time.Sleep(300 * time.Millisecond)
	own.cmd.Process.Signal(syscall.SIGINT)
	if code := own.wait(t, 20*time.Second); code != 1 || !strings.Contains(own.Output(), "cancelled") {
		t.Errorf("Ctrl-C on a running sync: exit %d\n%s", code, own.Output())
	}
	_, hist := apiSync(t, base)
	if len(hist) != 2 || hist[0]["result"] != "cancelled" {
		t.Errorf("history after Ctrl-C on a running sync: %v", hist)
	}
	if code, _ := httpGet(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("daemon health after all that: %d", code)
	}
}

func apiSync(t *testing.T, base string) (state map[string]any, history []map[string]any) {
	t.Helper()
	_, body := httpGet(t, base+"/api/sync")
	var v struct {
		State   map[string]any   `json:"state"`
		History []map[string]any `json:"history"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("/api/sync: %v\n%s", err, body)
	}
	return v.State, v.History
}

// TestSyncThroughDaemon: with the daemon running, `amwi sync` goes through its control
// socket; a second one is refused with who holds the sync, --wait queues, --cancel stops;
// /api/sync shows state and history; Discord hears about it.
func TestSyncThroughDaemon(t *testing.T) {
	t.Parallel()
	_, rd := syncUpstream(t, archtest.Pkg{Name: "huge", Version: "1-1", Desc: "slow to fetch", PayloadSize: 4 << 20})
	var mu sync.Mutex
	var posts []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		json.NewDecoder(r.Body).Decode(&v)
		b, _ := json.Marshal(v)
		mu.Lock()
		posts = append(posts, string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	dir := t.TempDir()
	cfg := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "bwlimit_kib = 1024\n[discord]\nenabled = true\nwebhook_url = \""+hook.URL+"/api/webhooks/1/TOKEN\"")
	// The stand-in for Discord lives on loopback, which webhooks may not reach otherwise.
	unsafe := []string{netguard.UnsafeEnv + "=1"}
	p, base := serve(t, cfg, unsafe...)

	first := make(chan string)
	go func() {
		out, code := run(t, nil, unsafe, "-c", cfg, "sync")
		first <- fmt.Sprintf("exit %d: %s", code, out)
	}()
	// Wait for the transfer to be under way.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, _ := apiSync(t, base)
		if st["running"] == true && st["trigger"] == "cli" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sync never showed as running in /api/sync; daemon log:\n%s", p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, code := run(t, nil, unsafe, "-c", cfg, "sync")
	if code != 1 || !strings.Contains(out, "a sync is already running (run 1, cli, since ") {
		t.Errorf("second amwi sync: exit %d\n%s", code, out)
	}
	queued := make(chan string)
	go func() {
		out, code := run(t, nil, unsafe, "-c", cfg, "sync", "--wait")
		queued <- fmt.Sprintf("exit %d: %s", code, out)
	}()
	if r := <-first; !strings.HasPrefix(r, "exit 0: ") || !strings.Contains(r, "sync 1: done") {
		t.Fatalf("first amwi sync through the daemon: %s", r)
	}
	if r := <-queued; !strings.HasPrefix(r, "exit 0: ") || !strings.Contains(r, "sync 2: up to date") {
		t.Fatalf("amwi sync --wait: %s", r)
	}
	if !strings.Contains(p.Output(), "msg=\"sync finished\" run=1") {
		t.Errorf("the daemon did not run the sync itself:\n%s", p.Output())
	}

	// Cancel: a forced run, cancelled from another amwi.
	forced := make(chan string)
	go func() {
		out, code := run(t, nil, unsafe, "-c", cfg, "sync", "--force")
		forced <- fmt.Sprintf("exit %d: %s", code, out)
	}()
	for i := 0; ; i++ {
		if st, _ := apiSync(t, base); st["running"] == true {
			break
		}
		if i > 400 {
			t.Fatal("forced sync never started")
		}
		time.Sleep(25 * time.Millisecond)
	}
	if out, code := run(t, nil, unsafe, "-c", cfg, "sync", "--cancel"); code != 0 {
		t.Fatalf("amwi sync --cancel: exit %d\n%s", code, out)
	}
	if r := <-forced; !strings.HasPrefix(r, "exit 1: ") || !strings.Contains(r, "cancelled") {
		t.Errorf("cancelled sync: %s", r)
	}

	_, hist := apiSync(t, base)
	if len(hist) != 3 || hist[0]["result"] != "cancelled" || hist[1]["result"] != "up to date" || hist[2]["result"] != "success" ||
		hist[2]["upstream"] != rd.URL || hist[2]["trigger"] != "cli" {
		t.Errorf("/api/sync history: %v", hist)
	}
	// Discord: started + succeeded for run 1 (up-to-date checks and cancels are quiet).
	deadline = time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(posts)
		all := strings.Join(posts, "\n")
		mu.Unlock()
		if n >= 2 {
			if !strings.Contains(all, "Sync started") || !strings.Contains(all, "Sync succeeded") {
				t.Errorf("webhook payloads:\n%s", all)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook got %d posts:\n%s", n, all)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(p.Output(), "TOKEN") {
		t.Errorf("the webhook URL appears in the daemon's log")
	}
}

// TestKill9MidSync: the daemon killed with SIGKILL mid-sync leaves no lock to clear: the
// next start records the interrupted run and the next sync completes the mirror.
func TestKill9MidSync(t *testing.T) {
	t.Parallel()
	tr, rd := syncUpstream(t, archtest.Pkg{Name: "huge", Version: "1-1", Desc: "slow", PayloadSize: 4 << 20})
	dir := t.TempDir()
	cfg := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "bwlimit_kib = 512")
	p, base := serve(t, cfg)
	go exec.Command(amwiBin, "-c", cfg, "sync").Run()
	for i := 0; ; i++ {
		if st, _ := apiSync(t, base); st["phase"] == "fetching packages" {
			break
		}
		if i > 800 {
			t.Fatalf("sync never reached the transfer:\n%s", p.Output())
		}
		time.Sleep(25 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(t, 10*time.Second)
	// rsync, and the receiver it forked, die with the daemon (its guard kills them).
	noRsyncWithin(t, rd.Addr, dir, 2*time.Second)
	p2, base2 := serve(t, cfg)
	_, hist := apiSync(t, base2)
	if len(hist) != 1 || hist[0]["result"] != "failed" || !strings.Contains(fmt.Sprint(hist[0]["error"]), "interrupted") {
		t.Fatalf("after kill -9, history: %v", hist)
	}
	out, code := run(t, nil, nil, "-c", cfg, "sync")
	if code != 0 || !strings.Contains(out, "sync 2: done") {
		t.Fatalf("sync after restart: exit %d\n%s\n%s", code, out, p2.Output())
	}
	for _, f := range []string{"core/os/x86_64/core.db", "extra/os/x86_64/extra.db", "lastupdate"} {
		a, _ := os.ReadFile(filepath.Join(tr.Root, f))
		b, _ := os.ReadFile(filepath.Join(dir, "mirror", f))
		if string(a) != string(b) {
			t.Errorf("%s differs from upstream after the recovery sync", f)
		}
	}
}

// noRsyncWithin fails t unless every rsync of upstream addr into dir ends within d. A
// process that has ended but not been reaped yet (a zombie: its parent was killed, and
// PID 1 reaps it when it gets to it, which in CI's sandbox can take a second) has ended.
func noRsyncWithin(t *testing.T, addr, dir string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		out, _ := exec.Command("pgrep", "-f", "rsync.*"+addr+".*"+dir).CombinedOutput()
		var running []string
		for _, pid := range strings.Fields(string(out)) {
			if !zombie(pid) {
				running = append(running, pid)
			}
		}
		if len(running) == 0 {
			return
		}
		if time.Now().After(deadline) {
			ps, _ := exec.Command("ps", "-o", "pid,ppid,pgid,stat,args", "-p", strings.Join(running, ",")).CombinedOutput()
			t.Fatalf("rsync still runs %s after amwi was killed:\n%s", d, ps)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// zombie reports whether process pid has ended and waits to be reaped (state Z in
// /proc/PID/stat, after the command name in parentheses). A process already gone counts
// as ended too.
func zombie(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false // unreadable: counted as running
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}

// TestKill9SyncAloneResumes: `amwi sync` (no daemon) killed with SIGKILL mid-transfer
// takes its rsync with it at once; the next `amwi sync` keeps the packages the killed one
// completed and fetches only the rest.
func TestKill9SyncAloneResumes(t *testing.T) {
	t.Parallel()
	var bigs []archtest.Pkg
	for i := 0; i < 4; i++ {
		bigs = append(bigs, archtest.Pkg{Name: fmt.Sprintf("large%d", i), Version: "1-1", Desc: "large", PayloadSize: 1 << 20})
	}
	tr, rd := syncUpstream(t, bigs...)
	dir := t.TempDir()
	slow := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "bwlimit_kib = 768")
	cmd := exec.Command(amwiBin, "-c", slow, "sync")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	complete := func() int {
		n := 0
		for _, b := range bigs {
			if fi, err := os.Stat(filepath.Join(dir, "mirror", b.PoolPath())); err == nil && fi.Size() > 1<<20 {
				n++
			}
		}
		return n
	}
	for i := 0; complete() < 2; i++ {
		if i > 2000 {
			t.Fatal("two large packages never arrived")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	noRsyncWithin(t, rd.Addr, dir, time.Second)
	have := complete()
	// The upstream's side of the killed connection logs what it was sending when it
	// notices; let it, before the second sync's log starts.
	time.Sleep(time.Second)
	rd.ClearLog(t)
	fast := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "")
	out, code := run(t, nil, nil, "-c", fast, "sync")
	if code != 0 || !strings.Contains(out, "sync 2: done") {
		t.Fatalf("sync after kill -9: exit %d\n%s", code, out)
	}
	refetched := 0
	for _, f := range rd.Sent(t) {
		if strings.HasPrefix(f, "pool/packages/large") && strings.HasSuffix(f, ".pkg.tar.zst") {
			refetched++
		}
	}
	if refetched != len(bigs)-have {
		t.Errorf("the second sync fetched %d large packages; %d of %d were complete before the kill\n%s\n%v", refetched, have, len(bigs), out, rd.Sent(t))
	}
	hist, _ := exec.Command(amwiBin, "-c", fast, "verify").CombinedOutput()
	if !strings.Contains(string(hist), "no problems") {
		t.Errorf("amwi verify after the resumed sync:\n%s", hist)
	}
	_ = tr
}

// TestTwoSyncsAlone: with no daemon, a second `amwi sync` says which one holds the sync
// and exits 1; with --wait it queues and then finds the mirror up to date.
func TestTwoSyncsAlone(t *testing.T) {
	t.Parallel()
	_, rd := syncUpstream(t, archtest.Pkg{Name: "huge", Version: "1-1", Desc: "slow", PayloadSize: 3 << 20})
	dir := t.TempDir()
	cfg := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "bwlimit_kib = 1024")
	first := exec.Command(amwiBin, "-c", cfg, "sync")
	var firstOut strings.Builder
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if b, _ := os.ReadFile(filepath.Join(dir, "state", "sync.lock")); strings.Contains(string(b), "rsync_pgid") {
			break
		}
		if i > 400 {
			t.Fatal("first sync never started rsync")
		}
		time.Sleep(25 * time.Millisecond)
	}
	out, code := run(t, nil, nil, "-c", cfg, "sync")
	want := fmt.Sprintf("a sync is already running (pid %d, cli, run 1, since ", first.Process.Pid)
	if code != 1 || !strings.Contains(out, want) {
		t.Errorf("second amwi sync: exit %d\n%s\nwant %q", code, out, want)
	}
	out, code = run(t, nil, nil, "-c", cfg, "sync", "--wait")
	if err := first.Wait(); err != nil {
		t.Fatalf("first sync: %v\n%s", err, firstOut.String())
	}
	if code != 0 || !strings.Contains(out, "sync 2: up to date") {
		t.Errorf("amwi sync --wait: exit %d\n%s", code, out)
	}
}

// TestPacmanDuringSync: clients downloading while the mirror is updated never see a
// partial or missing file: every pacman -Sy/-Sw during the sync succeeds and every
// downloaded package matches the size and checksum its database gives (pacman checks).
func TestPacmanDuringSync(t *testing.T) {
	t.Parallel()
	tr, rd := syncUpstream(t)
	dir := t.TempDir()
	cfg := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "bwlimit_kib = 2048")
	if out, code := run(t, nil, nil, "-c", cfg, "sync"); code != 0 {
		t.Fatalf("initial sync: %s", out)
	}
	_, base := serve(t, cfg)
	conf := archtest.PacmanConf(t, filepath.Join(dir, "client"), base+"/archlinux", "core", "extra")

	// Upstream publishes new versions of everything (the old files disappear), a big one
	// to keep the sync busy for a few seconds.
	var next []archtest.Pkg
	for _, p := range testRepos[1].Pkgs {
		old := p
		p.Version = "9" + p.Version
		if p.Name == "bigdata" {
			p.PayloadSize = 6 << 20
		}
		next = append(next, p)
		tr.RemovePackages(t, "extra", old)
	}
	tr.AddPackages(t, "extra", next...)

	syncDone := make(chan string)
	go func() {
		out, err := exec.Command(amwiBin, "-c", cfg, "sync").CombinedOutput()
		syncDone <- fmt.Sprintf("%v: %s", err, out)
	}()
	names := []string{"hello", "nodesc", "bigdata", "bash", "glibc"}
	rounds := 0
	for done := false; !done; {
		select {
		case r := <-syncDone:
			if !strings.HasPrefix(r, "<nil>") {
				t.Fatalf("sync during downloads: %s", r)
			}
			done = true
		default:
		}
		rounds++
		cache := t.TempDir()
		archtest.Pacman(t, conf, "-Sy")
		archtest.Pacman(t, conf, append([]string{"-Sw", "--cachedir", cache}, names...)...)
	}
	if rounds < 2 {
		t.Errorf("only %d download rounds overlapped the sync", rounds)
	}
	t.Logf("%d pacman download rounds ran during the sync", rounds)
	archtest.Pacman(t, conf, "-Sy")
	if si := archtest.Pacman(t, conf, "-Si", "bigdata"); !strings.Contains(si, "91.0-1") {
		t.Errorf("after the sync pacman does not see the new version:\n%s", si)
	}
}

// TestSyncProgressOnTTY: on a terminal `amwi sync` redraws one progress line (phase,
// percent, bytes, rate, current file) and clears it before the summary.
func TestSyncProgressOnTTY(t *testing.T) {
	t.Parallel()
	requireTool(t, "script", "bsdutils")
	_, rd := syncUpstream(t, archtest.Pkg{Name: "huge", Version: "1-1", Desc: "slow", PayloadSize: 2 << 20})
	dir := t.TempDir()
	cfg := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "bwlimit_kib = 1024")
	// script(1) gives amwi a pseudo-terminal as stdout.
	out, err := exec.Command("script", "-qec", amwiBin+" -c "+cfg+" sync", "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("amwi sync under script: %v\n%q", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "\r\x1b[Kfetching packages") || !strings.Contains(s, "%") || !strings.Contains(s, "/s") {
		t.Errorf("no progress line redrawn on the terminal:\n%q", s)
	}
	if !strings.Contains(s, "\r\x1b[Ksync 1: done") {
		t.Errorf("progress line not cleared before the summary:\n%q", s)
	}
}

// TestRefusedSyncsLeaveTheRunningOne: 50 `amwi sync` calls while a sync runs are each
// told who holds it, and the running sync goes on to success.
func TestRefusedSyncsLeaveTheRunningOne(t *testing.T) {
	t.Parallel()
	_, rd := syncUpstream(t, archtest.Pkg{Name: "huge", Version: "1-1", Desc: "slow to fetch", PayloadSize: 8 << 20})
	dir := t.TempDir()
	cfg := syncConfig(t, dir, rd.URL, `["core", "extra"]`, "bwlimit_kib = 1024")
	_, base := serve(t, cfg)
	first := make(chan string)
	go func() {
		out, code := run(t, nil, nil, "-c", cfg, "sync")
		first <- fmt.Sprintf("exit %d: %s", code, out)
	}()
	for i := 0; ; i++ {
		if st, _ := apiSync(t, base); st["running"] == true {
			break
		}
		if i > 400 {
			t.Fatal("the sync never showed as running")
		}
		time.Sleep(25 * time.Millisecond)
	}
	for i := 0; i < 50; i++ {
		if out, code := run(t, nil, nil, "-c", cfg, "sync"); code != 1 || !strings.Contains(out, "a sync is already running (run 1") {
			t.Fatalf("refused amwi sync #%d: exit %d\n%s", i, code, out)
		}
	}
	if r := <-first; !strings.HasPrefix(r, "exit 0: ") || !strings.Contains(r, "sync 1: done") {
		t.Fatalf("the running sync after 50 refused ones: %s", r)
	}
}
