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
// private, carrier-grade NAT, unspecified or multicast.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsValid() && !ip.IsLoopback() && !ip.IsPrivate() && !ip.IsLinkLocalUnicast() && !ip.IsLinkLocalMulticast() &&
		!ip.IsUnspecified() && !ip.IsMulticast() && !ip.IsInterfaceLocalMulticast() &&
		!netip.MustParsePrefix("100.64.0.0/10").Contains(ip)
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
