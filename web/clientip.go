package web

import (
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP is the client's address: the TCP peer, unless the peer is in trusted (reverse
// proxies from config server.trusted_proxies): then X-Real-IP when present and valid, else
// the right-most address of X-Forwarded-For that is not itself trusted (walking from the
// right), else the peer. Invalid header values are ignored. IPv4-mapped IPv6 addresses are
// unmapped and zones dropped, so one machine has one key whether it came over IPv4 or a
// dual-stack socket.
//
// Headers from an untrusted peer are never read: anyone can send X-Forwarded-For, and a
// client that could choose its address could hide from or poison the traffic statistics.
//
// X-Forwarded-For is walked from the right because each trusted proxy appends the address
// it saw; everything left of the first untrusted entry was written by that untrusted party.
// Two cases differ from "else the peer" on purpose:
//   - every entry is trusted (LAN clients inside a trusted range such as 10.0.0.0/8): the
//     left-most entry, the furthest hop any trusted proxy vouched for, rather than the proxy;
//   - an unparsable entry ends the walk: the last trusted entry before it, or the peer.
//
// The result is the zero Addr only when RemoteAddr itself is not an address (e.g. a test
// request with an empty RemoteAddr and no usable headers).
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseHostAddr(r.RemoteAddr)
	if !isTrusted(peer, trusted) {
		return peer
	}
	if a := parseHostAddr(strings.TrimSpace(r.Header.Get("X-Real-IP"))); a.IsValid() {
		return a
	}
	// Several X-Forwarded-For lines are one list, in order (RFC 9110 §5.3).
	vals := r.Header.Values("X-Forwarded-For")
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
			if !isTrusted(a, trusted) {
				return a
			}
			last = a
		}
	}
	return last
}

// ForwardedHTTPS reports whether the request came over HTTPS: r.TLS != nil, or the peer is
// trusted and X-Forwarded-Proto is "https". With several comma-separated values the first
// counts: it is the one set by the proxy the client talked to.
func ForwardedHTTPS(r *http.Request, trusted []netip.Prefix) bool {
	if r.TLS != nil {
		return true
	}
	if !isTrusted(parseHostAddr(r.RemoteAddr), trusted) {
		return false
	}
	v := r.Header.Get("X-Forwarded-Proto")
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	return strings.EqualFold(strings.TrimSpace(v), "https")
}

// parseHostAddr parses "ADDR", "ADDR:PORT" or "[ADDR]:PORT" (RemoteAddr and what proxies
// put in headers), unmapped and without zone; the zero Addr when it is none of those.
func parseHostAddr(s string) netip.Addr {
	if s == "" || len(s) > 64 { // the longest valid form is ~55 bytes; don't parse essays
		return netip.Addr{}
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
