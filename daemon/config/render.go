package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/amwi/amwi/etc"
)

// Render writes c as amwi.toml: the commented default file with every value replaced by
// c's. (Comments of a hand-written file are not kept; Save keeps that file as .bak.)
func Render(c *Config) []byte {
	values := map[string]string{}
	sections := fieldsByTag(reflect.ValueOf(c).Elem())
	for sec, sv := range sections {
		for key, fv := range fieldsByTag(sv) {
			values[sec+"."+key] = tomlValue(fv.Interface())
		}
	}
	var out strings.Builder
	section := ""
	for _, line := range strings.SplitAfter(string(etc.DefaultConfig), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "["):
			section = strings.Trim(t, "[] ")
		case t != "" && t[0] != '#' && strings.Contains(t, "="):
			key := strings.TrimSpace(t[:strings.IndexByte(t, '=')])
			if v, ok := values[section+"."+key]; ok {
				line = key + " = " + v + "\n"
			}
		}
		out.WriteString(line)
	}
	return []byte(out.String())
}

func tomlValue(v any) string {
	switch x := v.(type) {
	case string:
		return tomlString(x)
	case Duration:
		return tomlString(FormatDuration(x.D()))
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []string:
		parts := make([]string, len(x))
		for i, s := range x {
			parts[i] = tomlString(s)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	panic(fmt.Sprintf("config: no TOML form for %T", v))
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// WriteFile saves data as path atomically, the old file kept as path.bak (amwi migrate's
// output, the benchmark's results).
func WriteFile(path string, data []byte) error {
	mode := os.FileMode(0o640) // it may hold the Discord webhook, a secret
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	if old, err := os.ReadFile(path); err == nil {
		if err := os.WriteFile(path+".bak", old, mode); err != nil {
			return fmt.Errorf("keep %s.bak: %w", path, err)
		}
	}
	return writeAtomic(path, data, mode)
}

// writeAtomic saves data as path: a temp file in the same folder, fsync, rename over path,
// fsync of the folder. A crash at any point leaves either the old or the new file at path,
// never half of one.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
