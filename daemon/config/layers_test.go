package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// layeredFixture writes an admin amwi.toml with comments and relative paths.
func layeredFixture(t *testing.T) (path string, orig []byte) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "mirror"), 0o755)
	path = filepath.Join(dir, "amwi.toml")
	orig = []byte("# my box\n[server]\nlisten = \"127.0.0.1:0\"  # LAN only\n[mirror]\nroot = \"mirror\"\n[sync]\ninterval = \"6h\"\n[state]\ndir = \"state\"\n")
	if err := os.WriteFile(path, orig, 0o640); err != nil {
		t.Fatal(err)
	}
	return path, orig
}

func TestLayeredUpdateKeepsAmwiToml(t *testing.T) {
	path, orig := layeredFixture(t)
	cfg, err := LoadLayered(path)
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.Layers.Origins["sync.interval"]; o.File != path || o.Line != 7 {
		t.Errorf("origin of sync.interval: %v", o)
	}
	if o := cfg.Layers.Origins["sync.upstream"]; o.File != "" {
		t.Errorf("origin of sync.upstream: %v, want the default", o)
	}
	live := NewLive(cfg)
	var seen []string
	live.Subscribe(func(old, cur *Config) { seen = append(seen, old.Sync.Upstream+" → "+cur.Sync.Upstream) })
	if err := live.Update(func(c *Config) {
		c.Sync.Upstream = "rsync://mirror.example.org/archlinux/"
		c.Search.PerPage = 20
	}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != string(orig) {
		t.Errorf("amwi.toml was rewritten:\n%s", b)
	}
	if len(seen) != 1 || seen[0] != " → rsync://mirror.example.org/archlinux/" {
		t.Errorf("subscribers saw %v", seen)
	}
	settings, _ := os.ReadFile(cfg.Layers.SettingsPath)
	if !strings.Contains(string(settings), "[sync]\nupstream = \"rsync://mirror.example.org/archlinux/\"") ||
		strings.Contains(string(settings), "interval") || strings.Contains(string(settings), "root") {
		t.Errorf("settings.toml holds more or less than the changes:\n%s", settings)
	}
	// A restart sees the same, with each value's origin.
	again, err := LoadLayered(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.Sync.Upstream != "rsync://mirror.example.org/archlinux/" || again.Search.PerPage != 20 || again.Mirror.Root != cfg.Mirror.Root {
		t.Errorf("after a restart: %+v", again.Sync)
	}
	if o := again.Layers.Origins["sync.upstream"]; o.File != cfg.Layers.SettingsPath || o.Line == 0 {
		t.Errorf("origin after a restart: %v", o)
	}
	if v, _ := again.Value("sync.interval"); v != `"6h"` {
		t.Errorf("sync.interval reads %s, want \"6h\"", v)
	}

	// Reset: back to amwi.toml's value, out of settings.toml.
	if err := live.Reset("sync.upstream"); err != nil {
		t.Fatal(err)
	}
	if live.Current().Sync.Upstream != "" {
		t.Errorf("reset left %q", live.Current().Sync.Upstream)
	}
	settings, _ = os.ReadFile(cfg.Layers.SettingsPath)
	if strings.Contains(string(settings), "upstream") || !strings.Contains(string(settings), "per_page = 20") {
		t.Errorf("after reset:\n%s", settings)
	}
}

func TestLayeredUpdateRefusesBadValues(t *testing.T) {
	path, _ := layeredFixture(t)
	cfg, _ := LoadLayered(path)
	live := NewLive(cfg)
	err := live.Update(func(c *Config) { c.Sync.Upstream = "ftp://nope/" })
	var ps Problems
	if !errors.As(err, &ps) || ps[0].Key != "sync.upstream" || ps[0].File != cfg.Layers.SettingsPath {
		t.Fatalf("bad upstream: %v", err)
	}
	if live.Current().Sync.Upstream != "" {
		t.Errorf("a refused change took effect")
	}
	if _, err := os.Stat(cfg.Layers.SettingsPath); !os.IsNotExist(err) {
		t.Errorf("a refused change wrote settings.toml")
	}
}

func TestBrokenSettingsStartsNothing(t *testing.T) {
	path, _ := layeredFixture(t)
	cfg, _ := LoadLayered(path)
	os.MkdirAll(filepath.Dir(cfg.Layers.SettingsPath), 0o750)
	os.WriteFile(cfg.Layers.SettingsPath, []byte("[sync]\nupstrem = \"x\"\n"), 0o640)
	_, err := LoadLayered(path)
	if err == nil || !strings.Contains(err.Error(), cfg.Layers.SettingsPath+":2: sync.upstrem: unknown key") {
		t.Fatalf("broken settings.toml: %v", err)
	}
}

// TestConcurrentUpdatesLoseNothing: two writers (the settings page, the benchmark's "use
// as upstream") change different keys at once; both changes stay.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	path, _ := layeredFixture(t)
	cfg, _ := LoadLayered(path)
	live := NewLive(cfg)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			live.Update(func(c *Config) { c.Search.PerPage = 10 + i })
		}(i)
		go func() {
			defer wg.Done()
			live.Update(func(c *Config) { c.Sync.Upstream = "rsync://mirror.example.org/archlinux/" })
		}()
	}
	wg.Wait()
	again, err := LoadLayered(path)
	if err != nil || again.Sync.Upstream == "" || again.Search.PerPage < 10 || again.Search.PerPage != live.Current().Search.PerPage {
		t.Fatalf("after concurrent updates: %v %+v %+v", err, again.Sync, again.Search)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{6 * time.Hour: "6h", 270 * time.Minute: "4h30m", 90 * time.Second: "1m30s",
		30 * time.Second: "30s", time.Minute: "1m", 0: "0s", 1500 * time.Millisecond: "1.5s", time.Hour + time.Second: "1h0m1s"} {
		if got := FormatDuration(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}

// TestLayerProblemsNameTheirFile: what the dashboard's layer brings is blamed on it, even a
// rule about a key it does not set; it may hold only the dashboard's keys; NaN is refused.
func TestLayerProblemsNameTheirFile(t *testing.T) {
	path, _ := layeredFixture(t)
	cfg, _ := LoadLayered(path)
	sp := cfg.Layers.SettingsPath
	os.MkdirAll(filepath.Dir(sp), 0o750)
	for _, c := range []struct{ over, want string }{
		{"[discord]\nenabled = true\n", sp + ":1: discord.webhook_url: must be set"},
		{"[state]\ndir = \"/elsewhere\"\n", sp + ":2: state.dir: is not a setting of the dashboard"},
		{"[sync]\nmin_free_gib = nan\n", "sync.min_free_gib"},
	} {
		os.WriteFile(sp, []byte(c.over), 0o640)
		_, err := LoadLayered(path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("settings.toml %q: %v, want %q", c.over, err, c.want)
		}
	}
}

// TestUpdateWhileTheMirrorIsAway: a dashboard change that does not touch mirror.root is
// not refused because the mirror folder cannot be opened right now.
func TestUpdateWhileTheMirrorIsAway(t *testing.T) {
	path, _ := layeredFixture(t)
	cfg, _ := LoadLayered(path)
	live := NewLive(cfg)
	os.Rename(cfg.Mirror.Root, cfg.Mirror.Root+".away")
	if err := live.Update(func(c *Config) { c.Sync.Enabled = false }); err != nil {
		t.Fatalf("turning syncs off with the mirror away: %v", err)
	}
}

func TestKeyLinesLayouts(t *testing.T) {
	lines := keyLines([]byte("\uFEFF# c\nsearch = {per_page = 20, x = 1}\nsync.interval = \"2h\"\n[bench]\ncountry = '''\nnot = a key\n'''\nstatus_url = \"x\"\n"))
	for k, want := range map[string]int{"search.per_page": 2, "sync.interval": 3, "bench.country": 5, "bench.status_url": 8} {
		if lines[k] != want {
			t.Errorf("%s on line %d, want %d (%v)", k, lines[k], want, lines)
		}
	}
	if _, ok := lines["bench.not"]; ok {
		t.Errorf("a line inside a multi-line string was read as a key")
	}
}

// TestBothLayersCheckedAtOnce: with amwi.toml broken, the dashboard's layer is still read
// (its state dir taken as far as amwi.toml says) and its problems listed too, in line order.
func TestBothLayersCheckedAtOnce(t *testing.T) {
	path, orig := layeredFixture(t)
	sp := filepath.Join(filepath.Dir(path), "state", SettingsFile)
	os.MkdirAll(filepath.Dir(sp), 0o750)
	os.WriteFile(path, append(orig, "[search]\nper_page = \"many\"\n"...), 0o640)
	os.WriteFile(sp, []byte("[sync]\nbwlimit_kib = \"x\"\n[server]\nlisten = \":1\"\n"), 0o640)
	_, err := LoadLayered(path)
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
	if ps[0].File != path || ps[1].File != sp || ps[1].Line != 2 || ps[2].Line != 4 {
		t.Errorf("problems out of place:\n%v", err)
	}
	if got := ps.Files(); len(got) != 2 || got[0] != path || got[1] != sp {
		t.Errorf("Files: %v", got)
	}
}
