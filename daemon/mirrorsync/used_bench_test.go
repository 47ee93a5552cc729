package mirrorsync

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/repodb"
)

// BenchmarkUsedDiskLAN: what "used" mode holds for a LAN whose clients use 1,500
// packages, against a full mirror of the same repos, over the real Arch databases in
// ../shared/data/arch-real (core, extra and multilib of 2019; extra then held what
// community holds today, so the absolute sizes are smaller than today's ~90 GB). The
// LAN's packages are all of core (every machine has most of it) and a seeded random
// draw from extra and multilib up to 1,500; each used a different day, so a budget
// evicts in a known order. Metrics: GiB for the full mirror and for used mode, and the
// ratio. "today" scales the same repos to today's ~14,500 packages by drawing more
// packages with the real 2019 sizes (a synthesis: the 2019 set alone has 3,428, so 1,500
// of them is half of it).
//
//	go test -run '^$' -bench UsedDiskLAN ./daemon/mirrorsync
func BenchmarkUsedDiskLAN(b *testing.B) {
	b.Run("arch2019", func(b *testing.B) { benchUsedDisk(b, 0) })
	b.Run("today", func(b *testing.B) { benchUsedDisk(b, 14500) })
}

func benchUsedDisk(b *testing.B, scaleTo int) {
	dir := filepath.Join("..", "..", "..", "shared", "data", "arch-real", "alpm.rs-sync")
	var dirs []*repoDir
	var full int64
	var names []string
	core := map[string]bool{}
	for _, repo := range []string{"core", "extra", "multilib"} {
		pkgs, err := repodb.Read(filepath.Join(dir, repo+".db"), repodb.Limits{})
		if err != nil {
			b.Fatalf("this benchmark reads the real Arch databases in ../shared/data/arch-real: %v", err)
		}
		d := &repoDir{repo: repo, links: map[string]string{}}
		for _, p := range pkgs {
			d.files = append(d.files, dbFile{name: p.Filename, pkg: p.Name, size: p.CSize})
			d.links[p.Filename] = "pool/packages/" + p.Filename
			d.links[p.Filename+".sig"] = "pool/packages/" + p.Filename + ".sig"
			full += p.CSize
			names = append(names, p.Name)
			if repo == "core" {
				core[p.Name] = true
			}
		}
		dirs = append(dirs, d)
	}
	r := rand.New(rand.NewPCG(1, 2))
	if extra := dirs[1]; scaleTo > len(names) {
		real := len(extra.files)
		for i := 0; len(names) < scaleTo; i++ {
			f := extra.files[r.IntN(real)]
			f.name, f.pkg = fmt.Sprintf("synth%d-1-1-x86_64.pkg.tar.zst", i), fmt.Sprintf("synth%d", i)
			extra.files = append(extra.files, f)
			extra.links[f.name] = "pool/packages/" + f.name
			full += f.size
			names = append(names, f.pkg)
		}
	}
	r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	last := map[string]time.Time{}
	day := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for n := range core {
		last[n] = day
	}
	for _, n := range names {
		if len(last) >= 1500 {
			break
		}
		if _, ok := last[n]; !ok {
			last[n] = day.Add(-time.Duration(len(last)) * time.Hour)
		}
	}
	var held int64
	for b.Loop() {
		_, held = selectHeld(dirs, last, 0)
	}
	gib := func(n int64) float64 { return float64(n) / (1 << 30) }
	b.ReportMetric(float64(len(names)), "packages")
	b.ReportMetric(gib(full), "full-GiB")
	b.ReportMetric(gib(held), "used-GiB")
	b.ReportMetric(float64(held)/float64(full), "used/full")
}
