package web

import (
	"net/url"
	"strings"
)

// maxNext bounds the path a login carries through: longer than any page of the dashboard.
const maxNext = 2048

// safeNext returns next when it is a path on this site, to send the browser to after
// logging in; "" when it is anything else. It must start with a single '/' and hold no
// '\', no control character and no space: browsers read "/\evil.example" and
// "/<TAB>/evil.example" as "//evil.example", another host, and strip tabs and newlines
// anywhere in a URL. Its parse must leave no scheme or host. What it lets through is
// printable ASCII (non-ASCII arrives percent-encoded), so it goes into a Location header
// as it is.
func safeNext(next string) string {
	if len(next) < 1 || len(next) > maxNext || next[0] != '/' {
		return ""
	}
	if len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return ""
	}
	if !plain(next) {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return ""
	}
	// Nothing a browser or a proxy might rewrite, even once decoded: dot segments collapse
	// ("/.//evil.example" becomes "//evil.example"), and "%2e", "%2f" and "%5c" count as
	// '.', '/' and '\' for some. No page of the dashboard has any of them.
	if p := u.Path; !plain(p) || strings.HasPrefix(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") ||
		strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") {
		return ""
	}
	return next
}

// plain reports whether s is printable ASCII without space or '\'.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '\\' || c >= 0x7f {
			return false
		}
	}
	return true
}
