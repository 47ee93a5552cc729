package repodb

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/internal/archtest"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// repoAddPkgs are the packages of the repo-add tests: epochs, a split package, a missing
// description, versioned depends and provides, optdepends with reasons, long lists.
func repoAddPkgs() []archtest.Pkg {
	var deps, provs, opts []string
	for i := range 40 {
		deps = append(deps, fmt.Sprintf("lib%02d>=1.%d", i, i))
		provs = append(provs, fmt.Sprintf("libbig%d.so=%d-64", i, i))
	}
	for i := range 12 {
		opts = append(opts, fmt.Sprintf("opt%d: for feature number %d, with: colons", i, i))
	}
	return []archtest.Pkg{
		{Name: "glibc", Version: "2.38-7", Desc: "GNU C Library", URL: "https://www.gnu.org/software/libc",
			Licenses: []string{"GPL-2.0-or-later", "LGPL-2.1-or-later"}, Groups: []string{"base"},
			Depends:  []string{"linux-api-headers>=4.10", "tzdata", "filesystem"},
			Provides: []string{"libc.so=6-64"}, OptDepends: []string{"gd: for memusagestat", "perl: for mtrace"}},
		{Name: "pacman", Version: "1:6.0.2-9", Desc: "A library-based package manager with dependency support",
			Depends:  []string{"bash", "glibc>=2.38", "libarchive", "curl<9", "gpgme=1.23.2-1"},
			Provides: []string{"libalpm.so=13-64"}, Conflicts: []string{"pacman-contrib<1.0"},
			Replaces: []string{"pacman-git"}, Groups: []string{"base-devel", "admin"}},
		{Name: "nodesc", Version: "3:0.1-1"}, // no pkgdesc at all
		{Name: "big", Version: "20260101.r42.gdeadbee-3", Desc: "Lots of relations", Arch: "any",
			Depends: deps, Provides: provs, OptDepends: opts, Licenses: []string{"MIT"},
			Conflicts: []string{"big-git", "big-bin"}, Replaces: []string{"big-old", "bigger<1"}},
		{Name: "libfoo", Base: "foo", Version: "2.0-1", Desc: "Split package of foo",
			BuildDate: time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC), PayloadSize: 100_000},
		{Name: "foo", Version: "2.0-1", Desc: "Main package of foo, with ünïcödé and 'quotes'",
			Depends: []string{"libfoo=2.0-1"}},
		// NAME-VER/desc longer than ustar's 100+155: bsdtar writes a pax path record.
		{Name: "python-" + strings.Repeat("long", 40), Version: "1.0-1", Desc: "A long name"},
	}
}

// buildRepo makes a real database with repo-add and returns its path (core.db, a gzip
// tar) and the tree.
func buildRepo(t *testing.T) (string, *archtest.Tree) {
	t.Helper()
	tr := archtest.BuildTree(t, t.TempDir(), archtest.Repo{Name: "core", Pkgs: repoAddPkgs()})
	return filepath.Join(tr.Root, "core", "os", "x86_64", "core.db"), tr
}

// TestRepoAdd checks every field that repo-add writes against the packages built, and
// that every compression gives the same result.
func TestRepoAdd(t *testing.T) {
	db, tree := buildRepo(t)
	got, err := Read(db, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	pkgs := repoAddPkgs()
	if len(got) != len(pkgs) {
		t.Fatalf("read %d packages, want %d", len(got), len(pkgs))
	}
	byName := map[string]Package{}
	for _, p := range got {
		byName[p.Name] = p
	}
	for _, in := range pkgs {
		t.Run(in.Name, func(t *testing.T) {
			p, ok := byName[in.Name]
			if !ok {
				t.Fatalf("%s missing", in.Name)
			}
			file, err := os.ReadFile(tree.PkgPath("core", in))
			if err != nil {
				t.Fatal(err)
			}
			base, arch, date := in.Base, in.Arch, in.BuildDate
			if base == "" {
				base = in.Name
			}
			if arch == "" {
				arch = "x86_64"
			}
			if date.IsZero() {
				date = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) // archtest's default
			}
			sha, md := sha256.Sum256(file), md5.Sum(file)
			want := Package{
				Filename: in.FileName(), Name: in.Name, Base: base, Version: in.Version, Desc: in.Desc,
				URL: in.URL, Arch: arch, Packager: "AMWI Tests <tests@amwi.invalid>",
				MD5Sum: hex.EncodeToString(md[:]), SHA256Sum: hex.EncodeToString(sha[:]),
				CSize: int64(len(file)),
				// archtest's .PKGINFO size: the README (name, space, version, newline) and the payload.
				ISize:     int64(len(in.Name)+len(in.Version)+2) + in.PayloadSize,
				BuildDate: date.Unix(),
				Groups:    in.Groups, Licenses: in.Licenses, Replaces: in.Replaces, Conflicts: in.Conflicts,
				Provides: in.Provides, Depends: in.Depends, OptDepends: in.OptDepends,
			}
			// archtest puts a .sig beside every package, which repo-add embeds.
			if p.PGPSig == "" {
				t.Errorf("%s: no %%PGPSIG%% although a .sig was beside the package", in.Name)
			}
			want.PGPSig = p.PGPSig
			if !reflect.DeepEqual(p, want) {
				t.Errorf("got  %+v\nwant %+v", p, want)
			}
		})
	}

	t.Run("compressions", func(t *testing.T) {
		testCompressions(t, db, got)
	})
}

// testCompressions recompresses the repo-add database with the real zstd, xz and bzip2
// (and Go's encoders, and none at all), always as core.db, and checks each reads the same.
func testCompressions(t *testing.T, db string, want []Package) {
	raw, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	variants := []struct {
		name string
		data func() []byte
	}{
		{"plain tar", func() []byte { return plain }},
		{"gzip (go)", func() []byte { return gz(t, plain) }},
		{"gzip twice concatenated", func() []byte { return append(gz(t, plain[:3000]), gz(t, plain[3000:])...) }},
		{"zstd", func() []byte { return command(t, plain, "zstd", "-q", "-c") }},
		{"zstd -19", func() []byte { return command(t, plain, "zstd", "-q", "-19", "-c") }},
		{"zstd streamed (no content size)", func() []byte {
			return command(t, plain, "zstd", "-q", "-c", "--no-content-size")
		}},
		{"zstd (go)", func() []byte {
			var b bytes.Buffer
			zw, _ := zstd.NewWriter(&b)
			zw.Write(plain)
			zw.Close()
			return b.Bytes()
		}},
		{"xz", func() []byte { return command(t, plain, "xz", "-c") }},
		{"xz, many blocks, sha256 check", func() []byte {
			return command(t, plain, "xz", "-c", "-T2", "--block-size=4096", "--check=sha256")
		}},
		{"xz, crc32 check, -0", func() []byte { return command(t, plain, "xz", "-c", "-0", "--check=crc32") }},
		{"xz, no check", func() []byte { return command(t, plain, "xz", "-c", "--check=none") }},
		{"xz, two streams", func() []byte {
			return append(command(t, plain[:5000], "xz", "-c"), command(t, plain[5000:], "xz", "-c")...)
		}},
		{"xz (go)", func() []byte {
			var b bytes.Buffer
			xw, _ := xz.NewWriter(&b)
			xw.Write(plain)
			xw.Close()
			return b.Bytes()
		}},
		{"bzip2", func() []byte { return command(t, plain, "bzip2", "-c") }},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "core.db", v.data())
			got, err := Read(path, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("differs from the gzip original:\ngot  %+v\nwant %+v", got, want)
			}
		})
	}

	t.Run("xz dictionary", func(t *testing.T) {
		// xz's block header carries the dictionary size the decoder allocates. Set it
		// to 64 MiB (allowed) and 96 MiB (refused) in a real xz file.
		base := command(t, plain, "xz", "-c")
		for _, tt := range []struct {
			code byte // LZMA2 dictionary size code: (2|code&1) << (code/2+11)
			ok   bool
		}{{28, true}, {29, false}, {40, false}} {
			data := setXzDict(t, base, tt.code)
			got, err := Parse(bytes.NewReader(data), "core.db", Limits{})
			switch {
			case tt.ok && err != nil:
				t.Errorf("code %d: %v", tt.code, err)
			case tt.ok && !reflect.DeepEqual(got, want):
				t.Errorf("code %d: packages differ", tt.code)
			case !tt.ok && (!errors.Is(err, ErrLimit) || !strings.HasPrefix(err.Error(), "core.db: xz: dictionary of ")):
				t.Errorf("code %d: error %v, want an xz dictionary ErrLimit", tt.code, err)
			}
		}
	})

	t.Run("zstd window", func(t *testing.T) {
		// A zstd frame declares its window; hand-make frames of raw blocks declaring
		// 64 MiB (allowed) and 128 MiB (refused).
		for _, tt := range []struct {
			log int
			ok  bool
		}{{26, true}, {27, false}} {
			data := zstdRaw(plain, tt.log)
			got, err := Parse(bytes.NewReader(data), "core.db", Limits{})
			switch {
			case tt.ok && err != nil:
				t.Errorf("window 2^%d: %v", tt.log, err)
			case tt.ok && !reflect.DeepEqual(got, want):
				t.Errorf("window 2^%d: packages differ", tt.log)
			case !tt.ok && (!errors.Is(err, ErrLimit) || !strings.HasPrefix(err.Error(), "core.db: zstd: ")):
				t.Errorf("window 2^%d: error %v, want a zstd ErrLimit", tt.log, err)
			}
		}
	})
}

// setXzDict rewrites the LZMA2 dictionary size of the first block of a single-threaded xz
// file (header: size, flags, filter id 0x21, properties size 1, dictionary) and its CRC.
func setXzDict(t *testing.T, data []byte, code byte) []byte {
	t.Helper()
	out := bytes.Clone(data)
	h := out[12:]
	size := (int(h[0]) + 1) * 4
	if h[1] != 0 || h[2] != 0x21 || h[3] != 1 {
		t.Fatalf("unexpected xz block header % x", h[:size])
	}
	h[4] = code
	crc := crc32.ChecksumIEEE(h[:size-4])
	h[size-4], h[size-3], h[size-2], h[size-1] = byte(crc), byte(crc>>8), byte(crc>>16), byte(crc>>24)
	return out
}

// zstdRaw wraps data in zstd raw blocks under a frame header declaring a 2^log window.
func zstdRaw(data []byte, log int) []byte {
	out := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, byte(log-10) << 3}
	for len(data) > 0 {
		n := min(len(data), 100_000)
		hdr := uint32(n) << 3 // raw block
		if n == len(data) {
			hdr |= 1 // last
		}
		out = append(out, byte(hdr), byte(hdr>>8), byte(hdr>>16))
		out = append(out, data[:n]...)
		data = data[n:]
	}
	return out
}

// TestFormatV2 reads a database of format v2 (pacman ≥ 6.1): no %MD5SUM%, %PGPSIG% only
// on some entries.
func TestFormatV2(t *testing.T) {
	desc := func(name, extra string) string {
		return fmt.Sprintf("%%FILENAME%%\n%[1]s-1.0-1-any.pkg.tar.zst\n\n%%NAME%%\n%[1]s\n\n%%BASE%%\n%[1]s\n\n"+
			"%%VERSION%%\n1.0-1\n\n%%DESC%%\n%[1]s tool\n\n%%CSIZE%%\n100\n\n%%ISIZE%%\n200\n\n"+
			"%%SHA256SUM%%\n%[2]s\n\n%[3]s%%ARCH%%\nany\n\n%%BUILDDATE%%\n1710000000\n\n%%PACKAGER%%\nMe <me@x.org>\n\n",
			name, strings.Repeat("ab", 32), extra)
	}
	data := gz(t, tarOf(t,
		member{"a-1.0-1/", ""}, member{"a-1.0-1/desc", desc("a", "")},
		member{"b-1.0-1/", ""}, member{"b-1.0-1/desc", desc("b", "%PGPSIG%\nc2ln\n\n")},
	))
	got, err := Read(writeFile(t, t.TempDir(), "extra.db", data), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name, sig string) Package {
		return Package{Filename: name + "-1.0-1-any.pkg.tar.zst", Name: name, Base: name, Version: "1.0-1",
			Desc: name + " tool", CSize: 100, ISize: 200, SHA256Sum: strings.Repeat("ab", 32), PGPSig: sig,
			Arch: "any", BuildDate: 1710000000, Packager: "Me <me@x.org>"}
	}
	if want := []Package{mk("a", ""), mk("b", "c2ln")}; !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// TestFilesDatabase checks that a .files database (desc and files per package) reads like
// its .db, and that other members are ignored.
func TestFilesDatabase(t *testing.T) {
	d := "%NAME%\nfoo\n\n%VERSION%\n1.0-1\n\n"
	data := gz(t, tarOf(t,
		member{"foo-1.0-1/", ""}, member{"foo-1.0-1/desc", d},
		member{"foo-1.0-1/files", "%FILES%\nusr/\nusr/bin/\nusr/bin/foo\n\n"},
		member{"foo-1.0-1/depends", "%DEPENDS%\nold-style\n\n"},
		member{"README", "not a package"},
		member{"x/y/desc", "%NAME%\n"},
		member{"./bar-2-1/desc", "%NAME%\nbar\n\n%VERSION%\n2-1\n\n"},
	))
	got, err := Parse(bytes.NewReader(data), "core.files", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{{Name: "foo", Version: "1.0-1"}, {Name: "bar", Version: "2-1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestEmptyDatabase reads what repo-remove leaves when the last package goes: an archive
// with no members, gzipped; and the same as a plain tar.
func TestEmptyDatabase(t *testing.T) {
	empty := tarOf(t)
	for name, data := range map[string][]byte{"gzip": gz(t, empty), "tar": empty} {
		got, err := Parse(bytes.NewReader(data), "core.db", Limits{})
		if err != nil || len(got) != 0 {
			t.Errorf("%s: got %v, %v; want no packages", name, got, err)
		}
	}
}
