package web

import (
	"net/url"
	"strings"
	"testing"
)

// TestMirrorlistServerURLsParseWhole: every Server line /mirrorlist writes must be a URL
// whose whole text is its path, so that pacman (which appends "core.db" to it and hands
// it to curl) asks for the file under that path. safeUpstream checks spaces, controls and
// '$' but lets '#' and '?' through: a base such as config.CheckPublicURL returns for
// server.public_url = "http://pi.lan/%23/" ("http://pi.lan/#") gives
// "Server = http://pi.lan/#/archlinux/$repo/os/$arch", and pacman fetches http://pi.lan/
// as core.db (tried with pacman 6: it stores the Overview's HTML as core.db). Same for an
// upstream with '#' or '?'.
func TestMirrorlistServerURLsParseWhole(t *testing.T) {
	for _, info := range []MirrorlistInfo{
		{PublicBase: "http://pi.lan/#", Upstream: upstreamRoot},
		{PublicBase: "http://pi.lan/?", Upstream: upstreamRoot},
		{Upstream: "https://mirror.example/#/"},
		{Upstream: "https://mirror.example/?x/"},
	} {
		h := mirrorlistHandler(t, info)
		w := getMirrorlist(t, h, "GET", "pi.lan:8000", "192.168.1.20:40000")
		for _, s := range serverLines(t, w.Body.String()) {
			u, err := url.Parse(strings.NewReplacer("$repo", "core", "$arch", "x86_64").Replace(s) + "/core.db")
			if err != nil || u.Fragment != "" || u.RawQuery != "" || !strings.HasSuffix(u.Path, "/core/os/x86_64/core.db") {
				t.Errorf("info %+v: Server = %s: pacman would not fetch .../core/os/x86_64/core.db from it (path %q, query %q, fragment %q)", info, s, u.Path, u.RawQuery, u.Fragment)
			}
		}
	}
}
