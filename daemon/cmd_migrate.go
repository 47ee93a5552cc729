package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/amwi/amwi/daemon/config"
)

// migrateCmd is `amwi migrate --from settings.json [--to FILE] [--root DIR] [--force]`: the
// Python AMWI's settings become amwi.toml. The result is validated before anything is
// written; a file that exists is replaced only with --force (and then kept as FILE.bak).
func (c *cli) migrateCmd(args []string) error {
	fs := c.flags("migrate")
	from := fs.String("from", "", "the Python AMWI's settings.json")
	to := fs.String("to", "", "amwi.toml to write (default: the -c/--config file)")
	root := fs.String("root", "", "mirror.root (default "+config.Default().Mirror.Root+", where the Python AMWI kept the mirror)")
	force := fs.Bool("force", false, "replace an existing file (the old one is kept as FILE.bak)")
	help := fs.BoolP("help", "h", false, "this help")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if *help {
		fmt.Fprintf(c.env.Stdout, "Usage: amwi migrate --from settings.json [--to FILE] [--root DIR] [--force]\n\n%s", fs.FlagUsages())
		return nil
	}
	if *from == "" {
		fmt.Fprintln(c.env.Stderr, "amwi migrate: say which file: --from /path/to/settings.json (the Python AMWI's settings)")
		return ErrUsage
	}
	target := *to
	if target == "" {
		target = c.cfgPath
	}

	data, err := os.ReadFile(*from)
	if err != nil {
		return fmt.Errorf("%s: cannot read the old settings: %v (nothing written)", *from, migratePathErr(err))
	}
	m, err := mapSettings(data, *from)
	if err != nil {
		return err
	}
	if *root != "" {
		abs, err := filepath.Abs(*root)
		if err != nil {
			return fmt.Errorf("--root %s: %v", *root, err)
		}
		m.cfg.Mirror.Root = abs
		m.from["mirror.root"] = "--root"
	}
	text, rootMissing, err := m.render(target)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(target); err == nil && !*force {
		return fmt.Errorf("%s already exists: not overwritten (nothing written); use --force to replace it (the old file is kept as %s.bak), or --to another file", target, target)
	} else if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("%s: %v", target, migratePathErr(err))
	}

	m.report(c.env.Stdout, *from, target, rootMissing)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("create the folder of %s: %v (nothing written)", target, migratePathErr(err))
	}
	if err := config.WriteFile(target, text); err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "\nWrote %s. Check it with `amwi -c %s config check`.\n", target, target)
	return nil
}

func migratePathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// migration is the Python AMWI's settings mapped onto a Config.
type migration struct {
	name   string // the settings file, for messages
	cfg    *config.Config
	mapped []migratedSetting
	// skipped says, for each old setting that was not carried over, why.
	skipped []string
	// from names, for each config key, the old setting it came from ("sync.interval" →
	// "frequency_hours"), so a validation problem can point at what the user knows.
	from map[string]string
}

type migratedSetting struct {
	old, key, value string // value as written in amwi.toml, or "(set)" for a secret
}

// oldSettingsKeys are the settings the Python AMWI kept, in the order the report lists them.
var oldSettingsKeys = []struct {
	old, key string
	apply    func(m *migration, old string, v any) error
}{
	{"enabled", "sync.enabled", func(m *migration, old string, v any) error {
		return oldBool(v, &m.cfg.Sync.Enabled)
	}},
	{"frequency_hours", "sync.interval", func(m *migration, old string, v any) error {
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("must be a number of hours, not %s", jsonKind(v))
		}
		h, err := n.Float64()
		// A century is beyond any sensible interval and far from overflowing a Duration.
		if err != nil || math.Abs(h) > 24*366*100 {
			return fmt.Errorf("%s hours is not a sensible sync interval", n)
		}
		m.cfg.Sync.Interval = config.Duration(time.Duration(math.Round(h*3600)) * time.Second)
		return nil
	}},
	{"upstream_mirror", "sync.upstream", func(m *migration, old string, v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("must be a string, not %s", jsonKind(v))
		}
		s = strings.TrimSpace(s)
		lower := strings.ToLower(s)
		switch {
		case s == "":
			m.skip("%s: empty; sync.upstream stays unset (`amwi bench` suggests one)", old)
			return errNotMigrated
		case strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://"):
			m.skip("%s: %q is an HTTP(S) mirror URL and cannot be used as an rsync upstream (AMWI syncs over rsync only);"+
				" sync.upstream stays unset: pick an rsync mirror with `amwi bench`, or set it to the mirror's rsync URL"+
				" (often rsync://HOST/archlinux/) if it offers one", old, s)
			return errNotMigrated
		}
		m.cfg.Sync.Upstream = s
		return nil
	}},
	{"benchmark_country", "bench.country", func(m *migration, old string, v any) error {
		return oldString(v, &m.cfg.Bench.Country)
	}},
	{"search_per_page", "search.per_page", func(m *migration, old string, v any) error {
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("must be a whole number, not %s", jsonKind(v))
		}
		i, err := strconv.ParseInt(n.String(), 10, 32)
		if err != nil {
			f, ferr := n.Float64()
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
				return fmt.Errorf("must be a whole number, not %s", n)
			}
			i = int64(f)
		}
		m.cfg.Search.PerPage = int(i)
		return nil
	}},
	{"discord_enabled", "discord.enabled", func(m *migration, old string, v any) error {
		return oldBool(v, &m.cfg.Discord.Enabled)
	}},
	{"discord_webhook_url", "discord.webhook_url", func(m *migration, old string, v any) error {
		// A secret: messages say what is wrong with it, never what it is.
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("must be a string, not %s", jsonKind(v))
		}
		m.cfg.Discord.WebhookURL = strings.TrimSpace(s)
		return nil
	}},
	{"trusted_proxies", "server.trusted_proxies", func(m *migration, old string, v any) error {
		var list []string
		split := func(s string) {
			list = append(list, strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })...)
		}
		switch x := v.(type) {
		case string:
			split(x)
		case []any:
			for i, e := range x {
				s, ok := e.(string)
				if !ok {
					return fmt.Errorf("[%d]: must be a string such as \"192.168.1.0/24\", not %s", i, jsonKind(e))
				}
				split(s)
			}
		default:
			return fmt.Errorf("must be a list of addresses or CIDRs, or one string of them separated by commas, not %s", jsonKind(v))
		}
		m.cfg.Server.TrustedProxies = append([]string{}, list...)
		return nil
	}},
}

// errNotMigrated: the setting was looked at and deliberately not carried over (already said why).
var errNotMigrated = errors.New("skipped")

func (m *migration) skip(format string, args ...any) {
	m.skipped = append(m.skipped, fmt.Sprintf(format, args...))
}

func oldBool(v any, dst *bool) error {
	b, ok := v.(bool)
	if !ok {
		return fmt.Errorf("must be true or false, not %s", jsonKind(v))
	}
	*dst = b
	return nil
}

func oldString(v any, dst *string) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("must be a string, not %s", jsonKind(v))
	}
	*dst = strings.TrimSpace(s)
	return nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// mapSettings reads the Python AMWI's settings.json (name is used in messages) onto the
// default config. Invalid JSON and a known setting of the wrong type are errors, every one
// of them listed; unknown settings and values AMWI cannot use are noted in skipped.
func mapSettings(data []byte, name string) (*migration, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("more follows the settings object")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: not valid JSON: %s (nothing written)", name, jsonErrAt(data, err))
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: must hold a JSON object of settings ({\"enabled\": true, …}), not %s (nothing written)", name, jsonKind(v))
	}

	m := &migration{name: name, cfg: config.Default(), from: map[string]string{}}
	var bad []string
	known := map[string]bool{}
	for _, k := range oldSettingsKeys {
		known[k.old] = true
		v, ok := obj[k.old]
		if !ok {
			continue
		}
		if v == nil {
			m.skip("%s: null in the old settings; %s keeps its default", k.old, k.key)
			continue
		}
		m.from[k.key] = k.old
		switch err := k.apply(m, k.old, v); {
		case errors.Is(err, errNotMigrated):
		case err != nil:
			sep := ": "
			if strings.HasPrefix(err.Error(), "[") {
				sep = ""
			}
			bad = append(bad, k.old+sep+err.Error())
		default:
			m.mapped = append(m.mapped, migratedSetting{k.old, k.key, m.shown(k.key)})
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%s: %d setting(s) of the wrong type or out of range (nothing written):\n  %s", name, len(bad), strings.Join(bad, "\n  "))
	}
	if m.cfg.Discord.Enabled && m.cfg.Discord.WebhookURL == "" {
		// The Python AMWI let this be; AMWI refuses it, and there is nothing to notify with.
		m.cfg.Discord.Enabled = false
		for i := range m.mapped {
			if m.mapped[i].key == "discord.enabled" {
				m.mapped[i].value = "false"
			}
		}
		m.skip("discord_enabled: true but no discord_webhook_url: discord.enabled set to false (set a webhook URL, then enable it)")
	}
	var unknown []string
	for k := range obj {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		// The value is not shown: it may be a password or a token.
		m.skip("%s: not a setting AMWI knows; not migrated", k)
	}
	return m, nil
}

// jsonErrAt says where in data a decoding error is, as line:column.
func jsonErrAt(data []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "the file is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the file ends in the middle of a value"
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 1 || off > int64(len(data)) {
		return err.Error()
	}
	// The offset is just past the offending byte; lines and columns count from 1.
	at := data[:off-1]
	line := 1 + bytes.Count(at, []byte("\n"))
	col := int64(len(at)) - int64(bytes.LastIndexByte(at, '\n'))
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}

// shown is the value of key as the report shows it: as written in amwi.toml, secrets as
// "(set)".
func (m *migration) shown(key string) string {
	c := m.cfg
	switch key {
	case "sync.enabled":
		return strconv.FormatBool(c.Sync.Enabled)
	case "sync.interval":
		return strconv.Quote(config.FormatDuration(c.Sync.Interval.D()))
	case "sync.upstream":
		return strconv.Quote(c.Sync.Upstream)
	case "bench.country":
		return strconv.Quote(c.Bench.Country)
	case "search.per_page":
		return strconv.Itoa(c.Search.PerPage)
	case "discord.enabled":
		return strconv.FormatBool(c.Discord.Enabled)
	case "discord.webhook_url":
		if c.Discord.WebhookURL == "" {
			return "(empty)"
		}
		return "(set)"
	case "server.trusted_proxies":
		q := make([]string, len(c.Server.TrustedProxies))
		for i, p := range c.Server.TrustedProxies {
			q[i] = strconv.Quote(p)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	return "?"
}

// render writes the migrated config as amwi.toml text and validates it as target would
// be read. A mirror.root that does not exist yet is not a failure (rootMissing): the text
// is then validated with a stand-in folder for it, and the real one is written.
func (m *migration) render(target string) (text []byte, rootMissing bool, err error) {
	text = config.Render(m.cfg)
	check := text
	if _, err := os.Stat(m.cfg.Mirror.Root); errors.Is(err, os.ErrNotExist) {
		rootMissing = true
		tmp, err := os.MkdirTemp("", "amwi-migrate-")
		if err != nil {
			return nil, false, err
		}
		defer os.Remove(tmp)
		stand := *m.cfg
		stand.Mirror.Root = tmp
		check = config.Render(&stand)
	}
	if _, err := config.Parse(check, target); err != nil {
		var ps config.Problems
		if !errors.As(err, &ps) {
			return nil, false, err
		}
		lines := make([]string, len(ps))
		for i, p := range ps {
			key := p.Key
			if j := strings.IndexByte(key, '['); j > 0 {
				key = key[:j]
			}
			if old := m.from[key]; old != "" {
				lines[i] = fmt.Sprintf("%s (from %s): %s", p.Key, old, p.Msg)
			} else {
				lines[i] = fmt.Sprintf("%s: %s", p.Key, p.Msg)
			}
		}
		return nil, false, fmt.Errorf("%s: the migrated config is not valid (nothing written):\n  %s", m.name, strings.Join(lines, "\n  "))
	}
	return text, rootMissing, nil
}

func (m *migration) report(w io.Writer, from, target string, rootMissing bool) {
	fmt.Fprintf(w, "Migrating %s (Python AMWI) to %s\n", from, target)
	if len(m.mapped) == 0 {
		fmt.Fprintln(w, "\nNothing to carry over: every setting keeps AMWI's default.")
	} else {
		fmt.Fprintln(w, "\nMigrated:")
		width := 0
		for _, s := range m.mapped {
			width = max(width, len(s.old))
		}
		for _, s := range m.mapped {
			fmt.Fprintf(w, "  %-*s → %s = %s\n", width, s.old, s.key, s.value)
		}
	}
	if len(m.skipped) > 0 {
		fmt.Fprintln(w, "\nNot migrated:")
		for _, s := range m.skipped {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	root := m.cfg.Mirror.Root
	fmt.Fprintln(w)
	if rootMissing {
		fmt.Fprintf(w, "Warning: mirror.root %s does not exist yet. It must exist before `amwi serve`:\n"+
			"  create it (`systemd-tmpfiles --create` does), or pass --root with the folder the Python AMWI's mirror is in.\n", root)
	} else {
		fmt.Fprintf(w, "mirror.root = %q: the mirror already there is reused as is (it must still be there for `amwi serve`).\n", root)
	}
	if m.cfg.Sync.Upstream == "" {
		fmt.Fprintln(w, "sync.upstream is not set: the mirror is served but not kept current until you set it (`amwi bench` suggests one).")
	}
}
