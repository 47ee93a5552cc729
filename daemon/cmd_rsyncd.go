package daemon

import (
	"errors"
	"fmt"
	"strings"
)

// errReexportRefused makes `amwi rsyncd-check` exit 1: rsync then aborts the transfer.
var errReexportRefused = errors.New("rsync re-export refused")

// rsyncdRefusal is what a secondary's rsync shows when this box keeps only used packages.
const rsyncdRefusal = `this AMWI keeps only the packages its LAN uses (mirror.packages = "used"); a secondary needs a full mirror: sync it from an internet mirror, or set mirror.packages = "all" here`

// rsyncdCheck is `amwi rsyncd-check`, the re-export's `pre-xfer exec` (etc/rsyncd-amwi.conf):
// rsync runs it before each transfer, aborts the transfer when it exits non-zero and shows
// its standard output to the client. A "used" mirror lacks most package files: a secondary
// syncing from it would copy a mirror whose databases name files it does not have, so the
// transfer is refused with a line saying why. A configuration that cannot be read refuses
// too: whether the mirror is whole cannot be told.
func (c *cli) rsyncdCheck(args []string) error {
	fs := c.flags("rsyncd-check")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	cfg, err := c.loadConfig()
	if err != nil {
		first, _, _ := strings.Cut(err.Error(), "\n")
		fmt.Fprintf(c.env.Stdout, "this AMWI cannot read its configuration, so it cannot tell whether its mirror is complete: %s\n", shortenLine(first, 300))
		return fmt.Errorf("%w: %w", errReexportRefused, err)
	}
	if cfg.Mirror.Used() {
		fmt.Fprintln(c.env.Stdout, rsyncdRefusal)
		return fmt.Errorf("%w: %s has mirror.packages = \"used\"", errReexportRefused, cfg.Path)
	}
	return nil
}

// shortenLine bounds a line shown to a remote client.
func shortenLine(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
