package daemon

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/config"
)

// TestMigrateMapping: each setting of the Python AMWI lands on its amwi.toml key; what
// AMWI cannot use is noted, not guessed at.
func TestMigrateMapping(t *testing.T) {
	tests := []struct {
		name, json string
		check      func(c *config.Config) bool
		skipped    []string // substrings, each in some skipped note
	}{
		{"sync", `{"enabled": false, "frequency_hours": 6}`,
			func(c *config.Config) bool { return !c.Sync.Enabled && c.Sync.Interval.D() == 6*time.Hour }, nil},
		{"fractional hours", `{"frequency_hours": 1.5}`,
			func(c *config.Config) bool { return c.Sync.Interval.D() == 90*time.Minute }, nil},
		{"quarter hour", `{"frequency_hours": 0.25}`,
			func(c *config.Config) bool { return c.Sync.Interval.D() == 15*time.Minute }, nil},
		{"rsync URL", `{"upstream_mirror": "rsync://mirror.example.org/archlinux/"}`,
			func(c *config.Config) bool { return c.Sync.Upstream == "rsync://mirror.example.org/archlinux/" }, nil},
		{"host::module", `{"upstream_mirror": " mirror.example.org::archlinux/ "}`,
			func(c *config.Config) bool { return c.Sync.Upstream == "mirror.example.org::archlinux/" }, nil},
		{"https mirror", `{"upstream_mirror": "https://mirror.example.org/archlinux/$repo/os/$arch"}`,
			func(c *config.Config) bool { return c.Sync.Upstream == "" }, []string{"cannot be used as an rsync upstream"}},
		{"http mirror", `{"upstream_mirror": "HTTP://mirror.example.org/archlinux/"}`,
			func(c *config.Config) bool { return c.Sync.Upstream == "" }, []string{"upstream_mirror: \"HTTP://"}},
		{"empty upstream", `{"upstream_mirror": ""}`,
			func(c *config.Config) bool { return c.Sync.Upstream == "" }, []string{"upstream_mirror: empty"}},
		{"bench and search", `{"benchmark_country": "Germany", "search_per_page": 25}`,
			func(c *config.Config) bool { return c.Bench.Country == "Germany" && c.Search.PerPage == 25 }, nil},
		{"per page as float", `{"search_per_page": 100.0}`,
			func(c *config.Config) bool { return c.Search.PerPage == 100 }, nil},
		{"discord", `{"discord_enabled": true, "discord_webhook_url": "https://discord.com/api/webhooks/1/T"}`,
			func(c *config.Config) bool {
				return c.Discord.Enabled && c.Discord.WebhookURL == "https://discord.com/api/webhooks/1/T"
			}, nil},
		{"discord without webhook", `{"discord_enabled": true, "discord_webhook_url": ""}`,
			func(c *config.Config) bool { return !c.Discord.Enabled }, []string{"discord.enabled set to false"}},
		{"proxies list", `{"trusted_proxies": ["10.0.0.1", "192.168.1.0/24"]}`,
			func(c *config.Config) bool {
				return reflect.DeepEqual(c.Server.TrustedProxies, []string{"10.0.0.1", "192.168.1.0/24"})
			}, nil},
		{"proxies string", `{"trusted_proxies": "10.0.0.1, fd00::/8,,192.168.1.0/24"}`,
			func(c *config.Config) bool {
				return reflect.DeepEqual(c.Server.TrustedProxies, []string{"10.0.0.1", "fd00::/8", "192.168.1.0/24"})
			}, nil},
		{"proxies empty", `{"trusted_proxies": ""}`,
			func(c *config.Config) bool {
				return c.Server.TrustedProxies != nil && len(c.Server.TrustedProxies) == 0
			}, nil},
		{"unknown and null", `{"theme": "dark", "admin_password": "hunter2", "enabled": null}`,
			func(c *config.Config) bool { return c.Sync.Enabled }, []string{"theme: not a setting", "admin_password: not a setting", "enabled: null"}},
		{"defaults kept", `{}`,
			func(c *config.Config) bool { return reflect.DeepEqual(c, config.Default()) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := mapSettings([]byte(tt.json), "settings.json")
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(m.cfg) {
				t.Errorf("config after mapping %s: %+v", tt.json, *m.cfg)
			}
			all := strings.Join(m.skipped, "\n")
			for _, w := range tt.skipped {
				if !strings.Contains(all, w) {
					t.Errorf("skipped notes lack %q:\n%s", w, all)
				}
			}
			if len(tt.skipped) == 0 && len(m.skipped) > 0 {
				t.Errorf("unexpected notes:\n%s", all)
			}
			if strings.Contains(all, "hunter2") {
				t.Errorf("a value of an unknown setting is repeated:\n%s", all)
			}
		})
	}
}

// TestMigrateBroken: invalid JSON and known settings of the wrong type are errors naming
// the file and every bad key.
func TestMigrateBroken(t *testing.T) {
	tests := []struct {
		json string
		want []string
	}{
		{``, []string{"settings.json: not valid JSON: the file is empty"}},
		{`{"enabled": true,`, []string{"settings.json: not valid JSON"}},
		{"{\n\"enabled\": tru\n}", []string{"settings.json: not valid JSON: line 2"}},
		{`[1, 2]`, []string{"settings.json: must hold a JSON object", "not a list"}},
		{`{} {}`, []string{"not valid JSON: more follows"}},
		{`{"enabled": "yes", "frequency_hours": "6", "search_per_page": 2.5, "trusted_proxies": [1], "discord_webhook_url": 5, "benchmark_country": 1}`,
			[]string{"6 setting(s)", "enabled: must be true or false, not a string", "frequency_hours: must be a number of hours, not a string",
				"search_per_page: must be a whole number, not 2.5", "trusted_proxies[0]: must be a string", "discord_webhook_url: must be a string, not a number",
				"benchmark_country: must be a string, not a number"}},
		{`{"trusted_proxies": {"a": 1}}`, []string{"trusted_proxies: must be a list"}},
		{`{"frequency_hours": 1e300}`, []string{"frequency_hours: 1e300 hours is not a sensible"}},
	}
	for _, tt := range tests {
		_, err := mapSettings([]byte(tt.json), "settings.json")
		if err == nil {
			t.Errorf("%q: no error", tt.json)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error lacks %q:\n%v", tt.json, w, err)
			}
		}
	}
}

func writeSettings(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "settings.json")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMigrateMain: `amwi migrate` writes a config that loads, reports key by key without
// showing the webhook, refuses to overwrite without --force and keeps a .bak with it.
func TestMigrateMain(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "mirror")
	os.Mkdir(root, 0o755)
	from := writeSettings(t, dir, `{"enabled": true, "frequency_hours": 12, "upstream_mirror": "rsync://mirror.example.org/archlinux/",
		"benchmark_country": "France", "search_per_page": 20, "discord_enabled": true,
		"discord_webhook_url": "https://discord.com/api/webhooks/1/SECRET-TOKEN", "trusted_proxies": "127.0.0.1", "theme": "dark"}`)
	to := filepath.Join(dir, "etc", "amwi.toml")
	out, err := runMain(t, "migrate", "--from", from, "--to", to, "--root", root)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, w := range []string{
		`frequency_hours     → sync.interval = "12h"`,
		`upstream_mirror     → sync.upstream = "rsync://mirror.example.org/archlinux/"`,
		`discord_webhook_url → discord.webhook_url = (set)`,
		`trusted_proxies     → server.trusted_proxies = ["127.0.0.1"]`,
		"theme: not a setting AMWI knows",
		"Wrote " + to,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "SECRET-TOKEN") {
		t.Errorf("the webhook URL is printed:\n%s", out)
	}
	text, _ := os.ReadFile(to)
	if !strings.Contains(string(text), `interval = "12h"`) || !strings.Contains(string(text), "# amwi.toml") {
		t.Errorf("written file is not the commented template with short durations:\n%s", text)
	}
	cfg, err := config.Load(to)
	if err != nil {
		t.Fatalf("migrated config does not load: %v", err)
	}
	if cfg.Mirror.Root != root || cfg.Sync.Interval.D() != 12*time.Hour || cfg.Bench.Country != "France" || cfg.Search.PerPage != 20 ||
		!cfg.Discord.Enabled || cfg.Discord.WebhookURL != "https://discord.com/api/webhooks/1/SECRET-TOKEN" ||
		cfg.Sync.Upstream != "rsync://mirror.example.org/archlinux/" || !reflect.DeepEqual(cfg.Server.TrustedProxies, []string{"127.0.0.1"}) {
		t.Errorf("loaded: %+v", *cfg)
	}

	// Again: refused, the file untouched.
	os.WriteFile(to, []byte("# mine\n"), 0o644)
	out, err = runMain(t, "migrate", "--from", from, "--to", to, "--root", root)
	if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("overwrite without --force: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(to); string(b) != "# mine\n" {
		t.Errorf("refused migrate changed the file: %q", b)
	}
	// -c names the target when --to is not given; --force replaces it and keeps the old one.
	if out, err = runMain(t, "-c", to, "migrate", "--from", from, "--root", root, "--force"); err != nil {
		t.Fatalf("--force: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(to + ".bak"); string(b) != "# mine\n" {
		t.Errorf(".bak holds %q", b)
	}
	if _, err := config.Load(to); err != nil {
		t.Errorf("after --force: %v", err)
	}
}

// TestMigrateMissingRoot: a mirror folder that does not exist yet is a warning, not a
// failure; the config names it all the same.
func TestMigrateMissingRoot(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "not-yet")
	to := filepath.Join(dir, "amwi.toml")
	out, err := runMain(t, "migrate", "--from", writeSettings(t, dir, `{"frequency_hours": 6}`), "--to", to, "--root", root)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "Warning: mirror.root "+root+" does not exist yet") || !strings.Contains(out, "before `amwi serve`") {
		t.Errorf("no warning about the missing root:\n%s", out)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("migrate created the mirror root (err %v)", err)
	}
	os.Mkdir(root, 0o755)
	if cfg, err := config.Load(to); err != nil || cfg.Mirror.Root != root {
		t.Fatalf("once the root exists: %v %+v", err, cfg)
	}
}

// TestMigrateInvalid: values of the right type that AMWI refuses are listed with the old
// key they came from, and nothing is written; so are broken files and missing flags.
func TestMigrateInvalid(t *testing.T) {
	dir := t.TempDir()
	to := filepath.Join(dir, "amwi.toml")
	from := writeSettings(t, dir, `{"frequency_hours": 0, "search_per_page": 900, "trusted_proxies": ["10.0.0.1", "nope"],
		"upstream_mirror": "-e sh", "discord_enabled": true, "discord_webhook_url": "http://discord.com/api/webhooks/1/SECRET-TOKEN"}`)
	out, err := runMain(t, "migrate", "--from", from, "--to", to, "--root", dir)
	if err == nil {
		t.Fatalf("invalid values migrated:\n%s", out)
	}
	for _, w := range []string{
		from + ": the migrated config is not valid (nothing written)",
		"sync.interval (from frequency_hours): must be at least 1m",
		"search.per_page (from search_per_page): must be between 1 and 500, not 900",
		"server.trusted_proxies[1] (from trusted_proxies): \"nope\"",
		"sync.upstream (from upstream_mirror):",
		"discord.webhook_url (from discord_webhook_url): the URL must be https://discord.com/api/webhooks/ID/TOKEN",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error()+out, "SECRET-TOKEN") {
		t.Errorf("the webhook URL is printed:\n%v\n%s", err, out)
	}
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Errorf("a config was written (err %v)", err)
	}

	os.WriteFile(from, []byte(`{"enabled": "yes"}`), 0o644)
	if _, err := runMain(t, "migrate", "--from", from, "--to", to); err == nil || !strings.Contains(err.Error(), from+": 1 setting(s)") {
		t.Errorf("wrong type: %v", err)
	}
	if _, err := runMain(t, "migrate", "--from", filepath.Join(dir, "missing.json"), "--to", to); err == nil || !strings.Contains(err.Error(), "missing.json: cannot read") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Errorf("a config was written (err %v)", err)
	}
	if _, err := runMain(t, "migrate", "--to", to); err != ErrUsage {
		t.Errorf("no --from: %v, want ErrUsage", err)
	}
}
