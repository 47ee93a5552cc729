package mirrorsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/amwi/amwi/internal/layout"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// VerifyOptions says how thoroughly Verify looks.
type VerifyOptions struct {
	// Full reads every package file and compares it with the database's %SHA256SUM%; the
	// reading runs at idle I/O priority and nice 19.
	Full bool
	// Progress, when set, is called every ~250 ms and at the end.
	Progress func(VerifyProgress)
	// OnDamaged, when set, gets the path of every package file of the wrong size or (Full)
	// the wrong SHA-256: what `amwi verify --repair` removes.
	OnDamaged func(path string)
	// SkipLeftovers leaves staging leftovers uncounted: a sync is running, and its
	// temporary files are not left over.
	SkipLeftovers bool
	// Used checks a "used" mode mirror: a pool file that is absent is fetchable, not a gap.
	Used bool
	// known are repo dirs read already (the sync's, just published).
	known map[string]*repoDir
	// Keep are mirror-relative paths (links, pool files) not counted as unreferenced: the
	// packages a sync replaced and keeps for a while (Retired).
	Keep []string
}

// VerifyProgress is how far a verification got.
type VerifyProgress struct {
	Files, TotalFiles int
	Bytes, TotalBytes int64
}

// Verification is the record of one `amwi verify`, kept in the state dir for the dashboard.
type Verification struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Full   bool      `json:"full"`
	Report Report    `json:"report"`
}

// VerifyFile is where the last verification's record is kept, in the state dir.
const VerifyFile = "verify.json"

// Verify checks the mirror under root against its own databases: every file they name, and
// its .sig, must be there with the named size (and, with Full, the named SHA-256); no link
// may dangle; no staging leftovers; files nothing names are counted as unreferenced.
// repos nil (or FullMirror) checks every repo found under root.
func Verify(ctx context.Context, root string, repos []string, o VerifyOptions) (*Report, error) {
	return verifyRepos(ctx, root, repos, o, true)
}

// verifyRepos is Verify; without thorough, links are followed rather than read and
// unreferenced files are not looked for (the sync's check of its live dirs, whose links it
// checked when it staged them, and whose pool it prunes).
func verifyRepos(ctx context.Context, root string, repos []string, o VerifyOptions, thorough bool) (*Report, error) {
	if len(repos) == 0 || (len(repos) == 1 && repos[0] == FullMirror) {
		var err error
		if repos, err = findRepos(root); err != nil {
			return nil, err
		}
	}
	var (
		rep  *Report
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		if o.Full {
			// This goroutine's thread reads the whole mirror: it alone goes to the idle
			// I/O class and nice 19, and is retired afterwards (never unlocked).
			runtime.LockOSThread()
			setIdlePriority(0)
		}
		rep, err = verify(ctx, root, repos, o, thorough)
	}()
	<-done
	return rep, err
}

func verify(ctx context.Context, root string, repos []string, o VerifyOptions, thorough bool) (*Report, error) {
	rep := &Report{onDamaged: o.OnDamaged, used: o.Used}
	refs := map[string]bool{}
	keep := map[string]bool{}
	for _, p := range o.Keep {
		keep[p] = true
	}
	var dirs []*repoDir
	var prog VerifyProgress
	for _, repo := range repos {
		d, err := o.known[repo], error(nil)
		if d == nil {
			d, err = readRepoDir(layout.RepoPath(root, repo), repo, thorough)
		}
		if errors.Is(err, fs.ErrNotExist) && d == nil {
			err = fmt.Errorf("not on the mirror (not synced yet?): %w", err)
		}
		if err != nil {
			rep.addRepo(repo)
			rep.failed(repo, err)
			continue
		}
		dirs = append(dirs, d)
		d.poolRefs(refs)
		for _, f := range d.files {
			prog.TotalFiles++
			prog.TotalBytes += f.size
		}
	}
	var (
		files atomic.Int64
		bytes atomic.Int64
	)
	stop := make(chan struct{})
	ticked := make(chan struct{})
	if o.Progress != nil {
		go func() {
			defer close(ticked)
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					p := prog
					p.Files, p.Bytes = int(files.Load()), bytes.Load()
					o.Progress(p)
				}
			}
		}()
	} else {
		close(ticked)
	}
	rep.onFile = func(f dbFile) {
		files.Add(1)
		bytes.Add(f.size)
	}
	var hash hashFunc
	if o.Full {
		hash = func(path string, f dbFile) (bool, int64, error) {
			if err := ctx.Err(); err != nil {
				return false, 0, err
			}
			return sha256File(path, f)
		}
	}
	for _, d := range dirs {
		d.check(root, rep, hash, nil)
		if err := ctx.Err(); err != nil {
			close(stop)
			<-ticked
			return rep, err
		}
		if thorough {
			unreferencedInDir(d, rep, keep)
		}
	}
	close(stop)
	<-ticked
	if o.Progress != nil {
		p := prog
		p.Files, p.Bytes = int(files.Load()), bytes.Load()
		o.Progress(p)
	}
	for p := range keep {
		refs[p] = true
	}
	if thorough {
		if err := unreferencedInPool(root, refs, rep); err != nil {
			rep.failed("pool", err)
		}
	}
	if !o.SkipLeftovers {
		leftovers(root, repos, rep)
	}
	return rep, nil
}

// findRepos lists the repos under root: top-level dirs with os/x86_64/NAME.db.
func findRepos(root string) ([]string, error) {
	des, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range des {
		if !de.IsDir() || !safeName(de.Name()) || de.Name() == "pool" {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, de.Name(), "os", layout.Arch, dbName(de.Name()))); err == nil {
			out = append(out, de.Name())
		}
	}
	return out, nil
}

// unreferencedInDir counts entries of a repo dir that are neither named by its database
// (with their .sig) nor one of its database files.
func unreferencedInDir(d *repoDir, rep *Report, keep map[string]bool) {
	named := make(map[string]bool, 2*len(d.files))
	for _, f := range d.files {
		named[f.name], named[f.name+".sig"] = true, true
	}
	check := func(name string) {
		if named[name] || keep[layout.RepoDir(d.repo)+"/"+name] || strings.HasPrefix(name, d.repo+".db") || strings.HasPrefix(name, d.repo+".files") || strings.HasPrefix(name, d.repo+".links") {
			return
		}
		rep.Unreferenced++
		rep.problem(layout.RepoDir(d.repo)+"/"+name, "not named by "+dbName(d.repo))
	}
	for name := range d.links {
		check(name)
	}
	for name := range d.regs {
		check(name)
	}
}

// unreferencedInPool counts pool files no checked repo links to.
func unreferencedInPool(root string, refs map[string]bool, rep *Report) error {
	pools, err := os.ReadDir(filepath.Join(root, "pool"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var extra []string
	for _, p := range pools {
		if !p.IsDir() || !safeName(p.Name()) {
			continue
		}
		des, err := os.ReadDir(filepath.Join(root, "pool", p.Name()))
		if err != nil {
			return err
		}
		for _, de := range des {
			rel := "pool/" + p.Name() + "/" + de.Name()
			if !de.IsDir() && !refs[rel] && safeName(de.Name()) {
				rep.Unreferenced++
				if len(extra) < maxProblems {
					extra = append(extra, rel)
				}
			}
		}
	}
	sort.Strings(extra)
	for _, e := range extra {
		rep.problem(e, "no repo links to it")
	}
	return nil
}

// leftovers counts what an interrupted sync left: rsync's .~tmp~ staging dirs in the
// repos, and files in amwi's own temporary dir.
func leftovers(root string, repos []string, rep *Report) {
	for _, repo := range repos {
		p := filepath.Join(root, repo, "os", layout.Arch, tmpDirName)
		if _, err := os.Lstat(p); err == nil {
			rep.Leftovers++
			rep.problem(layout.RepoDir(repo)+"/"+tmpDirName, "staging leftover")
		}
	}
	des, _ := os.ReadDir(filepath.Join(root, workDir, "tmp"))
	if len(des) > 0 {
		rep.Leftovers += len(des)
		rep.problem(workDir+"/tmp/", fmt.Sprintf("%d temporary files of an interrupted transfer", len(des)))
	}
}

// tmpDirName is where rsync --delay-updates stages files.
const tmpDirName = ".~tmp~"

// readBufs are the buffers files are hashed through: large enough for an SD card to read
// in long runs, and reused (a sync hashes tens of thousands of packages).
var readBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyBuf copies r into h through a pooled buffer.
func copyBuf(h hash.Hash, r io.Reader) (int64, error) {
	b := readBufs.Get().(*[]byte)
	defer readBufs.Put(b)
	// Hidden behind a plain Reader: *os.File's WriteTo would copy through 32 KiB buffers
	// of its own.
	return io.CopyBuffer(h, struct{ io.Reader }{r}, *b)
}

// SaveVerification writes v to the state dir (atomically) for the dashboard.
func SaveVerification(stateDir string, v Verification) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(stateDir, VerifyFile), append(b, '\n'), 0o640)
}

// LastVerification is the last `amwi verify`'s record; nil when there was none.
func (m *Manager) LastVerification() (*Verification, error) {
	return LastVerification(m.Config.StateDir)
}

// LastVerification reads the last verification's record in stateDir; nil when there was
// none.
func LastVerification(stateDir string) (*Verification, error) {
	f, err := os.Open(filepath.Join(stateDir, VerifyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var v Verification
	if err := json.NewDecoder(io.LimitReader(f, 1<<20)).Decode(&v); err != nil {
		return nil, fmt.Errorf("read %s: %w", VerifyFile, err)
	}
	return &v, nil
}

// writeFileAtomic writes a file next to its place and renames it there, synced, so a
// power cut leaves the old content or the new, never half.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
