package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/amwi/amwi/daemon/bench"
	"github.com/amwi/amwi/internal/units"
)

// benchCmd is `amwi bench [--country C] [--json]`: measure and rank the country's mirrors
// from this box; a live progress line on a terminal, then a table (or JSON in rank order).
// The results are kept in the state dir for the dashboard's "use as upstream".
func (c *cli) benchCmd(ctx context.Context, args []string) error {
	fs := c.flags("bench")
	country := fs.String("country", "", "country to measure, as archlinux.org names it (default bench.country)")
	asJSON := fs.Bool("json", false, "print the results as a JSON array in rank order")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	if *country == "" {
		*country = cfg.Bench.Country
	}
	if *country == "" {
		return errors.New("say which country to measure: amwi bench --country Germany (or set bench.country)")
	}
	pr := newProgressPrinter(c.env.Stderr)
	rep, err := runBench(ctx, cfg, *country, func(done, total int, last bench.Result) {
		if pr.tty {
			fmt.Fprintf(pr.w, "\r\033[Kmeasured %d of %d mirrors: %s", done, total, last.Host)
			pr.drawn = true
		}
	})
	pr.end()
	if rep == nil {
		return err
	}
	if err != nil {
		fmt.Fprintf(c.env.Stderr, "amwi bench: %v\n", err)
	}
	if *asJSON {
		enc := json.NewEncoder(c.env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep.Results)
	}
	fmt.Fprintf(c.env.Stdout, "%s: %d mirrors measured (%s)\n\n", rep.Country, len(rep.Results), rep.Source)
	tw := tabwriter.NewWriter(c.env.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tMIRROR\tFRESH\tRSYNC\tSPEED\tLATENCY\tWHY")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s/s\t%.0f ms\t%s\n", r.Rank, r.Host, yes(r.Fresh), yes(r.RsyncOK), units.Bytes(int64(r.ThroughputBps)), r.LatencyMS, r.Why)
	}
	tw.Flush()
	for _, r := range rep.Results {
		if r.Usable {
			fmt.Fprintf(c.env.Stdout, "\nbest upstream: %s\n  set it with: sync.upstream = %q (or the dashboard's Benchmark page)\n", r.RsyncURL, r.RsyncURL)
			return nil
		}
	}
	return errors.New("no mirror is usable as an upstream (fresh and answering rsync)")
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
