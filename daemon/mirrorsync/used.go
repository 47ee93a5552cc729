package mirrorsync

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// "used" mode (mirror.packages = "used"): a mirror of the databases, and of the package
// files only those LAN clients downloaded lately.
//
// A run stages the databases and links exactly as in "all" mode, so what pacman sees is
// the same consistent state; of the pool files the new databases name it fetches only the
// held ones: the current version of every package (by %NAME%) a client downloaded within
// mirror.keep_days, most recently used first, as many as fit mirror.max_gib. So after a
// sync a LAN's `pacman -Syu` finds its upgrades on disk. Every other pool file goes at the
// prune; a client asking for one has it fetched over HTTP then (daemon/ondemand), and
// that download makes it used. The check counts an absent pool file as fetchable, not as a
// gap: the promise reads "every file the databases name is on disk or fetchable".

// UsedPolicy is what "used" mode needs from the rest of the daemon.
type UsedPolicy struct {
	// LastUsed gives, per package name (%NAME%), when LAN clients last downloaded it, for
	// the packages downloaded within mirror.keep_days. An error fails the run: nothing is
	// pruned on a guess.
	LastUsed func() (map[string]time.Time, error)
	// MaxBytes is the budget for package files (0: none).
	MaxBytes int64
	// Setting names the settings the policy comes from (mode, days, budget): after it
	// changes, a run does not stop at an unchanged upstream, so switching modes or
	// budgets takes effect at the next sync.
	Setting string
}

// used reports "used" mode.
func (m *Manager) used() bool { return m.Config.Used != nil }

// newReport is an empty check report for this mirror's mode.
func (m *Manager) newReport() *Report { return &Report{used: m.used()} }

// packagesFile records the packages setting of the last complete run, in the state dir's
// gate folder.
const packagesFile = "packages"

// packagesSetting is the current setting as recordPackages writes it.
func (m *Manager) packagesSetting() string {
	if m.Config.Used == nil {
		return "all"
	}
	return "used " + m.Config.Used.Setting
}

// packagesChanged reports a setting other than the last complete run's: the mirror may
// hold too much (all → used) or too little (a larger budget) for it.
func (m *Manager) packagesChanged() bool {
	b, err := os.ReadFile(filepath.Join(m.Config.StateDir, "gate", packagesFile))
	if err != nil {
		// No record: an "all" mirror of an older amwi, or none yet.
		return m.used()
	}
	return strings.TrimSpace(string(b)) != m.packagesSetting()
}

func (m *Manager) recordPackages() {
	if err := writeFileAtomic(filepath.Join(m.Config.StateDir, "gate", packagesFile), []byte(m.packagesSetting()+"\n"), 0o640); err != nil {
		m.Log.Warn("sync: cannot record the packages setting", "err", err)
	}
}

// heldFile is one package file "used" mode keeps, with its .sig.
type heldFile struct {
	pool, sig string // pool paths ("" when no .sig link)
	size      int64
	last      time.Time
}

// selectHeld returns the pool files (packages and their .sig) to hold: those of packages
// in last, most recently used first, each that still fits maxBytes (0: all of them). A package
// named by two repos (core and core-testing) is held in each that names it.
func selectHeld(dirs []*repoDir, last map[string]time.Time, maxBytes int64) (held map[string]bool, bytes int64) {
	var files []heldFile
	seen := map[string]bool{}
	for _, d := range dirs {
		for _, f := range d.files {
			t, ok := last[f.pkg]
			p := d.links[f.name]
			if !ok || !strings.HasPrefix(p, "pool/") || seen[p] {
				continue
			}
			seen[p] = true
			files = append(files, heldFile{pool: p, sig: d.links[f.name+".sig"], size: f.size, last: t})
		}
	}
	sort.Slice(files, func(i, j int) bool {
		if !files[i].last.Equal(files[j].last) {
			return files[i].last.After(files[j].last)
		}
		return files[i].pool < files[j].pool
	})
	held = make(map[string]bool, 2*len(files))
	for _, f := range files {
		if maxBytes > 0 && bytes+f.size > maxBytes {
			// Skipped, not the end: LastUsed has a day's resolution, so a whole day's
			// packages tie and come in path order, and one that does not fit (one
			// larger than the whole budget, say) must not drop every later one that
			// does. The least recently used still go first.
			continue
		}
		bytes += f.size
		held[f.pool] = true
		if strings.HasPrefix(f.sig, "pool/") {
			held[f.sig] = true
		}
	}
	return held, bytes
}

// hold decides, for a used-mode run, which pool files the staged databases' packages keep.
func (m *Manager) hold(st *staged, run *Run) error {
	last, err := m.Config.Used.LastUsed()
	if err != nil {
		return fmt.Errorf("read which packages LAN clients use: %w", err)
	}
	st.held, run.HeldBytes = selectHeld(st.dirs, last, m.Config.Used.MaxBytes)
	for _, d := range st.dirs {
		dropUnnamed(d)
	}
	m.Log.Debug("sync: used packages selected", "used", len(last), "held_files", len(st.held), "bytes", run.HeldBytes)
	return nil
}

// dropUnnamed takes out of a staged dir the links into the pool its database does not name
// (an upstream that left an old version's link behind): a full mirror fetches what they
// lead to, "used" mode does not, and they would dangle. (The replaced packages the mirror
// keeps reachable a while are put back after this, retire.go.)
func dropUnnamed(d *repoDir) {
	named := make(map[string]bool, 2*len(d.files))
	for _, f := range d.files {
		named[f.name], named[f.name+".sig"] = true, true
	}
	for name, p := range d.links {
		if !named[name] && strings.HasPrefix(p, "pool/") {
			if os.Remove(filepath.Join(d.dir, name)) == nil {
				delete(d.links, name)
			}
		}
	}
}

// isFresh reports a file put in place (renamed, created) at or after since, by its ctime
// (a rename sets it, whatever mtime the file was given): a package fetched on demand while
// a run ran, whose download made it used after LastUsed was read. prunePool keeps it; the
// next run decides about it.
func isFresh(p string, since time.Time) bool {
	var st unix.Stat_t
	return unix.Lstat(p, &st) == nil && !time.Unix(st.Ctim.Unix()).Before(since)
}
