package repodb

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// v1Desc is a complete format-v1 entry, as repo-add of pacman 6.0 writes it.
const v1Desc = `%FILENAME%
foo-2:1.0-1-x86_64.pkg.tar.zst

%NAME%
foo

%BASE%
foo-base

%VERSION%
2:1.0-1

%DESC%
The foo tool

%GROUPS%
g1
g2

%CSIZE%
1234

%ISIZE%
56789

%MD5SUM%
0123456789abcdef0123456789abcdef

%SHA256SUM%
0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

%PGPSIG%
iQEzBAABCAAdFiEE

%URL%
https://foo.example/

%LICENSE%
GPL
MIT

%ARCH%
x86_64

%BUILDDATE%
1700000000

%PACKAGER%
A Packager <a@example.org>

%REPLACES%
oldfoo

%CONFLICTS%
bar<2

%PROVIDES%
libfoo.so=1-64
foo-virtual=1.0

%DEPENDS%
glibc>=2.38
zlib

%OPTDEPENDS%
python: for scripts
perl

%MAKEDEPENDS%
cmake

%CHECKDEPENDS%
check

`

var v1Package = Package{
	Filename: "foo-2:1.0-1-x86_64.pkg.tar.zst", Name: "foo", Base: "foo-base", Version: "2:1.0-1",
	Desc: "The foo tool", URL: "https://foo.example/", Arch: "x86_64", Packager: "A Packager <a@example.org>",
	MD5Sum:    "0123456789abcdef0123456789abcdef",
	SHA256Sum: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	PGPSig:    "iQEzBAABCAAdFiEE",
	CSize:     1234, ISize: 56789, BuildDate: 1700000000,
	Groups: []string{"g1", "g2"}, Licenses: []string{"GPL", "MIT"}, Replaces: []string{"oldfoo"},
	Conflicts: []string{"bar<2"}, Provides: []string{"libfoo.so=1-64", "foo-virtual=1.0"},
	Depends: []string{"glibc>=2.38", "zlib"}, OptDepends: []string{"python: for scripts", "perl"},
	MakeDepends: []string{"cmake"}, CheckDepends: []string{"check"},
}

func TestParseDesc(t *testing.T) {
	minimal := Package{Name: "foo", Version: "1.0-1"}
	tests := []struct {
		name string
		in   string
		want Package
		err  string // substring of the error; "" means success
	}{
		{name: "v1 complete", in: v1Desc, want: v1Package},
		{name: "CRLF line ends", in: strings.ReplaceAll(v1Desc, "\n", "\r\n"), want: v1Package},
		{name: "no final blank line", in: strings.TrimRight(v1Desc, "\n"), want: v1Package},
		{name: "no final newline at all", in: "%NAME%\nfoo\n\n%VERSION%\n1.0-1", want: minimal},
		{name: "v2: no MD5SUM, no PGPSIG", in: strings.Replace(strings.Replace(v1Desc,
			"%MD5SUM%\n0123456789abcdef0123456789abcdef\n\n", "", 1),
			"%PGPSIG%\niQEzBAABCAAdFiEE\n\n", "", 1),
			want: func() Package { p := v1Package; p.MD5Sum, p.PGPSig = "", ""; return p }()},
		{name: "only name and version", in: "%NAME%\nfoo\n\n%VERSION%\n1.0-1\n\n", want: minimal},
		{name: "unknown keys ignored, with their values",
			in:   "%NAME%\nfoo\n\n%NEWKEY%\nx\ny\n\n%VERSION%\n1.0-1\n\n%SIZE%\n12\n\n",
			want: minimal},
		{name: "blank lines between sections", in: "\n\n%NAME%\nfoo\n\n\n\n%VERSION%\n1.0-1\n\n\n", want: minimal},
		{name: "a value that looks like a key",
			in:   "%NAME%\nfoo\n\n%DESC%\n%VERSION%\n\n%VERSION%\n1.0-1\n",
			want: Package{Name: "foo", Version: "1.0-1", Desc: "%VERSION%"}},
		{name: "empty section", in: "%NAME%\nfoo\n\n%DEPENDS%\n\n%CSIZE%\n\n%VERSION%\n1.0-1\n", want: minimal},
		{name: "extra lines of a single-value key are ignored",
			in:   "%NAME%\nfoo\nbar\n\n%VERSION%\n1.0-1\n",
			want: minimal},
		{name: "a repeated single-value section replaces",
			in:   "%NAME%\nold\n\n%NAME%\nfoo\n\n%VERSION%\n1.0-1\n",
			want: minimal},
		{name: "a repeated list section adds",
			in:   "%DEPENDS%\na\n\n%NAME%\nfoo\n\n%DEPENDS%\nb\nc\n\n%VERSION%\n1.0-1\n",
			want: Package{Name: "foo", Version: "1.0-1", Depends: []string{"a", "b", "c"}}},
		{name: "spaces kept", in: "%NAME%\nfoo\n\n%DESC%\n  two  spaces \n\n%VERSION%\n1.0-1\n",
			want: Package{Name: "foo", Version: "1.0-1", Desc: "  two  spaces "}},
		{name: "UTF-8", in: "%NAME%\nfoo\n\n%PACKAGER%\nBartłomiej Piotrowski <b@a.org>\n\n%VERSION%\n1.0-1\n",
			want: Package{Name: "foo", Version: "1.0-1", Packager: "Bartłomiej Piotrowski <b@a.org>"}},
		{name: "largest size", in: "%NAME%\nfoo\n\n%ISIZE%\n9223372036854775807\n\n%VERSION%\n1.0-1\n",
			want: Package{Name: "foo", Version: "1.0-1", ISize: 9223372036854775807}},

		{name: "no name", in: "%VERSION%\n1.0-1\n", err: "no %NAME%"},
		{name: "no version", in: "%NAME%\nfoo\n", err: "no %VERSION%"},
		{name: "empty", in: "", err: "no %NAME%"},
		{name: "size not a number", in: "%NAME%\nfoo\n\n%CSIZE%\nx\n", err: `%CSIZE% "x" is not a number`},
		{name: "negative size", in: "%NAME%\nfoo\n\n%ISIZE%\n-5\n", err: `%ISIZE% "-5" is not a number`},
		{name: "date with a fraction", in: "%NAME%\nfoo\n\n%BUILDDATE%\n1.5\n", err: `%BUILDDATE% "1.5" is not a number`},
		{name: "size out of range", in: "%NAME%\nfoo\n\n%CSIZE%\n9223372036854775808\n", err: `%CSIZE% "9223372036854775808" is out of range`},
		{name: "text outside a section", in: "%NAME%\nfoo\n\nstray\n", err: `line 4: "stray" is not a %KEY% line`},
		{name: "long garbage is shortened", in: strings.Repeat("x", 1000), err: `"` + strings.Repeat("x", 64) + `"…`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDesc([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestParseDescLists checks that the lists sharing one backing array cannot clobber each
// other when a caller appends to one.
func TestParseDescLists(t *testing.T) {
	p, err := parseDesc([]byte(v1Desc))
	if err != nil {
		t.Fatal(err)
	}
	_ = append(p.Groups, "extra")
	_ = append(p.Licenses, "extra")
	if !reflect.DeepEqual(p, v1Package) {
		t.Errorf("appending to one list changed another: %+v", p)
	}
}

func TestParseDescAllocs(t *testing.T) {
	data := []byte(v1Desc)
	// The Package's strings share one buffer, its lists one slice, PGPSig has its own;
	// the Builder itself is the fourth.
	if n := testing.AllocsPerRun(100, func() { parseDesc(data) }); n > 4 {
		t.Errorf("parseDesc made %v allocations, want at most 4", n)
	}
}

func TestSplitVersion(t *testing.T) {
	tests := []struct{ in, epoch, pkgver, pkgrel string }{
		{"1.0-1", "", "1.0", "1"},
		{"2:1.0-1", "2", "1.0", "1"},
		{"1:1.5.6-1", "1", "1.5.6", "1"},
		{"20190109-1", "", "20190109", "1"},
		{"1.2.3-1.1", "", "1.2.3", "1.1"},
		{"5.1.3", "", "5.1.3", ""},
		{"1:2", "1", "2", ""},
		{"a:1.0-1", "", "a:1.0", "1"}, // not digits: no epoch (pacman's parseEVR)
		{":1.0-1", "", ":1.0", "1"},
		{"10:1.0+r3.gabc-2", "10", "1.0+r3.gabc", "2"},
		{"", "", "", ""},
	}
	for _, tt := range tests {
		e, v, r := SplitVersion(tt.in)
		if e != tt.epoch || v != tt.pkgver || r != tt.pkgrel {
			t.Errorf("SplitVersion(%q) = %q, %q, %q; want %q, %q, %q", tt.in, e, v, r, tt.epoch, tt.pkgver, tt.pkgrel)
		}
	}
}

// realDescs returns the first n desc entries of a real database.
func realDescs(t testing.TB, db string, n int) [][]byte {
	t.Helper()
	requireRealDir(t)
	f, err := os.Open(filepath.Join(realDir, db))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out [][]byte
	for len(out) < n {
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(h.Name, "/desc") {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

func FuzzParseDesc(f *testing.F) {
	for _, d := range realDescs(f, "core.db", 5) {
		f.Add(d)
	}
	f.Add([]byte(v1Desc))
	f.Add([]byte(strings.ReplaceAll(v1Desc, "\n", "\r\n")))
	f.Add([]byte("%NAME%\nfoo\n\n%VERSION%\n1.0-1"))
	f.Add([]byte("%NAME%\nfoo\n\n%CSIZE%\n99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parseDesc(data)
		if err != nil {
			return
		}
		if p.Name == "" || p.Version == "" {
			t.Fatalf("accepted without name or version: %+v", p)
		}
		if p.CSize < 0 || p.ISize < 0 || p.BuildDate < 0 {
			t.Fatalf("negative number: %+v", p)
		}
		for _, s := range []string{p.Name, p.Version, p.Desc, p.Filename, p.PGPSig} {
			if strings.ContainsAny(s, "\n") || strings.HasSuffix(s, "\r") {
				t.Fatalf("line end in a value: %q", s)
			}
		}
		// The result must not alias the input: the reader reuses its buffer.
		before := strings.Clone(p.Name)
		for i := range data {
			data[i] = '#'
		}
		if p.Name != before {
			t.Fatalf("Name aliases the input buffer")
		}
	})
}
