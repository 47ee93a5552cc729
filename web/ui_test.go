package web

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/auth"
	"github.com/amwi/amwi/daemon/config"
	dsync "github.com/amwi/amwi/daemon/mirrorsync"
	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/daemon/traffic"
)

type fakeSync struct {
	started []dsync.Options
}

func (f *fakeSync) State() dsync.State               { return dsync.State{} }
func (f *fakeSync) History(int) ([]dsync.Run, error) { return nil, nil }
func (f *fakeSync) Start(_ context.Context, o dsync.Options) error {
	f.started = append(f.started, o)
	return nil
}
func (f *fakeSync) Cancel() error { return dsync.ErrNotRunning }
func (f *fakeSync) LastVerification() (*dsync.Verification, error) {
	return nil, nil
}

var _ SyncService = (*fakeSync)(nil)

type fakeSettings struct {
	cfg   *config.Config
	est   PackagesEstimate
	saved map[string]string // the last form Save got
}

var _ SettingsService = (*fakeSettings)(nil)

func (f *fakeSettings) PackagesEstimate() (PackagesEstimate, error) { return f.est, nil }

func (f *fakeSettings) Current() *config.Config { return f.cfg }
func (f *fakeSettings) Save(v map[string]string) (map[string]string, error) {
	f.saved = v
	return map[string]string{"sync.interval": "bad"}, nil
}
func (f *fakeSettings) TestDiscord() error { return nil }
func (f *fakeSettings) Reset(string) error { return nil }

type fakeBench struct{ started []string }

func (f *fakeBench) Start(c string) error        { f.started = append(f.started, c); return nil }
func (f *fakeBench) State() BenchState           { return BenchState{} }
func (f *fakeBench) Last() (*BenchReport, error) { return nil, nil }
func (f *fakeBench) Use(string) error            { return nil }
func (f *fakeBench) DefaultCountry() string      { return "" }

var _ BenchService = (*fakeBench)(nil)

// dashboard starts the whole handler with real accounts, store and traffic; trusted is
// server.trusted_proxies.
func dashboard(t *testing.T, trusted ...string) (*httptest.Server, *fakeSync) {
	t.Helper()
	o, fs := dashboardOptions(t, trusted...)
	srv := httptest.NewServer(NewHandler(o))
	t.Cleanup(srv.Close)
	return srv, fs
}

// dashboardOptions are dashboard's handler options.
func dashboardOptions(t *testing.T, trusted ...string) (Options, *fakeSync) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "mirror"), 0o755)
	root, _ := os.OpenRoot(filepath.Join(dir, "mirror"))
	t.Cleanup(func() { root.Close() })
	st, err := store.Open(filepath.Join(dir, "state"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var prefixes []netip.Prefix
	for _, p := range trusted {
		prefixes = append(prefixes, netip.MustParsePrefix(p))
	}
	fs := &fakeSync{}
	a := &auth.Service{Store: st, Log: quiet(), Params: auth.Params{Memory: 64, Time: 1, Threads: 1}}
	a.SetSetupCode(testSetupCode) // as the daemon does while no account exists
	return Options{
		MirrorRoot: root, Log: quiet(), Version: "test", Sync: fs,
		Search:   &search.Service{Root: filepath.Join(dir, "mirror"), Repos: []string{"core"}, Log: quiet()},
		Auth:     a,
		Traffic:  &traffic.Recorder{Store: st, Log: quiet()},
		Settings: &fakeSettings{cfg: config.Default()},
		Bench:    &fakeBench{},
		Proxies:  func() Proxies { return Proxies{Trusted: prefixes} },
	}, fs
}

func client(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func postForm(t *testing.T, c *http.Client, u string, v url.Values, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body)) // read again by tests that look
	return resp
}

// testSetupCode is the first admin's setup code in dashboard's accounts service.
const testSetupCode = "TEST-CAFE-2345"

// registerAdmin registers "admin" with the setup code, as the owner would.
func registerAdmin(t *testing.T, srv *httptest.Server, c *http.Client) *http.Response {
	return postForm(t, c, srv.URL+"/register", registration("admin", testSetupCode))
}

// registration is the registration form for name with a setup code ("": none).
func registration(name, code string) url.Values {
	v := url.Values{"name": {name}, "password": {"a long password"}, "password2": {"a long password"}}
	if code != "" {
		v.Set("setup_code", code)
	}
	return v
}

// cookie is the cookie name that resp sets, or nil.
func cookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// csrfOf fetches a page as c and returns the form token on it.
func csrfOf(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s := string(b)
	i := strings.Index(s, `name="csrf" value="`)
	if i < 0 {
		t.Fatalf("no csrf token on %s (%d):\n%.500s", u, resp.StatusCode, s)
	}
	s = s[i+len(`name="csrf" value="`):]
	return s[:strings.IndexByte(s, '"')]
}

func TestRegistrationOnlyOnceAndCookieFlags(t *testing.T) {
	srv, _ := dashboard(t)
	c := client(t)
	resp := registerAdmin(t, srv, c)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first registration: %d", resp.StatusCode)
	}
	for _, name := range []string{sessionCookie, deviceCookie} {
		ck := cookie(resp, name)
		if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure || ck.Path != "/" {
			t.Errorf("%s cookie over plain http: %+v", name, ck)
		}
	}
	if resp := registerAdmin(t, srv, client(t)); resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusSeeOther {
		t.Errorf("second registration: %d", resp.StatusCode)
	} else if resp.StatusCode == http.StatusSeeOther && resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("second registration logged someone in")
	}
	if resp := postForm(t, client(t), srv.URL+"/register", registration("evil", testSetupCode)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("second registration with a new name: %d, want 403", resp.StatusCode)
	}
}

func TestSecureCookieBehindTrustedProxy(t *testing.T) {
	srv, _ := dashboard(t, "127.0.0.0/8")
	resp := postForm(t, client(t), srv.URL+"/register", registration("admin", testSetupCode),
		"X-Forwarded-Proto", "https")
	for _, name := range []string{sessionCookie, deviceCookie} {
		if ck := cookie(resp, name); ck == nil || !ck.Secure {
			t.Errorf("behind a trusted TLS proxy the %s cookie must be Secure: %v", name, resp.Cookies())
		}
	}
	srv2, _ := dashboard(t) // no trusted proxy: the header is ignored
	resp = postForm(t, client(t), srv2.URL+"/register", registration("admin", testSetupCode),
		"X-Forwarded-Proto", "https")
	for _, name := range []string{sessionCookie, deviceCookie} {
		if ck := cookie(resp, name); ck == nil || ck.Secure {
			t.Errorf("X-Forwarded-Proto from an untrusted peer was believed (%s): %v", name, resp.Cookies())
		}
	}
}

func TestAdminRoutesRefuseAnonymous(t *testing.T) {
	srv, fs := dashboard(t)
	c := client(t)
	for _, p := range []string{"/settings", "/users", "/traffic", "/bench"} {
		resp, _ := c.Get(srv.URL + p)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Errorf("GET %s anonymous: %d %s", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for _, p := range []string{"/api/bench", "/api/traffic"} {
		if resp, _ := c.Get(srv.URL + p); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s anonymous: %d, want 401", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/sync/start", "/sync/cancel", "/settings", "/settings/discord-test", "/users", "/users/delete", "/account/password", "/logout",
		"/bench/start", "/bench/use", "/api/bench"} {
		if resp := postForm(t, c, srv.URL+p, url.Values{"name": {"x"}}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s anonymous: %d, want 401", p, resp.StatusCode)
		}
	}
	if len(fs.started) != 0 {
		t.Errorf("an anonymous request started a sync")
	}
	// Public: overview, sync status, search, mirror, APIs.
	for _, p := range []string{"/", "/sync", "/search?q=x", "/archlinux/", "/api/sync", "/metrics", "/healthz", "/events?once"} {
		if p == "/events?once" {
			continue // a stream; covered in TestEventsStream
		}
		if resp, _ := c.Get(srv.URL + p); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s anonymous: %d, want 200", p, resp.StatusCode)
		}
	}
}

func TestForgeryRefused(t *testing.T) {
	srv, fs := dashboard(t)
	c := client(t)
	registerAdmin(t, srv, c)
	token := csrfOf(t, c, srv.URL+"/sync")
	// Cross-site POST: refused before the handler, even with a valid token and cookie.
	if resp := postForm(t, c, srv.URL+"/sync/start", url.Values{"csrf": {token}}, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST: %d", resp.StatusCode)
	}
	if resp := postForm(t, c, srv.URL+"/sync/start", url.Values{"csrf": {token}}, "Origin", "http://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST from another origin: %d", resp.StatusCode)
	}
	// Same site, no or wrong token: refused.
	if resp := postForm(t, c, srv.URL+"/sync/start", url.Values{"csrf": {"nope"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST with a wrong token: %d", resp.StatusCode)
	}
	if len(fs.started) != 0 {
		t.Fatalf("a forged request started a sync: %v", fs.started)
	}
	if resp := postForm(t, c, srv.URL+"/sync/start", url.Values{"csrf": {token}, "force": {"1"}}, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a genuine POST: %d", resp.StatusCode)
	}
	if len(fs.started) != 1 || !fs.started[0].Force || fs.started[0].Trigger != dsync.TriggerWeb {
		t.Errorf("genuine sync start: %+v", fs.started)
	}
	// Cancel with nothing running says so on the page.
	resp := postForm(t, c, srv.URL+"/sync/cancel", url.Values{"csrf": {token}}, "Sec-Fetch-Site", "same-origin")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "nothing to cancel") {
		t.Errorf("cancel with nothing running: %d\n%s", resp.StatusCode, body)
	}
}

func TestBruteForceSlowed(t *testing.T) {
	srv, _ := dashboard(t)
	registerAdmin(t, srv, client(t))
	c := client(t)
	limited := false
	for i := 0; i < 30 && !limited; i++ {
		resp := postForm(t, c, srv.URL+"/login", url.Values{"name": {"admin"}, "password": {"guess number " + string(rune('a'+i))}})
		switch resp.StatusCode {
		case http.StatusTooManyRequests:
			limited = resp.Header.Get("Retry-After") != ""
		case http.StatusUnauthorized:
		default:
			t.Fatalf("wrong password: %d", resp.StatusCode)
		}
	}
	if !limited {
		t.Fatal("30 wrong passwords in a row were never rate limited (429 with Retry-After)")
	}
	// Even the right password waits now.
	if resp := postForm(t, c, srv.URL+"/login", url.Values{"name": {"admin"}, "password": {"a long password"}}); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right password during the lockout: %d", resp.StatusCode)
	}
}

func TestSettingsErrorsShownNothingSaved(t *testing.T) {
	srv, _ := dashboard(t)
	c := client(t)
	registerAdmin(t, srv, c)
	token := csrfOf(t, c, srv.URL+"/settings")
	req, _ := http.NewRequest("POST", srv.URL+"/settings", strings.NewReader(url.Values{"csrf": {token}, "sync.interval": {"soon"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, _ := c.Do(req)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "Nothing was changed") || !strings.Contains(string(b), `<span class="err">bad</span>`) {
		t.Errorf("settings with problems: %d\n%.2000s", resp.StatusCode, b)
	}
}

func TestAnonymousSeesNoClientAddresses(t *testing.T) {
	srv, _ := dashboard(t)
	resp, _ := http.Get(srv.URL + "/")
	b, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(b), "Downloads now") {
		t.Errorf("the public overview lists downloads with client addresses")
	}
	if len(b) > 100<<10 {
		t.Errorf("overview is %d bytes, over 100 KB", len(b))
	}
}

func TestEventsStream(t *testing.T) {
	srv, _ := dashboard(t)
	resp, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Errorf("headers: %v", resp.Header)
	}
	buf := make([]byte, 4096)
	var got string
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(got, "event: pulse") < 2 && time.Now().Before(deadline) {
		n, err := resp.Body.Read(buf)
		got += string(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.HasPrefix(got, "retry: 3000") || strings.Count(got, "event: pulse") < 2 || !strings.Contains(got, `"sync":`) {
		t.Errorf("stream:\n%s", got)
	}
	if strings.Contains(got, `"client"`) {
		t.Errorf("anonymous stream carries client addresses")
	}
}

func TestMetrics(t *testing.T) {
	srv, _ := dashboard(t)
	http.Get(srv.URL + "/archlinux/")
	resp, _ := http.Get(srv.URL + "/metrics")
	b, _ := io.ReadAll(resp.Body)
	// The mirror's index is mirror traffic; no sync has run, so no success time is known.
	for _, want := range []string{`amwi_mirror_requests_total{status="200"}`, "amwi_http_sent_bytes_total", "amwi_active_downloads", "amwi_sync_running",
		"amwi_sync_runs_total", `amwi_packages{repo="core"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, b)
		}
	}
}
