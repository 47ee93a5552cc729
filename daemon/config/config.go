// Package config reads and validates amwi.toml.
//
// Parsing is strict: an unknown section or key, a value of the wrong type and a value that
// fails validation are all problems, and Load reports every problem it finds at once, each
// with the file, line and key, so `amwi config check` can list them all in one go.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where the config is looked for when neither -c nor $AMWI_CONFIG says.
const DefaultPath = "/etc/amwi/amwi.toml"

// Config is the whole of amwi.toml. Field tags are the TOML keys; the reflection in
// decode walks them, so a new setting is one field here plus its check in validate.
type Config struct {
	Server  Server  `toml:"server"`
	Mirror  Mirror  `toml:"mirror"`
	Sync    Sync    `toml:"sync"`
	Search  Search  `toml:"search"`
	Bench   Bench   `toml:"bench"`
	Discord Discord `toml:"discord"`
	State   State   `toml:"state"`
	Traffic Traffic `toml:"traffic"`

	// Path is the file the config came from ("" for the built-in defaults).
	Path string `toml:"-"`
	// Layers, for a configuration from LoadLayered, says where each value came from.
	Layers *Layers `toml:"-"`
}

type Server struct {
	Listen         string   `toml:"listen"`
	TrustedProxies []string `toml:"trusted_proxies"`
	// ClientIPHeader is the one header a trusted proxy's client address is read from:
	// "X-Forwarded-For" or "X-Real-IP" (see web.Proxies).
	ClientIPHeader string `toml:"client_ip_header"`
	// ShutdownGrace bounds how long in-flight downloads may go on after SIGTERM.
	ShutdownGrace Duration `toml:"shutdown_grace"`
	// SendTimeout closes a download whose client accepted no data for this long; like
	// nginx's send_timeout it is about a stalled client, not a slow one.
	SendTimeout Duration `toml:"send_timeout"`
	// MaxConnections caps the open client connections; more are answered 503 and closed.
	MaxConnections int `toml:"max_connections"`
	// MemoryLimitMiB is the daemon's soft memory limit (runtime/debug.SetMemoryLimit):
	// past it the garbage collector works harder rather than let the heap double.
	// 0 = none; the GOMEMLIMIT environment variable, when set, wins.
	MemoryLimitMiB int `toml:"memory_limit_mib"`
	// PublicURL is how LAN clients reach this box (http://pi.lan:8000/, or
	// https://proxy.lan/mirror/ behind a reverse proxy), for /mirrorlist and the Overview's
	// set-up line; "" takes the host each request names.
	PublicURL string `toml:"public_url"`
}

// PublicBase is server.public_url without its trailing slash, ready for a path to be
// appended ("https://proxy.lan/mirror" + "/archlinux/"); "" when it is not set.
func (s Server) PublicBase() string {
	base, err := CheckPublicURL(s.PublicURL)
	if err != nil {
		return "" // validated at load; never reached with a loaded config
	}
	return base
}

type Mirror struct {
	Root  string   `toml:"root"`
	Repos []string `toml:"repos"`
	// Packages is "all" (every package file the databases name is kept) or "used": the
	// databases are kept as always, package files only for what LAN clients downloaded in
	// the last KeepDays, the rest fetched from sync.http_upstream on first request.
	Packages string `toml:"packages"`
	// KeepDays is how long a downloaded package counts as used ("used" mode).
	KeepDays int `toml:"keep_days"`
	// MaxGiB is the disk budget for package files in "used" mode (0 = none): past it the
	// least recently downloaded go first.
	MaxGiB float64 `toml:"max_gib"`
}

// Package modes (mirror.packages).
const (
	PackagesAll  = "all"
	PackagesUsed = "used"
)

// Used reports whether the mirror holds only the packages the LAN uses.
func (m Mirror) Used() bool { return m.Packages == PackagesUsed }

type Sync struct {
	Enabled           bool     `toml:"enabled"`
	Upstream          string   `toml:"upstream"`
	FallbackUpstreams []string `toml:"fallback_upstreams"`
	Interval          Duration `toml:"interval"`
	MinFreeGiB        float64  `toml:"min_free_gib"`
	BWLimitKiB        int      `toml:"bwlimit_kib"`
	IOBusyPercent     int      `toml:"io_busy_percent"`
	// HTTPUpstream is the base URL (https://HOST/PATH/, what pacman's Server lines lead
	// to without $repo/os/$arch) "used" mode fetches missing packages from;
	// HTTPFallbackUpstreams are tried in order after it.
	HTTPUpstream          string   `toml:"http_upstream"`
	HTTPFallbackUpstreams []string `toml:"http_fallback_upstreams"`
}

// HTTPUpstreams is the HTTP upstream and its fallbacks, in order ("" left out).
func (s Sync) HTTPUpstreams() []string {
	var out []string
	if s.HTTPUpstream != "" {
		out = append(out, s.HTTPUpstream)
	}
	return append(out, s.HTTPFallbackUpstreams...)
}

type Search struct {
	PerPage int `toml:"per_page"`
}

type Bench struct {
	Country        string `toml:"country"`
	StatusURL      string `toml:"status_url"`
	MirrorlistsDir string `toml:"mirrorlists_dir"`
}

type Discord struct {
	Enabled    bool   `toml:"enabled"`
	WebhookURL string `toml:"webhook_url"`
	// AllowAnyHost lets webhook_url be any https URL, not only Discord's webhook hosts
	// (a relay, say). Loopback, link-local and private addresses stay refused.
	AllowAnyHost bool `toml:"allow_any_host"`
}

type State struct {
	Dir string `toml:"dir"`
}

type Traffic struct {
	// ReverseDNS names clients by reverse DNS (PTR) in the traffic statistics and the
	// live view, looked up in the background and cached (daemon/rdns).
	ReverseDNS bool `toml:"reverse_dns"`
}

// Default returns the configuration used for every key the file does not set.
func Default() *Config {
	return &Config{
		Server: Server{
			Listen:         ":8000",
			TrustedProxies: []string{},
			ClientIPHeader: "X-Forwarded-For",
			ShutdownGrace:  Duration(30 * time.Second),
			SendTimeout:    Duration(60 * time.Second),
			MaxConnections: 4096,
			MemoryLimitMiB: 48,
		},
		Mirror: Mirror{
			Root:     "/srv/http/archlinux",
			Repos:    []string{"core", "extra", "multilib"},
			Packages: PackagesAll,
			KeepDays: 90,
		},
		Sync: Sync{
			Enabled:               true,
			FallbackUpstreams:     []string{},
			HTTPFallbackUpstreams: []string{},
			Interval:              Duration(6 * time.Hour),
			MinFreeGiB:            2,
			IOBusyPercent:         80,
		},
		Search: Search{PerPage: 50},
		Bench: Bench{
			StatusURL:      "https://archlinux.org/mirrors/status/json/",
			MirrorlistsDir: "/etc/amwi/mirrorlists",
		},
		State:   State{Dir: "/var/lib/amwi"},
		Traffic: Traffic{ReverseDNS: true},
	}
}

// Duration is a time.Duration written in TOML as a Go duration string ("6h", "90s").
type Duration time.Duration

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it like \"90s\", \"30m\" or \"6h\")", string(b))
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Problem is one thing wrong with a config file.
type Problem struct {
	File string
	Line int    // 0 when unknown
	Key  string // "section.key", "section" or ""
	Msg  string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in the config (amwi.toml and the dashboard's layer); it is the error Load returns.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Files lists the files the problems are in, in the order they first appear.
func (ps Problems) Files() []string {
	var files []string
	for _, p := range ps {
		if !slices.Contains(files, p.File) {
			files = append(files, p.File)
		}
	}
	return files
}

// Load reads, decodes and validates the config file at path. Relative paths inside it
// (mirror.root, state.dir, bench.mirrorlists_dir) are taken relative to the file's folder.
// The error, when there is one, is a Problems listing everything found.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: fmt.Sprintf("cannot read config: %v", unwrapPathErr(err))}}
	}
	return Parse(data, path)
}

// Parse decodes and validates config text; name is used in messages and to resolve
// relative paths (its folder), as Load does.
func Parse(data []byte, name string) (*Config, error) { return parseWith(data, name, true) }

// parseWith is Parse; without env, the machine's state is not checked (validateWith).
func parseWith(data []byte, name string, env bool) (*Config, error) {
	cfg := Default()
	cfg.Path = name
	lines := keyLines(data)
	ps := decode(data, name, cfg, lines)
	if len(ps) == 0 {
		cfg.resolvePaths()
		ps = cfg.validateWith(func(key string) (string, int) { return name, lines[key] }, env)
	}
	if len(ps) > 0 {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
		return nil, ps
	}
	return cfg, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// decode fills cfg from data key by key, so that one bad value does not hide the next.
func decode(data []byte, file string, cfg *Config, lines map[string]int) Problems {
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Problems{{File: file, Line: pe.Position.Line, Msg: "TOML syntax: " + pe.Message}}
		}
		return Problems{{File: file, Msg: "TOML syntax: " + err.Error()}}
	}
	var ps Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{File: file, Line: lines[key], Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	sections := fieldsByTag(reflect.ValueOf(cfg).Elem())
	for name, prim := range top {
		sec, ok := sections[name]
		if !ok {
			add(name, "unknown section (known: %s)", knownKeys(sections))
			continue
		}
		if md.Type(name) != "Hash" {
			add(name, "must be a table: write it as [%s] followed by its keys", name)
			continue
		}
		var kv map[string]toml.Primitive
		if err := md.PrimitiveDecode(prim, &kv); err != nil {
			add(name, "%v", err)
			continue
		}
		fields := fieldsByTag(sec)
		for key, v := range kv {
			full := name + "." + key
			f, ok := fields[key]
			if !ok {
				add(full, "unknown key (known in [%s]: %s)", name, knownKeys(fields))
				continue
			}
			if err := md.PrimitiveDecode(v, f.Addr().Interface()); err != nil {
				add(full, "%s", typeMessage(err, f, md.Type(name, key)))
			}
		}
	}
	return ps
}

func fieldsByTag(v reflect.Value) map[string]reflect.Value {
	m := make(map[string]reflect.Value)
	for i := 0; i < v.NumField(); i++ {
		tag := v.Type().Field(i).Tag.Get("toml")
		if tag != "" && tag != "-" {
			m[tag] = v.Field(i)
		}
	}
	return m
}

func knownKeys(m map[string]reflect.Value) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// typeMessage turns a decoding error into what the user should write instead.
func typeMessage(err error, f reflect.Value, got string) string {
	var pe toml.ParseError
	if errors.As(err, &pe) { // from UnmarshalText: already says what is wrong
		return pe.Message
	}
	want := ""
	switch {
	case f.Type() == reflect.TypeOf(Duration(0)):
		want = `a duration string such as "6h"`
	case f.Kind() == reflect.String:
		want = "a string in double quotes"
	case f.Kind() == reflect.Bool:
		want = "true or false"
	case f.Kind() == reflect.Int:
		want = "a whole number"
	case f.Kind() == reflect.Float64:
		want = "a number"
	case f.Kind() == reflect.Slice:
		want = `a list of strings such as ["a", "b"]`
	default:
		return err.Error()
	}
	if got == "" {
		return "must be " + want
	}
	return fmt.Sprintf("must be %s, not %s", want, tomlTypeName(got))
}

func tomlTypeName(t string) string {
	switch t {
	case "Integer":
		return "an integer"
	case "Float":
		return "a float"
	case "String":
		return "a string"
	case "Bool":
		return "a boolean"
	case "Array":
		return "an array"
	case "Hash":
		return "a table"
	}
	return strings.ToLower(t)
}

// keyLines maps "section" and "section.key" to the line they are written on. The TOML
// library keeps key positions to itself, so this reads the layouts people write: [section]
// headers and key = value lines, a table written inline (search = {per_page = 20}),
// multi-line strings (whose lines are not keys), a byte-order mark. Keys it cannot place
// get line 0.
func keyLines(data []byte) map[string]int {
	m := make(map[string]int)
	section := ""
	inString := "" // the delimiter of a multi-line string being read
	text := strings.TrimPrefix(string(data), "\uFEFF")
	set := func(key string, line int) {
		if _, ok := m[key]; !ok {
			m[key] = line
		}
	}
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if inString != "" {
			if strings.Count(line, inString)%2 == 1 {
				inString = ""
			}
			continue
		}
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '[':
			end := strings.IndexByte(line, ']')
			if end < 0 {
				continue
			}
			section = strings.Trim(strings.TrimSpace(strings.Trim(line[1:end], "[")), `"'`)
			set(section, n)
		default:
			eq := strings.IndexByte(line, '=')
			if eq <= 0 {
				continue
			}
			key := strings.Trim(strings.TrimSpace(line[:eq]), `"'`)
			value := strings.TrimSpace(line[eq+1:])
			for _, delim := range []string{`"""`, "'''"} {
				if strings.HasPrefix(value, delim) && strings.Count(value, delim) == 1 {
					inString = delim
				}
			}
			full := key
			if section != "" {
				full = section + "." + key
			} else if sec, k, ok := strings.Cut(key, "."); ok {
				set(sec, n) // a dotted key at the top: sync.interval = "2h"
				full = sec + "." + strings.Trim(strings.TrimSpace(k), `"'`)
			}
			set(full, n)
			if section == "" && strings.HasPrefix(value, "{") {
				// An inline table: its keys are on this line.
				set(key, n)
				for _, part := range strings.Split(strings.Trim(value, "{} "), ",") {
					if k, _, ok := strings.Cut(part, "="); ok {
						set(key+"."+strings.Trim(strings.TrimSpace(k), `"'`), n)
					}
				}
			}
		}
	}
	return m
}

// resolvePaths makes relative paths relative to the config file's folder, as nginx does
// with its prefix, so `amwi -c var/amwi.toml` works from any working directory.
func (c *Config) resolvePaths() {
	if c.Path == "" {
		return
	}
	base, err := filepath.Abs(filepath.Dir(c.Path))
	if err != nil {
		base = filepath.Dir(c.Path)
	}
	for _, p := range []*string{&c.Mirror.Root, &c.State.Dir, &c.Bench.MirrorlistsDir} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
}
