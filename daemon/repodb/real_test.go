package repodb

import (
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestRealDatabases reads real Arch sync databases of 2019 (format v1, gzip) in place.
func TestRealDatabases(t *testing.T) {
	requireRealDir(t)
	// Counted independently with bsdtar -xOf REPO.db and grep/awk: packages, entries with
	// %BASE% and with %LICENSE% (old packages lack them: real missing sections), and all
	// %DEPENDS% and %PROVIDES% lines.
	type counts struct{ pkgs, base, license, depends, provides int }
	want := map[string]counts{
		"core":              {231, 216, 231, 532, 199},
		"extra":             {2917, 2721, 2903, 8086, 543},
		"multilib":          {280, 253, 280, 1119, 63},
		"testing":           {38, 38, 38, 122, 22},
		"community-testing": {36, 36, 36, 100, 0},
		"multilib-testing":  {1, 1, 1, 5, 0},
	}
	sha := regexp.MustCompile(`^[0-9a-f]{64}$`)
	dbs := map[string][]Package{}
	for repo, w := range want {
		pkgs, err := Read(filepath.Join(realDir, repo+".db"), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		got := counts{pkgs: len(pkgs)}
		for _, p := range pkgs {
			// Every real entry has these; a parser that lost a section would show here.
			if p.Filename == "" || p.Desc == "" || p.Arch == "" || p.Packager == "" || p.CSize <= 0 ||
				p.ISize <= 0 || p.BuildDate < 1e9 || !sha.MatchString(p.SHA256Sum) || len(p.MD5Sum) != 32 ||
				p.PGPSig == "" {
				t.Errorf("%s: implausible entry %+v", repo, p)
			}
			if p.Base != "" {
				got.base++
			}
			if len(p.Licenses) > 0 {
				got.license++
			}
			got.depends += len(p.Depends)
			got.provides += len(p.Provides)
		}
		if got != w {
			t.Errorf("%s: counts %+v, want %+v", repo, got, w)
		}
		dbs[repo] = pkgs
	}

	find := func(repo, name string) Package {
		t.Helper()
		i := slices.IndexFunc(dbs[repo], func(p Package) bool { return p.Name == name })
		if i < 0 {
			t.Fatalf("%s: no %s", repo, name)
		}
		return dbs[repo][i]
	}

	glibc := find("core", "glibc")
	wantGlibc := Package{
		Filename: "glibc-2.29-1-x86_64.pkg.tar.xz", Name: "glibc", Base: "glibc", Version: "2.29-1",
		Desc: "GNU C Library", URL: "http://www.gnu.org/software/libc", Arch: "x86_64",
		Packager: "Bartłomiej Piotrowski <bpiotrowski@archlinux.org>",
		MD5Sum:   "86637160ae90445d8239167b72b3a709", SHA256Sum: "505a7db5e502c9cc8cc1c4abbfbf16437bd16505fce47eee950e18ebffced476",
		PGPSig: glibc.PGPSig, CSize: 9529544, ISize: 47270912, BuildDate: 1555492277,
		Groups: []string{"base"}, Licenses: []string{"GPL", "LGPL"},
		Depends:    []string{"linux-api-headers>=4.10", "tzdata", "filesystem"},
		OptDepends: []string{"gd: for memusagestat"}, MakeDepends: []string{"git", "gd", "lib32-gcc-libs", "python"},
	}
	if !reflect.DeepEqual(glibc, wantGlibc) {
		t.Errorf("core glibc:\ngot  %+v\nwant %+v", glibc, wantGlibc)
	}
	if len(glibc.PGPSig) != 416 || !strings.HasPrefix(glibc.PGPSig, "iQEzBAABCAAdFiEE82kWh9hnuBtRzgfZu+Q3") {
		t.Errorf("core glibc: PGPSig %q, want 416 base64 characters", glibc.PGPSig)
	}

	pacman := find("core", "pacman")
	if pacman.Version != "5.1.3-1" || pacman.Desc != "A library-based package manager with dependency support" ||
		!slices.Equal(pacman.Groups, []string{"base", "base-devel"}) ||
		!slices.Equal(pacman.CheckDepends, []string{"python2", "fakechroot"}) ||
		!slices.Contains(pacman.OptDepends, "xdelta3: delta support in repo-add") {
		t.Errorf("core pacman: %+v", pacman)
	}
	for _, c := range []struct{ repo, name, version string }{
		{"extra", "python", "3.7.3-1"},
		{"extra", "firefox", "67.0.1-1"},
		{"extra", "vim", "8.1.1467-2"},
		{"multilib-testing", "lib32-glib2", "2.60.4-1"},
	} {
		if p := find(c.repo, c.name); p.Version != c.version {
			t.Errorf("%s %s: version %q, want %q", c.repo, c.name, p.Version, c.version)
		}
	}
	// Epochs exist in real data: SplitVersion must take them apart.
	epochs := 0
	for _, p := range dbs["extra"] {
		if e, v, r := SplitVersion(p.Version); e != "" {
			epochs++
			if v == "" || r == "" || e+":"+v+"-"+r != p.Version {
				t.Errorf("SplitVersion(%q) = %q, %q, %q", p.Version, e, v, r)
			}
		}
	}
	if epochs == 0 {
		t.Error("no epoch in extra: SplitVersion found none")
	}
}
