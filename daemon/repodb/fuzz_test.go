package repodb

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds whole databases, in every format, to Parse with small limits: it must
// return packages or an error naming the file, never panic or exceed the limits.
func FuzzParse(f *testing.F) {
	requireRealDir(f)
	real, err := os.ReadFile(filepath.Join(realDir, "multilib-testing.db"))
	if err != nil {
		f.Fatal(err)
	}
	small := tarOf(f, member{"foo-2:1.0-1/", ""}, member{"foo-2:1.0-1/desc", v1Desc},
		member{"foo-2:1.0-1/files", "%FILES%\nusr/bin/foo\n\n"},
		member{"bar-1-1/desc", "%NAME%\r\nbar\r\n\r\n%VERSION%\r\n1-1"})
	f.Add(real)
	f.Add(small)
	f.Add(gz(f, small))
	f.Add(zstdOf(f, small))
	f.Add(xzOf(f, small))
	f.Add(command(f, small, "bzip2", "-c"))
	f.Add(genDBBytes(f, 3))
	f.Add(tarOf(f))
	f.Add([]byte{})

	l := Limits{MaxUncompressed: 1 << 20, MaxEntry: 64 << 10, MaxPackages: 100}
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := Parse(bytes.NewReader(data), "fuzz.db", l)
		if err != nil {
			if pkgs != nil {
				t.Fatalf("packages with an error: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "fuzz.db: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(pkgs) > l.MaxPackages {
			t.Fatalf("%d packages, more than MaxPackages", len(pkgs))
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" {
				t.Fatalf("package without name or version: %+v", p)
			}
		}
	})
}
