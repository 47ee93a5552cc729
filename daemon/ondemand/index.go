package ondemand

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/amwi/amwi/daemon/repodb"
	"github.com/amwi/amwi/internal/layout"
)

// entry is what the database says about one package file: enough to fetch it and to
// check what arrived. Sums are kept as bytes, not hex strings: extra.db has ~15,000
// packages and the index lives as long as the daemon.
type entry struct {
	size int64
	sum  [32]byte
	// The decoded %PGPSIG%'s SHA-256 and length (0: the database has none). Not its bytes:
	// a signature is 100–600 bytes, more than the rest of the entry, for every package.
	sigSum [32]byte
	sigLen int32
	sigBad bool // %PGPSIG% present but not base64: the .sig cannot be checked, so it is not fetched
}

// repoIndex maps a repo's %FILENAME%s to their entries.
type repoIndex map[string]entry

// sigSuffix names a package's detached signature.
const sigSuffix = ".sig"

// Reload reads the live databases ($root/$repo/os/x86_64/$repo.db) of repos into the index,
// which then names exactly these repos. A repo whose database cannot be read keeps the
// entries it had (the previous database is still the best guess of what its links point
// to), and the error names it; the other repos are reloaded all the same.
func (f *Fetcher) Reload(repos []string) error {
	f.reloadMu.Lock()
	defer f.reloadMu.Unlock()
	old := *f.index.Load()
	next := make(map[string]repoIndex, len(repos))
	var errs []error
	for _, repo := range repos {
		if !plainName(repo) {
			errs = append(errs, fmt.Errorf("ondemand: repo %q is not a plain directory name", repo))
			continue
		}
		idx, skipped, err := readRepo(f.rootPath, repo)
		if err != nil {
			errs = append(errs, fmt.Errorf("ondemand: reload repo %s: %w", repo, err))
			if prev, ok := old[repo]; ok {
				next[repo] = prev
			}
			continue
		}
		if skipped > 0 {
			f.log.Warn("ondemand: database entries without a usable name, size or sha256 are not fetchable",
				"repo", repo, "skipped", skipped)
		}
		next[repo] = idx
	}
	f.index.Store(&next)
	return errors.Join(errs...)
}

// readRepo reads one repo's database into an index; skipped counts entries that cannot be
// fetched safely (no sha256 to check against, an odd file name, no size).
func readRepo(root, repo string) (repoIndex, int, error) {
	path := layout.DBPath(root, repo)
	fh, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer fh.Close()
	idx := make(repoIndex)
	skipped := 0
	err = repodb.Walk(fh, path, repodb.Limits{}, func(p *repodb.Package) error {
		var e entry
		if !plainName(p.Filename) || strings.HasSuffix(p.Filename, sigSuffix) || p.CSize <= 0 ||
			len(p.SHA256Sum) != 2*len(e.sum) {
			skipped++
			return nil
		}
		if _, err := hex.Decode(e.sum[:], []byte(p.SHA256Sum)); err != nil {
			skipped++
			return nil
		}
		e.size = p.CSize
		if p.PGPSig != "" {
			sig, err := base64.StdEncoding.DecodeString(p.PGPSig)
			if err != nil || len(sig) == 0 || len(sig) > maxSig {
				e.sigBad = true
			} else {
				e.sigSum, e.sigLen = sha256.Sum256(sig), int32(len(sig))
			}
		}
		// A copy: p.Filename may share the backing array of the whole desc text, which
		// the index would then keep alive for every package.
		idx[strings.Clone(p.Filename)] = e
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return idx, skipped, nil
}

// plainName is a single visible path element: what a repo or a package file may be called.
func plainName(s string) bool {
	return s != "" && s[0] != '.' && !strings.ContainsAny(s, "/\\\x00")
}

// splitName takes a mirror-relative "$repo/os/x86_64/FILE" apart.
func splitName(name string) (repo, file string, ok bool) {
	repo, rest, ok := strings.Cut(name, "/")
	if !ok || !plainName(repo) {
		return "", "", false
	}
	file, ok = strings.CutPrefix(rest, "os/"+layout.Arch+"/")
	if !ok || !plainName(file) {
		return "", "", false
	}
	return repo, file, true
}

// lookup finds name in the index: the package's entry, and whether name is its .sig.
func (f *Fetcher) lookup(name string) (repo, file string, e entry, isSig bool, ok bool) {
	repo, file, ok = splitName(name)
	if !ok {
		return "", "", entry{}, false, false
	}
	idx := (*f.index.Load())[repo]
	if e, ok = idx[file]; ok {
		return repo, file, e, false, true
	}
	if pkg, cut := strings.CutSuffix(file, sigSuffix); cut {
		if e, ok = idx[pkg]; ok && !e.sigBad {
			return repo, file, e, true, true
		}
	}
	return "", "", entry{}, false, false
}

// Named reports whether name (mirror-relative, e.g. "core/os/x86_64/foo-1.0-1-x86_64.pkg.tar.zst"
// or its ".sig") is a file a loaded database names, i.e. one ServeMiss may fetch.
func (f *Fetcher) Named(name string) bool {
	_, _, _, _, ok := f.lookup(name)
	return ok
}
