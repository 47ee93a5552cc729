package mirrorsync

import (
	"context"
	"errors"
	"fmt"
	"github.com/amwi/amwi/internal/layout"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/amwi/amwi/internal/units"
)

// How a run keeps the mirror consistent (what pacman sees is complete, or loudly not):
//
//  1. The gate: upstream's lastupdate and lastsync, one tiny fetch. Its lastupdate is pinned
//     for the round: it is what the mirror's lastupdate becomes if the round completes, so an
//     upstream that moves on during the run can only make the next run sync again, never hide
//     a gap. An upstream behind the mirror is refused.
//  2. Staging: the repos' os/x86_64 dirs (databases, links) are fetched into .amwi/staging/,
//     which persists between runs, so a run with nothing new costs a walk, not a copy.
//  3. The new databases say which pool files are needed; those not on disk are fetched
//     straight into pool/ (they are invisible to pacman until a database names them, so a
//     run that dies keeps every complete file for the next one), after a space estimate.
//  4. Every newly fetched package is checked against %SHA256SUM% (once more fetched on a
//     mismatch, then the run fails naming it).
//  5. The staged dirs are checked: every named file there with its size. A gap (upstream
//     changed between the steps) starts another round; after maxRounds, gaps are reported.
//  6. Publishing: each repo's staged dir is swapped with the live one in one rename
//     (renameat2 RENAME_EXCHANGE), so databases and links switch at once. A repo with gaps
//     keeps its previous state. Then pool files nothing names are pruned, the live mirror is
//     checked again, and only a complete mirror gets the pinned lastupdate.

// workDir is amwi's own dir in the mirror root: the staged repos and rsync's temporary
// files. Dot names are never served, and the rsync re-export excludes it.
const workDir = ".amwi"

// maxRounds bounds how often one upstream is asked again when it changed during the run.
const maxRounds = 3

// maxFullRepos bounds the repositories a full mirror takes (Arch has about a dozen): what
// an upstream's top level holds must not make records and logs grow without bound.
const maxFullRepos = 64

// fetchBatch is how many pool files one rsync fetches: rsync's --files-from costs time
// quadratic in the list's length (31,000 names: 3 s of CPU; 4,096: 0.06 s).
const fetchBatch = 4096

// maxAhead is how far in the future an upstream's lastupdate may be (clocks differ).
const maxAhead = time.Hour

// clockSane: before it, this box's clock is taken to be unset.
var clockSane = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// stampMax bounds lastupdate/lastsync (the gate fetches no larger file).
const stampMax = layout.StampMax

// ErrDiskFull: the mirror's filesystem filled up during the transfer.
var ErrDiskFull = errors.New("the disk is full")

// BehindError is an upstream older than the mirror: syncing from it would roll back.
type BehindError struct {
	Upstream     string
	By           time.Duration
	Theirs, Ours int64
}

func (e *BehindError) Error() string {
	return fmt.Sprintf("upstream is %s behind this mirror (its lastupdate %d, ours %d): refused, it would roll the mirror back (amwi sync --force overrides)",
		roundAge(e.By), e.Theirs, e.Ours)
}

// IncompleteError is a run that left files the databases name unfetched.
type IncompleteError struct {
	Gaps     int      // files named but not on the mirror (or not of their size)
	HeldBack []string // repos kept at their previous state because of them
	Examples []string
}

func (e *IncompleteError) Error() string {
	msg := units.Plural(e.Gaps, "file") + " the upstream's databases name could not be fetched"
	if len(e.Examples) > 0 {
		msg += " (" + strings.Join(e.Examples[:min(3, len(e.Examples))], "; ") + ")"
	}
	if len(e.HeldBack) > 0 {
		msg += "; kept at the previous state: " + strings.Join(e.HeldBack, ", ")
	}
	return msg + "; the next sync tries again"
}

func roundAge(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	}
	return fmt.Sprintf("%d s", int(d.Seconds()))
}

// gate is what the gate read from one upstream.
type gate struct {
	lastupdate, lastsync int64
}

func (m *Manager) root() string       { return m.Config.Root }
func (m *Manager) stagingDir() string { return filepath.Join(m.Config.Root, workDir, "staging") }
func (m *Manager) tempDir() string    { return filepath.Join(m.Config.Root, workDir, "tmp") }
func (m *Manager) full() bool         { return len(m.Config.Repos) == 1 && m.Config.Repos[0] == FullMirror }

// fetchGate fetches upstream's lastupdate and lastsync (at most stampMax bytes each) into
// the state dir and reads them.
func (m *Manager) fetchGate(ctx context.Context, up string, run *Run, tail *lineRing) (gate, error) {
	dir := filepath.Join(m.Config.StateDir, "gate")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return gate{}, err
	}
	for _, f := range []string{"lastupdate", "lastsync"} {
		os.Remove(filepath.Join(dir, f))
	}
	args := append([]string{"-rt", modes, "--max-size=" + strconv.Itoa(stampMax), "--timeout=600", "--contimeout=60", "--no-motd", "--stats"},
		append(onlyTopFiles("lastupdate", "lastsync"), up, dir+"/")...)
	if _, err := m.rsync(ctx, run, tail, PhaseChecking, nil, args...); err != nil {
		return gate{}, err
	}
	var g gate
	var err error
	if g.lastupdate, err = readStamp(filepath.Join(dir, "lastupdate")); err != nil {
		return g, fmt.Errorf("upstream %s: %w (is it an Arch mirror root?)", up, err)
	}
	if g.lastsync, err = readStamp(filepath.Join(dir, "lastsync")); err != nil {
		g.lastsync = 0 // optional: some mirrors do not publish it
	}
	// A lastupdate in the future, once taken, would make every honest upstream look
	// behind. (Unless this box's own clock is plainly unset: a Pi without a clock battery
	// before NTP answers.)
	if now := m.now(); now.After(clockSane) {
		if ahead := time.Unix(g.lastupdate, 0).Sub(now); ahead > maxAhead {
			return g, fmt.Errorf("upstream %s: its lastupdate is %s in the future: its clock or its tree is broken; refused", up, roundAge(ahead))
		}
	}
	return g, nil
}

// readStamp reads a lastupdate/lastsync file: a Unix time in decimal and a newline. The
// file is read with a bound and anything else is refused with a short message.
func readStamp(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("no %s (or one larger than %d bytes)", filepath.Base(path), stampMax)
		}
		return 0, err
	}
	defer f.Close()
	b := make([]byte, stampMax+1)
	n, _ := io.ReadFull(f, b)
	return parseStamp(filepath.Base(path), b[:n])
}

// parseStamp parses a stamp file's content (name is for messages).
func parseStamp(name string, b []byte) (int64, error) { return layout.ParseStamp(name, b) }

// writeStamp writes a lastupdate/lastsync file atomically.
func writeStamp(path string, v int64) error {
	return writeFileAtomic(path, []byte(strconv.FormatInt(v, 10)+"\n"), 0o644)
}

// highWaterFile holds the newest upstream lastupdate whose databases were published (a
// repo of an incomplete run counts): the mirror never goes back behind it.
const highWaterFile = "published"

func (m *Manager) highWater() int64 {
	v, err := readStamp(filepath.Join(m.Config.StateDir, "gate", highWaterFile))
	if err != nil {
		return 0
	}
	return v
}

// raiseHighWater records v, or sets it back to v when the run was allowed to go back
// (--force, a changed sync.upstream).
func (m *Manager) raiseHighWater(v int64, back bool) {
	if v <= m.highWater() && !back {
		return
	}
	if err := writeStamp(filepath.Join(m.Config.StateDir, "gate", highWaterFile), v); err != nil {
		m.Log.Warn("sync: cannot record how new the published databases are", "err", err)
	}
}

// primaryFile remembers sync.upstream as it was when the mirror last completed: an older
// state from a *changed* sync.upstream is the admin's deliberate choice, not a rollback.
const primaryFile = "primary"

func (m *Manager) recordedPrimary() string {
	b, err := os.ReadFile(filepath.Join(m.Config.StateDir, "gate", primaryFile))
	if err != nil || len(b) > 4096 {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// notBehind refuses an upstream older than the mirror, unless forced or the admin just
// changed sync.upstream to it.
func (m *Manager) notBehind(up string, g gate, run *Run) error {
	ours, err := readStamp(filepath.Join(m.root(), "lastupdate"))
	if err != nil {
		ours = 0
	}
	ours = max(ours, m.highWater())
	if ours == 0 || g.lastupdate >= ours {
		return nil
	}
	e := &BehindError{Upstream: up, By: time.Duration(ours-g.lastupdate) * time.Second, Theirs: g.lastupdate, Ours: ours}
	switch {
	case run.Force:
		m.Log.Warn("sync: upstream is behind this mirror; syncing anyway (--force)", "upstream", up, "behind", roundAge(e.By))
		run.wentBack = true
		return nil
	case up == normalizeUpstream(m.Config.Upstreams[0]) && m.recordedPrimary() != "" && m.recordedPrimary() != up:
		m.Log.Warn("sync: the new sync.upstream is behind this mirror; taking its state (the upstream was changed)", "upstream", up, "behind", roundAge(e.By))
		run.wentBack = true
		return nil
	}
	return e
}

// syncFrom is one upstream's part of a run: the gate and, when needed, rounds of staging,
// fetching and checking, then publishing.
func (m *Manager) syncFrom(ctx context.Context, up string, run *Run, tail *lineRing) error {
	for round := 1; ; round++ {
		g, err := m.fetchGate(ctx, up, run, tail)
		if err != nil {
			return err
		}
		m.step(run, "gate")
		if err := m.notBehind(up, g, run); err != nil {
			return err
		}
		run.LastUpdate, run.LastSync = g.lastupdate, g.lastsync
		if round == 1 && !run.Force {
			ours, _ := readStamp(filepath.Join(m.root(), "lastupdate"))
			if ours == g.lastupdate && !m.unselectedLive() && !m.packagesChanged() {
				rep := m.checkLive()
				run.Check = rep
				if rep.OK() {
					if g.lastsync > 0 {
						if err := writeStamp(filepath.Join(m.root(), "lastsync"), g.lastsync); err != nil {
							return fmt.Errorf("write lastsync: %w", err)
						}
					}
					run.Result = ResultUpToDate
					return nil
				}
				m.Log.Warn("sync: the mirror is current but incomplete; repairing it", "gaps", rep.Gaps(), "leftovers", rep.Leftovers, "first", first(rep.Problems))
			}
		}
		if round == 1 {
			started := *run
			started.Upstream = up
			m.event("started", started)
		}
		st, err := m.stage(ctx, up, run, tail)
		if err != nil {
			return err
		}
		m.step(run, "databases")
		if st.lastupdate != g.lastupdate {
			// The databases are not of the state the gate saw (an upstream that moved on,
			// or one behind a load balancer whose hosts disagree): the older of the two is
			// what the mirror may claim, and databases older than the mirror's are refused.
			m.Log.Warn("sync: upstream's lastupdate changed between the gate and the databases", "upstream", up, "gate", g.lastupdate, "databases", st.lastupdate)
			if err := m.notBehind(up, gate{lastupdate: st.lastupdate}, run); err != nil {
				return err
			}
			g.lastupdate = min(g.lastupdate, st.lastupdate)
			run.LastUpdate = g.lastupdate
		}
		if err := m.fetchNeeded(ctx, up, run, tail, st); err != nil {
			return err
		}
		m.step(run, "pool")
		if st.reports == nil {
			st.check(m.root(), m.used())
			m.step(run, "staged check")
		}
		if st.gaps() == 0 || round == maxRounds {
			return m.publishRepos(ctx, up, st, g, run, tail)
		}
		m.Log.Info("sync: upstream changed during the run; fetching its new state", "upstream", up, "round", round, "gaps", st.gaps(), "first", first(st.problems()))
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// staged is the state of the staging dir after a round's staging rsync.
type staged struct {
	lastupdate int64 // upstream's, fetched with the databases
	// overrides are pool files the check sees elsewhere: a replacement fetched aside
	// (its path), or a package that did not match its SHA-256 ("": a gap).
	overrides map[string]string
	dirs      []*repoDir
	skipped   []string           // a full mirror's upstream repos without a database
	reports   map[string]*Report // per repo, from the last check
	refused   int
	// held ("used" mode) are the pool files the run keeps (see used.go); nil in "all".
	held map[string]bool
}

func (s *staged) check(root string, used bool) {
	s.reports = map[string]*Report{}
	for _, d := range s.dirs {
		d.overrides = s.overrides
		r := &Report{used: used}
		d.check(root, r, nil, nil)
		s.reports[d.repo] = r
	}
}

func (s *staged) gaps() int {
	n := 0
	for _, r := range s.reports {
		n += r.Gaps()
	}
	return n
}

func (s *staged) problems() []string {
	var out []string
	for _, d := range s.dirs {
		out = append(out, s.reports[d.repo].Problems...)
	}
	return out
}

// stage fetches the selected repos' os/x86_64 dirs into the staging dir and reads them.
func (m *Manager) stage(ctx context.Context, up string, run *Run, tail *lineRing) (*staged, error) {
	dir := m.stagingDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(m.tempDir(), 0o755); err != nil {
		return nil, err
	}
	filters := stageFilters(m.Config.Repos)
	if !m.full() {
		// Repos that left mirror.repos: their staged copies go (rsync protects what
		// its filters exclude).
		m.removeUnselected(dir)
	}
	os.Remove(filepath.Join(dir, "lastupdate"))
	args := append([]string{"-rlpt", modes, "--safe-links", "--delete", "--temp-dir=" + m.tempDir(),
		"--timeout=600", "--contimeout=60", "--no-motd", "--info=progress2,name1", "--stats"}, m.bwlimit()...)
	if names := dirNames(dir); len(names) == 0 {
		// Nothing staged yet (a mirror an older amwi kept, or a wiped staging dir): the
		// databases the live mirror has are linked, not fetched again. (Once there is a
		// staged copy this only costs time.)
		args = append(args, "--link-dest="+m.root())
	}
	args = append(append(args, filters...), up, dir+"/")
	if _, err := m.rsync(ctx, run, tail, PhaseStaging, nil, args...); err != nil {
		return nil, err
	}
	m.step(run, "staging rsync")
	lu, err := readStamp(filepath.Join(dir, "lastupdate"))
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", up, err)
	}
	repos := m.Config.Repos
	if m.full() {
		if repos, err = stagedRepos(dir); err != nil {
			return nil, err
		}
		if len(repos) > maxFullRepos {
			return nil, fmt.Errorf("upstream %s has %d repositories; a full mirror takes at most %d: is it an Arch mirror?", up, len(repos), maxFullRepos)
		}
	}
	st := &staged{lastupdate: lu, overrides: map[string]string{}}
	for _, repo := range repos {
		rd := layout.RepoPath(dir, repo)
		if err := realDirs(dir, repo, "os", layout.Arch); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("upstream %s has no %s: check mirror.repos and the upstream path", up, layout.RepoDir(repo))
		} else if err != nil {
			return nil, fmt.Errorf("upstream %s: %w: refused", up, err)
		}
		d, err := readRepoDir(rd, repo, true)
		if err != nil && m.full() {
			// A full mirror takes what upstream has; a repo being set up upstream (its
			// folder there, its database not yet) is left as it is until it has one.
			m.Log.Warn("sync: upstream repo without a readable database; left as it is", "repo", repo, "err", err)
			st.skipped = append(st.skipped, repo)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("upstream's %s: %w", repo, err)
		}
		// Entries refused (control characters, unsafe links) are taken out of the staged
		// dir: they are never published.
		for _, b := range d.badRaw() {
			os.RemoveAll(filepath.Join(rd, b)) // in the staged dir only: a link goes, not what it leads to
		}
		if d.nBad > 0 {
			m.Log.Warn("sync: refused upstream entries (control characters, unsafe links)", "repo", repo, "count", d.nBad, "first", d.bad[0])
			st.refused += d.nBad
		}
		st.dirs = append(st.dirs, d)
	}
	run.Refused = st.refused
	return st, nil
}

// realDirs checks that each step of the path under base is a directory and not a link:
// a repo's os/x86_64 that upstream made a link (to another repo, say) would be read and
// published as something it is not.
func realDirs(base string, parts ...string) error {
	p := base
	for _, part := range parts {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			rel, _ := filepath.Rel(base, p)
			return fmt.Errorf("%s is not a directory (%s)", quoteName(filepath.ToSlash(rel)), fi.Mode().Type())
		}
	}
	return nil
}

// stagedRepos lists the repos in the staging dir (full mirror): dirs with os/x86_64.
func stagedRepos(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range des {
		if !de.IsDir() || !safeName(de.Name()) {
			continue
		}
		if realDirs(dir, de.Name(), "os", layout.Arch) == nil {
			out = append(out, de.Name())
		}
	}
	return out, nil
}

// unselectedLive reports live repos that mirror.repos no longer selects: a run then goes on
// past an up-to-date gate, to publish and prune.
func (m *Manager) unselectedLive() bool {
	if m.full() {
		return false
	}
	live, _ := findRepos(m.root())
	sel := map[string]bool{}
	for _, r := range m.Config.Repos {
		sel[r] = true
	}
	for _, r := range live {
		if !sel[r] {
			return true
		}
	}
	return false
}

// removeUnselected removes staged repos that are not selected.
func (m *Manager) removeUnselected(dir string) {
	sel := map[string]bool{}
	for _, r := range m.Config.Repos {
		sel[r] = true
	}
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		if !sel[de.Name()] {
			os.RemoveAll(filepath.Join(dir, de.Name()))
		}
	}
}

// fetchNeeded fetches the pool files the staged dirs need and checks the new packages
// against their databases' SHA-256. A package that does not match twice is not a failure
// of the whole run: it is a gap of the repos that name it, which keep their previous state.
func (m *Manager) fetchNeeded(ctx context.Context, up string, run *Run, tail *lineRing, st *staged) error {
	need := map[string]int64{}
	sums := map[string]dbFile{} // pool path → the package file it should be
	reports := map[string]*Report{}
	if m.used() {
		if err := m.hold(st, run); err != nil {
			return err
		}
	}
	for _, d := range st.dirs {
		d.overrides = st.overrides
		r := m.newReport()
		d.check(m.root(), r, nil, need)
		reports[d.repo] = r
		for _, f := range d.files {
			if p := d.links[f.name]; strings.HasPrefix(p, "pool/") {
				sums[p] = f
			}
		}
	}
	if st.held != nil {
		// "used" mode: of what is not on disk, only the held packages are fetched.
		for p := range need {
			if !st.held[p] {
				delete(need, p)
			}
		}
		for p, n := range need {
			if !strings.HasSuffix(p, ".sig") {
				run.Prefetched++
				run.PrefetchedBytes += n
			}
		}
	}
	// Packages that did not match their SHA-256 twice in an earlier round of this run,
	// named with the same SHA-256 again: gaps at once, not fetched a third time.
	marked := false
	for p, sum := range run.mismatched {
		if f, ok := sums[p]; ok && f.sum == sum {
			st.overrides[p] = ""
			delete(need, p)
			marked = true
		}
	}
	// Packages upstream rebuilt under a name the live databases use (another size or
	// SHA-256): the live file stays as it is, pacman may be fetching it; the new one is
	// fetched beside the pool and swapped in when a repo naming it is published.
	replace := slices.DeleteFunc(m.changedLive(st, sums), func(p string) bool {
		_, bad := st.overrides[p]
		return bad || (st.held != nil && !st.held[p]) // "used" mode: an unused one just goes
	})
	for _, p := range replace {
		delete(need, p)
	}
	if len(replace) > 0 {
		m.Log.Warn("sync: upstream rebuilt packages under names the live databases use; they are fetched aside and swapped in at publish", "count", len(replace), "first", replace[0])
	}
	if err := m.checkStagedPackages(st); err != nil {
		return err
	}
	// Files an interrupted run fetched but could not check are checked now.
	pending := m.readPending()
	if len(need) == 0 && len(pending) == 0 && len(replace) == 0 {
		if !marked {
			// Nothing fetched, nothing marked: the check just made is the staged check
			// (a forced run with nothing new saves a stat of every file).
			st.reports = reports
		}
		return nil
	}
	files := make([]string, 0, len(need))
	var bytes int64
	for p, n := range need {
		files = append(files, p)
		bytes += n
	}
	sort.Strings(files)
	for _, p := range replace {
		bytes += sums[p].size
	}
	if err := m.checkRoom(len(files)+len(replace), bytes); err != nil {
		return err
	}
	if err := m.writePending(append(append([]string{}, files...), pending...)); err != nil {
		return fmt.Errorf("record the files to fetch: %w", err)
	}
	if err := m.fetchPool(ctx, up, run, tail, files, bytes, m.root()); err != nil {
		return err
	}
	side := filepath.Join(m.root(), workDir, "replace")
	if len(replace) > 0 {
		if err := m.fetchPool(ctx, up, run, tail, replace, 0, side); err != nil {
			return err
		}
	}
	bad := m.checkSums(ctx, run, append(append([]string{}, files...), pending...), sums, m.root())
	badSide := m.checkSums(ctx, run, replace, sums, side)
	if len(bad)+len(badSide) > 0 {
		m.Log.Warn("sync: packages do not match their databases' SHA-256; fetching them again", "count", len(bad)+len(badSide), "first", first(append(bad, badSide...)))
		if err := m.fetchPool(ctx, up, run, tail, bad, 0, m.root()); err != nil {
			return err
		}
		if err := m.fetchPool(ctx, up, run, tail, badSide, 0, side); err != nil {
			return err
		}
		bad = append(m.checkSums(ctx, run, bad, sums, m.root()), m.checkSums(ctx, run, badSide, sums, side)...)
	}
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	for _, p := range replace {
		st.overrides[p] = filepath.Join(side, filepath.FromSlash(p))
	}
	if len(bad) > 0 {
		// Gaps of the repos that name them: those keep their previous state.
		if run.mismatched == nil {
			run.mismatched = map[string][32]byte{}
		}
		for _, p := range bad {
			st.overrides[p] = ""
			run.mismatched[p] = sums[p].sum
		}
		sort.Strings(bad)
		run.Warning = fmt.Sprintf("%s did not match the databases' SHA-256 after fetching twice (%s): the upstream serves other files than its databases name",
			units.Plural(len(bad), "package"), strings.Join(bad[:min(3, len(bad))], ", "))
		m.Log.Warn("sync: " + run.Warning)
	}
	m.clearPending()
	return nil
}

// changedLive returns the pool files on disk that a live database names with another size
// or SHA-256 than the staged one: upstream rebuilt them under the same name.
func (m *Manager) changedLive(st *staged, sums map[string]dbFile) []string {
	var out []string
	for _, d := range st.dirs {
		liveDir := layout.RepoPath(m.root(), d.repo)
		if sameFile(filepath.Join(d.dir, dbName(d.repo)), filepath.Join(liveDir, dbName(d.repo))) {
			continue // the same database: nothing changed
		}
		live, err := readRepoDir(liveDir, d.repo, true)
		if err != nil {
			continue // nothing live to protect
		}
		for _, f := range live.files {
			p := live.links[f.name]
			nf, staged := sums[p]
			if !strings.HasPrefix(p, "pool/") || !staged || nf.name != f.name {
				continue
			}
			if nf.size == f.size && (!nf.hasSum || !f.hasSum || nf.sum == f.sum) {
				continue
			}
			if _, err := os.Lstat(filepath.Join(m.root(), filepath.FromSlash(p))); err == nil {
				out = append(out, p)
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// sameFile reports whether two paths lead to the same file, or to files of the same size
// and modification time (rsync -t keeps upstream's).
func sameFile(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	if errA != nil || errB != nil {
		return false
	}
	return os.SameFile(sa, sb) || (sa.Size() == sb.Size() && sa.ModTime().Equal(sb.ModTime()))
}

// checkStagedPackages checks the SHA-256 of package files an upstream keeps in a repo's
// os/x86_64 itself (old-style mirrors, before pool/) and that the live dir does not have
// as they are. A mismatch fails the run naming the file, which is taken out of the staged
// dir so the next run fetches it again.
func (m *Manager) checkStagedPackages(st *staged) error {
	var bad []string
	for _, d := range st.dirs {
		live := layout.RepoPath(m.root(), d.repo)
		for _, f := range d.files {
			if _, ok := d.regs[f.name]; !ok || !f.hasSum {
				continue
			}
			p := filepath.Join(d.dir, f.name)
			a, errA := os.Stat(p)
			b, errB := os.Stat(filepath.Join(live, f.name))
			if errA == nil && errB == nil && os.SameFile(a, b) {
				continue // the live file, linked: checked when it came
			}
			if ok, _, err := sha256File(p, f); err != nil || !ok {
				os.Remove(p)
				bad = append(bad, layout.RepoDir(d.repo)+"/"+f.name)
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("package files in the repos' own folders do not match their databases' SHA-256 (%d): %s (the upstream serves other files than its databases name)",
			len(bad), strings.Join(bad[:min(3, len(bad))], ", "))
	}
	return nil
}

// checkRoom refuses a fetch that would take the disk below sync.min_free_gib.
func (m *Manager) checkRoom(files int, bytes int64) error {
	free, err := m.freeBytes(m.root())
	if err != nil {
		return err
	}
	if uint64(bytes)+m.Config.MinFreeBytes > free {
		return fmt.Errorf("%w on %s: this sync needs %s for %s, %s free, and sync.min_free_gib keeps %s free; make room (or lower mirror.repos) and sync again",
			ErrDiskSpace, m.root(), gib(uint64(bytes)), units.Plural(files, "new file"), gib(free), gib(m.Config.MinFreeBytes))
	}
	return nil
}

// fetchPool fetches pool files (mirror-relative paths) into dest (the mirror root: straight
// into pool/; or the side dir for replacements), in batches. Files upstream no longer has
// are left to the check that follows.
func (m *Manager) fetchPool(ctx context.Context, up string, run *Run, tail *lineRing, files []string, total int64, dest string) error {
	if len(files) == 0 {
		return nil
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	base := run.Stats.TransferredSize
	for i := 0; i < len(files); i += fetchBatch {
		batch := files[i:min(i+fetchBatch, len(files))]
		list := []byte(strings.Join(batch, "\x00") + "\x00")
		args := append([]string{"-pt", modes, "--files-from=-", "--from0", "--temp-dir=" + m.tempDir(),
			"--timeout=600", "--contimeout=60", "--no-motd", "--info=progress2,name1", "--stats"}, m.bwlimit()...)
		_, err := m.rsyncProgress(ctx, run, tail, PhasePool, list, func(p Progress) int {
			if total <= 0 {
				return p.Percent
			}
			return int(min(100, 100*(run.Stats.TransferredSize-base+p.Bytes)/total))
		}, append(args, up, dest+"/")...)
		var re *RsyncError
		switch {
		case err == nil:
		case errors.As(err, &re) && (re.Code == 23 || re.Code == 24) && ctx.Err() == nil:
			// Some files are not upstream (any more): the check after the fetch finds
			// which, and the next round asks upstream again.
			m.Log.Info("sync: some packages were not on the upstream", "upstream", up, "rsync", re.Last)
		default:
			return err
		}
		run.Fetched += len(batch)
	}
	return nil
}

// checkSums hashes the named pool files (under base) that are packages of a staged
// database and returns those whose SHA-256 is not the database's (they are removed).
func (m *Manager) checkSums(ctx context.Context, run *Run, files []string, sums map[string]dbFile, base string) (bad []string) {
	if len(files) == 0 {
		return nil
	}
	m.update(func(s *State) { s.Phase, s.Percent, s.File = PhaseVerifying, 0, "" })
	done := make(chan struct{})
	go func() {
		defer close(done)
		// This thread reads every new package: it alone goes to the idle I/O class and
		// nice 19 (the daemon keeps serving at full speed), and is retired afterwards.
		runtime.LockOSThread()
		setIdlePriority(0)
		for i, p := range files {
			if ctx.Err() != nil {
				return
			}
			f, ok := sums[p]
			if !ok || !f.hasSum {
				continue
			}
			full := filepath.Join(base, filepath.FromSlash(p))
			ok, _, err := sha256File(full, f)
			if errors.Is(err, fs.ErrNotExist) {
				continue // not fetched: the check reports it
			}
			run.Verified++
			if err != nil || !ok {
				os.Remove(full)
				bad = append(bad, p)
			}
			if i%64 == 0 {
				pct := 100 * (i + 1) / len(files)
				m.update(func(s *State) { s.Percent, s.File = pct, p })
			}
		}
	}()
	<-done
	return bad
}

// pendingFile lists, NUL-separated, the pool files a run is fetching: a run killed before
// checking their SHA-256 leaves it, and the next run checks them.
const pendingFile = "pending"

func (m *Manager) readPending() []string {
	b, err := os.ReadFile(filepath.Join(m.Config.StateDir, pendingFile))
	if err != nil || len(b) > 64<<20 {
		return nil
	}
	var out []string
	for _, p := range strings.Split(string(b), "\x00") {
		if strings.HasPrefix(p, "pool/") && safePath(p) && !strings.Contains(p, "..") {
			if _, err := os.Lstat(filepath.Join(m.root(), filepath.FromSlash(p))); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

func (m *Manager) writePending(files []string) error {
	return writeFileAtomic(filepath.Join(m.Config.StateDir, pendingFile), []byte(strings.Join(files, "\x00")), 0o640)
}

func (m *Manager) clearPending() { os.Remove(filepath.Join(m.Config.StateDir, pendingFile)) }

// publishRepos swaps complete staged repos into place, prunes, checks the live mirror, and
// advances lastupdate only when it is complete.
func (m *Manager) publishRepos(ctx context.Context, up string, st *staged, g gate, run *Run, tail *lineRing) error {
	m.update(func(s *State) { s.Phase, s.Percent, s.File = PhasePublishing, 0, "" })
	root := m.root()
	syncfs(root)              // the new pool files reach the disk before any database names them
	refs := map[string]bool{} // pool files to keep through the prune
	prev := m.retiredLinks()
	var (
		held       []string
		published  []*repoDir
		kept       []retiredLink // replaced packages that stay reachable a while
		incomplete IncompleteError
	)
	for _, d := range st.dirs {
		live := layout.RepoPath(root, d.repo)
		rep := st.reports[d.repo]
		if gaps := rep.Gaps(); gaps > 0 {
			incomplete.Gaps += gaps
			incomplete.Examples = append(incomplete.Examples, rep.Problems...)
			if m.liveGaps(d.repo) < gaps {
				// The live repo is better than the new state: keep it (and what it kept
				// of earlier states), and what the staged one has for the next run.
				held = append(held, d.repo)
				d.poolRefs(refs)
				if err := livePoolRefs(root, []string{d.repo}, refs); err != nil {
					return fmt.Errorf("read %s's links: %w", d.repo, err)
				}
				for _, r := range prev {
					if r.repo == d.repo {
						kept = append(kept, r)
					}
				}
				continue
			}
		}
		// Packages rebuilt under the same name go into the pool just before the repo
		// naming them switches.
		for _, p := range d.links {
			if alt := st.overrides[p]; alt != "" {
				if err := os.Rename(alt, filepath.Join(root, filepath.FromSlash(p))); err != nil {
					return fmt.Errorf("publish %s: swap in %s: %w", d.repo, p, err)
				}
				delete(st.overrides, p)
			}
		}
		first := dirNames(live) == nil
		if !first {
			// What the old databases named and the new ones do not stays reachable a
			// while: a pacman that read the old database a moment ago still gets it.
			kept = append(kept, m.retain(d, live, prev)...)
		}
		if err := exchange(d.dir, live); err != nil {
			return fmt.Errorf("publish %s: %w", d.repo, err)
		}
		stagedDir := d.dir
		d.dir = live
		published = append(published, d)
		d.poolRefs(refs)
		if first {
			// The first publish moved the staged dir: the next run's staging starts from a
			// copy (links and hard links: cheap) instead of fetching it all again.
			if err := cloneDir(live, stagedDir); err != nil {
				m.Log.Warn("sync: cannot prepare the next run's staging copy; it will fetch the databases again", "repo", d.repo, "err", err)
			}
		}
	}
	syncfs(root)
	// Replacements of repos kept back are not needed: the next run fetches them again.
	os.RemoveAll(filepath.Join(root, workDir, "replace"))
	if len(published) > 0 {
		// The databases are now this new (some of them, at least): no upstream older than
		// them may be taken from here on, even while the run is incomplete and lastupdate
		// is not advanced.
		m.raiseHighWater(st.lastupdate, run.wentBack)
	}
	for _, r := range kept {
		refs[r.pool] = true
	}
	if err := m.writeRetired(kept); err != nil {
		m.Log.Warn("sync: cannot record the replaced packages; they go at the next run", "err", err)
	}
	incomplete.HeldBack = held
	run.HeldBack = held
	var repos []string
	for _, d := range st.dirs {
		repos = append(repos, d.repo)
	}
	if m.full() {
		if err := m.syncRest(ctx, up, run, tail, append(repos, st.skipped...)); err != nil {
			return err
		}
	} else if removed, err := removeUnselectedRepos(root, m.Config.Repos); err != nil {
		return err
	} else {
		run.Pruned += len(removed)
	}
	if err := livePoolRefs(root, st.skipped, refs); err != nil {
		return fmt.Errorf("read the links of repos left as they are: %w", err)
	}
	if st.held != nil {
		// "used" mode: of the pool files the databases name, the held ones stay (and the
		// replaced ones kept a while, and what clients fetched during the run).
		for p := range refs {
			if !st.held[p] {
				delete(refs, p)
			}
		}
		for _, r := range kept {
			refs[r.pool] = true
		}
	}
	m.step(run, "publish")
	var fresh time.Time // "used" mode: what clients fetched during the run stays (isFresh)
	if st.held != nil {
		fresh = run.Start
	}
	removed, err := prunePool(root, refs, fresh)
	run.Pruned += len(removed)
	if err != nil {
		return err
	}
	m.step(run, "prune")
	rep := m.checkLive(published...)
	m.step(run, "live check")
	run.Check = rep
	if incomplete.Gaps > 0 || !rep.OK() {
		if incomplete.Gaps == 0 {
			incomplete.Gaps = rep.Gaps() + rep.Leftovers
			incomplete.Examples = rep.Problems
		}
		return &incomplete
	}
	if err := writeStamp(filepath.Join(root, "lastupdate"), g.lastupdate); err != nil {
		return fmt.Errorf("write lastupdate: %w", err)
	}
	if g.lastsync > 0 {
		if err := writeStamp(filepath.Join(root, "lastsync"), g.lastsync); err != nil {
			return fmt.Errorf("write lastsync: %w", err)
		}
	}
	writeFileAtomic(filepath.Join(m.Config.StateDir, "gate", primaryFile), []byte(normalizeUpstream(m.Config.Upstreams[0])+"\n"), 0o640)
	m.recordPackages()
	run.Result = ResultSuccess
	return nil
}

// dirNames lists a directory's entries; nil when it does not exist.
func dirNames(dir string) []string {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	if names == nil {
		names = []string{}
	}
	return names
}

// cloneDir makes dst a copy of src's links and regular files (hard links: no data is
// copied).
func cloneDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	des, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, de := range des {
		from, to := filepath.Join(src, de.Name()), filepath.Join(dst, de.Name())
		switch {
		case de.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(from)
			if err != nil {
				return err
			}
			if err := os.Symlink(t, to); err != nil {
				return err
			}
		case de.Type().IsRegular():
			if err := os.Link(from, to); err != nil {
				return err
			}
		}
	}
	return nil
}

// liveGaps counts the gaps of the live repo (a repo not there yet counts as all gaps).
func (m *Manager) liveGaps(repo string) int {
	d, err := readRepoDir(layout.RepoPath(m.root(), repo), repo, false)
	if err != nil {
		return 1 << 30
	}
	r := m.newReport()
	d.check(m.root(), r, nil, nil)
	return r.Gaps()
}

// checkLive checks the published mirror against its own databases (sizes, links,
// leftovers). known are live dirs read already (just published): they are not read again.
func (m *Manager) checkLive(known ...*repoDir) *Report {
	m.update(func(s *State) { s.Phase, s.Percent, s.File = PhaseCheckingMirror, 0, "" })
	repos := m.Config.Repos
	if m.full() {
		repos = nil
	}
	o := VerifyOptions{known: map[string]*repoDir{}, Used: m.used()}
	for _, d := range known {
		o.known[d.repo] = d
	}
	rep, err := verifyRepos(context.Background(), m.root(), repos, o, false)
	if err != nil {
		rep = &Report{}
		rep.failed("mirror", err)
	}
	return rep
}

// exchange puts the staged dir in the live dir's place in one step (the old one lands in
// the staging place, where the next run's rsync brings it up to date). Filesystems without
// RENAME_EXCHANGE (vfat, some network filesystems) get two renames.
func exchange(stagedDir, live string) error {
	if err := os.MkdirAll(filepath.Dir(live), 0o755); err != nil {
		return err
	}
	if _, err := os.Lstat(live); errors.Is(err, fs.ErrNotExist) {
		return os.Rename(stagedDir, live)
	}
	err := unix.Renameat2(unix.AT_FDCWD, stagedDir, unix.AT_FDCWD, live, unix.RENAME_EXCHANGE)
	if err == nil || !(errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP)) {
		return err
	}
	old := stagedDir + ".old"
	os.RemoveAll(old)
	if err := os.Rename(live, old); err != nil {
		return err
	}
	if err := os.Rename(stagedDir, live); err != nil {
		os.Rename(old, live)
		return err
	}
	return os.Rename(old, stagedDir)
}

// syncfs flushes the mirror's filesystem.
func syncfs(root string) {
	if f, err := os.Open(root); err == nil {
		unix.Syncfs(int(f.Fd()))
		f.Close()
	}
}

// syncRest is the full mirror's last step: everything that is not a repo's os/x86_64 or
// the pool (iso/, images/, …), the Arch way, with its own deletions.
func (m *Manager) syncRest(ctx context.Context, up string, run *Run, tail *lineRing, repos []string) error {
	args := append(m.flags(modes, "--info=progress2,name1", "--stats"), filesExcluded...)
	args = append(args, fullMirrorExcludes...)
	for _, r := range repos {
		args = append(args, "--exclude=/"+layout.RepoDir(r))
	}
	args = append(args, "--exclude=/pool", "--exclude=/"+workDir, up, m.root()+"/")
	_, err := m.rsync(ctx, run, tail, PhaseMirror, nil, args...)
	var re *RsyncError
	if errors.As(err, &re) && re.Code == 23 && ctx.Err() == nil && !tail.diskFull() {
		// Something outside the repos (an ISO the upstream cannot read, say) did not
		// come: the repos are published and complete, so the run is not failed for it.
		run.Warning = "some files outside the repositories were not transferred: " + re.Last
		m.Log.Warn("sync: "+run.Warning, "upstream", up)
		return nil
	}
	return err
}

// badRaw returns the raw names of the entries readRepoDir refused.
func (d *repoDir) badRaw() []string { return d.badNames }

// bwlimit is --bwlimit when sync.bwlimit_kib is set.
func (m *Manager) bwlimit() []string {
	limit := int64(m.Config.BWLimitKiB)
	if v := m.bwLimit.Load(); v >= 0 {
		limit = v // changed in the settings during the run: its next rsync takes it
	}
	if limit > 0 {
		return []string{"--bwlimit=" + strconv.FormatInt(limit, 10)}
	}
	return nil
}
