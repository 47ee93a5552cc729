package netguard

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestPublicAddr(t *testing.T) {
	for s, want := range map[string]bool{"1.1.1.1": true, "162.159.135.232": true, "2606:4700::6810:1": true,
		"127.0.0.1": false, "127.8.9.10": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "fd00::1": false, "0.0.0.0": false, "::": false, "100.64.0.1": false,
		"224.0.0.1": false, "::ffff:127.0.0.1": false, "::ffff:8.8.8.8": true,
		// Ranges that lead back into a LAN through a translator, or are no internet at all.
		"64:ff9b::a00:1": false, "64:ff9b::7f00:1": false, "64:ff9b:1::1": false, "::127.0.0.1": false,
		"2002:c0a8:101::1": false, "2001:0:4136:e378::1": false, "0.1.2.3": false, "255.255.255.255": false,
		"198.18.0.1": false, "2001:db8::1": false} {
		if got := PublicAddr(netip.MustParseAddr(s)); got != want {
			t.Errorf("%s: %v, want %v", s, got, want)
		}
	}
}

// TestClientRefusesLoopbackAndRedirects: a name or an address that leads to loopback is
// refused when dialled; a redirect is not followed.
func TestClientRefusesLoopbackAndRedirects(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:1/internal", http.StatusFound)
	}))
	defer srv.Close()
	for _, u := range []string{srv.URL, "http://localhost:" + srv.URL[len("http://127.0.0.1:"):]} {
		_, err := Client(5*time.Second, false).Get(u)
		if !errors.Is(err, ErrNotPublic) {
			t.Errorf("GET %s: %v, want refused", u, err)
		}
	}
	resp, err := Client(5*time.Second, true).Get(srv.URL)
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("with private allowed: %v %v (a redirect must come back as it is)", err, resp)
	}
	resp.Body.Close()
}
