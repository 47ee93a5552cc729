package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/internal/units"
)

// errDBDamaged makes `amwi db check` exit 1 when it finds damage.
var errDBDamaged = errors.New("the state database is damaged")

const dbUsage = `Usage: amwi db check [FILE] | backup FILE | repair [--from-backup | --from FILE]

  check [FILE]   check the state database (or FILE, e.g. a backup) as amwi serve does
                 before it uses it, plus bbolt's own check and every record, and the daily
                 backups; changes nothing (but removes the new file a repair cut short
                 left behind); exit 1 on damage. While the daemon runs, it
                 checks a consistent copy the daemon makes.
  backup FILE    write a consistent copy of the state database to FILE (a directory: a
                 dated file in it), checked, while the daemon runs (through it) or not
  repair         copy what is readable of the state database into a new amwi.db; what
                 is not is filled, bucket by bucket, from the previous transaction and the
                 daily backups; records that do not decode and all login sessions are
                 dropped. The old file is kept beside it as amwi.db.before-repair-TIME.
                 Stop the daemon first. A file with nothing readable is replaced by the
                 newest good backup.
    --from-backup  restore the newest good daily backup instead
    --from FILE    start from FILE instead (a copy made by amwi db backup)

The daemon keeps a daily backup of the state database in STATE_DIR/backup/ (the newest
two). amwi serve refuses a damaged database (exit status 3) and says which of these to run.
`

// dbCmd is `amwi db check | backup | repair`.
func (c *cli) dbCmd(ctx context.Context, args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(c.env.Stdout, dbUsage)
		return errHelpShown
	}
	if len(args) == 0 {
		fmt.Fprintln(c.env.Stderr, "amwi db: say check, backup FILE or repair (see amwi db --help)")
		return ErrUsage
	}
	switch args[0] {
	case "check":
		return c.dbCheck(ctx, args[1:])
	case "backup":
		return c.dbBackup(ctx, args[1:])
	case "repair":
		return c.dbRepair(args[1:])
	}
	fmt.Fprintf(c.env.Stderr, "amwi db: unknown subcommand %q: say check, backup FILE or repair (see amwi db --help)\n", args[0])
	return ErrUsage
}

func (c *cli) dbCheck(ctx context.Context, args []string) error {
	fs := c.flags("db check")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(c.env.Stderr, "%s: unexpected arguments: %s (see %s --help)\n", fs.Name(), strings.Join(fs.Args()[1:], " "), fs.Name())
		return ErrUsage
	}
	if fs.NArg() == 1 {
		rep, err := store.CheckFile(fs.Arg(0), 2*time.Second)
		if err != nil {
			return err
		}
		printDBReport(c.env.Stdout, rep, "")
		if !rep.Clean() {
			return errDBDamaged
		}
		return nil
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	dir := cfg.State.Dir
	path := filepath.Join(dir, store.FileName)
	removed, err := store.RemoveRepairLeftovers(dir)
	for _, p := range removed {
		fmt.Fprintf(c.env.Stdout, "removed %s, left by a repair cut short\n", p)
	}
	if err != nil {
		fmt.Fprintf(c.env.Stdout, "could not look for what a repair cut short left behind: %v\n", err)
	}
	backups := store.Backups(dir)
	var rep *store.Report
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(c.env.Stdout, "%s: no database yet", path)
		if len(backups) > 0 {
			fmt.Fprintf(c.env.Stdout, ", but there are backups of one: amwi serve refuses to start afresh; `%s db repair --from-backup` restores the newest\n", c.amwiCommand())
		} else {
			fmt.Fprintln(c.env.Stdout, " (amwi serve creates it on the first start)")
		}
	} else {
		rep, err = store.CheckFile(path, 0)
		note := ""
		if errors.Is(err, store.ErrLocked) {
			// The daemon has it: check a consistent copy it makes.
			rep, err = c.checkThroughDaemon(ctx, dir)
			note = " (a copy the running daemon made)"
		}
		if err != nil {
			return err
		}
		rep.Path = path
		printDBReport(c.env.Stdout, rep, note)
	}
	// The backups, so that the way out is known before it is needed.
	healthyBackup := false
	if len(backups) > 0 {
		fmt.Fprintln(c.env.Stdout, "backups:")
	}
	for _, b := range backups {
		br, err := store.CheckFile(b, time.Second)
		switch {
		case err != nil:
			fmt.Fprintf(c.env.Stdout, "  %s: %v\n", b, err)
		case br.OK():
			healthyBackup = true
			fmt.Fprintf(c.env.Stdout, "  %s: ok, %s, %s\n", b, units.Bytes(br.Size), recordsLine(br.Records))
		default:
			fmt.Fprintf(c.env.Stdout, "  %s: DAMAGED: %s\n", b, br.Problems[0])
		}
	}
	if rep != nil && !rep.Clean() {
		fmt.Fprintf(c.env.Stdout, "What to do: stop amwi (systemctl stop amwi), then `%s db repair`", c.amwiCommand())
		if healthyBackup {
			fmt.Fprintf(c.env.Stdout, " (or `%s db repair --from-backup`)", c.amwiCommand())
		}
		fmt.Fprintln(c.env.Stdout)
		return errDBDamaged
	}
	if rep == nil && len(backups) > 0 {
		return errDBDamaged
	}
	return nil
}

// checkThroughDaemon has the running daemon write a consistent copy into a temporary file
// and checks that.
func (c *cli) checkThroughDaemon(ctx context.Context, dir string) (*store.Report, error) {
	tmp, err := os.CreateTemp("", "amwi-db-check-*")
	if err != nil {
		return nil, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	rep, err := store.SaveCopy(tmp.Name(), func(w io.Writer) error { return c.fetchBackup(ctx, dir, w) })
	if errors.Is(err, errNoDaemon) {
		return nil, fmt.Errorf("%s is in use by another amwi without a control socket (a sync started by `amwi sync` alone?); check again when it is done", filepath.Join(dir, store.FileName))
	}
	if rep != nil {
		// A copy that fails the check is the answer, not an error.
		return rep, nil
	}
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// errNoDaemon: no daemon listens on the control socket.
var errNoDaemon = errors.New("no daemon")

// fetchBackup streams a consistent copy of the database from the running daemon to w.
func (c *cli) fetchBackup(ctx context.Context, dir string, w io.Writer) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://amwi/db/backup", nil)
	resp, err := controlClient(dir).Do(req)
	if err != nil {
		if daemonAbsent(err) {
			return errNoDaemon
		}
		return fmt.Errorf("ask the daemon for a copy: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("the daemon could not make a copy: %s", strings.TrimSpace(string(b)))
	}
	// Content-Length is set: a copy cut short is an error here, not a damaged file later.
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("copy from the daemon: %w", err)
	}
	return nil
}

func (c *cli) dbBackup(ctx context.Context, args []string) error {
	fs := c.flags("db backup")
	if err := c.parse(fs, args, 1); err != nil {
		return err
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	dir := cfg.State.Dir
	live := filepath.Join(dir, store.FileName)
	dst := fs.Arg(0)
	if fi, err := os.Stat(dst); err == nil {
		if li, err := os.Stat(live); err == nil && os.SameFile(fi, li) {
			return fmt.Errorf("%s is the state database itself: name another file", dst)
		}
		switch {
		case fi.IsDir():
			dst = filepath.Join(dst, "amwi-"+time.Now().Format("20060102-150405")+".db")
		case !fi.Mode().IsRegular():
			// The copy is renamed over FILE: /dev/null or /dev/full would be replaced
			// by a file of password hashes, and every program on the box with it.
			return fmt.Errorf("%s is not a regular file (%v): a backup replaces FILE, so name a new file or a directory", dst, fi.Mode().Type())
		}
	}
	write := func(w io.Writer) error { return c.fetchBackup(ctx, dir, w) }
	rep, err := store.SaveCopy(dst, write)
	if errors.Is(err, errNoDaemon) {
		// No daemon: copy from the store ourselves (it is checked as it opens).
		st, oerr := store.Open(dir, 2*time.Second)
		if oerr != nil {
			return oerr
		}
		defer st.Close()
		rep, err = store.SaveCopy(dst, func(w io.Writer) error {
			_, err := st.WriteBackup(w, nil)
			return err
		})
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "wrote %s: %s, checked: %s\n", dst, units.Bytes(rep.Size), recordsLine(rep.Records))
	if len(rep.Bad) > 0 {
		fmt.Fprintf(c.env.Stdout, "%d records do not decode (amwi db check lists them)\n", len(rep.Bad)+rep.More)
	}
	return nil
}

func (c *cli) dbRepair(args []string) error {
	fs := c.flags("db repair")
	fromBackup := fs.Bool("from-backup", false, "start from the newest good daily backup")
	from := fs.String("from", "", "start from this `FILE` (a copy made by amwi db backup)")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if *fromBackup && *from != "" {
		fmt.Fprintln(c.env.Stderr, "amwi db repair: --from-backup or --from, not both")
		return ErrUsage
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	dir := cfg.State.Dir
	path := filepath.Join(dir, store.FileName)
	o := store.RepairOptions{Source: *from}
	if *fromBackup {
		for _, b := range store.Backups(dir) {
			rep, err := store.CheckFile(b, time.Second)
			if err == nil && rep.OK() {
				o.Source = b
				break
			}
			why := "damaged"
			if err != nil {
				why = err.Error()
			}
			fmt.Fprintf(c.env.Stdout, "skipping backup %s: %s\n", b, why)
		}
		if o.Source == "" {
			return fmt.Errorf("no good backup in %s", filepath.Join(dir, store.BackupDir))
		}
	}
	if o.Source == "" {
		rep, err := store.CheckFile(path, 0)
		switch {
		case errors.Is(err, store.ErrLocked):
			return fmt.Errorf("%s is in use: stop amwi (systemctl stop amwi) first, then repair", path)
		case err == nil && rep.Clean():
			fmt.Fprintf(c.env.Stdout, "%s: no damage found; nothing done (`%s db repair --from-backup` restores the newest backup anyway)\n", path, c.amwiCommand())
			return nil
		}
	}
	rep, err := store.Repair(dir, o)
	if err != nil {
		return err
	}
	printRepair(c.env.Stdout, rep)
	if rep.Kept["users"] == 0 {
		// The dashboard lets the first visitor register as administrator while no account
		// exists: say so before the daemon starts.
		fmt.Fprintf(c.env.Stdout, "The repaired database has no accounts: until one exists, the dashboard lets the first visitor register as administrator. Add yours first: %s user add --admin NAME\n", c.amwiCommand())
	}
	fmt.Fprintln(c.env.Stdout, "Start amwi again (systemctl start amwi).")
	return nil
}

// recordsLine says what a database holds, in the user's terms.
func recordsLine(r map[string]uint64) string {
	names := map[string]string{"users": "user", "sessions": "login session", "sync_runs": "sync run",
		"traffic_hours": "hourly", "traffic_days": "daily", "traffic_clients": "per client", "traffic_packages": "per package"}
	var parts []string
	for _, k := range []string{"users", "sessions", "sync_runs"} {
		parts = append(parts, units.Plural(int(r[k]), names[k]))
	}
	var tr []string
	for _, k := range []string{"traffic_hours", "traffic_days", "traffic_clients", "traffic_packages"} {
		tr = append(tr, fmt.Sprintf("%d %s", r[k], names[k]))
	}
	parts = append(parts, "traffic counters: "+strings.Join(tr, ", "))
	for _, k := range slices.Sorted(maps.Keys(r)) {
		if _, ok := names[k]; !ok && k != "meta" {
			parts = append(parts, fmt.Sprintf("%d in %s", r[k], k))
		}
	}
	return strings.Join(parts, "; ")
}

// looseLine says how many records of each bucket came from loose pages.
func looseLine(r map[string]uint64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(r)) {
		parts = append(parts, fmt.Sprintf("%d in %s", r[k], k))
	}
	return strings.Join(parts, ", ")
}

// printDBReport prints a check of the database as a person reads it.
func printDBReport(w io.Writer, rep *store.Report, note string) {
	if rep.OK() {
		fmt.Fprintf(w, "%s%s: ok: %s, %d pages of %d bytes, transaction %d, checked in %s\n  %s\n",
			rep.Path, note, units.Bytes(rep.Size), rep.Pages, rep.PageSize, rep.TxID, rep.Took.Round(time.Millisecond), recordsLine(rep.Records))
	} else {
		fmt.Fprintf(w, "%s%s: DAMAGED: amwi serve refuses it\n", rep.Path, note)
		for _, p := range rep.Problems {
			fmt.Fprintf(w, "  - %s\n", p)
		}
	}
	if len(rep.Bad) > 0 {
		fmt.Fprintln(w, "records that do not decode (amwi skips them; repair drops them):")
		for _, b := range rep.Bad {
			fmt.Fprintf(w, "  - %s\n", b)
		}
	}
	if rep.More > 0 {
		fmt.Fprintf(w, "  … and %d more\n", rep.More)
	}
}

// printRepair says what a repair did.
func printRepair(w io.Writer, rep *store.RepairReport) {
	src := rep.Source
	if rep.FellBack {
		src += " (no tree of the database itself was readable: the newest good backup)"
	}
	fmt.Fprintf(w, "repaired %s from %s, %s\n  kept: %s\n", rep.Path, src, rep.From, recordsLine(rep.Kept))
	if rep.Sessions > 0 {
		fmt.Fprintf(w, "  dropped %d login sessions: everyone signs in again\n", rep.Sessions)
	}
	if rep.UnreadN > 0 {
		fmt.Fprintf(w, "  could not read %s of %s:\n", units.Plural(rep.UnreadN, "place"), rep.Source)
		for _, u := range rep.Unread[:min(len(rep.Unread), 10)] {
			fmt.Fprintf(w, "    - %s\n", u)
		}
		if n := rep.UnreadN - min(len(rep.Unread), 10); n > 0 {
			damaged := rep.Source
			if rep.Old != "" {
				damaged = rep.Old // the source was the database, now replaced
			}
			fmt.Fprintf(w, "    - … and %d more (amwi db check %s lists them)\n", n, damaged)
		}
	}
	if len(rep.Filled) > 0 {
		fmt.Fprintln(w, "  filled in from other copies (what these buckets gained after that copy and the file no longer shows is lost):")
		for _, f := range rep.Filled {
			fmt.Fprintf(w, "    - %s\n", f)
		}
	}
	if len(rep.Loose) > 0 {
		fmt.Fprintf(w, "  brought back from loose pages (leaf pages of %s no tree reaches any more; records of unknown age, for keys no other copy had; check them): %s\n", rep.LooseFrom, looseLine(rep.Loose))
	}
	if len(rep.LooseUsers) > 0 {
		fmt.Fprintf(w, "    accounts brought back that way (one deleted before the damage, or with an old password, may be among them: delete or reset it): %s\n", strings.Join(rep.LooseUsers, ", "))
	}
	if len(rep.UnknownAgeUsers) > 0 {
		fmt.Fprintf(w, "  accounts read from a root of unknown age (no meta page led anywhere; an old top-level page may be what was found, and it wins over the backups: one deleted since, or with an old password or role, may be among them: delete or reset it): %s\n", strings.Join(rep.UnknownAgeUsers, ", "))
	}
	if len(rep.Admins) > 0 {
		fmt.Fprintf(w, "    ADMINISTRATORS among the accounts above (an old copy may make an administrator of one that no longer is: check each): %s\n", strings.Join(rep.Admins, ", "))
	}
	for _, name := range rep.DamagedUsers {
		fmt.Fprintf(w, "  account %s was damaged and is not restored: re-create it with `amwi user add`\n", name)
	}
	if len(rep.DamagedLeftOut) > 0 {
		fmt.Fprintf(w, "    older copies left out (one may be an account since deleted, demoted or given a new password): %s\n", strings.Join(rep.DamagedLeftOut, "; "))
	}
	if rep.LooseLeftOutN > 0 {
		fmt.Fprintf(w, "  left out, found on loose pages with differing values (nothing tells which is newer): %s", strings.Join(rep.LooseLeftOut, ", "))
		if n := rep.LooseLeftOutN - len(rep.LooseLeftOut); n > 0 {
			fmt.Fprintf(w, " … and %d more", n)
		}
		fmt.Fprintln(w)
	}
	if len(rep.Incomplete) > 0 {
		fmt.Fprintf(w, "  still short of what could not be read (no older copy had it): %s\n", strings.Join(rep.Incomplete, ", "))
	}
	if rep.DroppedN > 0 {
		fmt.Fprintf(w, "  dropped %s that do not decode:\n", units.Plural(rep.DroppedN, "record"))
		for _, d := range rep.Dropped[:min(len(rep.Dropped), 10)] {
			fmt.Fprintf(w, "    - %s\n", d)
		}
		if n := rep.DroppedN - min(len(rep.Dropped), 10); n > 0 {
			fmt.Fprintf(w, "    - … and %d more\n", n)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if rep.Old != "" {
		fmt.Fprintf(w, "  the previous file is kept as %s\n", rep.Old)
	}
}

// amwiCommand is how the user runs amwi with this config, for messages that say what to run.
func (c *cli) amwiCommand() string {
	if c.cfgFrom == "" {
		return "amwi"
	}
	return "amwi -c " + c.cfgPath
}
