package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Two layers make the effective configuration: the admin's amwi.toml, which amwi never
// writes, and the dashboard's changes, kept in the state dir as settings.toml and laid over
// it key by key. Both are decoded and validated the same strict way; every value knows
// which layer (file and line) it came from.

// SettingsFile is the dashboard's layer, in the state dir.
const SettingsFile = "settings.toml"

// Origin says where a value comes from: a file and line, or the built-in default.
type Origin struct {
	File string // "" for the built-in default
	Line int
}

func (o Origin) String() string {
	switch {
	case o.File == "":
		return "default"
	case o.Line > 0:
		return fmt.Sprintf("%s:%d", o.File, o.Line)
	}
	return o.File
}

// Layers is where a configuration's values came from.
type Layers struct {
	// Base is the admin's file alone, as the dashboard's layer is laid over it.
	Base *Config
	// SettingsPath is the dashboard's layer (it may not exist yet).
	SettingsPath string
	// Origins maps "section.key" to where its value comes from.
	Origins map[string]Origin

	baseData []byte // amwi.toml as read at start: changes are laid over this
}

// LoadLayered reads the admin's config file at path and the dashboard's settings.toml in
// the state dir it names, and returns the effective configuration. A problem in either
// layer is an error listing every problem with its file and line; a broken settings.toml
// starts nothing, like a broken amwi.toml.
func LoadLayered(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: fmt.Sprintf("cannot read config: %v", unwrapPathErr(err))}}
	}
	base, baseErr := Parse(data, path)
	if baseErr != nil {
		// Find the state dir as far as amwi.toml says it, so that the dashboard's layer is
		// checked too: one `config check` lists the problems of both files.
		base = Default()
		base.Path = path
		decode(data, path, base, keyLines(data))
		base.resolvePaths()
	}
	sp := filepath.Join(base.State.Dir, SettingsFile)
	over, err := os.ReadFile(sp)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		over = nil
	case err != nil && baseErr != nil:
		return nil, baseErr
	case err != nil:
		return nil, Problems{{File: sp, Msg: fmt.Sprintf("cannot read the dashboard's settings: %v", unwrapPathErr(err))}}
	}
	if baseErr != nil {
		ps := baseErr.(Problems)
		if over != nil {
			lines := keyLines(over)
			ops := append(overlayKeys(over, sp, lines), decode(over, sp, Default(), lines)...)
			sort.SliceStable(ops, func(i, j int) bool { return ops[i].Line < ops[j].Line })
			ps = append(ps, ops...)
		}
		return nil, ps
	}
	return ParseLayered(data, path, over, sp)
}

// DashboardKeys are the keys the dashboard's Settings page sets: the only ones its layer
// may hold. (Paths, the listen address and the like are the admin's, in amwi.toml.)
var DashboardKeys = []string{"server.trusted_proxies", "mirror.repos", "sync.enabled", "sync.upstream",
	"sync.fallback_upstreams", "sync.interval", "sync.bwlimit_kib", "sync.io_busy_percent", "search.per_page",
	"bench.country", "discord.enabled", "discord.webhook_url",
	"mirror.packages", "mirror.keep_days", "mirror.max_gib", "sync.http_upstream", "sync.http_fallback_upstreams",
	"server.public_url", "traffic.reverse_dns"}

// ParseLayered is LoadLayered on the two files' contents (over nil: no dashboard layer).
func ParseLayered(baseData []byte, basePath string, over []byte, overPath string) (*Config, error) {
	return parseLayered(baseData, basePath, over, overPath, true)
}

// parseLayered is ParseLayered; without env, values are checked but not the machine's
// state (validateWith).
func parseLayered(baseData []byte, basePath string, over []byte, overPath string, env bool) (*Config, error) {
	baseLines := keyLines(baseData)
	overLines := keyLines(over)
	var ps Problems
	base, err := parseWith(baseData, basePath, env)
	if err != nil {
		ps = append(ps, err.(Problems)...)
	}
	cfg := Default()
	cfg.Path = basePath
	if base != nil {
		*cfg = *base.Clone()
	}
	if over != nil {
		ps = append(ps, overlayKeys(over, overPath, overLines)...)
		ps = append(ps, decode(over, overPath, cfg, overLines)...)
	}
	if len(ps) == 0 {
		cfg.resolvePaths()
		where := func(key string) (string, int) {
			if l, ok := overLines[key]; ok {
				return overPath, l
			}
			// amwi.toml alone is valid (checked above): whatever is wrong now comes with
			// the dashboard's layer, even a rule about a key it does not set (discord's
			// enabled without a webhook).
			sec, _, _ := strings.Cut(key, ".")
			return overPath, overLines[sec]
		}
		ps = cfg.validateWith(where, env)
	}
	if len(ps) > 0 {
		sort.SliceStable(ps, func(i, j int) bool {
			if ps[i].File != ps[j].File {
				return ps[i].File == basePath
			}
			return ps[i].Line < ps[j].Line
		})
		return nil, ps
	}
	origins := map[string]Origin{}
	for _, key := range Keys() {
		switch {
		case overLines[key] > 0:
			origins[key] = Origin{overPath, overLines[key]}
		case baseLines[key] > 0:
			origins[key] = Origin{basePath, baseLines[key]}
		default:
			origins[key] = Origin{}
		}
	}
	cfg.Layers = &Layers{Base: base, SettingsPath: overPath, Origins: origins, baseData: baseData}
	return cfg, nil
}

// overlayKeys refuses keys in the dashboard's layer that the dashboard does not set.
func overlayKeys(data []byte, file string, lines map[string]int) Problems {
	var top map[string]any
	if _, err := toml.Decode(string(data), &top); err != nil {
		return nil // decode reports the syntax
	}
	allowed := map[string]bool{}
	for _, k := range DashboardKeys {
		allowed[k] = true
	}
	var ps Problems
	for sec, v := range top {
		kv, ok := v.(map[string]any)
		if !ok {
			continue
		}
		for k := range kv {
			if full := sec + "." + k; !allowed[full] && slices.Contains(Keys(), full) {
				ps = append(ps, Problem{File: file, Line: lines[full], Key: full,
					Msg: "is not a setting of the dashboard: it belongs in amwi.toml (remove it here)"})
			}
		}
	}
	return ps
}

// Keys lists every "section.key", in the order of the Config struct.
func Keys() []string {
	var out []string
	cv := reflect.ValueOf(Config{})
	for i := 0; i < cv.NumField(); i++ {
		sec := cv.Type().Field(i).Tag.Get("toml")
		if sec == "" || sec == "-" {
			continue
		}
		sv := cv.Field(i)
		for j := 0; j < sv.NumField(); j++ {
			if k := sv.Type().Field(j).Tag.Get("toml"); k != "" && k != "-" {
				out = append(out, sec+"."+k)
			}
		}
	}
	return out
}

// field is the struct field of key ("section.key").
func (c *Config) field(key string) (reflect.Value, bool) {
	sec, k, ok := strings.Cut(key, ".")
	if !ok {
		return reflect.Value{}, false
	}
	sv, ok := fieldsByTag(reflect.ValueOf(c).Elem())[sec]
	if !ok {
		return reflect.Value{}, false
	}
	fv, ok := fieldsByTag(sv)[k]
	return fv, ok
}

// Value is a key's value as TOML ("6h" for a duration, as people write it).
func (c *Config) Value(key string) (string, bool) {
	fv, ok := c.field(key)
	if !ok {
		return "", false
	}
	return tomlValue(fv.Interface()), true
}

// RenderSettings writes the dashboard's layer for c: every key whose value differs from
// the admin's file (c.Layers.Base), and nothing else, so that a value set back to the
// file's leaves the layer and follows the file again.
func RenderSettings(c *Config) []byte {
	base := Default()
	if c.Layers != nil && c.Layers.Base != nil {
		base = c.Layers.Base
	}
	var b strings.Builder
	b.WriteString("# The dashboard's settings, laid over amwi.toml (which amwi never writes).\n" +
		"# Written by amwi; `amwi config show` tells where each value comes from.\n")
	section := ""
	for _, key := range Keys() {
		v, _ := c.Value(key)
		if bv, _ := base.Value(key); v == bv {
			continue
		}
		sec, k, _ := strings.Cut(key, ".")
		if sec != section {
			fmt.Fprintf(&b, "\n[%s]\n", sec)
			section = sec
		}
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	return []byte(b.String())
}

// FormatDuration writes a duration as people write it: "6h", "4h30m", "90s" (not Go's
// "6h0m0s").
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
