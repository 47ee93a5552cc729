package mirrorsync

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestSelectHeldSkipsWhatDoesNotFit: LastUsed has a day's resolution, so everything a LAN
// downloaded today ties and is ordered by pool path; the selection stopped at the first
// package that did not fit, dropping every later one that did. One package larger than
// the whole budget (a 2 GiB cuda under max_gib = 1) left the mirror holding nothing of
// what was used that day. A package that does not fit is skipped; the rest are still held,
// most recently used first.
func TestSelectHeldSkipsWhatDoesNotFit(t *testing.T) {
	const mib = 1 << 20
	d := &repoDir{repo: "extra", links: map[string]string{}}
	add := func(pkg string, size int64) {
		name := pkg + "-1-1-x86_64.pkg.tar.zst"
		d.files = append(d.files, dbFile{name: name, pkg: pkg, size: size})
		d.links[name] = "pool/packages/" + name
		d.links[name+".sig"] = "pool/packages/" + name + ".sig"
	}
	add("aaa-huge", 2048*mib) // larger than the budget on its own
	add("bash", 2*mib)
	add("cuda", 6*mib)
	add("vim", 3*mib)
	add("zsh", 1*mib)
	add("old", 1*mib)
	today := time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)
	last := map[string]time.Time{
		"aaa-huge": today, "bash": today, "cuda": today, "vim": today, "zsh": today,
		"old": today.AddDate(0, 0, -30),
	}
	held, bytes := selectHeld([]*repoDir{d}, last, 10*mib)
	var got []string
	for p := range held {
		if !strings.HasSuffix(p, ".sig") {
			got = append(got, strings.TrimSuffix(strings.TrimPrefix(p, "pool/packages/"), "-1-1-x86_64.pkg.tar.zst"))
		}
	}
	sort.Strings(got)
	// Today's, in path order: aaa-huge skipped, bash 2, cuda 6 (8), vim 3 skipped, zsh 1
	// (9); then the older one, 1 (10).
	if want := "bash cuda old zsh"; strings.Join(got, " ") != want || bytes != 10*mib {
		t.Errorf("held %v (%d MiB), want %s (10 MiB)", got, bytes/mib, want)
	}
}

// TestPruneKeepsFreshFiles: in "used" mode a package renamed into the pool during the run
// (a client's miss finishing while the sync publishes) must not be deleted as unused, or
// the next client fetches it again. The prune checks freshness itself, just before each
// removal (an earlier walk of its own could not see a file renamed in after it).
func TestPruneKeepsFreshFiles(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "pool", "packages")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Second)
	// The run's refs name nothing of it. Then a fetch lands.
	refs := map[string]bool{}
	if err := os.WriteFile(filepath.Join(dir, "new-1-1-x86_64.pkg.tar.zst"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	removed, err := prunePool(root, refs, start)
	if err != nil || len(removed) != 0 {
		t.Errorf("prune removed %v (%v); a file fetched during the run must stay", removed, err)
	}
	// In "all" mode (no fresh time), or for a file older than the run, it goes.
	if removed, _ := prunePool(root, refs, time.Time{}); len(removed) != 1 {
		t.Errorf("prune without a fresh time removed %v, want the unnamed file", removed)
	}
}
