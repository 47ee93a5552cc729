package mirrorsync_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/mirrorsync"
)

// usedSet is the LAN's downloads as the used policy sees them (package name → last use).
type usedSet struct {
	mu   sync.Mutex
	last map[string]time.Time
	err  error
}

func (u *usedSet) set(name string, at time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.last == nil {
		u.last = map[string]time.Time{}
	}
	u.last[name] = at
}

func (u *usedSet) LastUsed() (map[string]time.Time, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string]time.Time{}
	for k, v := range u.last {
		out[k] = v
	}
	return out, u.err
}

// poolFiles lists the files in the mirror's pool (mirror-relative, sorted).
func poolFiles(t *testing.T, mirror string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(mirror, "pool"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(mirror, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func useMode(e *env, u *usedSet, maxBytes int64, setting string) {
	e.m.Config.Used = &mirrorsync.UsedPolicy{LastUsed: u.LastUsed, MaxBytes: maxBytes, Setting: setting}
}

// A used-mode mirror holds every database and link, and of the pool only what the LAN
// uses; the check calls the rest fetchable, not gaps. A used package updated upstream is
// on disk after the next sync; an unused one never arrives.
func TestUsedModeHoldsWhatIsUsed(t *testing.T) {
	tr, rd := upstream(t)
	e := newEnv(t, []string{"core", "extra"}, rd.URL)
	u := &usedSet{}
	useMode(e, u, 0, "90d 0")

	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("first sync: %s %s", run.Result, run.Error)
	}
	if got := poolFiles(t, e.mirror); len(got) != 0 {
		t.Errorf("a fresh used-mode mirror holds pool files: %v", got)
	}
	// Databases and links are all there, as upstream has them.
	for _, f := range []string{"core/os/x86_64/core.db", "extra/os/x86_64/extra.files", "core/os/x86_64/" + bash.FileName(), "core/os/x86_64/" + bash.FileName() + ".sig"} {
		if _, err := os.Lstat(filepath.Join(e.mirror, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if c := run.Check; c == nil || c.Gaps() != 0 || c.Fetchable != 8 {
		t.Errorf("check of a fresh used-mode mirror: %+v (want no gaps, 8 fetchable: 4 packages and their .sig)", c)
	}
	rep, err := mirrorsync.Verify(context.Background(), e.mirror, []string{"core", "extra"}, mirrorsync.VerifyOptions{Used: true, Full: true})
	if err != nil || !rep.OK() || rep.Unreferenced != 0 {
		t.Errorf("verify (used): %+v, %v", rep, err)
	}
	if rep, _ := mirrorsync.Verify(context.Background(), e.mirror, []string{"core", "extra"}, mirrorsync.VerifyOptions{}); rep.Missing == 0 {
		t.Errorf("verify as a full mirror should call the absent files missing: %+v", rep)
	}

	// The LAN downloads bash (a miss puts it in the pool, as daemon/ondemand does).
	u.set("bash", time.Now())
	copyFile(t, filepath.Join(tr.Root, bash.PoolPath()), filepath.Join(e.mirror, bash.PoolPath()))
	// Upstream updates bash and vim; the next sync fetches the new bash before anyone
	// asks, and not vim, which nobody uses.
	bash2 := bash
	bash2.Version = "5.3-1"
	vim2 := vim
	vim2.Version = "9.2-1"
	tr.AddPackages(t, "core", bash2)
	tr.AddPackages(t, "extra", vim2)
	run = e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultSuccess || run.Prefetched != 1 {
		t.Fatalf("sync after an update: %s %q prefetched %d (want 1)", run.Result, run.Error, run.Prefetched)
	}
	want := []string{bash2.PoolPath(), bash2.PoolPath() + ".sig"}
	// The old bash stays a while (replaced packages stay reachable, retire.go).
	want = append(want, bash.PoolPath())
	sort.Strings(want)
	if got := poolFiles(t, e.mirror); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("pool after the update: %v, want %v", got, want)
	}
	if run.Check.Gaps() != 0 {
		t.Errorf("check: %+v", run.Check)
	}
}

// The budget keeps the most recently used packages; the least recently used go first.
func TestUsedModeBudgetEvictsLeastRecent(t *testing.T) {
	_, rd := upstream(t)
	e := newEnv(t, []string{"core", "extra"}, rd.URL)
	u := &usedSet{}
	now := time.Now()
	u.set("bigpkg", now.Add(-48*time.Hour)) // 6 MiB, used two days ago
	u.set("vim", now.Add(-time.Hour))
	u.set("glibc", now)
	useMode(e, u, 0, "90d 0")
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess || run.Prefetched != 3 {
		t.Fatalf("sync: %s %q prefetched %d", run.Result, run.Error, run.Prefetched)
	}
	if got := len(poolFiles(t, e.mirror)); got != 6 {
		t.Fatalf("pool holds %d files, want 3 packages and their .sig", got)
	}
	// A budget of 1 MiB: glibc and vim fit, bigpkg goes — at once, though upstream has
	// not changed (a changed setting is not stopped by the lastupdate gate).
	useMode(e, u, 1<<20, "90d 1")
	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("sync with a budget: %s %q", run.Result, run.Error)
	}
	want := []string{glibc.PoolPath(), glibc.PoolPath() + ".sig", vim.PoolPath(), vim.PoolPath() + ".sig"}
	sort.Strings(want)
	if got := poolFiles(t, e.mirror); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("pool with a 1 MiB budget: %v, want %v", got, want)
	}
	if run.HeldBytes <= 0 || run.HeldBytes > 1<<20 {
		t.Errorf("held bytes %d, want within the budget", run.HeldBytes)
	}
	// Then nothing changed: the gate stops the run.
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultUpToDate {
		t.Errorf("unchanged: %s %q %+v\n%s", run.Result, run.Error, run.Check, e.logs)
	}
}

// Switching modes: used → all fetches the rest at the next sync; all → used frees what was
// not used. A store that cannot say what is used fails the run and prunes nothing.
func TestUsedModeSwitching(t *testing.T) {
	tr, rd := upstream(t)
	e := newEnv(t, []string{"core", "extra"}, rd.URL)
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess {
		t.Fatalf("all: %s %q", run.Result, run.Error)
	}
	full := poolFiles(t, e.mirror)
	if len(full) != 8 {
		t.Fatalf("full mirror pool: %v", full)
	}
	u := &usedSet{err: errors.New("store is away")}
	useMode(e, u, 0, "90d 0")
	if run := e.sync(t, mirrorsync.Options{}); run.OK() || !strings.Contains(run.Error, "store is away") {
		t.Errorf("sync with an unreadable used set: %s %q", run.Result, run.Error)
	}
	if got := poolFiles(t, e.mirror); len(got) != 8 {
		t.Errorf("a failed used-set read pruned files: %v", got)
	}
	u.err = nil
	u.set("vim", time.Now())
	if run := e.sync(t, mirrorsync.Options{}); run.Result != mirrorsync.ResultSuccess || run.Pruned != 6 {
		t.Errorf("all → used: %s %q pruned %d (want 6)", run.Result, run.Error, run.Pruned)
	}
	want := []string{vim.PoolPath(), vim.PoolPath() + ".sig"}
	if got := poolFiles(t, e.mirror); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("pool after all → used: %v, want %v", got, want)
	}
	e.m.Config.Used = nil
	run := e.sync(t, mirrorsync.Options{})
	if run.Result != mirrorsync.ResultSuccess {
		t.Errorf("used → all: %s %q", run.Result, run.Error)
	}
	if got := poolFiles(t, e.mirror); strings.Join(got, " ") != strings.Join(full, " ") {
		t.Errorf("pool after used → all: %v, want %v", got, full)
	}
	sameRepos(t, tr.Root, e.mirror, "core", "extra")
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(to), 0o755)
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
