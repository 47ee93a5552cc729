// Package archtest builds real Arch Linux trees for tests: real .pkg.tar.zst packages
// (a .PKGINFO plus payload, packed by bsdtar), real sync databases made by repo-add, the
// pool/ layout with relative symlinks, lastupdate and lastsync — what an upstream mirror
// holds. It also writes throwaway pacman.conf files so the real pacman can be the client.
//
// Every helper needs the real tool and fails the test, naming the package to install, when
// the tool is missing: nothing here is skipped.
package archtest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tools maps each command tests need to the Debian package that provides it.
var Tools = map[string]string{
	"bsdtar":   "libarchive-tools",
	"repo-add": "pacman-package-manager",
	"pacman":   "pacman-package-manager",
	"zstd":     "zstd",
	"curl":     "curl",
	"nginx":    "nginx",
}

// Require fails t unless every named command is on PATH.
func Require(t testing.TB, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			pkg := Tools[c]
			if pkg == "" {
				pkg = "the package that provides it"
			}
			t.Fatalf("%s not found: this test needs the real tool; install %s (make test-deps does)", c, pkg)
		}
	}
}

// Pkg describes one package to build.
type Pkg struct {
	Name    string
	Base    string // default Name
	Version string // [epoch:]pkgver-pkgrel; default "1.0-1"
	Desc    string // "" writes no pkgdesc
	Arch    string // default "x86_64"
	URL     string

	Depends, OptDepends, Provides, Conflicts, Replaces, Groups, Licenses []string

	// PayloadSize adds a file of this many pseudo-random (incompressible) bytes, for
	// large-file tests. Every package also installs usr/share/NAME/README.
	PayloadSize int64
	// BuildDate defaults to a fixed time so trees are reproducible.
	BuildDate time.Time
	// Pool is the pool dir the file lives in: "packages" (default) or "community", as on
	// Arch's mirrors.
	Pool string
}

func (p Pkg) withDefaults() Pkg {
	if p.Base == "" {
		p.Base = p.Name
	}
	if p.Version == "" {
		p.Version = "1.0-1"
	}
	if p.Arch == "" {
		p.Arch = "x86_64"
	}
	if p.BuildDate.IsZero() {
		p.BuildDate = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	if p.Pool == "" {
		p.Pool = "packages"
	}
	return p
}

// PoolPath is the package file's path relative to the tree's root: pool/POOL/FILE.
func (p Pkg) PoolPath() string {
	p = p.withDefaults()
	return "pool/" + p.Pool + "/" + p.FileName()
}

// FileName is the package file's name, as Arch names it.
func (p Pkg) FileName() string {
	p = p.withDefaults()
	return fmt.Sprintf("%s-%s-%s.pkg.tar.zst", p.Name, p.Version, p.Arch)
}

// Repo is one repository of a tree.
type Repo struct {
	Name string
	Pkgs []Pkg
}

// Tree is a built mirror tree.
type Tree struct {
	Root       string
	LastUpdate int64
}

// PkgPath is where a package of repo is reachable in the tree (a symlink into pool/).
func (tr *Tree) PkgPath(repo string, p Pkg) string {
	return filepath.Join(tr.Root, repo, "os", "x86_64", p.FileName())
}

// BuildTree writes an Arch mirror tree under root: pool/packages/ holds the package files,
// REPO/os/x86_64/ holds relative symlinks to them and the repo-add databases.
func BuildTree(t testing.TB, root string, repos ...Repo) *Tree {
	t.Helper()
	Require(t, "bsdtar", "repo-add", "zstd")
	must(t, os.MkdirAll(filepath.Join(root, "pool", "packages"), 0o755))
	work := t.TempDir()
	for _, r := range repos {
		dir := filepath.Join(root, r.Name, "os", "x86_64")
		must(t, os.MkdirAll(dir, 0o755))
		var links []string
		for _, p := range r.Pkgs {
			links = append(links, placePkg(t, work, root, dir, p, false))
		}
		args := append([]string{"--quiet", "--nocolor", filepath.Join(dir, r.Name+".db.tar.gz")}, links...)
		run(t, "", "repo-add", args...)
	}
	tr := &Tree{Root: root, LastUpdate: time.Now().Unix()}
	must(t, os.WriteFile(filepath.Join(root, "lastupdate"), []byte(strconv.FormatInt(tr.LastUpdate, 10)+"\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "lastsync"), []byte(strconv.FormatInt(tr.LastUpdate, 10)+"\n"), 0o644))
	return tr
}

// AddPackages builds pkgs into the tree's pool, links them into repo and adds them to its
// database with repo-add (replacing older versions), then bumps lastupdate.
func (tr *Tree) AddPackages(t testing.TB, repo string, pkgs ...Pkg) {
	t.Helper()
	dir := filepath.Join(tr.Root, repo, "os", "x86_64")
	must(t, os.MkdirAll(dir, 0o755))
	var links []string
	for _, p := range pkgs {
		links = append(links, placePkg(t, t.TempDir(), tr.Root, dir, p, true))
	}
	run(t, "", "repo-add", append([]string{"--quiet", "--nocolor", filepath.Join(dir, repo+".db.tar.gz")}, links...)...)
	tr.Touch(t)
}

// RemovePackages drops packages from repo's database (repo-remove), deletes their links
// and pool files, as Arch's dbscripts do, then bumps lastupdate.
func (tr *Tree) RemovePackages(t testing.TB, repo string, pkgs ...Pkg) {
	t.Helper()
	dir := filepath.Join(tr.Root, repo, "os", "x86_64")
	var names []string
	for _, p := range pkgs {
		names = append(names, p.Name)
		for _, ext := range []string{"", ".sig"} {
			os.Remove(filepath.Join(dir, p.FileName()+ext))
			os.Remove(filepath.Join(tr.Root, filepath.FromSlash(p.PoolPath())+ext))
		}
	}
	run(t, "", "repo-remove", append([]string{"--quiet", "--nocolor", filepath.Join(dir, repo+".db.tar.gz")}, names...)...)
	tr.Touch(t)
}

// placePkg builds p into the tree's pool (unless it is there and rebuild is false), with a
// detached .sig beside it as Arch publishes them, and links both into dir. It returns the
// package link, for repo-add (which puts the .sig next to it into the database).
func placePkg(t testing.TB, work, root, dir string, p Pkg, rebuild bool) string {
	t.Helper()
	p = p.withDefaults()
	pool := filepath.Join(root, "pool", p.Pool)
	must(t, os.MkdirAll(pool, 0o755))
	file := p.FileName()
	if _, err := os.Stat(filepath.Join(pool, file)); rebuild || os.IsNotExist(err) {
		BuildPkg(t, work, pool, p)
		// Not a real OpenPGP signature (tests run pacman with SigLevel = Never), but a
		// file of a signature's size that repo-add embeds as %PGPSIG%.
		writeRandom(t, filepath.Join(pool, file+".sig"), 310, file+".sig")
	}
	link := filepath.Join(dir, file)
	for _, ext := range []string{"", ".sig"} {
		os.Remove(link + ext)
		must(t, os.Symlink("../../../pool/"+p.Pool+"/"+file+ext, link+ext))
	}
	return link
}

// Realistic builds, under root, a tree shaped like a real Arch mirror's: core, extra and
// multilib with packages in pool/packages and pool/community, a .sig beside each, names
// with epochs and '+', databases with their .tar.gz.old copies, empty testing and staging
// repos, iso/, images/, other/ and sources/, and a *.links.tar.gz nobody should fetch.
func Realistic(t testing.TB, root string) (*Tree, []Repo) {
	t.Helper()
	repos := []Repo{
		{Name: "core", Pkgs: []Pkg{
			{Name: "glibc", Version: "2.40+r16-1", Desc: "GNU C Library"},
			{Name: "bash", Version: "5.2.037-1", Desc: "The GNU Bourne Again shell", Depends: []string{"glibc"}},
			{Name: "zlib", Version: "1:1.3.1-2", Desc: "Compression library"},
		}},
		{Name: "extra", Pkgs: []Pkg{
			{Name: "libsigc++", Version: "2.12.1-2", Desc: "Callback framework for C++", Pool: "community"},
			{Name: "vim", Version: "9.1.0866-1", Desc: "Vi Improved", Depends: []string{"glibc"}},
			{Name: "hello", Version: "2:2.12.1-3", Desc: "GNU hello", Pool: "community"},
			{Name: "bigdata", Version: "1.0-1", Desc: "a large package", PayloadSize: 3 << 20},
		}},
		{Name: "multilib", Pkgs: []Pkg{
			{Name: "lib32-glibc", Version: "2.40+r16-1", Desc: "GNU C Library (32-bit)"},
		}},
		{Name: "core-testing"},
		{Name: "extra-staging"},
	}
	tr := BuildTree(t, root, repos...)
	for _, r := range repos {
		dir := filepath.Join(root, r.Name, "os", "x86_64")
		for _, db := range []string{r.Name + ".db.tar.gz", r.Name + ".files.tar.gz"} {
			b, err := os.ReadFile(filepath.Join(dir, db))
			must(t, err)
			must(t, os.WriteFile(filepath.Join(dir, db+".old"), b, 0o644))
		}
	}
	must(t, os.WriteFile(filepath.Join(root, "core", "os", "x86_64", "core.links.tar.gz"), []byte("not fetched"), 0o644))
	for _, d := range []string{"iso/2026.11.01", "images/v20261101", "other/archboot", "sources/packages"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
		must(t, os.WriteFile(filepath.Join(root, d, "README"), []byte(d+"\n"), 0o644))
	}
	return tr, repos
}

// Touch bumps lastupdate (and lastsync), as the upstream does when a database changed.
func (tr *Tree) Touch(t testing.TB) {
	t.Helper()
	tr.LastUpdate++
	if now := time.Now().Unix(); now > tr.LastUpdate {
		tr.LastUpdate = now
	}
	stamp := []byte(strconv.FormatInt(tr.LastUpdate, 10) + "\n")
	must(t, os.WriteFile(filepath.Join(tr.Root, "lastupdate"), stamp, 0o644))
	must(t, os.WriteFile(filepath.Join(tr.Root, "lastsync"), stamp, 0o644))
}

// BuildPkg packs p into outDir/p.FileName() with bsdtar --zstd, as makepkg would: .PKGINFO
// first, then the payload.
func BuildPkg(t testing.TB, work, outDir string, p Pkg) string {
	t.Helper()
	p = p.withDefaults()
	dir, err := os.MkdirTemp(work, p.Name+"-")
	must(t, err)
	var files []string
	readme := filepath.Join("usr", "share", p.Name, "README")
	must(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(readme)), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, readme), []byte(p.Name+" "+p.Version+"\n"), 0o644))
	files = append(files, readme)
	size := int64(len(p.Name) + len(p.Version) + 2)
	if p.PayloadSize > 0 {
		blob := filepath.Join("usr", "share", p.Name, "blob.bin")
		writeRandom(t, filepath.Join(dir, blob), p.PayloadSize, p.Name)
		files = append(files, blob)
		size += p.PayloadSize
	}
	var b bytes.Buffer
	kv := func(k string, vs ...string) {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s = %s\n", k, v)
		}
	}
	b.WriteString("# Generated by archtest\n")
	kv("pkgname", p.Name)
	kv("pkgbase", p.Base)
	kv("pkgver", p.Version)
	if p.Desc != "" {
		kv("pkgdesc", p.Desc)
	}
	if p.URL != "" {
		kv("url", p.URL)
	}
	kv("builddate", strconv.FormatInt(p.BuildDate.Unix(), 10))
	kv("packager", "AMWI Tests <tests@amwi.invalid>")
	kv("size", strconv.FormatInt(size, 10))
	kv("arch", p.Arch)
	kv("license", p.Licenses...)
	kv("group", p.Groups...)
	kv("replaces", p.Replaces...)
	kv("conflict", p.Conflicts...)
	kv("provides", p.Provides...)
	kv("depend", p.Depends...)
	kv("optdepend", p.OptDepends...)
	must(t, os.WriteFile(filepath.Join(dir, ".PKGINFO"), b.Bytes(), 0o644))
	out := filepath.Join(outDir, p.FileName())
	sort.Strings(files)
	run(t, dir, "bsdtar", append([]string{"--zstd", "--uid", "0", "--gid", "0", "-cf", out, ".PKGINFO"}, files...)...)
	return out
}

// writeRandom writes n incompressible bytes, seeded by name so trees are reproducible.
func writeRandom(t testing.TB, path string, n int64, seed string) {
	t.Helper()
	f, err := os.Create(path)
	must(t, err)
	var s uint64
	for _, c := range seed {
		s = s*31 + uint64(c)
	}
	r := rand.New(rand.NewPCG(s, 0x616d7769))
	buf := make([]byte, 1<<20)
	for n > 0 {
		for i := 0; i+8 <= len(buf); i += 8 {
			v := r.Uint64()
			for j := 0; j < 8; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		k := min(n, int64(len(buf)))
		_, err := f.Write(buf[:k])
		must(t, err)
		n -= k
	}
	must(t, f.Close())
}

// PacmanConf writes a throwaway pacman.conf under dir whose every path (root, databases,
// cache, log, keyring, hooks) lies in dir, with signature checks off, listing repos served
// at baseURL (e.g. http://127.0.0.1:8000/archlinux). It returns the conf's path.
func PacmanConf(t testing.TB, dir, baseURL string, repos ...string) string {
	t.Helper()
	for _, d := range []string{"root", "db", "cache", "gnupg", "hooks"} {
		must(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[options]\nRootDir = %[1]s/root\nDBPath = %[1]s/db\nCacheDir = %[1]s/cache\n"+
		"LogFile = %[1]s/pacman.log\nGPGDir = %[1]s/gnupg\nHookDir = %[1]s/hooks\n"+
		"Architecture = x86_64\nSigLevel = Never\nLocalFileSigLevel = Never\n", dir)
	for _, r := range repos {
		fmt.Fprintf(&b, "\n[%s]\nServer = %s/$repo/os/$arch\n", r, baseURL)
	}
	conf := filepath.Join(dir, "pacman.conf")
	must(t, os.WriteFile(conf, []byte(b.String()), 0o644))
	return conf
}

// Pacman runs the real pacman with conf and returns its combined output, failing t on a
// non-zero exit.
func Pacman(t testing.TB, conf string, args ...string) string {
	t.Helper()
	Require(t, "pacman")
	flags := []string{"--config", conf, "--color", "never"}
	if len(args) > 0 && strings.HasPrefix(args[0], "-S") {
		flags = append(flags, "--noconfirm", "--noprogressbar")
	}
	return run(t, "", "pacman", append(flags, args...)...)
}

func run(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
