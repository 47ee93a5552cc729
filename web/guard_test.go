package web

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSecurityHeaders: every dashboard and API answer carries the CSP, nosniff, the
// referrer policy and no framing; mirror files carry nosniff.
func TestSecurityHeaders(t *testing.T) {
	o, _ := dashboardOptions(t)
	os.WriteFile(filepath.Join(o.MirrorRoot.Name(), "lastupdate"), []byte("1700000000\n"), 0o644)
	srv := httptestServer(t, NewHandler(o))
	for _, p := range []string{"/", "/sync", "/search?q=x", "/login", "/register", "/api/sync", "/api/search?q=x", "/healthz", "/metrics", "/nope"} {
		resp, err := http.Get(srv + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src 'self' 'unsafe-inline'") ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "same-origin" {
			t.Errorf("GET %s: CSP %q, nosniff %q, referrer %q", p, csp, h.Get("X-Content-Type-Options"), h.Get("Referrer-Policy"))
		}
	}
	resp, err := http.Get(srv + "/archlinux/lastupdate")
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("mirror file: %v %v", err, resp)
	}
}

// TestMirrorHTMLRunsNoScript: the mirror's files come from whichever upstream the box
// syncs from, yet share the dashboard's origin. An .html file among them (served as
// text/html) must not run script that could read the dashboard's pages and their CSRF
// tokens: mirror answers, files and directory index alike, carry a sandboxing CSP.
func TestMirrorHTMLRunsNoScript(t *testing.T) {
	o, _ := dashboardOptions(t)
	os.WriteFile(filepath.Join(o.MirrorRoot.Name(), "evil.html"), []byte("<script>fetch('/settings')</script>"), 0o644)
	srv := httptestServer(t, NewHandler(o))
	for _, p := range []string{"/archlinux/evil.html", "/archlinux/", "/archlinux/nope.html"} {
		resp, err := http.Get(srv + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "sandbox") || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d, CSP %q, nosniff %q", p, resp.StatusCode, csp, resp.Header.Get("X-Content-Type-Options"))
		}
	}
}

// TestBodiesBounded: nobody can make the server hold megabytes of a form (net/http alone
// reads 10 MiB of one, 32 MiB of a multipart one): a body that says it is over the bound
// is refused before it is read, a chunked one is cut there.
func TestBodiesBounded(t *testing.T) {
	o, _ := dashboardOptions(t)
	srv := httptestServer(t, NewHandler(o))
	if resp := postForm(t, client(t), srv+"/register", registration("admin", testSetupCode)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("register: %d", resp.StatusCode)
	}
	big := strings.Repeat("a", 1<<20)
	for _, c := range []struct {
		name, ctype string
		body        io.Reader
		want        int
	}{
		{"form", "application/x-www-form-urlencoded", strings.NewReader("name=x&password=" + big), http.StatusRequestEntityTooLarge},
		{"multipart", "multipart/form-data; boundary=B", strings.NewReader("--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f\"\r\n\r\n" + big + "\r\n--B--\r\n"), http.StatusRequestEntityTooLarge},
		// No length (chunked): read up to the bound, then cut; the right password in it
		// does not log in.
		{"chunked form", "application/x-www-form-urlencoded", io.MultiReader(strings.NewReader("name=admin&password=a+long+password&pad=" + big)), http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest("POST", srv+"/login", c.body)
		req.Header.Set("Content-Type", c.ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// The server may close before the client has sent everything: that is a refusal too.
			if c.want == http.StatusRequestEntityTooLarge {
				continue
			}
			t.Fatalf("%s: %v", c.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s of 1 MiB: %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}
}

// httptestServer serves h with the real server (NewServer) on loopback.
func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	return startServer(t, h, ServerOptions{Log: quiet()}, nil).URL
}

// TestSlowAndOversizedRequests: a GET with a body is refused; headers beyond 16 KiB are
// refused; a body trickled a byte at a time is cut after the body deadline.
func TestSlowAndOversizedRequests(t *testing.T) {
	t.Parallel()
	o, _ := dashboardOptions(t)
	srv := httptestServer(t, NewHandler(o))
	addr := strings.TrimPrefix(srv, "http://")
	raw := func(req string) string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprint(c, req)
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	if got := raw("GET /archlinux/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"); !strings.Contains(got, " 400 ") {
		t.Errorf("GET with a body: %q", got)
	}
	big := strings.Repeat("a", 17<<10)
	if got := raw("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n"); !strings.Contains(got, " 431 ") {
		t.Errorf("17 KiB of headers: %q", got)
	}
	fine := strings.Repeat("a", 14<<10)
	if got := raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + fine + "\r\n\r\n"); !strings.Contains(got, " 200 ") {
		t.Errorf("14 KiB of headers: %q", got)
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n")
	start := time.Now()
	for time.Since(start) < 40*time.Second {
		if _, err := c.Write([]byte("a")); err != nil {
			break
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != nil && !strings.Contains(err.Error(), "timeout") {
			break // answered or closed
		} else if err == nil {
			break
		}
	}
	if took := time.Since(start); took > bodyDeadline+5*time.Second {
		t.Errorf("a trickled body kept its connection %s (deadline %s)", took.Round(time.Second), bodyDeadline)
	}
}
