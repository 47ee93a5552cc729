package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/daemon/rdns"
	"github.com/amwi/amwi/web"
)

// openDaemon opens a daemon whose amwi.toml is text, in a temporary dir with its mirror
// folder; the caller closes it.
func openDaemon(t *testing.T, text string) (d *Daemon, path string) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "mirror"), 0o755)
	path = filepath.Join(dir, "amwi.toml")
	if err := os.WriteFile(path, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadLayered(path)
	if err != nil {
		t.Fatal(err)
	}
	d = &Daemon{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	return d, path
}

func TestSettingsSave(t *testing.T) {
	orig := "# mine\n[server]\nlisten = \"127.0.0.1:0\"\n[mirror]\nroot = \"mirror\"\n[state]\ndir = \"state\"\n"
	d, path := openDaemon(t, orig)
	defer d.Close()
	s := &settings{d: d}
	form := map[string]string{
		"sync.enabled": "true", "sync.upstream": "ftp://nope/", "sync.fallback_upstreams": "", "sync.interval": "6h",
		"mirror.repos": "core extra", "sync.bwlimit_kib": "x", "sync.io_busy_percent": "80", "search.per_page": "50",
		"bench.country": "", "discord.enabled": "false", "discord.webhook_url": "", "server.trusted_proxies": "",
	}
	problems, err := s.Save(form)
	if err != nil || problems["sync.bwlimit_kib"] == "" {
		t.Fatalf("bad number: %v %v", problems, err)
	}
	form["sync.bwlimit_kib"] = "100"
	problems, err = s.Save(form)
	if err != nil || !strings.Contains(problems["sync.upstream"], "must be rsync://") {
		t.Fatalf("bad upstream: %v %v", problems, err)
	}
	if b, _ := os.ReadFile(path); string(b) != orig {
		t.Fatalf("a refused save changed the file:\n%s", b)
	}
	if _, err := os.Stat(path + ".bak"); !os.IsNotExist(err) {
		t.Errorf("a refused save wrote a backup")
	}

	form["sync.upstream"] = "rsync://mirror.example.org/archlinux/"
	form["sync.fallback_upstreams"] = "a.example::arch/\nb.example::arch/"
	form["search.per_page"] = "7"
	form["server.trusted_proxies"] = "10.0.0.0/8"
	if problems, err := s.Save(form); err != nil || len(problems) > 0 {
		t.Fatalf("good save: %v %v", problems, err)
	}
	if b, _ := os.ReadFile(path); string(b) != orig {
		t.Errorf("the admin's amwi.toml was rewritten:\n%s", b)
	}
	if _, err := os.Stat(path + ".bak"); !os.IsNotExist(err) {
		t.Errorf("a .bak was written")
	}
	again, err := config.LoadLayered(path)
	if err != nil || again.Sync.Upstream != "rsync://mirror.example.org/archlinux/" || again.Search.PerPage != 7 ||
		len(again.Sync.FallbackUpstreams) != 2 || again.Sync.BWLimitKiB != 100 {
		t.Fatalf("saved file: %v %+v", err, again)
	}
	if fi, err := os.Stat(filepath.Join(filepath.Dir(path), "state", config.SettingsFile)); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("settings.toml: %v %v", err, fi)
	}
	// Applied without restart.
	if c := d.live.Current(); c.Search.PerPage != 7 || len(d.trustedProxies().Trusted) != 1 || d.trustedProxies().Header != web.HeaderForwardedFor {
		t.Errorf("not applied: %+v", c)
	}
	if up := d.syncer.Upstreams(); len(up) != 3 || up[0] != "rsync://mirror.example.org/archlinux/" {
		t.Errorf("sync engine upstreams: %v", up)
	}
}

func TestBenchUseAsUpstream(t *testing.T) {
	d, path := openDaemon(t, "[server]\nlisten = \"127.0.0.1:0\"\n[mirror]\nroot = \"mirror\"\n[state]\ndir = \"state\"\n")
	defer d.Close()
	rep := `{"time":"2026-11-24T00:00:00Z","country":"Testland","results":[
{"rank":1,"host":"a","url":"https://a.example/arch/","rsync_url":"rsync://a.example/arch/","usable":true},
{"rank":2,"host":"b","url":"https://b.example/archlinux/","rsync_url":"rsync://b.example/arch/","usable":true},
{"rank":3,"host":"c","url":"https://c.example/","rsync_url":"","usable":false},
{"rank":4,"host":"d","url":"","rsync_url":"rsync://d.example/arch/","usable":true},
{"rank":5,"host":"e","url":"http://e.example/arch/","rsync_url":"rsync://e.example/arch/","usable":true}]}`
	os.WriteFile(filepath.Join(filepath.Dir(path), "state", benchResultsFile), []byte(rep), 0o644)
	b := &benchService{d: d}
	if err := b.Use("c"); err == nil {
		t.Error("an unusable mirror was set as upstream")
	}
	if err := b.Use("b"); err != nil {
		t.Fatal(err)
	}
	c := d.live.Current()
	if c.Sync.Upstream != "rsync://b.example/arch/" || strings.Join(c.Sync.FallbackUpstreams, " ") != "rsync://a.example/arch/ rsync://d.example/arch/" {
		t.Errorf("upstream %s, fallbacks %v", c.Sync.Upstream, c.Sync.FallbackUpstreams)
	}
	// The same hosts over HTTP(S), for "used" mode's fetches: d has no HTTP URL.
	if c.Sync.HTTPUpstream != "https://b.example/archlinux/" || strings.Join(c.Sync.HTTPFallbackUpstreams, " ") != "https://a.example/arch/" {
		t.Errorf("http upstream %s, fallbacks %v", c.Sync.HTTPUpstream, c.Sync.HTTPFallbackUpstreams)
	}
	if saved, _ := config.LoadLayered(path); saved.Sync.Upstream != "rsync://b.example/arch/" || saved.Sync.HTTPUpstream != "https://b.example/archlinux/" {
		t.Errorf("not saved")
	}
	// e (http only) then a and d: the plain http URL is taken when it is all a host has.
	if err := b.Use("e"); err != nil {
		t.Fatal(err)
	}
	if c := d.live.Current(); c.Sync.HTTPUpstream != "http://e.example/arch/" || strings.Join(c.Sync.HTTPFallbackUpstreams, " ") != "https://a.example/arch/ https://b.example/archlinux/" {
		t.Errorf("http upstream %s, fallbacks %v", c.Sync.HTTPUpstream, c.Sync.HTTPFallbackUpstreams)
	}
}

// TestBenchUseKeepsHTTPWithoutURLs: in "used" mode (which needs sync.http_upstream),
// choosing hosts the benchmark knows no HTTP URL for changes the rsync upstream and
// leaves the HTTP one as it was, instead of emptying it (which would be refused).
func TestBenchUseKeepsHTTPWithoutURLs(t *testing.T) {
	d, path := openDaemon(t, "[server]\nlisten = \"127.0.0.1:0\"\n[mirror]\nroot = \"mirror\"\npackages = \"used\"\n[sync]\nhttp_upstream = \"https://old.example/arch/\"\n[state]\ndir = \"state\"\n")
	defer d.Close()
	rep := `{"time":"2026-11-24T00:00:00Z","country":"Testland","results":[
{"rank":1,"host":"a","rsync_url":"rsync://a.example/arch/","usable":true}]}`
	os.WriteFile(filepath.Join(filepath.Dir(path), "state", benchResultsFile), []byte(rep), 0o644)
	if err := (&benchService{d: d}).Use("a"); err != nil {
		t.Fatal(err)
	}
	if c := d.live.Current(); c.Sync.Upstream != "rsync://a.example/arch/" || c.Sync.HTTPUpstream != "https://old.example/arch/" {
		t.Errorf("upstream %s, http upstream %s", c.Sync.Upstream, c.Sync.HTTPUpstream)
	}
}

// TestUpstreamSetAtRuntimeSchedules: a daemon started without an upstream (make run's
// default) schedules a sync as soon as the settings give it one, and its throttle follows
// sync.io_busy_percent without a restart.
func TestUpstreamSetAtRuntimeSchedules(t *testing.T) {
	d, _ := openDaemon(t, "[server]\nlisten = \"127.0.0.1:0\"\n[mirror]\nroot = \"mirror\"\n[sync]\nio_busy_percent = 0\n[state]\ndir = \"state\"\n")
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if d.syncer.Busy == nil {
		t.Errorf("no disk busy sampler for the throttle")
	}
	time.Sleep(100 * time.Millisecond)
	if next := d.syncer.State().NextScheduled; !next.IsZero() {
		t.Fatalf("a sync is scheduled without an upstream: %v", next)
	}
	s := &settings{d: d}
	if problems, err := s.update(func(c *config.Config) { c.Sync.Upstream = "rsync://127.0.0.1:1/archlinux/" }); err != nil || len(problems) > 0 {
		t.Fatalf("set upstream: %v %v", problems, err)
	}
	for i := 0; d.syncer.State().NextScheduled.IsZero(); i++ {
		if i > 200 {
			t.Fatal("no sync scheduled after the upstream was set")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNothingLeftAfterClose: Run starts every long-lived part, and after Run and Close
// no goroutine of the daemon is left.
func TestNothingLeftAfterClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	d, _ := openDaemon(t, "[server]\nlisten = \"127.0.0.1:0\"\n[mirror]\nroot = \"mirror\"\n[sync]\nupstream = \"rsync://127.0.0.1:1/archlinux/\"\n[discord]\nenabled = true\nwebhook_url = \"https://discord.com/api/webhooks/1/x\"\n[state]\ndir = \"state\"\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	time.Sleep(200 * time.Millisecond)
	// A settings change restarts a part (the notifier) while Run runs.
	s := &settings{d: d}
	if problems, err := s.update(func(c *config.Config) { c.Discord.WebhookURL = "https://discord.com/api/webhooks/2/y" }); err != nil || len(problems) > 0 {
		t.Fatalf("update: %v %v", problems, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSettingsSavePackages: the Packages section goes through the same validated path:
// "used" without an HTTP upstream is refused on its field, bad numbers and URLs on theirs,
// and nothing is saved; a good form is saved and applied; a form without the section
// (an older page) leaves it alone.
func TestSettingsSavePackages(t *testing.T) {
	d, path := openDaemon(t, "[server]\nlisten = \"127.0.0.1:0\"\n[mirror]\nroot = \"mirror\"\n[state]\ndir = \"state\"\n")
	defer d.Close()
	s := &settings{d: d}
	base := map[string]string{
		"sync.enabled": "true", "sync.upstream": "", "sync.fallback_upstreams": "", "sync.interval": "6h",
		"mirror.repos": "core extra", "sync.bwlimit_kib": "0", "sync.io_busy_percent": "80", "search.per_page": "50",
		"bench.country": "", "discord.enabled": "false", "discord.webhook_url": "", "server.trusted_proxies": "",
	}
	form := func(extra map[string]string) map[string]string {
		f := map[string]string{}
		for k, v := range base {
			f[k] = v
		}
		for k, v := range extra {
			f[k] = v
		}
		return f
	}
	for _, tt := range []struct {
		name, key, want string
		form            map[string]string
	}{
		{"used without upstream", "mirror.packages", "sync.http_upstream",
			map[string]string{"mirror.packages": "used", "mirror.keep_days": "90", "mirror.max_gib": "0", "sync.http_upstream": ""}},
		{"unknown mode", "mirror.packages", `must be "all"`, map[string]string{"mirror.packages": "some"}},
		{"days not a number", "mirror.keep_days", "whole number", map[string]string{"mirror.keep_days": "ninety"}},
		{"days out of range", "mirror.keep_days", "between 1 and 400", map[string]string{"mirror.keep_days": "0"}},
		{"budget not a number", "mirror.max_gib", "number of GiB", map[string]string{"mirror.max_gib": "lots"}},
		{"pacman line", "sync.http_upstream", "$ variable", map[string]string{"sync.http_upstream": "https://m.example/$repo/os/$arch/"}},
		{"bad fallback", "sync.http_fallback_upstreams", "not an http(s) mirror URL",
			map[string]string{"sync.http_fallback_upstreams": "https://ok.example/arch/\nrsync://no.example/arch/"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			problems, err := s.Save(form(tt.form))
			if err != nil || !strings.Contains(problems[tt.key], tt.want) {
				t.Errorf("problems %v, %v; want %s: …%s…", problems, err, tt.key, tt.want)
			}
			if c := d.live.Current(); c.Mirror.Packages != "all" || c.Sync.HTTPUpstream != "" {
				t.Errorf("a refused save changed the config: %+v", c.Mirror)
			}
		})
	}
	good := form(map[string]string{"mirror.packages": "used", "mirror.keep_days": "30", "mirror.max_gib": "12.5",
		"sync.http_upstream": " https://a.example/archlinux/ ", "sync.http_fallback_upstreams": "https://b.example/arch/\nhttp://c.lan/arch/\n"})
	if problems, err := s.Save(good); err != nil || len(problems) > 0 {
		t.Fatalf("good save: %v %v", problems, err)
	}
	check := func(what string, c *config.Config) {
		t.Helper()
		if !c.Mirror.Used() || c.Mirror.KeepDays != 30 || c.Mirror.MaxGiB != 12.5 || c.Sync.HTTPUpstream != "https://a.example/archlinux/" ||
			strings.Join(c.Sync.HTTPFallbackUpstreams, " ") != "https://b.example/arch/ http://c.lan/arch/" {
			t.Errorf("%s: %+v %+v", what, c.Mirror, c.Sync)
		}
	}
	check("applied", d.live.Current())
	again, err := config.LoadLayered(path)
	if err != nil {
		t.Fatal(err)
	}
	check("saved", again)
	// A form without the section changes the rest and leaves it.
	if problems, err := s.Save(form(map[string]string{"search.per_page": "9"})); err != nil || len(problems) > 0 {
		t.Fatalf("save without the section: %v %v", problems, err)
	}
	check("after a form without the section", d.live.Current())
	if d.live.Current().Search.PerPage != 9 {
		t.Errorf("the rest of that form was not saved")
	}
}

// TestSettingsPublicURL: server.public_url set from the dashboard is checked like
// amwi.toml's, kept in the dashboard's layer and used by /mirrorlist at once; a form
// without the field leaves it alone.
func TestSettingsPublicURL(t *testing.T) {
	d, _ := openDaemon(t, "[server]\nlisten = \"127.0.0.1:0\"\n[mirror]\nroot = \"mirror\"\n[state]\ndir = \"state\"\n")
	defer d.Close()
	s := &settings{d: d}
	form := map[string]string{
		"sync.enabled": "true", "sync.upstream": "", "sync.fallback_upstreams": "", "sync.interval": "6h",
		"mirror.repos": "core extra", "sync.bwlimit_kib": "0", "sync.io_busy_percent": "80", "search.per_page": "50",
		"bench.country": "", "discord.enabled": "false", "discord.webhook_url": "", "server.trusted_proxies": "",
		"server.public_url": "http://pi.lan/?x=1",
	}
	problems, err := s.Save(form)
	if err != nil || !strings.Contains(problems["server.public_url"], "has a query or fragment") {
		t.Fatalf("bad public_url: %v %v", problems, err)
	}
	if got := d.mirrorlistInfo().PublicBase; got != "" {
		t.Fatalf("a refused public_url is in use: %q", got)
	}
	form["server.public_url"] = "http://pi.lan/%23/"
	if problems, err := s.Save(form); err != nil || !strings.Contains(problems["server.public_url"], "%-escape") {
		t.Fatalf("escaped public_url: %v %v", problems, err)
	}
	form["server.public_url"] = " https://proxy.lan/mirror/ "
	if problems, err := s.Save(form); err != nil || len(problems) > 0 {
		t.Fatalf("good public_url: %v %v", problems, err)
	}
	if got := d.mirrorlistInfo().PublicBase; got != "https://proxy.lan/mirror" {
		t.Errorf("/mirrorlist's base after the save: %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(d.Config.State.Dir, config.SettingsFile)); !strings.Contains(string(b), `public_url = "https://proxy.lan/mirror/"`) {
		t.Errorf("settings.toml:\n%s", b)
	}
	delete(form, "server.public_url")
	if problems, err := s.Save(form); err != nil || len(problems) > 0 {
		t.Fatalf("save without the field: %v %v", problems, err)
	}
	if got := d.live.Current().Server.PublicURL; got != "https://proxy.lan/mirror/" {
		t.Errorf("a form without public_url changed it to %q", got)
	}
}

// TestSettingsReverseDNS: traffic.reverse_dns turned off from the dashboard is kept in the
// dashboard's layer (amwi.toml untouched) and names nobody from the next call on, with no
// DNS asked; on again, names come back; a form without the field leaves it alone.
func TestSettingsReverseDNS(t *testing.T) {
	orig := "[server]\nlisten = \"127.0.0.1:0\"\n[mirror]\nroot = \"mirror\"\n[state]\ndir = \"state\"\n"
	d, path := openDaemon(t, orig)
	defer d.Close()
	// The system's resolver is swapped for one that counts (d.Close closes the cache).
	res := &countingResolver{}
	d.rdns.Close()
	d.rdns = &rdns.Cache{Resolver: res}
	s := &settings{d: d}
	form := map[string]string{
		"sync.enabled": "true", "sync.upstream": "", "sync.fallback_upstreams": "", "sync.interval": "6h",
		"mirror.repos": "core extra", "sync.bwlimit_kib": "0", "sync.io_busy_percent": "80", "search.per_page": "50",
		"bench.country": "", "discord.enabled": "false", "discord.webhook_url": "", "server.trusted_proxies": "",
		"traffic.reverse_dns": "false",
	}
	if problems, err := s.Save(form); err != nil || len(problems) > 0 {
		t.Fatalf("save off: %v %v", problems, err)
	}
	a := netip.MustParseAddr("192.168.1.40")
	if got := d.clientName(a); got != "" || res.calls.Load() != 0 {
		t.Errorf("off: named %q after %d lookups", got, res.calls.Load())
	}
	settingsFile := filepath.Join(d.Config.State.Dir, config.SettingsFile)
	if b, _ := os.ReadFile(settingsFile); !strings.Contains(string(b), "[traffic]\nreverse_dns = false") {
		t.Errorf("settings.toml:\n%s", b)
	}
	if b, _ := os.ReadFile(path); string(b) != orig {
		t.Errorf("amwi.toml was rewritten:\n%s", b)
	}
	if again, err := config.LoadLayered(path); err != nil || again.Traffic.ReverseDNS {
		t.Errorf("after a restart: %v, reverse_dns %v", err, again.Traffic.ReverseDNS)
	}
	delete(form, "traffic.reverse_dns")
	if problems, err := s.Save(form); err != nil || len(problems) > 0 || d.live.Current().Traffic.ReverseDNS {
		t.Fatalf("a form without the field: %v %v, reverse_dns %v", problems, err, d.live.Current().Traffic.ReverseDNS)
	}
	form["traffic.reverse_dns"] = "true"
	if problems, err := s.Save(form); err != nil || len(problems) > 0 {
		t.Fatalf("save on: %v %v", problems, err)
	}
	got := d.clientName(a)
	for i := 0; got == "" && i < 10000; i++ {
		time.Sleep(time.Millisecond)
		got = d.clientName(a)
	}
	if got != "desk.lan" {
		t.Errorf("on again: %q", got)
	}
}
