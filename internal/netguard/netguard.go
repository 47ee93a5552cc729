// Package netguard keeps requests that a setting can aim (the Discord webhook) away from
// the box itself and its LAN: an HTTP client that refuses, at the moment it dials, any
// loopback, link-local or private address, whatever name led there (so a name that
// resolves, or rebinds, to 127.0.0.1 cannot slip through), and follows no redirect.
package netguard

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// PublicAddr reports an address such a request may go to: not loopback, link-local,
// private, unspecified or multicast, nor in a range that is not the public internet or
// that can lead back into a LAN (notNear).
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range notNear {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// notNear are the ranges, besides those netip names, that a webhook must not reach.
var notNear = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT: the ISP's side of a LAN
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, and the broadcast address
	netip.MustParsePrefix("::/96"),          // IPv4-compatible: ::127.0.0.1
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64: 64:ff9b::10.0.0.1 reaches 10.0.0.1
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2001::/32"),      // Teredo, which embeds an IPv4 address
	netip.MustParsePrefix("2002::/16"),      // 6to4, which embeds an IPv4 address
	netip.MustParsePrefix("100::/64"),       // discard-only
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
}

// UnsafeEnv, set to "1" in amwi's environment, lets webhooks reach loopback and private
// addresses (and plain http there): for tests, whose stand-in for Discord lives on
// 127.0.0.1. Never set it on a box on a LAN: it is what makes the webhook test button a way
// to probe the LAN.
const UnsafeEnv = "AMWI_UNSAFE_PRIVATE_WEBHOOK"

// PrivateAllowed reports whether UnsafeEnv is set.
func PrivateAllowed() bool { return os.Getenv(UnsafeEnv) == "1" }

// ErrNotPublic is what dialling a refused address gives.
var ErrNotPublic = fmt.Errorf("refused: the address is loopback, link-local or private")

// Client is an HTTP client for requests a setting aims: it dials public addresses only
// (unless allowPrivate: tests, whose stand-ins live on loopback), uses no proxy from the
// environment, follows no redirect, and gives up after timeout.
func Client(timeout time.Duration, allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("dial %s: %w", address, err)
		}
		if !allowPrivate && !PublicAddr(ap.Addr()) {
			return ErrNotPublic
		}
		return nil
	}}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConns:        2,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		// A redirect is an answer (its status is reported), never followed: it could
		// point anywhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
