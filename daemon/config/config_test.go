package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/etc"
)

// parseIn parses text as if it were amwi.toml in a fresh folder that holds mirror/.
func parseIn(t *testing.T, text string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "mirror"), 0o755); err != nil {
		t.Fatal(err)
	}
	return Parse([]byte(text), filepath.Join(dir, "amwi.toml"))
}

func TestBadConfigs(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // each must appear in one problem line
	}{
		{"syntax", "[server]\nlisten = \":8000\n", []string{"amwi.toml:2: TOML syntax"}},
		{"unknown key", "[mirror]\nroot = \"mirror\"\n\n[server]\nlisten = \":8000\"\nlistn = \":80\"\n",
			[]string{"amwi.toml:6: server.listn: unknown key (known in [server]: client_ip_header, listen, max_connections, memory_limit_mib, public_url, send_timeout, shutdown_grace, trusted_proxies)"}},
		{"unknown section", "[mirror]\nroot = \"mirror\"\n[srever]\nlisten = 1\n", []string{"amwi.toml:3: srever: unknown section"}},
		{"top-level key", "listen = \":80\"\n[mirror]\nroot = \"mirror\"\n", []string{"amwi.toml:1: listen: unknown section"}},
		{"bad type", "[mirror]\nroot = \"mirror\"\n[search]\nper_page = \"fifty\"\n", []string{"amwi.toml:4: search.per_page: must be a whole number, not a string"}},
		{"bad list type", "[mirror]\nroot = \"mirror\"\nrepos = \"core\"\n", []string{"amwi.toml:3: mirror.repos: must be a list of strings"}},
		{"bad duration", "[mirror]\nroot = \"mirror\"\n[sync]\ninterval = \"6 hours\"\n", []string{`amwi.toml:4: sync.interval: "6 hours" is not a duration`}},
		{"duration as number", "[mirror]\nroot = \"mirror\"\n[sync]\ninterval = 6\n", []string{`amwi.toml:4: sync.interval: "6" is not a duration (write it like "90s", "30m" or "6h")`}},
		{"short interval", "[mirror]\nroot = \"mirror\"\n[sync]\ninterval = \"10s\"\n", []string{"amwi.toml:4: sync.interval: must be at least 1m"}},
		{"bad cidr", "[mirror]\nroot = \"mirror\"\n[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n",
			[]string{`amwi.toml:4: server.trusted_proxies[1]: "10.0.0.0/33" is not a CIDR`}},
		{"proxy range of everyone", "[mirror]\nroot = \"mirror\"\n[server]\ntrusted_proxies = [\"0.0.0.0/0\", \"::/0\", \"10.0.0.0/8\", \"2000::/3\"]\n",
			[]string{`server.trusted_proxies[0]: "0.0.0.0/0" trusts nearly every address`, `server.trusted_proxies[1]: "::/0" trusts`, `server.trusted_proxies[3]: "2000::/3" trusts`}},
		{"mapped proxy range of everyone", "[mirror]\nroot = \"mirror\"\n[server]\ntrusted_proxies = [\"::ffff:0:0/96\", \"::ffff:10.0.0.0/90\"]\n",
			[]string{`amwi.toml:4: server.trusted_proxies[0]: "::ffff:0:0/96" (0.0.0.0/0) trusts nearly every address`, `server.trusted_proxies[1]: "::ffff:10.0.0.0/90" reaches beyond the IPv4-mapped addresses`}},
		{"bad proxy addr", "[mirror]\nroot = \"mirror\"\n[server]\ntrusted_proxies = [\"proxy.lan\"]\n", []string{`server.trusted_proxies[0]: "proxy.lan" is neither an address nor a CIDR`}},
		{"client ip header", "[mirror]\nroot = \"mirror\"\n[server]\n\nclient_ip_header = \"Forwarded\"\n",
			[]string{`amwi.toml:5: server.client_ip_header: "Forwarded" is not a header amwi reads: write "X-Forwarded-For"`, `or "X-Real-IP"`}},
		{"client ip header empty", "[mirror]\nroot = \"mirror\"\n[server]\nclient_ip_header = \"\"\n", []string{`amwi.toml:4: server.client_ip_header: "" is not a header`}},
		{"client ip header not a string", "[mirror]\nroot = \"mirror\"\n[server]\nclient_ip_header = [\"X-Real-IP\"]\n", []string{`amwi.toml:4: server.client_ip_header: must be a string`}},
		{"bad listen", "[mirror]\nroot = \"mirror\"\n[server]\nlisten = \"8000\"\n", []string{`amwi.toml:4: server.listen: "8000" is not an address`}},
		{"bad port", "[mirror]\nroot = \"mirror\"\n[server]\nlisten = \":http8\"\n", []string{`server.listen: ":http8": port "http8" is not a number`}},
		{"port too big", "[mirror]\nroot = \"mirror\"\n[server]\nlisten = \"127.0.0.1:70000\"\n", []string{`port "70000" is not a number from 0 to 65535`}},
		{"missing root", "[mirror]\nroot = \"/nonexistent/amwi/mirror\"\n", []string{"amwi.toml:2: mirror.root: cannot open /nonexistent/amwi/mirror: no such file or directory"}},
		{"root is a file", "[mirror]\nroot = \"/dev/null\"\n", []string{"amwi.toml:2: mirror.root: /dev/null is not a directory"}},
		{"bad repo", "[mirror]\nroot = \"mirror\"\nrepos = [\"core\", \"Extra Stuff\", \"core\"]\n",
			[]string{`mirror.repos[1]: "Extra Stuff" is not a repository name`, `mirror.repos[2]: "core" is listed twice`}},
		{"star with others", "[mirror]\nroot = \"mirror\"\nrepos = [\"core\", \"*\"]\n", []string{`mirror.repos[1]: "*" (a full mirror) must be the only entry`}},
		{"no repos", "[mirror]\nroot = \"mirror\"\nrepos = []\n", []string{"mirror.repos: must list at least one"}},
		{"upstream option injection", "[mirror]\nroot = \"mirror\"\n[sync]\nupstream = \"--rsh=sh\"\n", []string{"amwi.toml:4: sync.upstream:", "would be read as an rsync option"}},
		{"upstream scheme", "[mirror]\nroot = \"mirror\"\n[sync]\nupstream = \"ftp://mirror.example/arch/\"\n", []string{"sync.upstream: \"ftp://mirror.example/arch/\": must be rsync://HOST[:PORT]/MODULE/PATH/ or HOST::MODULE/PATH/"}},
		{"upstream space", "[mirror]\nroot = \"mirror\"\n[sync]\nfallback_upstreams = [\"rsync://a.example/arch/\", \"rsync://b.example/ar ch/\"]\n", []string{"sync.fallback_upstreams[1]:", "whitespace"}},
		{"negative numbers", "[mirror]\nroot = \"mirror\"\n[sync]\nmin_free_gib = -1\nbwlimit_kib = -5\nio_busy_percent = 101\n",
			[]string{"sync.min_free_gib: must be a number of GiB from 0 to 1048576", "sync.bwlimit_kib: must not be negative", "sync.io_busy_percent: must be between 0"}},
		{"per page", "[mirror]\nroot = \"mirror\"\n[search]\nper_page = 0\n", []string{"search.per_page: must be between 1 and 500"}},
		{"webhook missing", "[mirror]\nroot = \"mirror\"\n[discord]\nenabled = true\n", []string{"discord.webhook_url: must be set"}},
		{"webhook plain http", "[mirror]\nroot = \"mirror\"\n[discord]\nwebhook_url = \"http://discord.com/api/webhooks/1/SECRET\"\n", []string{"discord.webhook_url: the URL must be https://discord.com/api/webhooks/ID/TOKEN"}},
		{"webhook other host", "[mirror]\nroot = \"mirror\"\n[discord]\nwebhook_url = \"https://evil.example/api/webhooks/1/SECRET\"\n", []string{"discord.webhook_url: the URL must be a Discord webhook"}},
		{"webhook loopback with any host", "[mirror]\nroot = \"mirror\"\n[discord]\nallow_any_host = true\nwebhook_url = \"https://127.0.0.1:8080/x\"\n", []string{"discord.webhook_url: the URL's host is a loopback"}},
		{"http upstream query or fragment", "[mirror]\nroot = \"mirror\"\n[sync]\nhttp_upstream = \"https://m.example/?x/\"\nhttp_fallback_upstreams = [\"https://m.example/#/\"]\n",
			[]string{`amwi.toml:4: sync.http_upstream: "https://m.example/?x/" has a query or fragment`, `amwi.toml:5: sync.http_fallback_upstreams[0]: "https://m.example/#/" has a query or fragment`}},
		{"status url", "[mirror]\nroot = \"mirror\"\n[bench]\nstatus_url = \"archlinux.org/mirrors\"\n", []string{`bench.status_url: "archlinux.org/mirrors" is not an http(s) URL`}},
		{"section not a table", "mirror = 5\n", []string{"amwi.toml:1: mirror: must be a table"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseIn(t, tt.text)
			if err == nil {
				t.Fatalf("no error; config %+v", cfg)
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error is %T, want Problems: %v", err, err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
			if strings.Contains(msg, "SECRET") {
				t.Errorf("error repeats the webhook secret:\n%s", msg)
			}
		})
	}
}

// TestTrustedProxyMappedCIDR: an IPv4-mapped CIDR is its IPv4 form, as the address form
// is: client addresses are compared unmapped, so "::ffff:192.168.1.10/128" kept as IPv6
// would be accepted and never match.
func TestTrustedProxyMappedCIDR(t *testing.T) {
	for s, want := range map[string]string{
		"::ffff:192.168.1.10":     "192.168.1.10/32",
		"::ffff:192.168.1.10/128": "192.168.1.10/32",
		"::ffff:192.168.1.7/120":  "192.168.1.0/24",
		"::ffff:0:0/96":           "0.0.0.0/0", // refused by the /8 rule, see TestBadConfigs
		"fd00::/8":                "fd00::/8",
	} {
		if p, err := ParseCIDR(s); err != nil || p.String() != want {
			t.Errorf("ParseCIDR(%q) = %v, %v; want %s", s, p, err, want)
		}
	}
}

// TestClientIPHeader: both headers, in any case, come out in their canonical spelling.
func TestClientIPHeader(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"X-Forwarded-For", "X-Forwarded-For"}, {"x-forwarded-for", "X-Forwarded-For"},
		{"X-Real-IP", "X-Real-IP"}, {"x-real-ip", "X-Real-IP"}, {"X-Real-Ip", "X-Real-IP"},
	} {
		cfg, err := parseIn(t, "[mirror]\nroot = \"mirror\"\n[server]\nclient_ip_header = \""+tt.in+"\"\n")
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if got, err := CheckClientIPHeader(cfg.Server.ClientIPHeader); err != nil || got != tt.want {
			t.Errorf("%s: %q %v, want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"X-Forwarded-For ", "X-Forwarded-For, X-Real-IP", "True-Client-IP", "CF-Connecting-IP", "X-Real-IP\n"} {
		if _, err := CheckClientIPHeader(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestAllProblemsAtOnce: config check lists every problem, in line order, not only the first.
func TestAllProblemsAtOnce(t *testing.T) {
	text := `[server]
listen = "nope"
bogus = 1

[mirror]
root = "/nonexistent/x"

[search]
per_page = "x"
`
	_, err := parseIn(t, text)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want Problems, got %v", err)
	}
	// Decoding problems (unknown key, wrong type) come first: validation needs a decoded
	// config. Then a second run after fixing them would show listen and root.
	if len(ps) != 2 || ps[0].Line != 3 || ps[1].Line != 9 {
		t.Fatalf("want problems at lines 3 and 9, got:\n%v", err)
	}
	text = strings.Replace(strings.Replace(text, "bogus = 1\n", "", 1), `per_page = "x"`, "per_page = 10", 1)
	_, err = parseIn(t, text)
	if !errors.As(err, &ps) || len(ps) != 2 || ps[0].Key != "server.listen" || ps[1].Key != "mirror.root" {
		t.Fatalf("want server.listen and mirror.root problems, got:\n%v", err)
	}
}

// TestDefaultFileMatchesDefaults: etc/amwi.toml documents exactly the built-in defaults.
func TestDefaultFileMatchesDefaults(t *testing.T) {
	dir := t.TempDir()
	text := strings.Replace(string(etc.DefaultConfig), `root = "/srv/http/archlinux"`, `root = "`+dir+`"`, 1)
	cfg, err := Parse([]byte(text), filepath.Join(dir, "amwi.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Mirror.Root = dir
	want.Path = cfg.Path
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("etc/amwi.toml differs from Default():\nfile:    %+v\ndefault: %+v", *cfg, *want)
	}
}

func TestValuesAndRelativePaths(t *testing.T) {
	cfg, err := parseIn(t, `[server]
listen = "127.0.0.1:9000"
trusted_proxies = ["10.0.0.1", "fd00::/8"]
[mirror]
root = "mirror"
repos = ["core", "extra"]
[sync]
interval = "90m"
min_free_gib = 5
upstream = "rsync://mirror.example.org:873/archlinux/"
fallback_upstreams = ["mirror.example.net::arch/"]
[state]
dir = "state"
`)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sync.Interval.D() != 90*time.Minute || cfg.Sync.MinFreeGiB != 5 || cfg.Server.Listen != "127.0.0.1:9000" {
		t.Errorf("values not decoded: %+v", cfg)
	}
	base := filepath.Dir(cfg.Path)
	if cfg.Mirror.Root != filepath.Join(base, "mirror") || cfg.State.Dir != filepath.Join(base, "state") {
		t.Errorf("relative paths not resolved against the config's folder: root %s, state %s", cfg.Mirror.Root, cfg.State.Dir)
	}
	if cfg.Bench.MirrorlistsDir != "/etc/amwi/mirrorlists" {
		t.Errorf("absolute default path changed: %s", cfg.Bench.MirrorlistsDir)
	}
}

func TestFullMirrorRepos(t *testing.T) {
	if _, err := parseIn(t, "[mirror]\nroot = \"mirror\"\nrepos = [\"*\"]\n"); err != nil {
		t.Fatalf("repos = [\"*\"]: %v", err)
	}
}

func TestCheckUpstream(t *testing.T) {
	good := []string{
		"rsync://mirror.example.org/archlinux/",
		"rsync://mirror.example.org:8730/pub/archlinux/",
		"rsync://127.0.0.1:8730/arch/",
		"rsync://[::1]:873/arch/",
		"mirror.example.org::archlinux/",
		"127.0.0.1::arch",
	}
	bad := []string{
		"", "-e ssh", "--rsh=sh", "rsync://", "rsync:///arch/", "rsync://host", "rsync://host/",
		"http://host/arch/", "ftp://host/arch/", "host:arch/", "host::", "host::-x",
		"rsync://host/arch/../../etc/", "rsync://host/ar\nch/", "rsync://host/arch/\t",
		"rsync://user:pw@host/arch/", "rsync://host:0/arch/", "rsync://host:99999/arch/",
		"rsync://-host/arch/", "rsync://host/arch/?x=1",
	}
	for _, s := range good {
		if err := CheckUpstream(s); err != nil {
			t.Errorf("CheckUpstream(%q) = %v, want ok", s, err)
		}
	}
	for _, s := range bad {
		if err := CheckUpstream(s); err == nil {
			t.Errorf("CheckUpstream(%q) = nil, want an error", s)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(etc.DefaultConfig))
	f.Add([]byte("[server]\nlisten = 5\n[[x]]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse(b, "/nonexistent/amwi.toml")
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
		var ps Problems
		if err != nil && (!errors.As(err, &ps) || len(ps) == 0) {
			t.Fatalf("error is not a non-empty Problems: %v", err)
		}
	})
}

// traffic.reverse_dns: on by default, can be turned off, a bool only.
func TestTrafficReverseDNS(t *testing.T) {
	if c, err := parseIn(t, "[mirror]\nroot = \"mirror\"\n"); err != nil || !c.Traffic.ReverseDNS {
		t.Fatalf("default: %v, %v; want on", c, err)
	}
	c, err := parseIn(t, "[mirror]\nroot = \"mirror\"\n[traffic]\nreverse_dns = false\n")
	if err != nil || c.Traffic.ReverseDNS {
		t.Fatalf("reverse_dns = false: %+v, %v", c.Traffic, err)
	}
	if v, _ := c.Value("traffic.reverse_dns"); v != "false" {
		t.Errorf("Value(traffic.reverse_dns) = %q", v)
	}
	if !strings.Contains(string(Render(c)), "[traffic]\n") || !strings.Contains(string(Render(c)), "reverse_dns = false\n") {
		t.Errorf("Render lost traffic.reverse_dns:\n%s", Render(c))
	}
	_, err = parseIn(t, "[mirror]\nroot = \"mirror\"\n[traffic]\nreverse_dns = \"no\"\nreverse_dsn = true\n")
	for _, want := range []string{"amwi.toml:4: traffic.reverse_dns: must be true or false", "amwi.toml:5: traffic.reverse_dsn: unknown key"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad traffic section: %v; want %q", err, want)
		}
	}
}

// TestPublicURL: server.public_url is checked at load, each problem naming the key and its
// line; good values are normalised to a base a path is appended to.
func TestPublicURL(t *testing.T) {
	bad := []struct{ value, want string }{
		{"pi.lan:8000", "must start with http:// or https://"},
		{"ftp://pi.lan/", "must start with http:// or https://"},
		{"http://", "has no host"},
		{"http:pi.lan", "has no host"},
		{"http://admin:secret@pi.lan/", "carries a user name or password"},
		{"http://pi.lan/?x=1", "has a query or fragment"},
		{"http://pi.lan/#top", "has a query or fragment"},
		{"http://pi.lan/a b/", "contains a space"},
		{`http://pi.lan/\nServer = http://evil/`, "control"},
		{"http://pi.lan/$repo/", "cannot carry"},
		{"http://pi.lan:0/", `port "0" is not a number from 1 to 65535`},
		{"http://pi.lan:99999/", `port "99999"`},
		{"http://pi.lan:/", `port ""`},
		{"http://pi_lan/", "neither an IP address nor a host name"},
		{"http://пи.lan/", "non-ASCII"},
		{"http://pi.lan/../x/", `must not contain "."`},
		{"http://pi.lan/%23/", "contains a %-escape"},
		{"http://pi.lan/mirror%2F/", "contains a %-escape"},
		{"http://pi.lan/" + strings.Repeat("a", 600), "at most 512"},
	}
	for _, tt := range bad {
		t.Run(tt.value, func(t *testing.T) {
			_, err := parseIn(t, "[mirror]\nroot = \"mirror\"\n\n[server]\npublic_url = \""+tt.value+"\"\n")
			if err == nil {
				t.Fatalf("public_url %q accepted", tt.value)
			}
			if msg := err.Error(); !strings.Contains(msg, "amwi.toml:5: server.public_url: ") || !strings.Contains(msg, tt.want) {
				t.Errorf("public_url %q: got %q, want the file, line 5, the key and %q", tt.value, msg, tt.want)
			}
			if _, msg, _ := strings.Cut(err.Error(), "server.public_url: "); strings.Contains(msg, "secret") {
				t.Errorf("the message repeats the password: %v", err)
			}
		})
	}
	good := []struct{ value, base string }{
		{"", ""},
		{"http://pi.lan:8000", "http://pi.lan:8000"},
		{"http://pi.lan:8000/", "http://pi.lan:8000"},
		{"https://Proxy.LAN/mirror/", "https://proxy.lan/mirror"},
		{"https://proxy.lan/mirror", "https://proxy.lan/mirror"},
		{"http://192.168.1.5/", "http://192.168.1.5"},
		{"http://[fd00::5]:8080/", "http://[fd00::5]:8080"},
	}
	for _, tt := range good {
		c, err := parseIn(t, "[mirror]\nroot = \"mirror\"\n[server]\npublic_url = \""+tt.value+"\"\n")
		if err != nil {
			t.Errorf("public_url %q refused: %v", tt.value, err)
			continue
		}
		if got := c.Server.PublicBase(); got != tt.base {
			t.Errorf("public_url %q: base %q, want %q", tt.value, got, tt.base)
		}
	}
}

// TestPublicURLPercentEncoded: the characters CheckPublicURL refuses written plainly
// ('#', '?', '$', spaces, newlines, quotes) must not get through percent-encoded either:
// a base of "http://pi.lan/#" makes pacman fetch the dashboard (http://pi.lan/) as
// core.db, and one /mirrorlist cannot use is silently replaced by the request's host.
func TestPublicURLPercentEncoded(t *testing.T) {
	for _, v := range []string{
		"http://pi.lan/%23/",       // '#': pacman/curl drop the rest of the URL
		"http://pi.lan/%3F/",       // '?': the rest becomes a query
		"http://pi.lan/%24repo/",   // '$': a pacman variable
		"http://pi.lan/a%20b/",     // space
		"http://pi.lan/%0aServer/", // newline
		"http://pi.lan/%22/",       // quote
	} {
		t.Run(v, func(t *testing.T) {
			base, err := CheckPublicURL(v)
			if err != nil {
				return // refused: fine
			}
			if i := strings.IndexFunc(base, func(r rune) bool {
				return r <= ' ' || r == 0x7f || strings.ContainsRune("#?$\"'<>\\^`{|}", r)
			}); i >= 0 {
				t.Errorf("CheckPublicURL(%q) accepted it and returned base %q, which holds %q: a Server line cannot carry it", v, base, base[i])
			}
		})
	}
}
