package repodb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// realDir holds real sync databases (see shared/data/arch-real/README.md); tests read
// them in place.
var realDir = filepath.Join("..", "..", "..", "shared", "data", "arch-real", "alpm.rs-sync")

func requireRealDir(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(realDir); err != nil {
		t.Fatalf("real Arch sync databases missing: %v (they live in shared/data/arch-real/alpm.rs-sync beside the repo)", err)
	}
}

// member is one tar member of a hand-made database.
type member struct {
	name, body string
}

// tarOf writes a tar the way repo-add lays it out: a directory then its desc per package
// (members ending in "/" are directories).
func tarOf(t testing.TB, ms ...member) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, m := range ms {
		h := &tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}
		if strings.HasSuffix(m.name, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, m.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// command runs a real tool, failing t with the Debian package to install when it is
// missing.
func command(t testing.TB, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	pkgs := map[string]string{"zstd": "zstd", "xz": "xz-utils", "bzip2": "bzip2"}
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: this test needs the real tool; install %s", name, pkgs[name])
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// genDB writes a plain tar of n synthetic packages shaped like Arch's extra.db (format
// v1, with %MD5SUM% and a %PGPSIG%): names of 5–30 characters, ~60-character
// descriptions, 0–15 depends (some versioned), a few provides and optdepends, licenses,
// hex digests and ~400 base64 characters of signature. It is deterministic.
func genDB(w io.Writer, n int) error {
	r := rand.New(rand.NewPCG(uint64(n), 0x7265706f))
	words := strings.Fields("library tool for the with and data fast simple GNU Python " +
		"module bindings utility daemon client server graphical interface terminal " +
		"font theme plugin support extension framework network audio video image " +
		"parser compiler editor manager system kernel driver firmware documentation")
	letters := "abcdefghijklmnopqrstuvwxyz"
	names := make([]string, n)
	for i := range names {
		l := 5 + r.IntN(26)
		var b strings.Builder
		for b.Len() < l {
			b.WriteByte(letters[r.IntN(len(letters))])
			if b.Len() > 3 && b.Len() < l-2 && r.IntN(8) == 0 {
				b.WriteByte('-')
			}
		}
		names[i] = fmt.Sprintf("%s%d", b.String()[:l-2], i%100)
	}
	tw := tar.NewWriter(w)
	var d bytes.Buffer
	sig := make([]byte, 300) // 400 base64 characters
	sum := make([]byte, 32)
	for i, name := range names {
		d.Reset()
		version := fmt.Sprintf("%d.%d.%d-%d", r.IntN(10), r.IntN(30), r.IntN(100), 1+r.IntN(3))
		if r.IntN(20) == 0 {
			version = fmt.Sprintf("%d:%s", 1+r.IntN(3), version)
		}
		arch := "x86_64"
		if r.IntN(4) == 0 {
			arch = "any"
		}
		sec := func(k string, vs ...string) {
			if len(vs) == 0 {
				return
			}
			fmt.Fprintf(&d, "%%%s%%\n", k)
			for _, v := range vs {
				d.WriteString(v)
				d.WriteByte('\n')
			}
			d.WriteByte('\n')
		}
		pick := func(k int, f func(string) string) []string {
			var out []string
			for range k {
				out = append(out, f(names[r.IntN(n)]))
			}
			return out
		}
		var desc []string
		for len(strings.Join(desc, " ")) < 50+r.IntN(20) {
			desc = append(desc, words[r.IntN(len(words))])
		}
		sec("FILENAME", fmt.Sprintf("%s-%s-%s.pkg.tar.zst", name, strings.ReplaceAll(version, ":", "%3A"), arch))
		sec("NAME", name)
		sec("BASE", name)
		sec("VERSION", version)
		sec("DESC", strings.Join(desc, " "))
		if r.IntN(10) == 0 {
			sec("GROUPS", "group"+fmt.Sprint(r.IntN(20)))
		}
		sec("CSIZE", fmt.Sprint(10_000+r.IntN(50_000_000)))
		sec("ISIZE", fmt.Sprint(50_000+r.IntN(200_000_000)))
		for j := range sum {
			sum[j] = byte(r.Uint32())
		}
		sec("MD5SUM", hex.EncodeToString(sum[:16]))
		sec("SHA256SUM", hex.EncodeToString(sum))
		for j := range sig {
			sig[j] = byte(r.Uint32())
		}
		sec("PGPSIG", base64.StdEncoding.EncodeToString(sig))
		sec("URL", "https://"+name+".example.org/")
		sec("LICENSE", []string{"GPL-2.0-or-later", "MIT", "Apache-2.0", "LGPL-2.1-only"}[:1+r.IntN(2)]...)
		sec("ARCH", arch)
		sec("BUILDDATE", fmt.Sprint(1_600_000_000+r.IntN(100_000_000)))
		sec("PACKAGER", "Some Packager <packager@archlinux.org>")
		if r.IntN(15) == 0 {
			sec("REPLACES", pick(1, func(s string) string { return s + "-old" })...)
		}
		if r.IntN(8) == 0 {
			sec("CONFLICTS", pick(1+r.IntN(2), func(s string) string { return s })...)
		}
		sec("PROVIDES", pick(r.IntN(4), func(s string) string { return "lib" + s + ".so=1-64" })...)
		sec("DEPENDS", pick(r.IntN(16), func(s string) string {
			if r.IntN(4) == 0 {
				return s + ">=1.2.3"
			}
			return s
		})...)
		sec("OPTDEPENDS", pick(r.IntN(4), func(s string) string { return s + ": for the optional feature" })...)
		sec("MAKEDEPENDS", pick(r.IntN(6), func(s string) string { return s })...)
		sec("CHECKDEPENDS", pick(r.IntN(3), func(s string) string { return s })...)

		dir := fmt.Sprintf("%s-%s/", name, version)
		mod := time.Unix(1_700_000_000+int64(i), 0)
		if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mod}); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: dir + "desc", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(d.Len()), ModTime: mod}); err != nil {
			return err
		}
		if _, err := tw.Write(d.Bytes()); err != nil {
			return err
		}
	}
	return tw.Close()
}

// genDBBytes is genDB into memory.
func genDBBytes(t testing.TB, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := genDB(&b, n); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
