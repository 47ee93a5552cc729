// Command synctree builds and measures what `make bench` uses to size a sync at Arch's
// scale.
//
//	synctree build -data ../shared/data/arch-real/alpm.rs-sync -out DIR [-packages 15500] [-scale 128]
//	synctree measure [-label L -log FILE] -- COMMAND ARGS...
//	synctree report FILE
//
// build writes an Arch-shaped upstream tree from the real 2019 sync databases: core,
// extra and multilib with their real names, versions and descriptions, extra's packages
// repeated under new names until there are -packages of them (today's core+extra+multilib
// hold ~15,500, so ~31,000 pool files with their .sig), each package a file of its real
// %CSIZE% divided by -scale (random bytes) with a .sig beside it, in pool/packages and
// pool/community, linked from REPO/os/x86_64, and databases (gzip tar, desc v1) whose
// %CSIZE% and %SHA256SUM% are the files'. It is not made with repo-add: packing 15,500
// packages would take minutes; the databases are what repo-add writes, entry for entry.
//
// measure runs a command and prints, as JSON, its wall time, the CPU time of it and every
// descendant it waited for (amwi, its rsync guard and rsync), and the peak of the summed
// RSS of its process tree, sampled every 20 ms; with -log it appends that, labelled, to
// FILE. report prints the median of each label and the ratios `make bench` quotes.
package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/amwi/amwi/daemon/repodb"
	"github.com/amwi/amwi/internal/layout"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: synctree build|measure …")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = build(os.Args[2:])
	case "measure":
		err = measure(os.Args[2:])
	case "report":
		err = report(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "synctree:", err)
		os.Exit(1)
	}
}

type pkg struct {
	repodb.Package
	pool string
}

func build(args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	data := fs.String("data", "../shared/data/arch-real/alpm.rs-sync", "folder with the real core.db, extra.db, multilib.db")
	out := fs.String("out", "", "where to write the tree")
	total := fs.Int("packages", 15500, "packages in all")
	scale := fs.Int64("scale", 128, "divide each package's real size by this")
	fs.Parse(args)
	if *out == "" {
		return fmt.Errorf("-out is required")
	}
	repos := map[string][]pkg{}
	n := 0
	for _, r := range []string{"core", "extra", "multilib"} {
		ps, err := repodb.Read(filepath.Join(*data, r+".db"), repodb.Limits{})
		if err != nil {
			return fmt.Errorf("%w (the real databases are in ../shared/data/arch-real/alpm.rs-sync; pass -data)", err)
		}
		for i, p := range ps {
			pool := "packages"
			if r == "multilib" || (r == "extra" && i%2 == 1) {
				pool = "community"
			}
			repos[r] = append(repos[r], pkg{p, pool})
		}
		n += len(ps)
	}
	// extra's packages again under new names until there are enough.
	base := repos["extra"]
	for copyN := 2; n < *total; copyN++ {
		for _, p := range base {
			if n >= *total {
				break
			}
			c := p
			suffix := "-r" + strconv.Itoa(copyN)
			c.Name += suffix
			c.Filename = strings.Replace(c.Filename, p.Name+"-", c.Name+"-", 1)
			repos["extra"] = append(repos["extra"], c)
			n++
		}
	}
	for r, ps := range repos {
		if err := writeRepo(*out, r, ps, *scale); err != nil {
			return err
		}
	}
	stamp := []byte(strconv.FormatInt(time.Now().Unix(), 10) + "\n")
	for _, f := range []string{"lastupdate", "lastsync"} {
		if err := os.WriteFile(filepath.Join(*out, f), stamp, 0o644); err != nil {
			return err
		}
	}
	for _, d := range []string{"iso/2019.06.01", "other/archboot", "sources/packages"} {
		os.MkdirAll(filepath.Join(*out, d), 0o755)
		os.WriteFile(filepath.Join(*out, d, "README"), []byte(d+"\n"), 0o644)
	}
	fmt.Printf("%s: %d packages, %d pool files\n", *out, n, 2*n)
	return nil
}

func writeRepo(root, repo string, ps []pkg, scale int64) error {
	dir := layout.RepoPath(root, repo)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dbPath := filepath.Join(dir, repo+".db.tar.gz")
	f, err := os.Create(dbPath)
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, p := range ps {
		poolDir := filepath.Join(root, "pool", p.pool)
		if err := os.MkdirAll(poolDir, 0o755); err != nil {
			return err
		}
		size := max(512, p.CSize/scale)
		sum, err := writeRandom(filepath.Join(poolDir, p.Filename), size, p.Filename)
		if err != nil {
			return err
		}
		if _, err := writeRandom(filepath.Join(poolDir, p.Filename+".sig"), 310, p.Filename+".sig"); err != nil {
			return err
		}
		for _, ext := range []string{"", ".sig"} {
			if err := os.Symlink("../../../pool/"+p.pool+"/"+p.Filename+ext, filepath.Join(dir, p.Filename+ext)); err != nil {
				return err
			}
		}
		p.CSize, p.SHA256Sum = size, sum
		entry := p.Name + "-" + p.Version
		desc := []byte(descOf(p.Package))
		tw.WriteHeader(&tar.Header{Name: entry + "/", Typeflag: tar.TypeDir, Mode: 0o755})
		tw.WriteHeader(&tar.Header{Name: entry + "/desc", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(desc))})
		tw.Write(desc)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	b, _ := os.ReadFile(dbPath)
	for _, name := range []string{repo + ".files.tar.gz", repo + ".db.tar.gz.old", repo + ".files.tar.gz.old"} {
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	os.Symlink(repo+".db.tar.gz", filepath.Join(dir, repo+".db"))
	os.Symlink(repo+".files.tar.gz", filepath.Join(dir, repo+".files"))
	return nil
}

// descOf writes a desc file as repo-add does (format v1).
func descOf(p repodb.Package) string {
	var b strings.Builder
	sec := func(k string, vs ...string) {
		var keep []string
		for _, v := range vs {
			if v != "" {
				keep = append(keep, v)
			}
		}
		if len(keep) > 0 {
			fmt.Fprintf(&b, "%%%s%%\n%s\n\n", k, strings.Join(keep, "\n"))
		}
	}
	sec("FILENAME", p.Filename)
	sec("NAME", p.Name)
	sec("BASE", p.Base)
	sec("VERSION", p.Version)
	sec("DESC", p.Desc)
	sec("GROUPS", p.Groups...)
	sec("CSIZE", strconv.FormatInt(p.CSize, 10))
	sec("ISIZE", strconv.FormatInt(p.ISize, 10))
	sec("SHA256SUM", p.SHA256Sum)
	sec("URL", p.URL)
	sec("LICENSE", p.Licenses...)
	sec("ARCH", p.Arch)
	sec("BUILDDATE", strconv.FormatInt(p.BuildDate, 10))
	sec("PACKAGER", p.Packager)
	sec("REPLACES", p.Replaces...)
	sec("CONFLICTS", p.Conflicts...)
	sec("PROVIDES", p.Provides...)
	sec("DEPENDS", p.Depends...)
	sec("OPTDEPENDS", p.OptDepends...)
	sec("MAKEDEPENDS", p.MakeDepends...)
	return b.String()
}

// writeRandom writes n pseudo-random bytes seeded by seed and returns their SHA-256.
func writeRandom(path string, n int64, seed string) (string, error) {
	var s uint64
	for _, c := range seed {
		s = s*31 + uint64(c)
	}
	r := rand.New(rand.NewPCG(s, 0x616d7769))
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:]), os.WriteFile(path, buf, 0o644)
}

// measure runs args and reports wall time, CPU of the whole waited-for tree, peak RSS.
func measure(args []string) error {
	fs := flag.NewFlagSet("measure", flag.ExitOnError)
	label := fs.String("label", "", "what this is, for report")
	logPath := fs.String("log", "", "append the result to this file")
	fs.Parse(args)
	args = fs.Args()
	if len(args) == 0 {
		return fmt.Errorf("measure: no command")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	peak := int64(0)
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if kb := treeRSS(cmd.Process.Pid); kb > peak {
				peak = kb
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	wall := time.Since(start)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	res := result{Label: *label, Wall: wall.Seconds(), CPU: cpu.Seconds(), PeakKiB: peak, Exit: cmd.ProcessState.ExitCode()}
	json.NewEncoder(os.Stdout).Encode(res)
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		json.NewEncoder(f).Encode(res)
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	return nil
}

type result struct {
	Label   string  `json:"label"`
	Wall    float64 `json:"wall_s"`
	CPU     float64 `json:"cpu_s"`
	PeakKiB int64   `json:"peak_rss_kib"`
	Exit    int     `json:"exit"`
}

// report prints each label's medians and the ratios of amwi to plain rsync.
func report(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("report FILE")
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	by := map[string][]result{}
	var order []string
	dec := json.NewDecoder(strings.NewReader(string(b)))
	for dec.More() {
		var r result
		if err := dec.Decode(&r); err != nil {
			return err
		}
		if _, ok := by[r.Label]; !ok {
			order = append(order, r.Label)
		}
		by[r.Label] = append(by[r.Label], r)
	}
	med := map[string]result{}
	fmt.Printf("%-34s %5s %9s %9s %10s\n", "measure", "runs", "wall s", "cpu s", "peak MiB")
	for _, l := range order {
		rs := by[l]
		m := result{Label: l, Wall: median(rs, func(r result) float64 { return r.Wall }), CPU: median(rs, func(r result) float64 { return r.CPU }),
			PeakKiB: int64(median(rs, func(r result) float64 { return float64(r.PeakKiB) }))}
		med[l] = m
		fmt.Printf("%-34s %5d %9.3f %9.3f %10.1f\n", l, len(rs), m.Wall, m.CPU, float64(m.PeakKiB)/1024)
	}
	ratio := func(name, a, b string) {
		x, okx := med[a]
		y, oky := med[b]
		if okx && oky && y.Wall > 0 && y.CPU > 0 {
			fmt.Printf("%-44s wall %.2fx  cpu %.2fx\n", name, x.Wall/y.Wall, x.CPU/y.CPU)
		}
	}
	fmt.Println()
	ratio("forced no-change sync / rsync of the pool", "amwi-forced-nochange", "rsync-pool-nochange")
	ratio("forced no-change sync / Arch's rsync, same repos", "amwi-forced-nochange", "rsync-arch-nochange")
	ratio("rsync of the repos' links alone / of the pool", "rsync-links-nochange", "rsync-pool-nochange")
	ratio("first sync / rsync of the pool", "amwi-first", "rsync-pool-first")
	ratio("verify --full / sha256sum", "amwi-verify-full", "sha256sum")
	if m, ok := med["amwi-first"]; ok {
		fmt.Printf("%-44s %.1f MiB (amwi, its guard and rsync together; target < 100)\n", "first sync peak memory", float64(m.PeakKiB)/1024)
	}
	return nil
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	for i := range v { // insertion sort: a handful of values
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
	return v[len(v)/2]
}

// treeRSS sums VmRSS (KiB) over pid and its descendants.
func treeRSS(pid int) int64 {
	children := map[int][]int{}
	rss := map[int]int64{}
	des, _ := os.ReadDir("/proc")
	for _, de := range des {
		p, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + de.Name() + "/status")
		if err != nil {
			continue
		}
		var ppid int
		for _, line := range strings.Split(string(b), "\n") {
			switch {
			case strings.HasPrefix(line, "PPid:"):
				ppid, _ = strconv.Atoi(strings.TrimSpace(line[5:]))
			case strings.HasPrefix(line, "VmRSS:"):
				f := strings.Fields(line[6:])
				if len(f) > 0 {
					rss[p], _ = strconv.ParseInt(f[0], 10, 64)
				}
			}
		}
		children[ppid] = append(children[ppid], p)
	}
	var sum int64
	var walk func(int)
	walk = func(p int) {
		sum += rss[p]
		for _, c := range children[p] {
			walk(c)
		}
	}
	walk(pid)
	return sum
}
