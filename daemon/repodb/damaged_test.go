package repodb

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

func zstdOf(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, err := zstd.NewWriter(&b, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func xzOf(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	xw, err := xz.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(data)
	if err := xw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// wantErr reads data as core.db and checks the error names the file and says want.
func wantErr(t *testing.T, data []byte, l Limits, want string) error {
	t.Helper()
	path := writeFile(t, t.TempDir(), "core.db", data)
	pkgs, err := Read(path, l)
	if err == nil {
		t.Fatalf("read %d packages, want an error containing %q", len(pkgs), want)
	}
	if pkgs != nil {
		t.Errorf("packages returned with the error")
	}
	if !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q, want one naming %s and containing %q", err, path, want)
	}
	t.Logf("%v", err)
	return err
}

func TestDamaged(t *testing.T) {
	plain := genDBBytes(t, 50)
	formats := map[string][]byte{
		"gzip":  gz(t, plain),
		"zstd":  zstdOf(t, plain),
		"xz":    xzOf(t, plain),
		"bzip2": command(t, plain, "bzip2", "-c"),
	}
	for name, data := range formats {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(bytes.NewReader(data), "core.db", Limits{}); err != nil {
				t.Fatalf("undamaged: %v", err)
			}
			for _, cut := range []int{10, len(data) / 3, len(data) / 2, len(data) - 20, len(data) - 1} {
				wantErr(t, data[:cut], Limits{}, "")
			}
			// A flipped byte in the middle: the format's checksum or structure says so.
			bad := bytes.Clone(data)
			bad[len(bad)/2] ^= 0x55
			wantErr(t, bad, Limits{}, "")
		})
	}
	t.Run("tar", func(t *testing.T) {
		wantErr(t, plain[:len(plain)/2+7], Limits{}, "unexpected EOF")
		wantErr(t, plain[:300], Limits{}, "not a sync database (unknown format)")
	})
	t.Run("empty file", func(t *testing.T) {
		wantErr(t, nil, Limits{}, "empty file, not a sync database")
	})
	t.Run("garbage", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		junk := make([]byte, 4096)
		for i := range junk {
			junk[i] = byte(r.Uint32())
		}
		junk[0] = 'J'
		wantErr(t, junk, Limits{}, "not a sync database (unknown format)")
		wantErr(t, append([]byte{0x1f, 0x8b}, junk...), Limits{}, "gzip: invalid header")
		wantErr(t, append([]byte("BZh9"), junk...), Limits{}, "bzip2")
		wantErr(t, append([]byte{0x28, 0xb5, 0x2f, 0xfd}, junk...), Limits{}, "zstd")
		wantErr(t, append(bytes.Clone(magicXz), junk...), Limits{}, "xz")
		// Well compressed, but not a tar inside.
		wantErr(t, gz(t, junk), Limits{}, "read tar (after 0 packages)")
		wantErr(t, zstdOf(t, junk), Limits{}, "read tar (after 0 packages)")
		wantErr(t, []byte("<html>404 Not Found</html>"), Limits{}, "not a sync database")
	})
	t.Run("not a file", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := Read(dir, Limits{}); err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("directory: %v", err)
		}
		_, err := Read(filepath.Join(dir, "core.db"), Limits{})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing file: %v, want fs.ErrNotExist", err)
		}
	})
}

// TestBombs checks that decompressed bytes are counted and bounded whatever the tar says.
func TestBombs(t *testing.T) {
	l := Limits{MaxUncompressed: 4 << 20}
	t.Run("gzip, 2 GiB of zeros", func(t *testing.T) {
		// A tar member "files" of 2 GiB, zeros: gzip members concatenate into one stream,
		// so 2048 copies of one compressed MiB of zeros make it, in a 2 MB file.
		var hdr bytes.Buffer
		tw := tar.NewWriter(&hdr)
		tw.WriteHeader(&tar.Header{Name: "bomb-1-1/files", Typeflag: tar.TypeReg, Size: 2 << 30, Mode: 0o644})
		zeros := gz(t, make([]byte, 1<<20))
		data := gz(t, hdr.Bytes())
		for range 2048 {
			data = append(data, zeros...)
		}
		if len(data) > 4<<20 {
			t.Fatalf("bomb of %d bytes", len(data))
		}
		err := wantErr(t, data, l, "gzip data larger than 4194304 bytes uncompressed (Limits.MaxUncompressed)")
		if !errors.Is(err, ErrLimit) {
			t.Errorf("%v is not ErrLimit", err)
		}
	})
	t.Run("zstd, zeros after the tar end", func(t *testing.T) {
		// No tar member at all: the zeros read as the end of the archive, and the rest
		// is still counted while draining.
		wantErr(t, zstdOf(t, make([]byte, 8<<20)), l, "zstd data larger than 4194304 bytes")
	})
	t.Run("exactly at the limit", func(t *testing.T) {
		plain := genDBBytes(t, 20)
		data := gz(t, plain)
		if _, err := Parse(bytes.NewReader(data), "core.db", Limits{MaxUncompressed: int64(len(plain))}); err != nil {
			t.Errorf("at the limit: %v", err)
		}
		wantErr(t, data, Limits{MaxUncompressed: int64(len(plain)) - 1}, "larger than")
		if _, err := Parse(bytes.NewReader(data), "core.db", Limits{MaxUncompressed: math.MaxInt64}); err != nil {
			t.Errorf("no limit at all: %v", err)
		}
	})
}

func TestEntryLimits(t *testing.T) {
	t.Run("desc over MaxEntry", func(t *testing.T) {
		big := "%NAME%\nfoo\n\n%VERSION%\n1-1\n\n%DESC%\n" + strings.Repeat("x", 1<<20) + "\n"
		err := wantErr(t, gz(t, tarOf(t, member{"foo-1-1/desc", big})), Limits{},
			`entry "foo-1-1/desc": 1048611 bytes, larger than 1048576 (Limits.MaxEntry)`)
		if !errors.Is(err, ErrLimit) {
			t.Errorf("%v is not ErrLimit", err)
		}
	})
	t.Run("desc declaring 10 GiB", func(t *testing.T) {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		tw.WriteHeader(&tar.Header{Name: "foo-1-1/desc", Typeflag: tar.TypeReg, Size: 10 << 30, Mode: 0o644})
		tw.Write([]byte("%NAME%\n")) // and no more: nothing is read past the header
		tw.Flush()
		wantErr(t, gz(t, b.Bytes()), Limits{}, "10737418240 bytes, larger than 1048576")
	})
	t.Run("too many packages", func(t *testing.T) {
		err := wantErr(t, gz(t, genDBBytes(t, 30)), Limits{MaxPackages: 20}, "more than 20 packages (Limits.MaxPackages)")
		if !errors.Is(err, ErrLimit) {
			t.Errorf("%v is not ErrLimit", err)
		}
		if _, err := Parse(bytes.NewReader(gz(t, genDBBytes(t, 20))), "core.db", Limits{MaxPackages: 20}); err != nil {
			t.Errorf("20 packages at MaxPackages 20: %v", err)
		}
	})
	t.Run("bad entries", func(t *testing.T) {
		tests := []struct{ desc, want string }{
			{"%NAME%\nfoo\n\n%VERSION%\n1.0-1\n\n%CSIZE%\nx\n\n", `core.db: entry "foo-1.0-1/desc": %CSIZE% "x" is not a number`},
			{"%VERSION%\n1.0-1\n\n", `core.db: entry "foo-1.0-1/desc": no %NAME%`},
			{"%NAME%\nfoo\n\n", `core.db: entry "foo-1.0-1/desc": no %VERSION%`},
			{"%NAME%\nfoo\n\n%VERSION%\n1.0-1\n\n%BUILDDATE%\nyesterday\n\n", `core.db: entry "foo-1.0-1/desc": %BUILDDATE% "yesterday" is not a number`},
		}
		for _, tt := range tests {
			data := gz(t, tarOf(t, member{"ok-1-1/desc", "%NAME%\nok\n\n%VERSION%\n1-1\n"}, member{"foo-1.0-1/desc", tt.desc}))
			_, err := Parse(bytes.NewReader(data), "core.db", Limits{})
			if err == nil || err.Error() != tt.want {
				t.Errorf("error %v, want %s", err, tt.want)
			}
		}
	})
}

// TestLimitsDefaults checks that zero and negative limits take the defaults.
func TestLimitsDefaults(t *testing.T) {
	want := Limits{DefaultMaxUncompressed, DefaultMaxEntry, DefaultMaxPackages}
	for _, l := range []Limits{{}, {-1, -1, -1}} {
		if got := l.withDefaults(); got != want {
			t.Errorf("%+v.withDefaults() = %+v, want %+v", l, got, want)
		}
	}
	if got := (Limits{1, 2, 3}).withDefaults(); got != (Limits{1, 2, 3}) {
		t.Errorf("set limits changed: %+v", got)
	}
}
