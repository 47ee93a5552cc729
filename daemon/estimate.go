package daemon

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/web"
)

// maxPoolEntries bounds the estimate's walk of pool/: a pool past it (Arch's holds
// ~60,000 files with their .sig) is read that far and the figures said to be a lower bound.
const maxPoolEntries = 1 << 20

// PackagesEstimate says what switching mirror.packages would move, for the settings page:
// one pass over $root/pool/*/ (names and sizes, no hashing) against the live databases
// (the search index) and, from "all", the packages LAN clients used within keep_days.
// Memory is bounded by the databases, not the pool: only the files they name are kept.
func (s *settings) PackagesEstimate() (web.PackagesEstimate, error) {
	c := s.Current()
	var last map[string]time.Time
	if !c.Mirror.Used() {
		var err error
		if last, err = s.d.traffic.LastUsed(c.Mirror.KeepDays); err != nil {
			return web.PackagesEstimate{}, fmt.Errorf("packages estimate: %w", err)
		}
	}
	var pkgs []pkgFile
	s.d.search.Index().Each(func(p *search.Package) {
		pkgs = append(pkgs, pkgFile{name: p.Name, file: p.Filename, csize: p.CSize})
	})
	return estimatePackages(c.Mirror.Root, c, pkgs, last)
}

// pkgFile is one package file a database names.
type pkgFile struct {
	name, file string
	csize      int64
	onDisk     bool
	size       int64 // on disk, with its .sig
}

// estimatePackages is PackagesEstimate on its inputs: pkgs from the databases, last the
// used set (ignored in "used" mode).
func estimatePackages(root string, c *config.Config, pkgs []pkgFile, last map[string]time.Time) (web.PackagesEstimate, error) {
	est := web.PackagesEstimate{Mode: c.Mirror.Packages, KeepDays: c.Mirror.KeepDays, BudgetBytes: budgetBytes(c.Mirror.MaxGiB)}
	byFile := make(map[string]*pkgFile, len(pkgs))
	for i := range pkgs {
		if _, dup := byFile[pkgs[i].file]; !dup { // core and core-testing may name one file
			byFile[pkgs[i].file] = &pkgs[i]
		}
	}
	partial, err := walkPool(filepath.Join(root, "pool"), func(_ string, fi fs.FileInfo) {
		name, size := fi.Name(), fi.Size()
		if p := byFile[name]; p != nil {
			p.onDisk = true
			p.size += size
		} else if p := byFile[strings.TrimSuffix(name, ".sig")]; p != nil && strings.HasSuffix(name, ".sig") {
			p.size += size // counted with its package, whether or not that is on disk
		}
	})
	if err != nil {
		return est, err
	}
	est.Partial = partial
	files := make([]*pkgFile, 0, len(byFile))
	for _, p := range byFile {
		files = append(files, p)
	}
	if c.Mirror.Used() {
		for _, p := range files {
			if !p.onDisk {
				est.FetchFiles++
				est.FetchBytes += p.csize
			}
		}
		return est, nil
	}
	// What "used" would hold, as its sync decides (mirrorsync.selectHeld): the used
	// packages' files, most recently used first, each that still fits the budget.
	var used []*pkgFile
	for _, p := range files {
		if _, ok := last[p.name]; ok {
			used = append(used, p)
		}
	}
	sort.Slice(used, func(i, j int) bool {
		ti, tj := last[used[i].name], last[used[j].name]
		if !ti.Equal(tj) {
			return ti.After(tj)
		}
		return used[i].file < used[j].file
	})
	held := map[*pkgFile]bool{}
	var bytes int64
	for _, p := range used {
		if est.BudgetBytes > 0 && bytes+p.csize > est.BudgetBytes {
			continue // skipped, as selectHeld does: later (smaller) ones may still fit
		}
		bytes += p.csize
		held[p] = true
	}
	for _, p := range files {
		if p.onDisk && !held[p] {
			est.FreeFiles++
			est.FreeBytes += p.size
		}
	}
	return est, nil
}

// budgetBytes is mirror.max_gib in bytes (0: none).
func budgetBytes(gib float64) int64 {
	if gib <= 0 || math.IsNaN(gib) {
		return 0
	}
	return int64(gib * (1 << 30))
}

// walkPool calls f with the name and size of every regular file in pool's folders
// (pool/packages, pool/community, …), reading folders in batches so a large one is never
// held whole; partial when it stopped at maxPoolEntries. No pool: nothing, no error.
func walkPool(pool string, f func(dir string, fi fs.FileInfo)) (partial bool, err error) {
	subs, err := os.ReadDir(pool)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the pool: %s: %w", pool, err)
	}
	seen := 0
	for _, sub := range subs {
		if !sub.IsDir() {
			continue
		}
		dir := filepath.Join(pool, sub.Name())
		d, err := os.Open(dir)
		if err != nil {
			return false, fmt.Errorf("read the pool: %s: %w", dir, err)
		}
		for {
			des, rerr := d.ReadDir(1024)
			for _, de := range des {
				if seen++; seen > maxPoolEntries {
					d.Close()
					return true, nil
				}
				if !de.Type().IsRegular() {
					continue
				}
				if fi, err := de.Info(); err == nil { // gone meanwhile: a sync pruned it
					f(dir, fi)
				}
			}
			if rerr == io.EOF || (rerr == nil && len(des) == 0) {
				break
			}
			if rerr != nil {
				d.Close()
				return false, fmt.Errorf("read the pool: %s: %w", dir, rerr)
			}
		}
		d.Close()
	}
	return false, nil
}
