package repodb

import (
	"bufio"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkRead15k reads a generated extra.db the size of Arch's (15,000 packages, format
// v1 with signatures, gzip as repo-add writes it).
func BenchmarkRead15k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "extra.db")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	zw := gzip.NewWriter(bw)
	if err := genDB(zw, 15_000); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		pkgs, err := Read(path, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		if len(pkgs) != 15_000 {
			b.Fatalf("%d packages", len(pkgs))
		}
	}
	if st, err := os.Stat(path); err == nil {
		b.ReportMetric(float64(st.Size()), "file-bytes")
	}
}
