package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// oldSettings is what the Python AMWI kept in settings.json: an HTTP mirror as upstream
// (which rsync cannot use), a comma-separated proxy list and a setting AMWI does not have.
const oldSettings = `{
  "enabled": true,
  "frequency_hours": 4.5,
  "upstream_mirror": "https://geo.mirror.pkgbuild.com/$repo/os/$arch",
  "benchmark_country": "Germany",
  "search_per_page": 30,
  "discord_enabled": true,
  "discord_webhook_url": "https://discord.com/api/webhooks/123/SECRET-TOKEN",
  "trusted_proxies": "127.0.0.1, 10.0.0.0/8",
  "theme": "dark"
}
`

// TestMigrate: the Python AMWI's settings.json becomes an amwi.toml that `amwi config
// check` accepts; the report says what went where and what could not be carried over,
// never the webhook URL.
func TestMigrate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	from := filepath.Join(dir, "settings.json")
	os.WriteFile(from, []byte(oldSettings), 0o600)
	root := filepath.Join(dir, "archlinux")
	to := filepath.Join(dir, "etc", "amwi", "amwi.toml")

	// The mirror folder does not exist yet: a warning, and the file is written.
	out, code := run(t, nil, nil, "-c", to, "migrate", "--from", from, "--root", root)
	if code != 0 {
		t.Fatalf("amwi migrate: exit %d\n%s", code, out)
	}
	for _, w := range []string{
		`enabled             → sync.enabled = true`,
		`frequency_hours     → sync.interval = "4h30m"`,
		`benchmark_country   → bench.country = "Germany"`,
		`search_per_page     → search.per_page = 30`,
		`discord_enabled     → discord.enabled = true`,
		`discord_webhook_url → discord.webhook_url = (set)`,
		`trusted_proxies     → server.trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]`,
		`cannot be used as an rsync upstream`,
		`theme: not a setting AMWI knows`,
		`Warning: mirror.root ` + root + ` does not exist yet. It must exist before ` + "`amwi serve`",
		`Wrote ` + to,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("amwi migrate output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "SECRET-TOKEN") {
		t.Errorf("amwi migrate printed the webhook URL:\n%s", out)
	}
	if out, code := run(t, nil, nil, "-c", to, "config", "check"); code != 1 || !strings.Contains(out, "mirror.root: cannot open") {
		t.Errorf("config check with the mirror folder missing: exit %d\n%s", code, out)
	}
	os.Mkdir(root, 0o755)
	if out, code := run(t, nil, nil, "-c", to, "config", "check"); code != 0 || !strings.Contains(out, to+": ok (mirror "+root) {
		t.Fatalf("config check of the migrated file: exit %d\n%s", code, out)
	}
	text, _ := os.ReadFile(to)
	for _, w := range []string{`interval = "4h30m"`, `upstream = ""`, `per_page = 30`, `country = "Germany"`, `webhook_url = "https://discord.com/api/webhooks/123/SECRET-TOKEN"`} {
		if !strings.Contains(string(text), w) {
			t.Errorf("migrated amwi.toml lacks %s:\n%s", w, text)
		}
	}

	// An existing file is not overwritten without --force.
	before, _ := os.ReadFile(to)
	out, code = run(t, nil, nil, "migrate", "--from", from, "--to", to, "--root", root)
	if code != 1 || !strings.Contains(out, to+" already exists: not overwritten") {
		t.Errorf("migrate over an existing file: exit %d\n%s", code, out)
	}
	if after, _ := os.ReadFile(to); string(after) != string(before) {
		t.Errorf("the refused migrate changed %s", to)
	}
	if _, err := os.Stat(to + ".bak"); !os.IsNotExist(err) {
		t.Errorf("the refused migrate left a .bak (err %v)", err)
	}
	// With --force it is replaced, the old one kept beside it; the rsync upstream is taken.
	os.WriteFile(from, []byte(strings.Replace(oldSettings, "https://geo.mirror.pkgbuild.com/$repo/os/$arch", "rsync://mirror.example.org/archlinux/", 1)), 0o600)
	out, code = run(t, nil, nil, "migrate", "--from", from, "--to", to, "--root", root, "--force")
	if code != 0 || !strings.Contains(out, `upstream_mirror     → sync.upstream = "rsync://mirror.example.org/archlinux/"`) {
		t.Fatalf("migrate --force: exit %d\n%s", code, out)
	}
	if bak, _ := os.ReadFile(to + ".bak"); string(bak) != string(before) {
		t.Errorf("--force did not keep the old file as .bak")
	}
	if out, code := run(t, nil, nil, "-c", to, "config", "check"); code != 0 {
		t.Fatalf("config check after --force: exit %d\n%s", code, out)
	}
}

// TestMigrateBroken: a settings.json that is not JSON, or has known settings of the wrong
// type, is an error naming the file and the keys, exit 1, and nothing is written.
func TestMigrateBroken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, text, want string }{
		{"truncated", `{"enabled": true, "frequency_hours": `, "settings.json: not valid JSON"},
		{"syntax", "{\n  \"enabled\": yes\n}\n", "settings.json: not valid JSON: line 2"},
		{"wrong types", `{"enabled": "yes", "trusted_proxies": 5}`, "enabled: must be true or false, not a string"},
		{"invalid value", `{"frequency_hours": 0}`, "sync.interval (from frequency_hours): must be at least 1m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			from := filepath.Join(dir, "settings.json")
			os.WriteFile(from, []byte(tc.text), 0o600)
			to := filepath.Join(dir, "amwi.toml")
			out, code := run(t, nil, nil, "migrate", "--from", from, "--to", to, "--root", dir)
			if code != 1 || !strings.Contains(out, tc.want) || !strings.Contains(out, "nothing written") {
				t.Errorf("exit %d, output:\n%s\nwant exit 1 and %q", code, out, tc.want)
			}
			if _, err := os.Stat(to); !os.IsNotExist(err) {
				t.Errorf("a broken settings.json still wrote %s (err %v)", to, err)
			}
		})
	}
	if out, code := run(t, nil, nil, "migrate"); code != 2 || !strings.Contains(out, "--from") {
		t.Errorf("migrate without --from: exit %d\n%s", code, out)
	}
}
