package mirrorsync

import (
	"bufio"
	"fmt"
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

// retire runs after a publish: the links the new dirs lack (replaced) are put back and
// recorded, as are the recorded ones still within the grace; it returns what is kept,
// whose pool files the prune must keep too.
func (m *Manager) retire(replaced []retiredLink) []retiredLink {
	now := m.now()
	seen := map[string]bool{}
	var kept []retiredLink
	add := func(r retiredLink) {
		key := r.repo + "/" + r.name
		if seen[key] || len(kept) >= maxRetired {
			return
		}
		seen[key] = true
		link := filepath.Join(m.root(), r.repo, "os", arch, r.name)
		if _, err := os.Lstat(link); err == nil {
			return // the new state has it (again): nothing to keep
		}
		if _, err := os.Stat(filepath.Join(m.root(), filepath.FromSlash(r.pool))); err != nil {
			return
		}
		if err := os.Symlink(r.target, link); err != nil {
			return
		}
		kept = append(kept, r)
	}
	for _, r := range m.retiredLinks() {
		if now.Sub(r.since) < retireGrace {
			add(r)
		}
	}
	for _, r := range replaced {
		if !seen[r.repo+"/"+r.name] {
			r.since = now
			add(r)
		}
	}
	if err := m.writeRetired(kept); err != nil {
		m.Log.Warn("sync: cannot record the replaced packages; they go at the next run", "err", err)
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
	for _, r := range all {
		if m.now().Sub(r.since) < retireGrace {
			keep = append(keep, r)
			continue
		}
		link := filepath.Join(m.root(), r.repo, "os", arch, r.name)
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
		if err != nil || !safeName(parts[1]) || !safeName(parts[2]) {
			continue
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
		out = append(out, r.repo+"/os/"+arch+"/"+r.name, r.pool)
	}
	return out
}
