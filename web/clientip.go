package web

import (
	"net/http"
	"net/netip"
	"strings"
)

// The headers a trusted reverse proxy may name the client in (server.client_ip_header).
const (
	HeaderForwardedFor = "X-Forwarded-For"
	HeaderRealIP       = "X-Real-IP"
)

// Proxies is who may say where a request came from: the reverse proxies of
// server.trusted_proxies, and the one header of server.client_ip_header they say it in.
type Proxies struct {
	Trusted []netip.Prefix
	// Header is HeaderForwardedFor (also when empty) or HeaderRealIP; it is the only header
	// ever read for the client's address.
	Header string
}

// ClientIP is the client's address: the TCP peer, unless the peer is a trusted proxy; then
// what the proxy says in p.Header. IPv4-mapped IPv6 addresses are unmapped and zones
// dropped, so one machine has one key whether it came over IPv4 or a dual-stack socket.
//
// Headers from an untrusted peer are never read: anyone can send them, and a client that
// could choose its address could dodge the login limits or poison the traffic statistics.
// And only the configured header is read, because only the header the proxy sets is the
// proxy's: behind nginx setting X-Forwarded-For alone, an X-Real-IP arrives as the client
// wrote it.
//
// X-Real-IP: the proxy replaces it, so the whole value is the address ("ADDR",
// "ADDR:PORT", "[ADDR]:PORT"); anything else (garbage, a list, the header twice) is not the
// proxy's doing and leaves the peer.
//
// X-Forwarded-For: walked from the right, because each trusted proxy appends the address it
// saw; everything left of the first untrusted entry was written by that untrusted party.
// Two cases differ from "else the peer" on purpose:
//   - every entry is trusted (LAN clients inside a trusted range such as 10.0.0.0/8): the
//     left-most entry, the furthest hop any trusted proxy vouched for, rather than the proxy;
//   - an unparsable entry ends the walk: the last trusted entry before it, or the peer.
//
// The result is the zero Addr only when RemoteAddr itself is not an address (e.g. a test
// request with an empty RemoteAddr).
func (p Proxies) ClientIP(r *http.Request) netip.Addr {
	peer := parseHostAddr(r.RemoteAddr)
	if !isTrusted(peer, p.Trusted) {
		return peer
	}
	if p.Header == HeaderRealIP {
		vals := r.Header.Values(HeaderRealIP)
		if len(vals) != 1 {
			return peer
		}
		if a := parseHostAddr(strings.TrimSpace(vals[0])); a.IsValid() {
			return a
		}
		return peer
	}
	// Several X-Forwarded-For lines are one list, in order (RFC 9110 §5.3).
	vals := r.Header.Values(HeaderForwardedFor)
	last := peer // the nearest hop vouched for so far
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			var e string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				v, e = v[:j], v[j+1:]
			} else {
				v, e = "", v
			}
			e = strings.TrimSpace(e)
			if e == "" { // "a,,b" or a trailing comma: nothing was said here
				continue
			}
			a := parseHostAddr(e)
			if !a.IsValid() {
				return last
			}
			if !isTrusted(a, p.Trusted) {
				return a
			}
			last = a
		}
	}
	return last
}

// HTTPS reports whether the request came over HTTPS: r.TLS != nil, or the peer is a
// trusted proxy and X-Forwarded-Proto is "https". With several comma-separated values the
// first counts: it is the one set by the proxy the client talked to.
func (p Proxies) HTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if !isTrusted(parseHostAddr(r.RemoteAddr), p.Trusted) {
		return false
	}
	v := r.Header.Get("X-Forwarded-Proto")
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	return strings.EqualFold(strings.TrimSpace(v), "https")
}

// ForwardedHost is the host a trusted proxy says the client asked for in
// X-Forwarded-Host (Traefik and Caddy set it; nginx passes Host itself), its last value
// when well-formed: the one the nearest proxy wrote, as with X-Forwarded-For (a proxy
// that passes the header through unset leaves the client's own, which can only mislead
// the client's own mirrorlist). A path prefix the proxy adds is not guessed: that takes
// server.public_url.
func (p Proxies) ForwardedHost(r *http.Request) (string, bool) {
	vals := r.Header.Values("X-Forwarded-Host")
	if len(vals) == 0 || !isTrusted(parseHostAddr(r.RemoteAddr), p.Trusted) {
		return "", false
	}
	v := vals[len(vals)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return cleanHost(strings.TrimSpace(v))
}

// parseHostAddr parses "ADDR", "[ADDR]", "ADDR:PORT" or "[ADDR]:PORT" (RemoteAddr and what
// proxies put in headers), unmapped and without zone; the zero Addr when it is none of
// those.
func parseHostAddr(s string) netip.Addr {
	if s == "" || len(s) > 64 { // the longest valid form is ~55 bytes; don't parse essays
		return netip.Addr{}
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone("")
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
