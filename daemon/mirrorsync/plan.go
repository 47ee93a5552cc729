package mirrorsync

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// arch is the only architecture Arch Linux publishes.
const arch = "x86_64"

// FullMirror in mirror.repos means "everything upstream", Arch's own full sync.
const FullMirror = "*"

// filesExcluded are never fetched (Arch's recommendation).
var filesExcluded = []string{"--exclude=*.links.tar.gz*"}

// fullMirrorExcludes are Arch's excludes for a full mirror. lastupdate and lastsync are
// fetched last, on their own, so they change only once everything else is in place.
var fullMirrorExcludes = []string{"--exclude=/other", "--exclude=/sources", "--exclude=/lastupdate", "--exclude=/lastsync"}

// repoFilters selects the repos' os/x86_64 trees and nothing else. Excluded paths on our
// side are protected from --delete, so pool/ (managed by poolFiles) stays put.
func repoFilters(repos []string) []string {
	out := append([]string(nil), filesExcluded...)
	for _, r := range repos {
		out = append(out, "--include=/"+r+"/", "--include=/"+r+"/os/", "--include=/"+r+"/os/"+arch+"/***")
	}
	return append(out, "--exclude=*")
}

// onlyTopFiles fetches just the named files at the top of the tree.
func onlyTopFiles(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, "--include=/"+n)
	}
	return append(out, "--exclude=*")
}

// listEntry is one line of `rsync --list-only`.
type listEntry struct {
	Path   string
	Link   string // symlink target, "" for other kinds
	IsLink bool
}

var listRe = regexp.MustCompile(`^([-dlpcbs][-rwxsStT]{9})\s+[\d,.]+\s+\d{4}/\d\d/\d\d\s+\d\d:\d\d:\d\d\s+(.+)$`)

// parseList reads `rsync --list-only -r` output.
func parseList(r io.Reader) ([]listEntry, error) {
	var out []listEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := listRe.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		e := listEntry{Path: m[2]}
		if m[1][0] == 'l' {
			name, target, ok := strings.Cut(m[2], " -> ")
			if !ok {
				continue
			}
			e = listEntry{Path: name, Link: target, IsLink: true}
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// poolRefs returns the pool files (relative to the mirror root) that the symlinks of the
// listing point to, sorted. A link that leaves the tree or points outside pool/ is ignored:
// --safe-links would not copy it either.
func poolRefs(entries []listEntry) []string {
	set := map[string]bool{}
	for _, e := range entries {
		if !e.IsLink || path.IsAbs(e.Link) {
			continue
		}
		p := path.Clean(path.Join(path.Dir(e.Path), e.Link))
		if strings.HasPrefix(p, "pool/") && !strings.Contains(p, "..") {
			set[p] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// localPoolRefs reads the symlinks of the local repos' os/x86_64 dirs.
func localPoolRefs(root string, repos []string) (map[string]bool, error) {
	refs := map[string]bool{}
	for _, r := range repos {
		dir := filepath.Join(root, r, "os", arch)
		des, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var entries []listEntry
		for _, de := range des {
			if de.Type()&fs.ModeSymlink == 0 {
				continue
			}
			target, err := os.Readlink(filepath.Join(dir, de.Name()))
			if err != nil {
				return nil, err
			}
			entries = append(entries, listEntry{Path: r + "/os/" + arch + "/" + de.Name(), Link: target, IsLink: true})
		}
		for _, p := range poolRefs(entries) {
			refs[p] = true
		}
	}
	return refs, nil
}

// pruneSelection removes what a selective mirror no longer needs: pool files no selected
// repo links to, and the trees of repos no longer selected. It returns what it removed.
// Only pool/ files and top-level dirs that look like repos (they hold os/) are touched.
func pruneSelection(root string, repos []string) (removed []string, err error) {
	refs, err := localPoolRefs(root, repos)
	if err != nil {
		return nil, fmt.Errorf("read package links: %w", err)
	}
	poolDir := filepath.Join(root, "pool")
	err = filepath.WalkDir(poolDir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == poolDir {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if !refs[filepath.ToSlash(rel)] {
			if err := os.Remove(p); err != nil {
				return err
			}
			removed = append(removed, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("prune pool: %w", err)
	}
	selected := map[string]bool{}
	for _, r := range repos {
		selected[r] = true
	}
	des, err := os.ReadDir(root)
	if err != nil {
		return removed, err
	}
	for _, de := range des {
		if !de.IsDir() || selected[de.Name()] || de.Name() == "pool" || de.Name()[0] == '.' {
			continue
		}
		if fi, err := os.Stat(filepath.Join(root, de.Name(), "os")); err == nil && fi.IsDir() {
			if err := os.RemoveAll(filepath.Join(root, de.Name())); err != nil {
				return removed, fmt.Errorf("remove unselected repo %s: %w", de.Name(), err)
			}
			removed = append(removed, de.Name()+"/")
		}
	}
	return removed, nil
}

// removeStaleTmp deletes the .~tmp~ staging dirs an interrupted rsync --delay-updates left.
func removeStaleTmp(root string) (removed []string, err error) {
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".~tmp~" {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			removed = append(removed, p)
			return filepath.SkipDir
		}
		return nil
	})
	return removed, err
}
