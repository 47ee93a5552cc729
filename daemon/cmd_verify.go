package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/amwi/amwi/daemon/mirrorsync"
	"github.com/amwi/amwi/internal/units"
)

// errVerify makes `amwi verify` exit 1 when the mirror has problems.
var errVerify = errors.New("the mirror has problems")

// verifyCmd is `amwi verify [--full] [--json]`: the mirror checked against its own
// databases, by this process (no daemon needed; it only reads the mirror). SD cards rot:
// this is how a user finds out.
func (c *cli) verifyCmd(ctx context.Context, args []string) error {
	fs := c.flags("verify")
	full := fs.Bool("full", false, "also read every package and compare its SHA-256 with the database's (at idle I/O priority)")
	repair := fs.Bool("repair", false, "delete the damaged package files found, so that the next sync fetches them again")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	h := mirrorsync.Holder(cfg.State.Dir)
	if h != "" {
		fmt.Fprintf(c.env.Stderr, "amwi verify: a sync is running (%s); files it replaces meanwhile may show as problems, and its temporary files are not counted\n", h)
	}
	pr := newProgressPrinter(c.env.Stderr)
	start := time.Now()
	o := mirrorsync.VerifyOptions{Full: *full, Keep: mirrorsync.Retired(cfg.State.Dir), SkipLeftovers: h != "", Used: cfg.Mirror.Used()}
	if pr.tty {
		o.Progress = func(p mirrorsync.VerifyProgress) {
			pr.line(verifyLine(p, time.Since(start)))
		}
	}
	var damaged []string
	o.OnDamaged = func(path string) { damaged = append(damaged, path) }
	rep, err := mirrorsync.Verify(ctx, cfg.Mirror.Root, cfg.Mirror.Repos, o)
	pr.end()
	if err != nil {
		return fmt.Errorf("verify %s: %w", cfg.Mirror.Root, err)
	}
	if *repair && len(damaged) > 0 {
		removed := 0
		for _, p := range damaged {
			if err := os.Remove(p); err != nil {
				fmt.Fprintf(c.env.Stderr, "amwi verify: remove %s: %v\n", p, err)
				continue
			}
			removed++
		}
		fmt.Fprintf(c.env.Stderr, "amwi verify: removed %d damaged files; the next `amwi sync` fetches them again\n", removed)
	}
	v := mirrorsync.Verification{Start: start, End: time.Now(), Full: *full, Report: *rep}
	if err := mirrorsync.SaveVerification(cfg.State.Dir, v); err != nil {
		fmt.Fprintf(c.env.Stderr, "amwi verify: cannot keep the result for the dashboard: %v\n", err)
	}
	if *asJSON {
		enc := json.NewEncoder(c.env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return err
		}
	} else {
		printVerification(c.env.Stdout, v)
	}
	if !rep.OK() {
		return errVerify
	}
	return nil
}

// verifyLine is the live progress line of a verification.
func verifyLine(p mirrorsync.VerifyProgress, took time.Duration) string {
	line := fmt.Sprintf("verify  %d/%d files  %s of %s", p.Files, p.TotalFiles, units.Bytes(p.Bytes), units.Bytes(p.TotalBytes))
	if s := took.Seconds(); s > 0.5 {
		line += fmt.Sprintf("  %s/s", units.Bytes(int64(float64(p.Bytes)/s)))
	}
	return line
}

// printVerification prints a verification as a person reads it.
func printVerification(w io.Writer, v mirrorsync.Verification) {
	r := v.Report
	what := "sizes"
	if v.Full {
		what = "sizes and SHA-256, " + units.Bytes(r.Hashed) + " read"
	}
	fmt.Fprintf(w, "verify %s: %d files checked (%s) in %s\n", strings.Join(r.Repos, ", "), r.Files, what, v.End.Sub(v.Start).Round(10*time.Millisecond))
	if r.Fetchable > 0 {
		fmt.Fprintf(w, "%d on disk, %d fetched on first request (mirror.packages = \"used\")\n", r.Files-r.Fetchable-r.Missing, r.Fetchable)
	}
	if r.OK() && r.Unreferenced == 0 && r.Refused == 0 {
		fmt.Fprintln(w, "no problems")
		return
	}
	fmt.Fprintf(w, "missing %d, wrong size %d, corrupt %d, dangling links %d, staging leftovers %d, unreferenced %d\n",
		r.Missing, r.WrongSize, r.Corrupt, r.Dangling, r.Leftovers, r.Unreferenced)
	if !v.Full && r.Gaps() == 0 {
		fmt.Fprintln(w, "(corrupt files of the right size show with --full)")
	}
	for _, e := range r.Errors {
		fmt.Fprintln(w, "  error:", e)
	}
	for _, p := range r.Problems {
		fmt.Fprintln(w, " ", p)
	}
	if n := r.Missing + r.WrongSize + r.Corrupt + r.Dangling + r.Unreferenced + r.Refused - len(r.Problems); n > 0 {
		fmt.Fprintf(w, "  … and %d more\n", n)
	}
	switch {
	case r.Corrupt > 0 || r.WrongSize > 0:
		fmt.Fprintln(w, "`amwi verify --repair` (with --full for the corrupt ones) removes the damaged files; `amwi sync` then fetches them again.")
	case r.Gaps() > 0:
		fmt.Fprintln(w, "`amwi sync` fetches what is missing.")
	}
}
