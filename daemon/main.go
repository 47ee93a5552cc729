package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/pflag"

	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/daemon/systemd"
	"github.com/amwi/amwi/etc"
)

// ErrUsage is returned for a command line that cannot be understood; main exits 2 for it.
var ErrUsage = errors.New("usage")

// ErrDamaged is returned when the state database is refused (damaged, cut short, or
// missing where backups show there was one); main exits ExitDamaged for it.
var ErrDamaged = store.ErrDamaged

// ExitDamaged is the exit status for ErrDamaged; amwi.service does not restart on it.
const ExitDamaged = 3

// Set with -ldflags "-X github.com/amwi/amwi/daemon.version=… -X …commit=…".
var (
	version = ""
	commit  = ""
)

const usage = `amwi — an Arch Linux mirror for your LAN

Usage: amwi [-c FILE] COMMAND [ARGS]

Commands:
  serve            run the daemon: mirror at /archlinux/, scheduled syncs, health
  sync             sync the mirror now (through the daemon when it runs):
                     --force skip the lastupdate check, --wait queue behind a
                     running sync, --cancel stop the running sync
  search [--repo R] [--json] TERM...
                   search the mirror's packages as pacman -Ss does
  bench [--country C] [--json]
                   measure the country's mirrors and rank them as upstreams
  verify [--full] [--repair] [--json]
                   check the mirror against its own databases: sizes, links,
                     leftovers; --full also every package's SHA-256
  user add [--admin] NAME
                   create a dashboard user, the password read from stdin
  db check [FILE] | backup FILE | repair [--from-backup | --from FILE]
                   the state database: check it (exit 1 on damage), write a
                     checked hot copy, or copy what is readable into a new one
                     (the old file is kept); see amwi help db
  config check     validate amwi.toml and the dashboard's settings, every problem
                     with its file and line
  config show      print the effective settings, each with where it comes from
  config default   print the commented default config (--local: paths under its folder)
  migrate --from F write amwi.toml from the Python AMWI's settings.json F (--to, --force)
  rsyncd-check     for the rsync re-export's pre-xfer exec: exit 0 for a full
                     mirror, 1 with a line for the client when mirror.packages
                     is "used" (a secondary needs every package)
  version          print version, commit, Go version and platform
  help [COMMAND]   this help, or a command's own (also: amwi COMMAND --help)

Global flags:
  -c, --config FILE   config file (default $AMWI_CONFIG, else /etc/amwi/amwi.toml)
  -h, --help          this help
`

// Env is what Main takes from the process: arguments, standard streams, environment.
type Env struct {
	Args   []string // without the program name
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// Main runs one amwi command.
func Main(ctx context.Context, env Env) error {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	var cfgPath string
	var help bool
	fs := pflag.NewFlagSet("amwi", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SetInterspersed(false)
	fs.StringVarP(&cfgPath, "config", "c", "", "config file")
	fs.BoolVarP(&help, "help", "h", false, "help")
	if err := fs.Parse(env.Args); err != nil {
		return usageErr(env, err.Error())
	}
	args := fs.Args()
	if len(args) > 0 && args[0] == "help" {
		// amwi help COMMAND [SUB]: the command's own usage, as amwi COMMAND [SUB] --help.
		args, help = args[1:], true
	}
	switch {
	case len(args) == 0 && !help:
		fmt.Fprint(env.Stderr, usage)
		return ErrUsage
	case help && (len(args) == 0 || isHelp(args[0]) || args[0] == "help"):
		fmt.Fprint(env.Stdout, usage)
		return nil
	case help:
		// amwi --help sync is amwi sync --help.
		args = append(args, "--help")
	}
	from := "-c"
	if cfgPath == "" {
		cfgPath, from = env.Getenv("AMWI_CONFIG"), "$AMWI_CONFIG"
	}
	if cfgPath == "" {
		cfgPath, from = config.DefaultPath, ""
	}
	c := &cli{env: env, cfgPath: cfgPath, cfgFrom: from}
	err := c.run(ctx, args)
	if errors.Is(err, errHelpShown) {
		return nil
	}
	// A refused database says what to run; with this config, if it is not the default.
	if de := (*store.DamagedError)(nil); errors.As(err, &de) && de.Command == "" {
		de.Command = c.amwiCommand()
	}
	return err
}

// run dispatches one command.
func (c *cli) run(ctx context.Context, args []string) error {
	env := c.env
	switch args[0] {
	case "serve":
		return c.serve(ctx, args[1:])
	case "config":
		return c.config(args[1:])
	case "sync":
		return c.syncCmd(ctx, args[1:])
	case "search":
		return c.searchCmd(args[1:])
	case "verify":
		return c.verifyCmd(ctx, args[1:])
	case "user":
		return c.userCmd(ctx, args[1:])
	case "db":
		return c.dbCmd(ctx, args[1:])
	case "bench":
		return c.benchCmd(ctx, args[1:])
	case "migrate":
		return c.migrateCmd(args[1:])
	case "rsyncd-check":
		return c.rsyncdCheck(args[1:])
	case "version":
		return c.version(args[1:])
	}
	return usageErr(env, fmt.Sprintf("unknown command %q", args[0]))
}

// isHelp tells whether a command-line word asks for help.
func isHelp(arg string) bool { return arg == "-h" || arg == "--help" }

func usageErr(env Env, msg string) error {
	fmt.Fprintf(env.Stderr, "amwi: %s\n\n%s", msg, usage)
	return ErrUsage
}

type cli struct {
	env     Env
	cfgPath string
	cfgFrom string // where cfgPath came from: "-c", "$AMWI_CONFIG", "" (the default)
}

// loadConfig loads the effective config (amwi.toml with the dashboard's settings.toml laid
// over it); when there is none to read, the error says where it looked and how to point at
// one.
func (c *cli) loadConfig() (*config.Config, error) {
	cfg, err := config.LoadLayered(c.cfgPath)
	if _, serr := os.Stat(c.cfgPath); err == nil || !errors.Is(serr, fs.ErrNotExist) {
		return cfg, err
	}
	how := "the default path (no -c, no $AMWI_CONFIG)"
	if c.cfgFrom != "" {
		how = c.cfgFrom
	}
	return nil, fmt.Errorf("%v\nno config at %s, from %s: point at one with -c FILE or AMWI_CONFIG=FILE (after `make run` it is var/amwi.toml; `amwi config default > FILE` writes the commented default)", err, c.cfgPath, how)
}

// flags makes a subcommand's flag set; -c is accepted after the command too.
func (c *cli) flags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("amwi "+name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse says what is wrong, and prints usage where it belongs
	fs.Usage = func() {}
	fs.StringVarP(&c.cfgPath, "config", "c", c.cfgPath, "config file")
	return fs
}

// parseFlags parses a command's flags: -h/--help prints its usage on stdout (errHelpShown:
// nothing else happens, exit 0); a bad flag says so with the usage on stderr (exit 2).
func (c *cli) parseFlags(fs *pflag.FlagSet, args []string) error {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pflag.ErrHelp):
		fmt.Fprintf(c.env.Stdout, "Usage: %s [flags]%s\n\nFlags:\n%s", fs.Name(), operands[fs.Name()], fs.FlagUsages())
		return errHelpShown
	}
	fmt.Fprintf(c.env.Stderr, "%s: %v\n\nFlags:\n%s", fs.Name(), err, fs.FlagUsages())
	return ErrUsage
}

// operands names what a command takes besides its flags, for its usage line.
var operands = map[string]string{
	"amwi user add":  " NAME",
	"amwi search":    " TERM...",
	"amwi db check":  " [FILE]",
	"amwi db backup": " FILE",
}

// errHelpShown: a command's --help printed its usage; the command does nothing else and
// amwi exits 0.
var errHelpShown = errors.New("help shown")

func (c *cli) parse(fs *pflag.FlagSet, args []string, nargs int) error {
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > nargs:
		fmt.Fprintf(c.env.Stderr, "%s: unexpected arguments: %s (see %s --help)\n", fs.Name(), strings.Join(fs.Args()[nargs:], " "), fs.Name())
		return ErrUsage
	case fs.NArg() < nargs:
		fmt.Fprintf(c.env.Stderr, "%s: missing%s (usage: %s [flags]%s)\n", fs.Name(), operands[fs.Name()], fs.Name(), operands[fs.Name()])
		return ErrUsage
	}
	return nil
}

func (c *cli) logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if c.env.Getenv("AMWI_DEBUG") != "" {
		opts.Level = slog.LevelDebug
	}
	if c.env.Getenv("JOURNAL_STREAM") != "" {
		// journald stamps every line itself.
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(c.env.Stderr, opts))
}

// quietLogger logs only warnings and errors, for commands whose output is the point.
func (c *cli) quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c.env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func (c *cli) serve(ctx context.Context, args []string) error {
	fs := c.flags("serve")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	d := &Daemon{Config: cfg, Log: c.logger(), Notify: systemd.NewNotifier()}
	setMemoryLimit(cfg.Server.MemoryLimitMiB, d.Log)
	if err := d.Open(); err != nil {
		return err
	}
	defer d.Close()
	return d.Run(ctx)
}

func (c *cli) config(args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(c.env.Stdout, "Usage: amwi config check | show | default [--local]\n\n  check     validate amwi.toml and the dashboard's settings, every problem with its line\n  show      print the effective configuration, each value with where it comes from\n  default   print the commented default config (--local: paths under its folder)\n")
		return errHelpShown
	}
	if len(args) == 0 {
		fmt.Fprintf(c.env.Stderr, "amwi config: say check, show or default\n")
		return ErrUsage
	}
	switch args[0] {
	case "check":
		fs := c.flags("config check")
		if err := c.parse(fs, args[1:], 0); err != nil {
			return err
		}
		cfg, err := c.loadConfig()
		var ps config.Problems
		if errors.As(err, &ps) {
			fmt.Fprintln(c.env.Stdout, ps.Error())
			return fmt.Errorf("%d problem(s) in %s", len(ps), strings.Join(ps.Files(), " and "))
		}
		if err != nil {
			return err
		}
		layer := ""
		if cfg.Layers != nil {
			if _, err := os.Stat(cfg.Layers.SettingsPath); err == nil {
				layer = " with the dashboard's settings in " + cfg.Layers.SettingsPath
			}
		}
		fmt.Fprintf(c.env.Stdout, "%s: ok%s (mirror %s, state %s, listen %s)\n", cfg.Path, layer, cfg.Mirror.Root, cfg.State.Dir, cfg.Server.Listen)
		return nil
	case "show":
		fs := c.flags("config show")
		if err := c.parse(fs, args[1:], 0); err != nil {
			return err
		}
		cfg, err := c.loadConfig()
		if err != nil {
			return err
		}
		printEffective(c.env.Stdout, cfg)
		return nil
	case "default":
		fs := c.flags("config default")
		local := fs.Bool("local", false, "relative paths (mirror/, state/, mirrorlists/) for a config kept in its own folder")
		if err := c.parse(fs, args[1:], 0); err != nil {
			return err
		}
		out := etc.DefaultConfig
		if *local {
			out = localPaths(out)
		}
		_, err := c.env.Stdout.Write(out)
		return err
	}
	fmt.Fprintf(c.env.Stderr, "amwi config: unknown subcommand %q (check, show, default)\n", args[0])
	return ErrUsage
}

// printEffective prints the effective configuration as TOML, each value with its origin
// (amwi.toml:LINE, the dashboard's settings.toml:LINE, or default). The webhook, a secret,
// is masked.
func printEffective(w io.Writer, cfg *config.Config) {
	section := ""
	for _, key := range config.Keys() {
		sec, k, _ := strings.Cut(key, ".")
		if sec != section {
			if section != "" {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "[%s]\n", sec)
			section = sec
		}
		v, _ := cfg.Value(key)
		if key == "discord.webhook_url" && v != `""` {
			v = `"…(set)"`
		}
		origin := "default"
		if cfg.Layers != nil {
			origin = cfg.Layers.Origins[key].String()
		}
		fmt.Fprintf(w, "%-20s = %-40s # %s\n", k, v, origin)
	}
}

var pathKeys = regexp.MustCompile(`(?m)^(root|dir|mirrorlists_dir) = "/[^"]*"`)

// localPaths rewrites the absolute paths of the default config to folders beside it, for
// `make run` and trying AMWI out without root.
func localPaths(b []byte) []byte {
	return pathKeys.ReplaceAllFunc(b, func(m []byte) []byte {
		key := string(m[:strings.IndexByte(string(m), ' ')])
		dir := map[string]string{"root": "mirror", "dir": "state", "mirrorlists_dir": "mirrorlists"}[key]
		return []byte(key + ` = "` + dir + `"`)
	})
}

// Info is what `amwi version` prints.
type Info struct {
	Version, Commit, GoVersion, Platform string
}

// Version reports the build's version, from -ldflags or else from Go's build info.
func Version() Info {
	in := Info{Version: version, Commit: commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && in.Commit == "" {
				in.Commit = s.Value
			}
			if s.Key == "GOARM" {
				in.Platform += "/v" + s.Value
			}
		}
	}
	if in.Version == "" {
		in.Version = "dev"
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	return in
}

func (c *cli) version(args []string) error {
	if err := c.parse(c.flags("version"), args, 0); err != nil {
		return err
	}
	v := Version()
	fmt.Fprintf(c.env.Stdout, "amwi %s\ncommit %s\n%s %s\n", v.Version, v.Commit, v.GoVersion, v.Platform)
	return nil
}

// setMemoryLimit applies server.memory_limit_mib, unless GOMEMLIMIT is set (the runtime
// has applied that already). Only the serving daemon has one: it is what holds thousands
// of connections, and the limit is the process's.
func setMemoryLimit(mib int, log *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit from GOMEMLIMIT", "GOMEMLIMIT", v)
		return
	}
	if mib > 0 {
		debug.SetMemoryLimit(int64(mib) << 20)
	}
}
