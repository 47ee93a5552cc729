package web

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("127.0.0.1/32"),
	}
	const xff, xri = HeaderForwardedFor, HeaderRealIP
	tests := []struct {
		name    string
		remote  string
		headers [][2]string
		trusted []netip.Prefix
		header  string // server.client_ip_header
		want    string
	}{
		{"plain peer", "192.168.1.20:51234", nil, trusted, xff, "192.168.1.20"},
		{"untrusted peer spoofs both headers", "192.168.1.20:51234",
			[][2]string{{"X-Forwarded-For", "1.2.3.4"}, {"X-Real-IP", "5.6.7.8"}}, trusted, xff, "192.168.1.20"},
		{"untrusted peer spoofs X-Real-IP, X-Real-IP configured", "192.168.1.20:51234",
			[][2]string{{"X-Real-IP", "5.6.7.8"}}, trusted, xri, "192.168.1.20"},
		{"no trusted proxies configured", "10.0.0.1:80",
			[][2]string{{"X-Real-IP", "5.6.7.8"}, {"X-Forwarded-For", "5.6.7.8"}}, nil, xri, "10.0.0.1"},

		// The finding: nginx sets only X-Forwarded-For and passes the client's own X-Real-IP.
		{"X-Real-IP forged behind an X-Forwarded-For proxy", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "6.6.6.6"}, {"X-Forwarded-For", "192.168.1.7"}}, trusted, xff, "192.168.1.7"},
		{"X-Real-IP forged, proxy appended to a forged X-Forwarded-For", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "6.6.6.6"}, {"X-Forwarded-For", "6.6.6.6, 192.168.1.7"}}, trusted, xff, "192.168.1.7"},
		{"X-Real-IP alone is not read in X-Forwarded-For mode", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "6.6.6.6"}}, trusted, xff, "10.0.0.1"},
		{"empty header setting means X-Forwarded-For", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "6.6.6.6"}, {"X-Forwarded-For", "192.168.1.7"}}, trusted, "", "192.168.1.7"},
		// And the other way round.
		{"X-Forwarded-For forged behind an X-Real-IP proxy", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "192.168.1.7"}, {"X-Forwarded-For", "6.6.6.6"}}, trusted, xri, "192.168.1.7"},
		{"X-Forwarded-For alone is not read in X-Real-IP mode", "10.0.0.1:443",
			[][2]string{{"X-Forwarded-For", "6.6.6.6"}}, trusted, xri, "10.0.0.1"},

		{"X-Real-IP even if trusted itself", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "10.1.2.3"}}, trusted, xri, "10.1.2.3"},
		{"X-Real-IP with port", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "[2001:db8::7]:4711"}}, trusted, xri, "2001:db8::7"},
		{"X-Real-IP IPv4 with port", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "192.168.1.7:4711"}}, trusted, xri, "192.168.1.7"},
		{"X-Real-IP bracketed without port", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "[2001:db8::7]"}}, trusted, xri, "2001:db8::7"},
		{"X-Real-IP bad port", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "192.168.1.7:99999"}}, trusted, xri, "10.0.0.1"},
		{"X-Real-IP a list: not the proxy's", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "6.6.6.6, 192.168.1.7"}}, trusted, xri, "10.0.0.1"},
		{"X-Real-IP twice: not the proxy's", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "6.6.6.6"}, {"X-Real-IP", "192.168.1.7"}}, trusted, xri, "10.0.0.1"},
		{"garbage X-Real-IP: the peer, never X-Forwarded-For", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "not-an-ip"}, {"X-Forwarded-For", "1.2.3.4"}}, trusted, xri, "10.0.0.1"},
		{"X-Real-IP with zone", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "fe80::1%eth0"}}, trusted, xri, "fe80::1"},
		{"X-Real-IP mapped", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "::ffff:192.168.1.8"}}, trusted, xri, "192.168.1.8"},

		{"XFF skips trusted hops from the right", "10.0.0.1:443",
			[][2]string{{"X-Forwarded-For", "1.2.3.4, 10.0.0.2"}}, trusted, xff, "1.2.3.4"},
		{"XFF right-most untrusted, not the spoofed left", "10.0.0.1:443",
			[][2]string{{"X-Forwarded-For", "6.6.6.6, 1.2.3.4, 10.0.0.2"}}, trusted, xff, "1.2.3.4"},
		{"multiple XFF header lines are one list", "10.0.0.1:443",
			[][2]string{{"X-Forwarded-For", "6.6.6.6, 1.2.3.4"}, {"X-Forwarded-For", "10.0.0.3,10.0.0.2"}}, trusted, xff, "1.2.3.4"},
		{"lower-case header name is the same header", "10.0.0.1:443",
			[][2]string{{"x-forwarded-for", "6.6.6.6"}, {"X-FORWARDED-FOR", "1.2.3.4"}}, trusted, xff, "1.2.3.4"},
		{"XFF all trusted: left-most", "10.0.0.1:443",
			[][2]string{{"X-Forwarded-For", "10.9.9.9, 10.0.0.2"}}, trusted, xff, "10.9.9.9"},
		{"XFF garbage only: peer", "10.0.0.1:443",
			[][2]string{{"X-Forwarded-For", "<script>, ???"}}, trusted, xff, "10.0.0.1"},
		{"XFF garbage ends the walk", "10.0.0.1:443",
			[][2]string{{"X-Forwarded-For", "1.2.3.4, bogus, 10.0.0.2"}}, trusted, xff, "10.0.0.2"},
		{"XFF empty entries skipped", "10.0.0.1:443",
			[][2]string{{"X-Forwarded-For", " , 1.2.3.4,, "}}, trusted, xff, "1.2.3.4"},
		{"XFF entries with ports", "10.0.0.1:443",
			[][2]string{{"X-Forwarded-For", "[2001:db8::1]:1234, 10.0.0.2:80"}}, trusted, xff, "2001:db8::1"},
		{"XFF bracketed IPv6 without port", "10.0.0.1:443",
			[][2]string{{"X-Forwarded-For", "[2001:db8::1]"}}, trusted, xff, "2001:db8::1"},
		{"XFF IPv6 with zone", "10.0.0.1:443",
			[][2]string{{"X-Forwarded-For", "fe80::9%25eth0, fe80::9%eth0"}}, trusted, xff, "fe80::9"},
		{"XFF IPv6 compressed forms are one address", "[fd00::1]:443",
			[][2]string{{"X-Forwarded-For", "2001:DB8:0:0:0:0:0:9"}}, trusted, xff, "2001:db8::9"},
		{"XFF mapped trusted entry is trusted", "10.0.0.1:443",
			[][2]string{{"X-Forwarded-For", "1.2.3.4, ::ffff:10.0.0.2"}}, trusted, xff, "1.2.3.4"},
		{"XFF a trusted-looking forged entry left of the client is not reached", "10.0.0.1:443",
			[][2]string{{"X-Forwarded-For", "10.0.0.5, 1.2.3.4"}}, trusted, xff, "1.2.3.4"},
		{"XFF obfuscated IPv4 refused", "10.0.0.1:443",
			[][2]string{{"X-Forwarded-For", "0x7f.1, 1.2.3.4, 010.0.0.2"}}, trusted, xff, "10.0.0.1"},
		{"XFF with a newline-folded value", "10.0.0.1:443",
			[][2]string{{"X-Forwarded-For", "1.2.3.4\r\n, 10.0.0.2"}}, trusted, xff, "1.2.3.4"},
		{"empty headers: peer", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", ""}, {"X-Forwarded-For", ""}}, trusted, xff, "10.0.0.1"},
		{"absurdly long header ignored", "10.0.0.1:443",
			[][2]string{{"X-Real-IP", "1.2.3.4" + string(make([]byte, 100))}}, trusted, xri, "10.0.0.1"},
		{"IPv6 peer", "[2001:db8::42]:51234", nil, trusted, xff, "2001:db8::42"},
		{"IPv6 trusted peer and IPv6 XFF", "[fd00::1]:443",
			[][2]string{{"X-Forwarded-For", "2001:db8::9, fd00::2"}}, trusted, xff, "2001:db8::9"},
		{"IPv4-mapped peer unmapped", "[::ffff:192.168.1.20]:51234", nil, trusted, xff, "192.168.1.20"},
		{"IPv4-mapped trusted peer is trusted", "[::ffff:10.0.0.1]:443",
			[][2]string{{"X-Forwarded-For", "::ffff:192.168.1.8"}}, trusted, xff, "192.168.1.8"},
		{"zone dropped", "[fe80::1%eth0]:51234", nil, trusted, xff, "fe80::1"},
		{"RemoteAddr without port", "192.168.1.5", nil, trusted, xff, "192.168.1.5"},
		{"RemoteAddr garbage", "@", [][2]string{{"X-Real-IP", "1.2.3.4"}}, trusted, xri, "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, h := range tt.headers {
				r.Header.Add(h[0], h[1])
			}
			p := Proxies{Trusted: tt.trusted, Header: tt.header}
			if got := p.ClientIP(r).String(); got != tt.want {
				t.Errorf("ClientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestForwardedHTTPS(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}
	tests := []struct {
		name   string
		remote string
		proto  string
		tls    bool
		want   bool
	}{
		{"plain http", "192.168.1.2:1", "", false, false},
		{"direct tls", "192.168.1.2:1", "", true, true},
		{"X-Forwarded-Proto from untrusted ignored", "192.168.1.2:1", "https", false, false},
		{"trusted proxy says https", "10.0.0.1:1", "https", false, true},
		{"trusted proxy says HTTPS", "10.0.0.1:1", "HTTPS", false, true},
		{"trusted proxy says http", "10.0.0.1:1", "http", false, false},
		{"trusted proxy, first of a list counts", "10.0.0.1:1", "https, http", false, true},
		{"trusted proxy, garbage", "10.0.0.1:1", "httpsx", false, false},
		{"trusted proxy, no header", "10.0.0.1:1", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			if tt.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tt.proto)
			}
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if got := (Proxies{Trusted: trusted}).HTTPS(r); got != tt.want {
				t.Errorf("HTTPS = %v, want %v", got, tt.want)
			}
		})
	}
}

func BenchmarkClientIP(b *testing.B) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	p := Proxies{Trusted: trusted}
	r := &http.Request{RemoteAddr: "10.0.0.1:443", Header: http.Header{}}
	r.Header.Set("X-Forwarded-For", "1.2.3.4, 10.0.0.2")
	for b.Loop() {
		p.ClientIP(r)
	}
}
