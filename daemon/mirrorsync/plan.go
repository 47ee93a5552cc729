package mirrorsync

import (
	"errors"
	"fmt"
	"github.com/amwi/amwi/internal/layout"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FullMirror in mirror.repos means "everything upstream", Arch's own full sync.
const FullMirror = "*"

// filesExcluded are never fetched (Arch's recommendation).
var filesExcluded = []string{"--exclude=*.links.tar.gz*"}

// modes are the permissions every fetched file and folder gets, whatever upstream's are:
// an upstream's setuid bits or world-writable folders never reach the mirror.
const modes = "--chmod=D755,F644"

// fullMirrorExcludes are Arch's excludes for a full mirror. lastupdate and lastsync are
// written by amwi itself, once everything else is in place.
var fullMirrorExcludes = []string{"--exclude=/other", "--exclude=/sources", "--exclude=/lastupdate", "--exclude=/lastsync"}

// repoFilters selects the repos' os/x86_64 trees and nothing else. What the filters
// exclude is protected from --delete on our side.
func repoFilters(repos []string) []string {
	out := append([]string(nil), filesExcluded...)
	for _, r := range repos {
		// A repo dir holds files and links; a folder in it is nobody's (and unchecked).
		out = append(out, "--include=/"+r+"/", "--include=/"+r+"/os/", "--exclude=/"+layout.RepoDir(r)+"/*/", "--include=/"+layout.RepoDir(r)+"/***")
	}
	return append(out, "--exclude=*")
}

// stageFilters is what the staging rsync takes: the repos' os/x86_64 trees and the
// upstream's lastupdate, which says how new the databases fetched in the same transfer are.
func stageFilters(repos []string) []string {
	if len(repos) == 1 && repos[0] == FullMirror {
		return append([]string{"--include=/lastupdate"}, fullStageFilters()...)
	}
	return append([]string{"--include=/lastupdate"}, repoFilters(repos)...)
}

// fullStageFilters selects every repo's os/x86_64 tree (a full mirror's staging): any
// top-level dir but the pool and the trees that are not repos.
func fullStageFilters() []string {
	out := append([]string(nil), filesExcluded...)
	out = append(out, "--exclude=/pool/", "--exclude=/iso/", "--exclude=/images/", "--exclude=/other/", "--exclude=/sources/", "--exclude=/.*",
		"--include=/*/", "--include=/*/os/", "--exclude=/*/os/"+layout.Arch+"/*/", "--include=/*/os/"+layout.Arch+"/***")
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

// livePoolRefs adds to refs the pool files the live repos' links lead to.
func livePoolRefs(root string, repos []string, refs map[string]bool) error {
	for _, r := range repos {
		dir := layout.RepoPath(root, r)
		des, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, de := range des {
			if de.Type()&fs.ModeSymlink == 0 {
				continue
			}
			t, err := os.Readlink(filepath.Join(dir, de.Name()))
			if err != nil {
				return err
			}
			if p, ok := linkTarget(r, t); ok && strings.HasPrefix(p, "pool/") {
				refs[p] = true
			}
		}
	}
	return nil
}

// prunePool removes pool files that refs does not name (what the live repos link to, and
// what a sync keeps for a while). With a non-zero fresh ("used" mode), a file put in place
// since then is kept too, checked just before its removal: a package fetched on demand
// while the run ran (keepFresh's earlier walk cannot see one renamed in after it). It
// returns what it removed.
func prunePool(root string, refs map[string]bool, fresh time.Time) (removed []string, err error) {
	pools, err := os.ReadDir(filepath.Join(root, "pool"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("prune pool: %w", err)
	}
	for _, p := range pools {
		if !p.IsDir() {
			continue
		}
		dir := filepath.Join(root, "pool", p.Name())
		names := dirNames(dir)
		for _, name := range names {
			rel := "pool/" + p.Name() + "/" + name
			if refs[rel] || (!fresh.IsZero() && isFresh(filepath.Join(dir, name), fresh)) {
				continue
			}
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return removed, fmt.Errorf("prune pool: %w", err)
			}
			removed = append(removed, rel)
		}
	}
	return removed, nil
}

// removeUnselectedRepos removes the trees of repos no longer selected: top-level dirs that
// look like repos (they hold os/). It returns what it removed.
func removeUnselectedRepos(root string, repos []string) (removed []string, err error) {
	selected := map[string]bool{}
	for _, r := range repos {
		selected[r] = true
	}
	des, err := os.ReadDir(root)
	if err != nil {
		return nil, err
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

// removeLeftovers deletes what an interrupted run left: rsync's .~tmp~ staging dirs
// (--delay-updates) anywhere in the tree, the temporary files of amwi's transfers, and the
// .NAME.XXXXXX temporary files older amwi versions left in pool/. It goes before any space
// check: leftovers may be what filled the disk.
func removeLeftovers(root string) (removed []string, err error) {
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real // a mirror root that is a link (to another disk) is walked too
	}
	if err := os.RemoveAll(filepath.Join(root, workDir, "replace")); err != nil {
		return nil, err
	}
	tmp := filepath.Join(root, workDir, "tmp")
	if des, err := os.ReadDir(tmp); err == nil {
		for _, de := range des {
			if err := os.RemoveAll(filepath.Join(tmp, de.Name())); err != nil {
				return removed, err
			}
			removed = append(removed, filepath.Join(tmp, de.Name()))
		}
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != root && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			if d.Name()[0] == '.' && filepath.Base(filepath.Dir(filepath.Dir(p))) == "pool" {
				if err := os.Remove(p); err != nil {
					return err
				}
				removed = append(removed, p)
			}
			return nil
		}
		switch {
		case p == filepath.Join(root, workDir):
			return filepath.SkipDir
		case d.Name() == tmpDirName:
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
