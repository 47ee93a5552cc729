package search_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/internal/archtest"
)

var repos = []archtest.Repo{
	{Name: "core", Pkgs: []archtest.Pkg{
		{Name: "glibc", Version: "2.40-1", Desc: "GNU C Library", Groups: []string{"base-devel"}},
		{Name: "bash", Version: "5.2-1", Desc: "The GNU Bourne Again shell", Provides: []string{"sh"}, Depends: []string{"glibc>=2.38", "readline"}},
		{Name: "readline", Version: "8.2-1", Desc: "GNU readline library", Depends: []string{"glibc"}},
		{Name: "python", Version: "3.12.7-1", Desc: "The Python programming language", Depends: []string{"glibc"}},
		{Name: "zstd", Version: "1:1.5.6-1", Desc: "Zstandard - Fast real-time compression algorithm", Provides: []string{"libzstd.so=1-64"}},
	}},
	{Name: "extra", Pkgs: []archtest.Pkg{
		{Name: "python-requests", Version: "2.32.3-1", Desc: "Python HTTP for Humans", Depends: []string{"python", "python-urllib3"}},
		{Name: "python-urllib3", Version: "2.2.3-1", Desc: "HTTP library with thread-safe connection pooling", Depends: []string{"python"},
			OptDepends: []string{"python-brotli: Brotli support"}},
		{Name: "vim", Version: "9.1.0866-1", Desc: "Vi Improved, a highly configurable, improved version of the vi text editor",
			Provides: []string{"xxd", "vim-minimal"}, Conflicts: []string{"gvim"}, Depends: []string{"glibc"}},
		{Name: "nodesc", Version: "0.1-1"},
		{Name: "zsh", Version: "5.9-5", Desc: "A very advanced and programmable command interpreter (shell) for UNIX", Provides: []string{"sh-compatible"}},
		{Name: "xfce4-panel", Version: "4.18.6-1", Desc: "Panel for the Xfce desktop environment", Groups: []string{"xfce4"}},
		{Name: "shellcheck", Version: "0.10.0-1", Desc: "Shell script analysis tool", Depends: []string{"bash"}},
	}},
	{Name: "multilib", Pkgs: []archtest.Pkg{
		{Name: "lib32-glibc", Version: "2.40-1", Desc: "GNU C Library (32-bit)", Depends: []string{"glibc"}},
	}},
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func loadTree(t *testing.T) (*search.Service, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "mirror")
	archtest.BuildTree(t, root, repos...)
	svc := &search.Service{Root: root, Repos: []string{"core", "extra", "multilib"}, Log: quiet()}
	if _, err := svc.Load(); err != nil {
		t.Fatal(err)
	}
	return svc, root
}

// pacmanSs runs the real pacman -Ss on the given sync databases and returns the hits as
// "repo/name", sorted.
func pacmanSs(t *testing.T, dbs map[string]string, terms ...string) []string {
	t.Helper()
	archtest.Require(t, "pacman")
	dir := t.TempDir()
	var names []string
	for r := range dbs {
		names = append(names, r)
	}
	sort.Strings(names)
	conf := archtest.PacmanConf(t, dir, "http://127.0.0.1:1/unused", names...)
	os.MkdirAll(filepath.Join(dir, "db", "sync"), 0o755)
	for r, path := range dbs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "db", "sync", r+".db"), b, 0o644)
	}
	cmd := exec.Command("pacman", append([]string{"--config", conf, "--color", "never", "-Ss"}, terms...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 && len(out) == 0 {
		return nil // pacman: no match
	}
	if err != nil {
		t.Fatalf("pacman -Ss %v: %v\n%s", terms, err, out)
	}
	var hits []string
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, " ") {
			continue
		}
		hits = append(hits, strings.Fields(line)[0])
	}
	sort.Strings(hits)
	return hits
}

func ours(t *testing.T, ix *search.Index, text string) []string {
	t.Helper()
	res, err := ix.Search(search.Query{Text: text, PerPage: 100000})
	if err != nil {
		t.Fatalf("search %q: %v", text, err)
	}
	var hits []string
	for _, p := range res.Results {
		hits = append(hits, p.Repo+"/"+p.Name)
	}
	sort.Strings(hits)
	return hits
}

// TestPacmanOracle: for plain-word queries the set of hits equals pacman -Ss's.
func TestPacmanOracle(t *testing.T) {
	svc, root := loadTree(t)
	dbs := map[string]string{}
	for _, r := range []string{"core", "extra", "multilib"} {
		dbs[r] = search.DBPath(root, r)
	}
	queries := []string{
		"bash", "BASH", "glibc", "gnu", "GNU library", "python", "python http", "http", "sh", "shell",
		"vim", "xxd", "editor", "xfce4", "panel", "nodesc", "zstd", "libzstd", "compression fast",
		"nothing-matches-this", "a", "lib", "32-bit", "python-", "improved vi", "devel", "base-devel",
	}
	for _, q := range queries {
		t.Run(q, func(t *testing.T) {
			want := pacmanSs(t, dbs, strings.Fields(q)...)
			got := ours(t, svc.Index(), q)
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("query %q:\n amwi:   %v\n pacman: %v", q, got, want)
			}
		})
	}
}

// TestPacmanOracleRealDatabases: the same on real Arch databases (2019, 3,400 packages).
func TestPacmanOracleRealDatabases(t *testing.T) {
	real := "../../../shared/data/arch-real/alpm.rs-sync"
	if _, err := os.Stat(real); err != nil {
		t.Fatalf("the real Arch databases are missing (%v): this test reads ../shared/data/arch-real", err)
	}
	root := t.TempDir()
	dbs := map[string]string{}
	for _, r := range []string{"core", "extra", "multilib"} {
		dir := filepath.Join(root, r, "os", "x86_64")
		os.MkdirAll(dir, 0o755)
		abs, _ := filepath.Abs(filepath.Join(real, r+".db"))
		os.Symlink(abs, filepath.Join(dir, r+".db"))
		dbs[r] = abs
	}
	svc := &search.Service{Root: root, Repos: []string{"core", "extra", "multilib"}, Log: quiet()}
	if _, err := svc.Load(); err != nil {
		t.Fatal(err)
	}
	if n := svc.Index().Len(); n != 231+2917+280 {
		t.Fatalf("indexed %d packages, want %d", n, 231+2917+280)
	}
	for _, q := range []string{"linux", "kernel headers", "python", "gtk", "xorg server", "pacman", "sh", "lib32", "font", "zsh", "firefox", "qt5 base", "ssl", "vim"} {
		want := pacmanSs(t, dbs, strings.Fields(q)...)
		got := ours(t, svc.Index(), q)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("query %q: amwi %d hits, pacman %d\n amwi only: %v\n pacman only: %v", q, len(got), len(want), minus(got, want), minus(want, got))
		}
	}
}

func minus(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}

func TestRankingFiltersPaging(t *testing.T) {
	svc, _ := loadTree(t)
	ix := svc.Index()
	res, _ := ix.Search(search.Query{Text: "python", PerPage: 50})
	var names []string
	for _, p := range res.Results {
		names = append(names, p.Repo+"/"+p.Name)
	}
	// exact name, then name prefix (core before extra, then by name), then description.
	want := "core/python extra/python-requests extra/python-urllib3"
	if strings.Join(names, " ") != want {
		t.Errorf("ranking for python: %v, want %s", names, want)
	}
	res, _ = ix.Search(search.Query{Text: "sh", PerPage: 50})
	if len(res.Results) == 0 || res.Results[0].Name != "shellcheck" && res.Results[0].Name != "sh" {
		// No package is named "sh": name prefix (shellcheck) comes first, then name
		// contains (bash, zsh…), then provides.
		t.Errorf("ranking for sh starts with %s", res.Results[0].Name)
	}
	pos := map[string]int{}
	for i, p := range res.Results {
		pos[p.Name] = i
	}
	if !(pos["shellcheck"] < pos["bash"] && pos["bash"] < pos["zsh"]) {
		t.Errorf("sh: want shellcheck (prefix) < bash (contains, core) < zsh (contains, extra): %v", pos)
	}

	res, _ = ix.Search(search.Query{Text: "glibc", Repo: "multilib", PerPage: 50})
	if res.Count != 1 || res.Results[0].Name != "lib32-glibc" {
		t.Errorf("repo filter: %+v", res)
	}
	res, _ = ix.Search(search.Query{Text: "gnu", PerPage: 2, Page: 2})
	if res.Count != 4 || res.NumPages != 2 || res.Page != 2 || len(res.Results) != 2 || res.Limit != 2 {
		t.Errorf("paging: count %d pages %d page %d len %d", res.Count, res.NumPages, res.Page, len(res.Results))
	}
	res, _ = ix.Search(search.Query{Text: "gnu", PerPage: 2, Page: 9})
	if len(res.Results) != 0 {
		t.Errorf("page past the end returned %d results", len(res.Results))
	}
	for _, bad := range []string{"", "   ", strings.Repeat("x", search.MaxQueryLen+1), strings.Repeat("a ", search.MaxTerms+1)} {
		if _, err := ix.Search(search.Query{Text: bad}); err == nil {
			t.Errorf("query %.20q accepted", bad)
		}
	}
}

func TestDetailAndRequiredBy(t *testing.T) {
	svc, _ := loadTree(t)
	ix := svc.Index()
	p := ix.Get("core", "zstd")
	if p == nil || p.Epoch != "1" || p.Pkgver != "1.5.6" || p.Pkgrel != "1" || p.Version != "1:1.5.6-1" {
		t.Fatalf("zstd: %+v", p)
	}
	if p.SHA256Sum == "" || p.CSize == 0 || p.Filename != "zstd-1:1.5.6-1-x86_64.pkg.tar.zst" || p.BuildDate == 0 || p.Packager == "" {
		t.Errorf("zstd fields: %+v", p.Package)
	}
	var req []string
	for _, q := range ix.RequiredBy(ix.Get("core", "glibc")) {
		req = append(req, q.Repo+"/"+q.Name)
	}
	if strings.Join(req, " ") != "core/bash core/python core/readline extra/vim multilib/lib32-glibc" {
		t.Errorf("glibc required by: %v", req)
	}
	req = nil
	for _, q := range ix.RequiredBy(ix.Get("core", "bash")) {
		req = append(req, q.Name)
	}
	if strings.Join(req, " ") != "shellcheck" {
		t.Errorf("bash required by: %v", req)
	}
	if ix.Get("core", "nope") != nil {
		t.Error("Get of a missing package")
	}
}

// TestChangesAndDamagedDatabase: reloading reports added/updated/removed packages; a
// damaged database keeps that repo's previous packages and reports the problem.
func TestChangesAndDamagedDatabase(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mirror")
	tr := archtest.BuildTree(t, root, repos...)
	svc := &search.Service{Root: root, Repos: []string{"core", "extra", "multilib"}, Log: quiet(), Now: time.Now}
	if _, err := svc.Load(); err != nil {
		t.Fatal(err)
	}
	tr.AddPackages(t, "extra", archtest.Pkg{Name: "nano", Version: "8.2-1", Desc: "editor"},
		archtest.Pkg{Name: "vim", Version: "9.1.0900-1", Desc: "Vi Improved"})
	tr.RemovePackages(t, "extra", archtest.Pkg{Name: "nodesc", Version: "0.1-1"})
	ch, err := svc.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Added) != 1 || ch.Added[0].Name != "nano" || len(ch.Updated) != 1 || ch.Updated[0].OldVersion != "9.1.0866-1" ||
		ch.Updated[0].NewVersion != "9.1.0900-1" || len(ch.Removed) != 1 || ch.Removed[0].Name != "nodesc" {
		t.Errorf("changes: %+v", ch)
	}
	before := svc.Index().Len()

	// Damage extra.db: the index keeps extra's packages and says what is wrong.
	db := search.DBPath(root, "extra")
	target, _ := filepath.EvalSymlinks(db)
	b, _ := os.ReadFile(target)
	os.WriteFile(target, b[:len(b)/2], 0o644)
	if _, err := svc.Load(); err == nil {
		t.Fatal("a truncated database loaded without error")
	}
	if svc.Index().Len() != before || svc.Index().Get("extra", "nano") == nil {
		t.Errorf("damaged extra.db emptied the index: %d packages (was %d)", svc.Index().Len(), before)
	}
	if !strings.Contains(svc.Problems()["extra"], "extra.db") {
		t.Errorf("problems: %v", svc.Problems())
	}
}

// TestWatchReloadsOnChange: an admin's own rsync (or anything) rewriting a database is
// noticed and the index follows.
func TestWatchReloadsOnChange(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mirror")
	tr := archtest.BuildTree(t, root, repos...)
	svc := &search.Service{Root: root, Repos: []string{"core", "extra", "multilib"}, Log: quiet()}
	svc.Load()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go svc.Watch(ctx, 20*time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	tr.AddPackages(t, "core", archtest.Pkg{Name: "nano", Version: "8.2-1", Desc: "editor"})
	for i := 0; svc.Index().Get("core", "nano") == nil; i++ {
		if i > 250 {
			t.Fatal("index did not pick up the changed core.db")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestChangesBounded: a run's record keeps a few changes of each kind and the whole counts.
func TestChangesBounded(t *testing.T) {
	var c search.Changes
	for i := 0; i < 500; i++ {
		c.Added = append(c.Added, search.Change{Repo: "extra", Name: fmt.Sprint("p", i)})
	}
	c.Removed = []search.Change{{Repo: "core", Name: "gone"}}
	b := c.Bounded(50)
	if len(b.Added) != 50 || b.AddedN() != 500 || b.RemovedN() != 1 || len(b.Removed) != 1 || b.UpdatedN() != 0 || b.Empty() {
		t.Fatalf("bounded: %d/%d added, %d/%d removed", len(b.Added), b.AddedN(), len(b.Removed), b.RemovedN())
	}
	js, _ := json.Marshal(b)
	var back search.Changes
	json.Unmarshal(js, &back)
	if back.AddedN() != 500 || len(js) > 8<<10 {
		t.Errorf("round trip: %d added, %d bytes", back.AddedN(), len(js))
	}
}
