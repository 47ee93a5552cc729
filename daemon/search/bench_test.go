package search_test

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/internal/archtest"
)

var words = strings.Fields("lib python perl qt gtk linux x11 font theme plugin data tools utils server client " +
	"audio video image network git rust go node java ruby haskell kde gnome xfce vim emacs shell sql http xml json " +
	"crypto ssl ssh compression archive game docs devel headers bindings extension driver firmware")

// writeExtraDB writes an extra.db of n packages with realistic field sizes (v1 desc with
// a PGP signature, as Arch's databases carried until 2024).
func writeExtraDB(tb testing.TB, path string, n int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	r := rand.New(rand.NewPCG(1, 2))
	word := func() string { return words[r.IntN(len(words))] }
	sig := strings.Repeat("iQIzBAABCAAdFiEE", 28)
	names := map[string]bool{}
	for i := 0; len(names) < n; i++ {
		name := word() + "-" + word()
		if r.IntN(3) == 0 {
			name += fmt.Sprintf("%d", r.IntN(100))
		}
		if names[name] {
			continue
		}
		names[name] = true
		ver := fmt.Sprintf("%d.%d.%d-%d", r.IntN(10), r.IntN(30), r.IntN(10), 1+r.IntN(3))
		var b strings.Builder
		sec := func(k string, vs ...string) {
			fmt.Fprintf(&b, "%%%s%%\n%s\n\n", k, strings.Join(vs, "\n"))
		}
		sec("FILENAME", name+"-"+ver+"-x86_64.pkg.tar.zst")
		sec("NAME", name)
		sec("BASE", name)
		sec("VERSION", ver)
		sec("DESC", fmt.Sprintf("A %s %s for %s and %s with %s support", word(), word(), word(), word(), word()))
		sec("CSIZE", fmt.Sprint(r.IntN(50<<20)))
		sec("ISIZE", fmt.Sprint(r.IntN(200<<20)))
		sec("MD5SUM", "0123456789abcdef0123456789abcdef")
		sec("SHA256SUM", strings.Repeat("ab", 32))
		sec("PGPSIG", sig)
		sec("URL", "https://example.org/"+name)
		sec("LICENSE", "GPL-3.0-or-later")
		sec("ARCH", "x86_64")
		sec("BUILDDATE", "1700000000")
		sec("PACKAGER", "Some Packager <packager@archlinux.org>")
		var deps []string
		for j := r.IntN(15); j > 0; j-- {
			deps = append(deps, word()+"-"+word())
		}
		if len(deps) > 0 {
			sec("DEPENDS", deps...)
		}
		if r.IntN(4) == 0 {
			sec("PROVIDES", "lib"+word()+".so=1-64")
		}
		if r.IntN(3) == 0 {
			sec("OPTDEPENDS", word()+": for "+word()+" support")
		}
		body := b.String()
		tw.WriteHeader(&tar.Header{Name: name + "-" + ver + "/", Typeflag: tar.TypeDir, Mode: 0o755})
		tw.WriteHeader(&tar.Header{Name: name + "-" + ver + "/desc", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	f.Close()
}

var benchQueries = []string{"python", "lib", "gtk theme", "linux headers", "font", "x", "server client", "zzz-nothing"}

// BenchmarkIndex15k: reading and indexing a 15,000-package extra.db (target < 300 ms), the
// memory the index holds, and query latency (target p99 < 1 ms), with pacman -Ss on the
// same database side by side.
func BenchmarkIndex15k(b *testing.B) {
	root := b.TempDir()
	dir := filepath.Join(root, "extra", "os", "x86_64")
	os.MkdirAll(dir, 0o755)
	writeExtraDB(b, filepath.Join(dir, "extra.db"), 15000)
	svc := &search.Service{Root: root, Repos: []string{"extra"}, Log: quiet()}

	b.Run("build", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := svc.Load(); err != nil {
				b.Fatal(err)
			}
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		svc2 := &search.Service{Root: root, Repos: []string{"extra"}, Log: quiet()}
		svc2.Load()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-held")
		runtime.KeepAlive(svc2)
	})
	svc.Load()
	ix := svc.Index()
	b.Run("query", func(b *testing.B) {
		var lat []time.Duration
		for i := 0; i < b.N; i++ {
			q := benchQueries[i%len(benchQueries)]
			start := time.Now()
			if _, err := ix.Search(search.Query{Text: q, PerPage: 50}); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	})
	b.Run("pacman-Ss", func(b *testing.B) {
		archtest.Require(b, "pacman")
		cdir := b.TempDir()
		conf := archtest.PacmanConf(b, cdir, "http://127.0.0.1:1/x", "extra")
		os.MkdirAll(filepath.Join(cdir, "db", "sync"), 0o755)
		db, _ := os.ReadFile(filepath.Join(dir, "extra.db"))
		os.WriteFile(filepath.Join(cdir, "db", "sync", "extra.db"), db, 0o644)
		for i := 0; i < b.N; i++ {
			q := benchQueries[i%len(benchQueries)]
			exec.Command("pacman", append([]string{"--config", conf, "-Ss"}, strings.Fields(q)...)...).Run()
		}
	})
}
