package mirrorsync

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/amwi/amwi/internal/layout"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Replaced packages stay reachable for a while.
//
// pacman reads a repo's database, then fetches the packages it names, often minutes later
// (a prompt, a slow link). When a sync publishes a new database in between, the packages
// it replaced would answer 404. So after each publish, the links the old database had and
// the new one has not are put back into the live dir, and their pool files stay, for
// retireGrace; the first run after that removes them. They are recorded in the state dir
// (one "UNIX-TIME TAB REPO TAB NAME TAB TARGET" line each), and `amwi verify` does not count
// them as unreferenced.

// retireGrace is how long a replaced package stays reachable.
const retireGrace = time.Hour

// retiredFile is the record of replaced packages, in the state dir.
const retiredFile = "retired"

// maxRetired bounds the record: a huge update keeps what fits and lets the rest go at once.
const maxRetired = 200_000

// retiredLink is one replaced package (or .sig) link.
type retiredLink struct {
	since        time.Time
	repo, name   string
	target, pool string // the link's target; the pool file it leads to
}

// retain runs just before the staged dir d replaces the live one: it puts into d the
// package links the live dir has and d lacks (the ones the new databases dropped), and the
// recorded ones of this repo still within their grace, so that when the dirs switch both
// the old databases' packages and the new ones' are there. It returns what it kept.
func (m *Manager) retain(d *repoDir, live string, prev []retiredLink) []retiredLink {
	now := m.now()
	seen := map[string]bool{}
	var kept []retiredLink
	add := func(r retiredLink) {
		if seen[r.name] || d.has(r.name) || len(kept) >= maxRetired {
			return
		}
		seen[r.name] = true
		if _, err := os.Stat(filepath.Join(m.root(), filepath.FromSlash(r.pool))); err != nil {
			return
		}
		if err := os.Symlink(r.target, filepath.Join(d.dir, r.name)); err != nil && !errors.Is(err, fs.ErrExist) {
			return
		}
		kept = append(kept, r)
	}
	for _, r := range prev {
		if r.repo == d.repo && now.Sub(r.since) < retireGrace {
			add(r)
		}
	}
	for _, name := range dirNames(live) {
		if seen[name] || d.has(name) || !safeName(name) {
			continue
		}
		t, err := os.Readlink(filepath.Join(live, name))
		if err != nil {
			continue
		}
		if p, ok := linkTarget(d.repo, t); ok && strings.HasPrefix(p, "pool/") {
			add(retiredLink{since: now, repo: d.repo, name: name, target: t, pool: p})
		}
	}
	return kept
}

// pruneRetired removes the replaced packages whose grace has passed: their links, and their
// pool files unless a live link still leads there. It runs at the start of every run.
func (m *Manager) pruneRetired() {
	all := m.retiredLinks()
	if len(all) == 0 {
		return
	}
	var keep, gone []retiredLink
	named := map[string]map[string]bool{} // repo → what its live database names
	for _, r := range all {
		if m.now().Sub(r.since) < retireGrace {
			keep = append(keep, r)
			continue
		}
		if named[r.repo] == nil {
			named[r.repo] = map[string]bool{}
			if d, err := readRepoDir(layout.RepoPath(m.root(), r.repo), r.repo, false); err == nil {
				for _, f := range d.files {
					named[r.repo][f.name], named[r.repo][f.name+".sig"] = true, true
				}
			}
		}
		if named[r.repo][r.name] {
			continue // the live database names it (again): it is not retired
		}
		link := filepath.Join(m.root(), r.repo, "os", layout.Arch, r.name)
		if t, err := os.Readlink(link); err == nil && t == r.target {
			os.Remove(link)
		}
		gone = append(gone, r)
	}
	if len(gone) == 0 {
		return
	}
	repos := m.Config.Repos
	if m.full() {
		repos, _ = findRepos(m.root())
	}
	live := map[string]bool{}
	if err := livePoolRefs(m.root(), repos, live); err != nil {
		m.Log.Warn("sync: cannot read the live package links; replaced packages stay", "err", err)
		return
	}
	n := 0
	for _, r := range gone {
		if !live[r.pool] && os.Remove(filepath.Join(m.root(), filepath.FromSlash(r.pool))) == nil {
			n++
		}
	}
	if err := m.writeRetired(keep); err != nil {
		m.Log.Warn("sync: cannot record the replaced packages", "err", err)
	}
	if n > 0 {
		m.Log.Info("sync: removed packages replaced more than "+retireGrace.String()+" ago", "count", n)
	}
}

func (m *Manager) retiredLinks() []retiredLink {
	out, _ := readRetired(m.Config.StateDir)
	return out
}

func readRetired(stateDir string) ([]retiredLink, error) {
	f, err := os.Open(filepath.Join(stateDir, retiredFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []retiredLink
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(out) < maxRetired {
		parts := strings.Split(sc.Text(), "\t")
		if len(parts) != 4 {
			continue
		}
		sec, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil || !safeName(parts[1]) || !safeName(parts[2]) || isDBFile(parts[1], parts[2]) {
			continue
		}
		if now := time.Now().Unix(); sec > now {
			sec = now // a record from the future would keep its packages for ever
		}
		p, ok := linkTarget(parts[1], parts[3])
		if !ok || !strings.HasPrefix(p, "pool/") {
			continue
		}
		out = append(out, retiredLink{since: time.Unix(sec, 0), repo: parts[1], name: parts[2], target: parts[3], pool: p})
	}
	return out, sc.Err()
}

func (m *Manager) writeRetired(rs []retiredLink) error {
	path := filepath.Join(m.Config.StateDir, retiredFile)
	if len(rs) == 0 {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%d\t%s\t%s\t%s\n", r.since.Unix(), r.repo, r.name, r.target)
	}
	return writeFileAtomic(path, []byte(b.String()), 0o640)
}

// Retired returns what a sync keeps of the packages it replaced (mirror-relative paths of
// the links and their pool files), for `amwi verify`.
func Retired(stateDir string) []string {
	rs, _ := readRetired(stateDir)
	out := make([]string, 0, 2*len(rs))
	for _, r := range rs {
		out = append(out, layout.RepoDir(r.repo)+"/"+r.name, r.pool)
	}
	return out
}
