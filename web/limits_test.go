package web

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// clientFrom is a client whose connections come from ip (any of 127.0.0.0/8 on Linux): a
// second machine on the LAN, as the server sees it.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	c := client(t)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	c.Transport = tr
	return c
}

func loginAs(t *testing.T, c *http.Client, base, name, password string, hdr ...string) *http.Response {
	t.Helper()
	return postForm(t, c, base+"/login", url.Values{"name": {name}, "password": {password}}, hdr...)
}

// TestStrangerCannotLockOutAdmin is the finding, over real connections from two
// addresses: a stranger's wrong passwords from 127.0.0.2 must not make the admin's right
// password from 127.0.0.3 answer 429, while the stranger is held back.
func TestStrangerCannotLockOutAdmin(t *testing.T) {
	srv, _ := dashboard(t)
	registerAdmin(t, srv, client(t))
	stranger, owner := clientFrom(t, "127.0.0.2"), clientFrom(t, "127.0.0.3")
	limited := false
	for i := range 20 {
		resp := loginAs(t, stranger, srv.URL, "admin", fmt.Sprint("guess number ", i))
		switch resp.StatusCode {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			limited = true
		default:
			t.Fatalf("guess %d: %d", i, resp.StatusCode)
		}
	}
	if !limited {
		t.Fatal("20 wrong passwords from one address were never limited")
	}
	resp := loginAs(t, owner, srv.URL, "admin", "a long password")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the admin's right password from another address after a stranger's guesses: %d\n%s", resp.StatusCode, body(resp))
	}
	// The stranger is still held back, even with the right password.
	resp = loginAs(t, stranger, srv.URL, "admin", "a long password")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the stranger's address after its guesses: %d", resp.StatusCode)
	}
	retryAfter(t, resp)
}

// retryAfter checks that resp has a Retry-After of whole seconds, at least 1, and
// returns it.
func retryAfter(t *testing.T, resp *http.Response) int {
	t.Helper()
	n, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || n < 1 {
		t.Errorf("%d with Retry-After %q, want whole seconds", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	return n
}

// TestChangePasswordLimited: the current password on the password form is a password
// check like a login's, limited the same way: wrong ones end in 429 with Retry-After,
// and then even the right one waits.
func TestChangePasswordLimited(t *testing.T) {
	srv, _ := dashboard(t)
	registerAdmin(t, srv, client(t))
	c := clientFrom(t, "127.0.0.2")
	if resp := loginAs(t, c, srv.URL, "admin", "a long password"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	change := func(old string) *http.Response {
		return postForm(t, c, srv.URL+"/account/password", url.Values{"csrf": {csrfOf(t, c, srv.URL+"/users")}, "old": {old}, "new": {"a brand new password"}})
	}
	limited := false
	for i := range 30 {
		resp := change(fmt.Sprint("guess number ", i))
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = true
			retryAfter(t, resp)
			break
		}
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body(resp), "current password is wrong") {
			t.Fatalf("wrong current password %d: %d\n%s", i, resp.StatusCode, body(resp))
		}
	}
	if !limited {
		t.Fatal("30 wrong current passwords were never limited")
	}
	if resp := change("a long password"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the right current password while limited: %d", resp.StatusCode)
	}
}

// TestDeviceCookieBeatsManyAddresses: a guesser with a new address for every guess drains
// both of the account's budgets; a browser without the account's device cookie then
// waits, the owner's browser that logged in before does not.
func TestDeviceCookieBeatsManyAddresses(t *testing.T) {
	srv, _ := dashboard(t)
	registerAdmin(t, srv, client(t))
	owner := clientFrom(t, "127.0.0.3")
	if resp := loginAs(t, owner, srv.URL, "admin", "a long password"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first login: %d", resp.StatusCode)
	}
	var dev *http.Cookie
	u, _ := url.Parse(srv.URL)
	for _, c := range owner.Jar.Cookies(u) {
		if c.Name == deviceCookie {
			dev = c
		}
	}
	if dev == nil {
		t.Fatal("a login sets no device cookie")
	}
	postForm(t, owner, srv.URL+"/logout", url.Values{"csrf": {csrfOf(t, owner, srv.URL+"/users")}})

	guesses := 0
	for i := 10; i < 60; i++ {
		if resp := loginAs(t, clientFrom(t, fmt.Sprintf("127.0.1.%d", i)), srv.URL, "admin", "guess"); resp.StatusCode == http.StatusUnauthorized {
			guesses++
		}
	}
	if guesses != 15 {
		t.Errorf("%d guesses from 50 addresses in a moment, want 15 (5 + 10 for clean addresses)", guesses)
	}
	resp := loginAs(t, clientFrom(t, "127.0.0.4"), srv.URL, "admin", "a long password")
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body(resp), "browser that logged in to it before") {
		t.Errorf("a new browser while both budgets are spent: %d\n%s", resp.StatusCode, body(resp))
	}
	resp = loginAs(t, owner, srv.URL, "admin", "a long password")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the owner's browser with its device cookie: %d\n%s", resp.StatusCode, body(resp))
	}
	// The cookie is the account's: it does not open other accounts' limits, and a forged
	// one is ignored.
	forged := clientFrom(t, "127.0.0.5")
	forged.Jar.SetCookies(u, []*http.Cookie{{Name: deviceCookie, Value: dev.Value[:len(dev.Value)-2] + "AA"}})
	if resp := loginAs(t, forged, srv.URL, "admin", "a long password"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a forged device cookie: %d", resp.StatusCode)
	}
}

// TestForgedXRealIPBehindForwardedForProxy: behind a trusted proxy that sets only
// X-Forwarded-For, a client's own X-Real-IP is not believed: changing it on every guess
// does not escape the limit of the address the proxy saw, nor does it spend another's.
func TestForgedXRealIPBehindForwardedForProxy(t *testing.T) {
	srv, _ := dashboard(t, "127.0.0.1/32") // the test client is the proxy
	registerAdmin(t, srv, client(t))
	proxy := client(t)
	limited := false
	for i := range 20 {
		resp := loginAs(t, proxy, srv.URL, fmt.Sprint("user", i), "guess", // a name each: only the client's limit can bite
			"X-Forwarded-For", "192.168.1.66", "X-Real-IP", fmt.Sprintf("192.168.1.%d", 100+i))
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = true
			if !strings.Contains(body(resp), "from here") {
				t.Errorf("refused, but not for the client's limit:\n%s", body(resp))
			}
			break
		}
	}
	if !limited {
		t.Fatal("a new X-Real-IP on every guess escaped the client's limit")
	}
	// The addresses the stranger named are untouched, and so is the owner behind the proxy.
	resp := loginAs(t, client(t), srv.URL, "admin", "a long password", "X-Forwarded-For", "192.168.1.100")
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("an address the stranger forged in X-Real-IP: %d", resp.StatusCode)
	}
	// The proxy's own X-Forwarded-For entry is what counts: the stranger's prefix is not.
	resp = loginAs(t, client(t), srv.URL, "admin", "a long password", "X-Forwarded-For", "192.168.1.66, 192.168.1.10")
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the owner, whose request carries the stranger's address left of its own: %d", resp.StatusCode)
	}
	resp = loginAs(t, client(t), srv.URL, "admin", "a long password", "X-Forwarded-For", "192.168.1.10, 192.168.1.66", "X-Real-IP", "192.168.1.10")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the stranger, naming the owner in X-Real-IP and left in X-Forwarded-For: %d", resp.StatusCode)
	}

	// The other way round: a proxy configured for X-Real-IP; X-Forwarded-For is the forgery.
	o, _ := dashboardOptions(t, "127.0.0.1/32")
	realIP := Proxies{Trusted: o.Proxies().Trusted, Header: HeaderRealIP}
	o.Proxies = func() Proxies { return realIP }
	srv2 := httptest.NewServer(NewHandler(o))
	defer srv2.Close()
	limited = false
	for i := range 20 {
		resp := loginAs(t, proxy, srv2.URL, fmt.Sprint("user", i), "guess", "X-Real-IP", "192.168.1.66", "X-Forwarded-For", fmt.Sprintf("192.168.1.%d", 100+i))
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("a new X-Forwarded-For on every guess escaped the client's limit behind an X-Real-IP proxy")
	}
}

// body is the response's body, left readable again.
func body(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return string(b)
}
