package config

import (
	"errors"
	"fmt"
	"github.com/amwi/amwi/internal/netguard"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// validateAt checks every value that decoded cleanly and returns all problems found;
// where says in which file and on which line a key is written.
func (c *Config) validateAt(where func(key string) (file string, line int)) Problems {
	return c.validateWith(where, true)
}

// validateWith is validateAt; without env, what depends on the machine's state rather
// than on the values (mirror.root opening) is not checked: a dashboard change to the
// schedule must not be refused because the mirror disk is away right now.
func (c *Config) validateWith(where func(key string) (file string, line int), env bool) Problems {
	var ps Problems
	add := func(key, format string, args ...any) {
		k := key
		if i := strings.IndexByte(key, '['); i > 0 { // a key inside a list, e.g. "server.trusted_proxies[1]"
			k = key[:i]
		}
		file, line := where(k)
		ps = append(ps, Problem{File: file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
	}

	if err := CheckListen(c.Server.Listen); err != nil {
		add("server.listen", "%v", err)
	}
	for i, p := range c.Server.TrustedProxies {
		if pre, err := ParseCIDR(p); err != nil {
			add(fmt.Sprintf("server.trusted_proxies[%d]", i), "%v", err)
		} else if pre.Bits() < minProxyBits {
			what := fmt.Sprintf("%q", p)
			if pre.String() != p { // "::ffff:0:0/96" is 0.0.0.0/0
				what += " (" + pre.String() + ")"
			}
			add(fmt.Sprintf("server.trusted_proxies[%d]", i), "%s trusts nearly every address to name its own client address (and so its own login limits); list your reverse proxy's address, e.g. \"192.168.1.10\"", what)
		}
	}
	if _, err := CheckClientIPHeader(c.Server.ClientIPHeader); err != nil {
		add("server.client_ip_header", "%v", err)
	}
	if g := c.Server.ShutdownGrace.D(); g < 0 || g > 10*time.Minute {
		add("server.shutdown_grace", "must be between 0s and 10m, not %s", g)
	}
	if t := c.Server.SendTimeout.D(); t < 30*time.Second || t > time.Hour {
		add("server.send_timeout", "must be between 30s and 1h, not %s", t)
	}
	if n := c.Server.MaxConnections; n < 64 || n > 1<<20 {
		add("server.max_connections", "must be between 64 and 1048576, not %d", n)
	}
	if n := c.Server.MemoryLimitMiB; n != 0 && (n < 16 || n > 1<<20) {
		add("server.memory_limit_mib", "must be 0 (no limit) or between 16 and 1048576, not %d", n)
	}
	if _, err := CheckPublicURL(c.Server.PublicURL); err != nil {
		add("server.public_url", "%v", err)
	}

	if err := checkMirrorRoot(c.Mirror.Root, env); err != nil {
		add("mirror.root", "%v", err)
	}
	if len(c.Mirror.Repos) == 0 {
		add("mirror.repos", `must list at least one repository, e.g. ["core", "extra"]`)
	}
	seen := map[string]bool{}
	for i, r := range c.Mirror.Repos {
		key := fmt.Sprintf("mirror.repos[%d]", i)
		switch {
		case r == "*" && len(c.Mirror.Repos) == 1: // a full mirror, as Arch's own sync script keeps
		case r == "*":
			add(key, `"*" (a full mirror) must be the only entry`)
		case !repoName.MatchString(r):
			add(key, "%q is not a repository name (lower-case letters, digits, '-', '_', '.', '+')", r)
		case seen[r]:
			add(key, "%q is listed twice", r)
		}
		seen[r] = true
	}

	switch c.Mirror.Packages {
	case PackagesAll:
	case PackagesUsed:
		if c.Sync.HTTPUpstream == "" {
			add("mirror.packages", `"used" fetches missing packages from sync.http_upstream: set it too (an https://HOST/PATH/ mirror URL; the upstream benchmark's "use as upstream" fills it)`)
		}
	default:
		add("mirror.packages", `must be "all" (every package, a full mirror of the repos) or "used" (only what LAN clients download), not %q`, c.Mirror.Packages)
	}
	if d := c.Mirror.KeepDays; d < 1 || d > 400 {
		add("mirror.keep_days", "must be between 1 and 400 days (downloads per package are kept 400 days), not %d", d)
	}
	if g := c.Mirror.MaxGiB; math.IsNaN(g) || g < 0 || g > 1<<20 {
		add("mirror.max_gib", "must be a number of GiB from 0 (no budget) to 1048576")
	}

	if c.Sync.HTTPUpstream != "" {
		if err := CheckHTTPUpstream(c.Sync.HTTPUpstream); err != nil {
			add("sync.http_upstream", "%v", err)
		}
	}
	for i, u := range c.Sync.HTTPFallbackUpstreams {
		if err := CheckHTTPUpstream(u); err != nil {
			add(fmt.Sprintf("sync.http_fallback_upstreams[%d]", i), "%v", err)
		}
	}

	if c.Sync.Upstream != "" {
		if err := CheckUpstream(c.Sync.Upstream); err != nil {
			add("sync.upstream", "%v", err)
		}
	}
	for i, u := range c.Sync.FallbackUpstreams {
		if err := CheckUpstream(u); err != nil {
			add(fmt.Sprintf("sync.fallback_upstreams[%d]", i), "%v", err)
		}
	}
	if iv := c.Sync.Interval.D(); iv < time.Minute {
		add("sync.interval", "must be at least 1m, not %s (the lastupdate check makes frequent syncs cheap, but not free for the upstream)", iv)
	}
	if f := c.Sync.MinFreeGiB; math.IsNaN(f) || f < 0 || f > 1<<20 {
		add("sync.min_free_gib", "must be a number of GiB from 0 to 1048576")
	}
	if c.Sync.BWLimitKiB < 0 {
		add("sync.bwlimit_kib", "must not be negative (0 means unlimited)")
	}
	if p := c.Sync.IOBusyPercent; p < 0 || p > 100 {
		add("sync.io_busy_percent", "must be between 0 (never pause) and 100, not %d", p)
	}

	if p := c.Search.PerPage; p < 1 || p > 500 {
		add("search.per_page", "must be between 1 and 500, not %d", p)
	}

	if n := c.Bench.Country; len(n) > 64 || strings.ContainsFunc(n, unicode.IsControl) {
		add("bench.country", "must be a country name (at most 64 characters, one line), e.g. \"Germany\"")
	}
	if err := checkHTTPURL(c.Bench.StatusURL, false); err != nil {
		add("bench.status_url", "%v", err)
	}
	if c.Bench.MirrorlistsDir == "" {
		add("bench.mirrorlists_dir", "must not be empty")
	}

	if c.Discord.Enabled && c.Discord.WebhookURL == "" {
		add("discord.webhook_url", "must be set when discord.enabled is true")
	}
	if c.Discord.WebhookURL != "" {
		// The webhook URL is a secret: the message never repeats it.
		if err := CheckWebhookURL(c.Discord.WebhookURL, c.Discord.AllowAnyHost); err != nil {
			add("discord.webhook_url", "%v", err)
		}
	}

	if c.State.Dir == "" {
		add("state.dir", "must not be empty")
	} else if fi, err := os.Stat(c.State.Dir); err == nil && !fi.IsDir() {
		add("state.dir", "%s is not a directory", c.State.Dir)
	}
	return ps
}

var repoName = regexp.MustCompile(`^[a-z0-9][a-z0-9._+-]*$`)

// CheckListen accepts HOST:PORT or :PORT with a numeric port.
func CheckListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not an address: write HOST:PORT or :PORT, e.g. \":8000\" or \"127.0.0.1:8000\"", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && !hostName.MatchString(host) {
		return fmt.Errorf("%q: %q is neither an IP address nor a host name", addr, host)
	}
	return nil
}

// CheckClientIPHeader accepts the two headers a reverse proxy may give the client's address
// in, whatever their case, and returns the header's canonical spelling.
//
// Only two on purpose: each needs the proxy to overwrite what the client sent (nginx's
// proxy_add_x_forwarded_for appends to it, proxy_set_header X-Real-IP replaces it), and
// reading one the proxy does not set would believe the client.
func CheckClientIPHeader(h string) (string, error) {
	for _, known := range []string{"X-Forwarded-For", "X-Real-IP"} {
		if strings.EqualFold(h, known) {
			return known, nil
		}
	}
	return "", fmt.Errorf("%q is not a header amwi reads: write \"X-Forwarded-For\" (the right-most address that is not a trusted proxy) or \"X-Real-IP\", whichever your proxy sets", h)
}

// minProxyBits is the shortest prefix server.trusted_proxies takes: /8 (10.0.0.0/8 and
// fd00::/8 are whole private networks already). Proxies are a few known hosts; a wider
// range is a mistake (0.0.0.0/0 made every client's own X-Forwarded-For believed).
const minProxyBits = 8

// ParseCIDR accepts a CIDR ("10.0.0.0/8", "fd00::/8") or a single address. An
// IPv4-mapped one ("::ffff:192.168.1.0/120") becomes its IPv4 form (192.168.1.0/24):
// client addresses are compared unmapped, so the IPv6 form would never match.
func ParseCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as \"192.168.1.0/24\"", s)
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, fmt.Errorf("%q reaches beyond the IPv4-mapped addresses (::ffff:0:0/96): write the IPv4 CIDR, e.g. \"192.168.1.0/24\"", s)
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a CIDR such as \"192.168.1.0/24\"", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func checkMirrorRoot(root string, env bool) error {
	if root == "" {
		return fmt.Errorf("must not be empty")
	}
	if !env {
		return nil
	}
	f, err := os.Open(root)
	if err != nil {
		return fmt.Errorf("cannot open %s: %v (create it, or point mirror.root at the mirror)", root, unwrapPathErr(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cannot stat %s: %v", root, unwrapPathErr(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", root)
	}
	if _, err := f.Readdirnames(1); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("cannot read %s: %v", root, unwrapPathErr(err))
	}
	return nil
}

var (
	hostName   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)
	rsyncShort = regexp.MustCompile(`^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])::([A-Za-z0-9][A-Za-z0-9._+-]*)(/.*)?$`)
)

// CheckUpstream validates an rsync source: rsync://HOST[:PORT]/MODULE[/PATH] or
// HOST::MODULE[/PATH]. The value ends up in rsync's argument list, so anything that could be
// read as an option, or that carries whitespace or control characters, is refused.
func CheckUpstream(s string) error {
	const how = "must be rsync://HOST[:PORT]/MODULE/PATH/ or HOST::MODULE/PATH/"
	if s == "" {
		return fmt.Errorf("is empty; %s", how)
	}
	if strings.HasPrefix(s, "-") {
		return fmt.Errorf("%q starts with '-' and would be read as an rsync option; %s", s, how)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%q contains whitespace or a control character; %s", s, how)
		}
	}
	if m := rsyncShort.FindStringSubmatch(s); m != nil && !strings.HasPrefix(s, "rsync://") {
		if strings.Contains(m[3], "..") {
			return fmt.Errorf("%q: the path must not contain \"..\"", s)
		}
		return nil
	}
	if !strings.HasPrefix(s, "rsync://") {
		return fmt.Errorf("%q: %s", s, how)
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "rsync" {
		return fmt.Errorf("%q: %s", s, how)
	}
	if u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			return fmt.Errorf("rsync URL must not carry a password (rsync reads it from RSYNC_PASSWORD)")
		}
	}
	host := u.Hostname()
	if host == "" || (net.ParseIP(host) == nil && !hostName.MatchString(host)) {
		return fmt.Errorf("%q: missing or invalid host; %s", s, how)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, p)
		}
	}
	module := strings.SplitN(strings.TrimPrefix(u.Path, "/"), "/", 2)[0]
	if module == "" {
		return fmt.Errorf("%q: missing module after the host; %s", s, how)
	}
	if strings.Contains(u.Path, "..") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: the path must not contain \"..\", '?' or '#'", s)
	}
	return nil
}

// checkHTTPURL accepts https URLs, and http ones only for loopback hosts (test stand-ins
// and a local proxy) unless plain http is allowed. secret hides the value from the message.
// discordHosts are Discord's webhook hosts.
var discordHosts = map[string]bool{"discord.com": true, "discordapp.com": true, "canary.discord.com": true,
	"ptb.discord.com": true, "canary.discordapp.com": true, "ptb.discordapp.com": true}

// CheckWebhookURL accepts https://discord.com/api/webhooks/… (and discordapp.com, the
// canary. and ptb. variants); with anyHost, any https URL whose host is not a literal
// loopback, link-local or private address (names are checked again when dialled). The
// message never repeats the URL: it is a secret.
func CheckWebhookURL(s string, anyHost bool) error {
	u, err := url.Parse(s)
	if err == nil && u.Host != "" && u.User == nil && netguard.PrivateAllowed() && (u.Scheme == "http" || u.Scheme == "https") {
		if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !netguard.PublicAddr(ip) {
			return nil // tests' stand-in for Discord (netguard.UnsafeEnv)
		}
	}
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return errors.New("the URL must be https://discord.com/api/webhooks/ID/TOKEN (Discord's webhook URL)")
	}
	host := strings.ToLower(u.Hostname())
	if anyHost {
		if ip, err := netip.ParseAddr(host); err == nil && !netguard.PublicAddr(ip) {
			return errors.New("the URL's host is a loopback, link-local or private address: refused even with discord.allow_any_host")
		}
		return nil
	}
	if !discordHosts[host] || u.Port() != "" || !strings.HasPrefix(u.Path, "/api/webhooks/") {
		return errors.New("the URL must be a Discord webhook (https://discord.com/api/webhooks/ID/TOKEN); set discord.allow_any_host = true for another https host")
	}
	return nil
}

// CheckHTTPUpstream accepts the base URL of an HTTP Arch mirror: http(s)://HOST/PATH/ with
// the trailing slash (the mirror's root, where lastupdate and core/os/x86_64/ are), no
// user name or password (they would be logged and shown), no query, no $repo variables.
// Private and loopback addresses are fine: a LAN's other mirror is a proper upstream.
func CheckHTTPUpstream(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		return fmt.Errorf("%q is not an http(s) mirror URL such as \"https://geo.mirror.pkgbuild.com/\"", s)
	case u.User != nil:
		return fmt.Errorf("%q carries a user name or password: not supported (it would be logged)", s)
	case u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(s, "?#"):
		return fmt.Errorf("%q has a query or fragment; write the mirror's root URL only", s)
	case strings.Contains(s, "$"):
		return fmt.Errorf("%q contains a $ variable: write the mirror's root, e.g. \"https://host/archlinux/\", not a pacman Server line", s)
	case !strings.HasSuffix(u.Path, "/"):
		return fmt.Errorf("%q must end in \"/\" (the mirror's root folder, e.g. \"https://host/archlinux/\")", s)
	case strings.ContainsFunc(s, unicode.IsControl) || strings.ContainsRune(s, ' '):
		return fmt.Errorf("%q contains spaces or control characters", s)
	}
	return nil
}

func checkHTTPURL(s string, secret bool) error {
	show := fmt.Sprintf("%q", s)
	if secret {
		show = "the URL"
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("%s is not an http(s) URL such as https://host/path", show)
	}
	if u.Scheme == "http" {
		if ip := net.ParseIP(u.Hostname()); (ip == nil || !ip.IsLoopback()) && u.Hostname() != "localhost" {
			if secret {
				return fmt.Errorf("%s must use https (plain http would send the secret in clear)", show)
			}
		}
	}
	return nil
}

// maxPublicURL bounds server.public_url: it is written into every /mirrorlist and page.
const maxPublicURL = 512

// CheckPublicURL validates server.public_url and returns it normalised for appending a
// path: no trailing slash ("http://pi.lan:8000", "https://proxy.lan/mirror"); "" stays "".
// It must be an absolute http(s) URL with a host and nothing a mirrorlist line or a
// pacman Server URL cannot carry: no user name or password (they would be shown to every
// client), no query or fragment, no spaces, control characters, '$' (pacman's
// variables) or '%'-escapes. A path is fine: a reverse proxy may serve AMWI under /mirror/.
func CheckPublicURL(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	const how = `write how clients reach this box, e.g. "http://pi.lan:8000/" or "https://proxy.lan/mirror/"`
	if len(s) > maxPublicURL {
		return "", fmt.Errorf("is %d characters long, at most %d; %s", len(s), maxPublicURL, how)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r > 0x7e {
			return "", fmt.Errorf("%q contains a space, a control or a non-ASCII character (write a non-ASCII host name in its xn-- form); %s", s, how)
		}
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("%q is not a URL; %s", s, how)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q must start with http:// or https://; %s", s, how)
	case u.Host == "" || u.Opaque != "":
		return "", fmt.Errorf("%q has no host; %s", s, how)
	case u.User != nil || strings.Contains(u.Host, "@"):
		// The value is not repeated: it holds a password, perhaps.
		return "", fmt.Errorf("the URL carries a user name or password: not allowed (every client would see it); %s", how)
	case u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(s, "?#"):
		return "", fmt.Errorf("%q has a query or fragment; %s", s, how)
	case strings.ContainsAny(s, `$"'<>\^`+"`{|}"):
		return "", fmt.Errorf("%q contains a character a pacman Server line cannot carry ($, quotes, <, >, \\, ^, `, {, |, }); %s", s, how)
	case strings.Contains(s, "%"):
		// The value goes into Server lines as written; an escape would be checked as
		// written but stand for something else ("%23" is '#' once decoded).
		return "", fmt.Errorf("%q contains a %%-escape: write the path's characters themselves (an escape stands either for one a Server line cannot carry, such as #, ?, $ or a space, or for one that can be written plainly); %s", s, how)
	case strings.Contains(u.Path, "/../") || strings.HasSuffix(u.Path, "/..") || strings.Contains(u.Path, "/./") || strings.Contains(u.Path, "//"):
		return "", fmt.Errorf("%q: the path must not contain \".\", \"..\" or \"//\"; %s", s, how)
	}
	host := u.Hostname()
	if net.ParseIP(host) == nil && !hostName.MatchString(host) {
		return "", fmt.Errorf("%q: %q is neither an IP address nor a host name; %s", s, host, how)
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, p)
		}
	}
	return u.Scheme + "://" + strings.ToLower(u.Host) + strings.TrimRight(u.Path, "/"), nil
}
