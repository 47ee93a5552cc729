package auth_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/auth"
	"github.com/amwi/amwi/daemon/store"
)

// testParams make hashing cheap; TestDefaultParams covers the real ones.
var testParams = auth.Params{Memory: 64, Time: 1, Threads: 1}

// clock is a fake, settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a Service on a real store in a temp dir, with a fake clock and generous rate
// limits unless a test sets its own.
type env struct {
	svc   *auth.Service
	st    *store.Store
	clock *clock
}

func newEnv(t *testing.T, opts ...func(*auth.Service)) env {
	t.Helper()
	st, err := store.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	svc := &auth.Service{
		Store:  st,
		Now:    c.Now,
		Log:    slog.New(slog.NewTextHandler(t.Output(), nil)),
		Params: testParams,
		Limits: auth.Limits{
			PerAccount: auth.Rate{Burst: 1000, Every: time.Millisecond},
			PerClient:  auth.Rate{Burst: 1000, Every: time.Millisecond},
		},
	}
	for _, o := range opts {
		o(svc)
	}
	return env{svc: svc, st: st, clock: c}
}

var (
	client1 = netip.MustParseAddr("192.0.2.1")
	client2 = netip.MustParseAddr("192.0.2.2")
)

const (
	adminPass = "correct horse battery"
	userPass  = "another long password"
)

// withAdmin registers "admin" and returns the env.
func withAdmin(t *testing.T, e env) env {
	t.Helper()
	if _, err := e.svc.Register("admin", adminPass); err != nil {
		t.Fatal(err)
	}
	return e
}

func login(t *testing.T, e env, name, password string) auth.Session {
	t.Helper()
	sess, err := e.svc.Login(client1, name, password)
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return sess
}

func TestRegister(t *testing.T) {
	e := newEnv(t)
	if open, err := e.svc.NeedsSetup(); err != nil || !open {
		t.Fatalf("NeedsSetup on an empty store = %v, %v; want true", open, err)
	}
	for _, tt := range []struct {
		name, user, password string
		want                 error
	}{
		{"upper case name", "Admin", adminPass, auth.ErrBadName},
		{"empty name", "", adminPass, auth.ErrBadName},
		{"name starting with digit", "1admin", adminPass, auth.ErrBadName},
		{"name too long", strings.Repeat("a", 33), adminPass, auth.ErrBadName},
		{"short password", "admin", "123456789", auth.ErrWeakPassword},
		{"huge password", "admin", strings.Repeat("x", 1025), auth.ErrWeakPassword},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.svc.Register(tt.user, tt.password); !errors.Is(err, tt.want) {
				t.Fatalf("Register(%q) = %v, want %v", tt.user, err, tt.want)
			}
		})
	}
	u, err := e.svc.Register("admin", adminPass)
	if err != nil {
		t.Fatal(err)
	}
	if !u.Admin || u.Name != "admin" || u.Hash != "" || !u.Created.Equal(e.clock.Now()) {
		t.Errorf("registered %+v, want admin without hash created now", u)
	}
	if open, err := e.svc.NeedsSetup(); err != nil || open {
		t.Fatalf("NeedsSetup after Register = %v, %v; want false", open, err)
	}
	if _, err := e.svc.Register("mallory", "mallory's password"); !errors.Is(err, auth.ErrRegistrationClosed) {
		t.Fatalf("second Register = %v, want ErrRegistrationClosed", err)
	}
	// 32 characters is the longest name; a 10-character password with multibyte runes counts runes.
	if _, err := e.svc.Create(strings.Repeat("a", 32), "ääääääääää", false); err != nil {
		t.Fatalf("Create at the limits: %v", err)
	}
}

func TestRegisterConcurrent(t *testing.T) {
	e := newEnv(t)
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := e.svc.Register(fmt.Sprintf("admin%d", i), adminPass)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, auth.ErrRegistrationClosed):
			t.Errorf("Register: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent registrations succeeded, want exactly 1", won)
	}
	if n, err := e.st.CountUsers(); err != nil || n != 1 {
		t.Fatalf("CountUsers = %d, %v; want 1", n, err)
	}
}

func TestLogin(t *testing.T) {
	e := withAdmin(t, newEnv(t))
	for _, tt := range []struct {
		name, user, password string
		want                 error
	}{
		{"ok", "admin", adminPass, nil},
		{"ok with capitalised name and spaces", " Admin ", adminPass, nil},
		{"wrong password", "admin", adminPass + "!", auth.ErrBadCredentials},
		{"empty password", "admin", "", auth.ErrBadCredentials},
		{"password too long", "admin", strings.Repeat("x", 5000), auth.ErrBadCredentials},
		{"unknown user", "nobody", adminPass, auth.ErrBadCredentials},
		{"invalid name", "../../etc", adminPass, auth.ErrBadCredentials},
		{"empty name", "", adminPass, auth.ErrBadCredentials},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sess, err := e.svc.Login(client1, tt.user, tt.password)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Login = %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				// Unknown user and wrong password must look the same.
				if err != auth.ErrBadCredentials {
					t.Errorf("Login error %q is not exactly ErrBadCredentials", err)
				}
				return
			}
			if len(sess.ID) != 43 || len(sess.CSRF) != 43 || sess.ID == sess.CSRF {
				t.Errorf("session id %d chars, csrf %d chars: want two different 32-byte base64url tokens", len(sess.ID), len(sess.CSRF))
			}
			if sess.User != "admin" || !sess.Expires.Equal(e.clock.Now().Add(auth.DefaultTTL)) {
				t.Errorf("session for %q expiring %s, want admin, now+7d", sess.User, sess.Expires)
			}
			got, u, err := e.svc.Check(sess.ID)
			if err != nil || got.ID != sess.ID || u.Name != "admin" || !u.Admin || u.Hash != "" {
				t.Errorf("Check = %+v, %+v, %v", got, u, err)
			}
			if !got.ValidCSRF(sess.CSRF) || got.ValidCSRF("") || got.ValidCSRF(sess.ID) {
				t.Error("ValidCSRF accepts the wrong token or refuses the right one")
			}
		})
	}
}

// TestLoginUnknownUserTakesAsLong checks that an unknown name costs a hash like a wrong
// password, so timing does not tell which names exist.
func TestLoginUnknownUserTakesAsLong(t *testing.T) {
	e := withAdmin(t, newEnv(t, func(s *auth.Service) { s.Params = auth.Params{Memory: 4096, Time: 4, Threads: 1} }))
	fastest := func(name string) time.Duration {
		best := time.Hour
		for range 3 {
			start := time.Now()
			e.svc.Login(client1, name, "not the password")
			best = min(best, time.Since(start))
		}
		return best
	}
	fastest("nobody") // computes the dummy hash once
	known, unknown := fastest("admin"), fastest("nobody")
	if unknown < known/3 {
		t.Fatalf("login as an unknown user took %s, a wrong password %s: unknown users must cost a hash too", unknown, known)
	}
}

// limited is a Service with the default failure limits.
func limited(t *testing.T) env {
	t.Helper()
	e := withAdmin(t, newEnv(t, func(s *auth.Service) { s.Limits = auth.Limits{} }))
	if _, err := e.svc.Create("bob", userPass, false); err != nil {
		t.Fatal(err)
	}
	return e
}

func addr(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}) }

func wantLimited(t *testing.T, err error, account bool, retry time.Duration) {
	t.Helper()
	var rl *auth.RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, auth.ErrRateLimited) {
		t.Fatalf("%v, want a RateLimitError", err)
	}
	if rl.Account != account || (retry > 0 && rl.RetryAfter != retry) {
		t.Fatalf("RateLimitError %+v, want account %v, retry after %s", rl, account, retry)
	}
	if !strings.Contains(err.Error(), "try again in "+rl.RetryAfter.String()) {
		t.Errorf("error %q does not say when to try again", err)
	}
}

// TestStrangerCannotLockOutOwner: the finding. Wrong passwords from one address spend the
// account's first budget, yet the owner's right password from another address gets in,
// however the stranger goes on; the stranger's own address is held back.
func TestStrangerCannotLockOutOwner(t *testing.T) {
	e := limited(t)
	stranger, owner := netip.MustParseAddr("192.0.2.66"), netip.MustParseAddr("192.0.2.10")
	for i := range 6 {
		_, err := e.svc.Login(stranger, "admin", fmt.Sprint("guess number ", i))
		if i < 5 && !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
		if i == 5 {
			wantLimited(t, err, true, 3*time.Minute) // the account's first budget: 5
		}
	}
	// One try every ~10 s for an hour does not keep the owner out.
	for i := range 360 {
		e.clock.Advance(10 * time.Second)
		e.svc.Login(stranger, "admin", fmt.Sprint("guess again ", i))
		if i%30 == 0 {
			if _, err := e.svc.Login(owner, "admin", adminPass); err != nil {
				t.Fatalf("after %s the owner's right password: %v", time.Duration(i+1)*10*time.Second, err)
			}
		}
	}
	// Other accounts were never affected.
	if _, err := e.svc.Login(owner, "bob", userPass); err != nil {
		t.Fatal(err)
	}
}

// TestOwnerTypoDuringAttack: an owner who mistypes during an attack has failed recently;
// the right password waits for the account's budget, unless the browser has a device
// token from an earlier login: then only its own failures count.
func TestOwnerTypoDuringAttack(t *testing.T) {
	e := limited(t)
	owner := netip.MustParseAddr("192.0.2.10")
	earlier, err := e.svc.Login(owner, "admin", adminPass)
	if err != nil || earlier.Device == "" {
		t.Fatalf("login: %v, device token %q", err, earlier.Device)
	}
	for i := range 5 {
		e.svc.Login(addr(i), "admin", "guess")
	}
	if _, err := e.svc.Login(owner, "admin", "typo"); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("typo from a clean address: %v", err) // through the second budget
	}
	_, err = e.svc.Login(owner, "admin", adminPass)
	wantLimited(t, err, true, 0)
	dev := auth.Client{Addr: owner, Device: earlier.Device}
	s, err := e.svc.LoginFrom(dev, "admin", adminPass)
	if err != nil {
		t.Fatalf("with the device token: %v", err)
	}
	if s.Device == "" || s.Device == earlier.Device {
		t.Errorf("a login hands out a new device token")
	}
	// The device token is for its account only, and works from another address too.
	if _, err := e.svc.LoginFrom(auth.Client{Addr: addr(900), Device: earlier.Device}, "admin", adminPass); err != nil {
		t.Errorf("device token from another address: %v", err)
	}
	_, err = e.svc.LoginFrom(auth.Client{Addr: owner, Device: earlier.Device}, "bob", "guess")
	if !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("bob with admin's device token from a dirty address: %v, want the normal rules (a guess is admitted while bob's budget lasts)", err)
	}
	// The device's own limit: 10 failures, then it waits too.
	for i := range 10 {
		if _, err := e.svc.LoginFrom(dev, "admin", "wrong"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("device failure %d: %v", i, err)
		}
	}
	_, err = e.svc.LoginFrom(dev, "admin", adminPass)
	wantLimited(t, err, false, 2*time.Minute)
	// A password change ends every device token of the account.
	if err := e.svc.SetPassword("admin", "the next password"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	for i := range 5 {
		e.svc.Login(addr(100+i), "admin", "guess")
	}
	for i := range 10 {
		e.svc.Login(addr(200+i), "admin", "guess")
	}
	_, err = e.svc.LoginFrom(auth.Client{Addr: addr(300), Device: s.Device}, "admin", "the next password")
	wantLimited(t, err, true, 0)
}

// TestGuessesCapped: a guesser with a new address for every guess gets at most
// Limits.GuessesPerHour guesses an hour at one account (TestREADMEStatesTheLimits holds
// the README to that number), then the budgets' refill.
func TestGuessesCapped(t *testing.T) {
	perHour := (auth.Limits{}).GuessesPerHour()
	e := limited(t)
	guesses, next := 0, 0
	for range 3 * 3600 { // three hours, one attempt a second
		e.clock.Advance(time.Second)
		_, err := e.svc.Login(addr(next), "admin", "guess")
		next++
		if errors.Is(err, auth.ErrBadCredentials) {
			guesses++
		}
	}
	// Hour one: both bursts and an hour of refill; then only the refill.
	if max := perHour + 2*40; guesses > max || guesses < max-2 {
		t.Errorf("%d guesses in 3 hours from %d addresses, want about %d", guesses, next, max)
	}
	// Bob's account has its own budgets.
	if _, err := e.svc.Login(addr(next), "bob", "guess"); !errors.Is(err, auth.ErrBadCredentials) {
		t.Errorf("another account: %v", err)
	}
}

// TestRateLimitPerClient: failures from one address are limited on their own, on any
// account; IPv6 addresses count one by one.
func TestRateLimitPerClient(t *testing.T) {
	e := withAdmin(t, newEnv(t, func(s *auth.Service) {
		s.Limits.PerClient = auth.Rate{Burst: 3, Every: 2 * time.Second}
	}))
	for i, tt := range []struct {
		name      string
		client    string
		advance   time.Duration
		wantLimit bool
	}{
		{"first", "192.0.2.1", 0, false},
		{"second", "192.0.2.1", 0, false},
		{"third", "192.0.2.1", 0, false},
		{"fourth is refused", "192.0.2.1", 0, true},
		{"another address is not", "192.0.2.2", 0, false},
		{"IPv4-mapped IPv6 is the same address", "::ffff:192.0.2.1", 0, true},
		{"after the interval one more", "192.0.2.1", 2 * time.Second, false},
		{"but only one", "192.0.2.1", 0, true},
		{"IPv6 ok", "2001:db8:1:2::1", 0, false},
		{"IPv6 ok 2", "2001:db8:1:2::1", 0, false},
		{"IPv6 ok 3", "2001:db8:1:2::1", 0, false},
		{"IPv6 refused", "2001:db8:1:2::1", 0, true},
		{"the same /64 is another host on a LAN", "2001:db8:1:2:ffff::4", 0, false},
		{"a zone does not make another address", "2001:db8:1:2::1%eth0", 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Advance(tt.advance)
			// Different names each time: only the client's limit can bite.
			_, err := e.svc.Login(netip.MustParseAddr(tt.client), fmt.Sprintf("user%d", i), "wrong password")
			var rl *auth.RateLimitError
			if got := errors.As(err, &rl); got != tt.wantLimit {
				t.Fatalf("Login from %s: %v, want rate limited %v", tt.client, err, tt.wantLimit)
			}
			if rl != nil && (rl.Account || rl.RetryAfter != 2*time.Second) {
				t.Errorf("RateLimitError %+v, want the client's, retry after 2s", rl)
			}
		})
	}
	// Right passwords spend nothing: a user logging in all day is never limited.
	e.clock.Advance(10 * time.Second)
	for range 50 {
		login(t, e, "admin", adminPass)
	}
}

// TestLimitsConcurrent: parallel wrong guesses from one address cannot exceed its budget
// by racing the password check.
func TestLimitsConcurrent(t *testing.T) {
	e := withAdmin(t, newEnv(t, func(s *auth.Service) {
		s.Limits.PerClient = auth.Rate{Burst: 3, Every: time.Hour}
	}))
	var wg sync.WaitGroup
	var mu sync.Mutex
	guesses := 0
	for i := range 40 {
		wg.Go(func() {
			_, err := e.svc.Login(client1, "admin", fmt.Sprint("parallel guess ", i))
			if errors.Is(err, auth.ErrBadCredentials) {
				mu.Lock()
				guesses++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if guesses != 3 {
		t.Errorf("%d parallel guesses got through a budget of 3", guesses)
	}
}

// TestChangePasswordLimited: wrong old passwords count as failed logins of the account.
func TestChangePasswordLimited(t *testing.T) {
	e := limited(t)
	c := auth.Client{Addr: client1}
	for i := range 5 {
		if _, err := e.svc.ChangePassword(c, "bob", fmt.Sprint("guess ", i), "a brand new password"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	_, err := e.svc.ChangePassword(c, "bob", userPass, "a brand new password")
	wantLimited(t, err, true, 0)
	// From a clean address, the right old password still works.
	if _, err := e.svc.ChangePassword(auth.Client{Addr: client2}, "bob", userPass, "a brand new password"); err != nil {
		t.Fatal(err)
	}
}

func TestSessionExpiryAndRenewal(t *testing.T) {
	const ttl = 10 * time.Hour
	e := withAdmin(t, newEnv(t, func(s *auth.Service) { s.TTL = ttl }))
	start := e.clock.Now()
	sess := login(t, e, "admin", adminPass)
	for _, tt := range []struct {
		name        string
		at          time.Duration // since login
		wantExpires time.Duration // since login; 0: session gone
	}{
		{"fresh, not renewed", 1 * time.Hour, 10 * time.Hour},
		{"before half its life, not renewed", 5 * time.Hour, 10 * time.Hour},
		{"past half its life, renewed", 6 * time.Hour, 16 * time.Hour},
		{"alive thanks to renewal", 15 * time.Hour, 25 * time.Hour},
		{"unused until it expired", 25 * time.Hour, 0},
		{"stays gone", 26 * time.Hour, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Set(start.Add(tt.at))
			got, _, err := e.svc.Check(sess.ID)
			if tt.wantExpires == 0 {
				if !errors.Is(err, auth.ErrNotFound) {
					t.Fatalf("Check = %v, want ErrNotFound", err)
				}
				if _, ok, _ := e.st.GetSession(sess.ID); ok {
					t.Error("expired session still stored")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := start.Add(tt.wantExpires); !got.Expires.Equal(want) {
				t.Errorf("expires %s, want %s", got.Expires, want)
			}
			if stored, _, _ := e.st.GetSession(sess.ID); !stored.Expires.Equal(got.Expires) {
				t.Errorf("stored expiry %s, returned %s", stored.Expires, got.Expires)
			}
		})
	}
}

func TestCheckUnknown(t *testing.T) {
	e := withAdmin(t, newEnv(t))
	// A session whose user is gone (written behind the service's back).
	orphan := auth.Session{ID: "orphan", User: "ghost", Created: e.clock.Now(), Expires: e.clock.Now().Add(time.Hour)}
	if err := e.st.PutSession(orphan); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "no-such-session", strings.Repeat("x", 10000), "orphan"} {
		if _, _, err := e.svc.Check(id); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("Check(%.10q) = %v, want ErrNotFound", id, err)
		}
	}
	if _, ok, _ := e.st.GetSession("orphan"); ok {
		t.Error("orphaned session still stored")
	}
}

func TestLogout(t *testing.T) {
	e := withAdmin(t, newEnv(t))
	a, b := login(t, e, "admin", adminPass), login(t, e, "admin", adminPass)
	if err := e.svc.Logout(a.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Check(a.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("Check after Logout = %v, want ErrNotFound", err)
	}
	if _, _, err := e.svc.Check(b.ID); err != nil {
		t.Errorf("the other session: %v", err)
	}
	for _, id := range []string{a.ID, "", "unknown"} {
		if err := e.svc.Logout(id); err != nil {
			t.Errorf("Logout(%.10q) = %v, want nil", id, err)
		}
	}
}

func TestChangePassword(t *testing.T) {
	e := withAdmin(t, newEnv(t))
	const newPass = "a brand new password"
	for _, tt := range []struct {
		name, user, old, new string
		want                 error
	}{
		{"wrong old password", "admin", "not it at all", newPass, auth.ErrBadCredentials},
		{"weak new password", "admin", adminPass, "short", auth.ErrWeakPassword},
		{"unknown user", "ghost", adminPass, newPass, auth.ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sess := login(t, e, "admin", adminPass)
			if _, err := e.svc.ChangePassword(auth.Client{Addr: client1}, tt.user, tt.old, tt.new); !errors.Is(err, tt.want) {
				t.Fatalf("ChangePassword = %v, want %v", err, tt.want)
			}
			if _, _, err := e.svc.Check(sess.ID); err != nil {
				t.Errorf("a refused change ended the session: %v", err)
			}
		})
	}
	a, b := login(t, e, "admin", adminPass), login(t, e, "admin", adminPass)
	e.clock.Advance(time.Minute)
	fresh, err := e.svc.ChangePassword(auth.Client{Addr: client1}, "admin", adminPass, newPass)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Check(fresh.ID); err != nil || fresh.Device == "" {
		t.Errorf("the session ChangePassword starts: %v, device token %q", err, fresh.Device)
	}
	for _, s := range []auth.Session{a, b} {
		if _, _, err := e.svc.Check(s.ID); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("session from before the change: %v, want ErrNotFound", err)
		}
	}
	if _, err := e.svc.Login(client1, "admin", adminPass); !errors.Is(err, auth.ErrBadCredentials) {
		t.Errorf("old password: %v, want ErrBadCredentials", err)
	}
	sess := login(t, e, "admin", newPass)
	if _, _, err := e.svc.Check(sess.ID); err != nil {
		t.Errorf("session after the change: %v", err)
	}
	u, _, _ := e.st.GetUser("admin")
	if !u.PasswordChanged.Equal(e.clock.Now()) || u.PasswordChanged.Equal(u.Created) {
		t.Errorf("PasswordChanged %s, want now", u.PasswordChanged)
	}
}

// TestLoginAfterClockStepBack: a Pi without RTC may step its clock back; a login after a
// password change must still yield a session Check accepts.
func TestLoginAfterClockStepBack(t *testing.T) {
	e := withAdmin(t, newEnv(t))
	if err := e.svc.SetPassword("admin", userPass); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(-time.Hour)
	sess := login(t, e, "admin", userPass)
	if _, _, err := e.svc.Check(sess.ID); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestSetPassword(t *testing.T) {
	e := withAdmin(t, newEnv(t))
	if _, err := e.svc.Create("bob", userPass, false); err != nil {
		t.Fatal(err)
	}
	sess := login(t, e, "bob", userPass)
	if err := e.svc.SetPassword("bob", "reset by the admin"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Check(sess.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("session after reset: %v, want ErrNotFound", err)
	}
	login(t, e, "bob", "reset by the admin")
	for _, tt := range []struct {
		name, user, password string
		want                 error
	}{
		{"unknown user", "ghost", "reset by the admin", auth.ErrNotFound},
		{"weak password", "bob", "short", auth.ErrWeakPassword},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := e.svc.SetPassword(tt.user, tt.password); !errors.Is(err, tt.want) {
				t.Fatalf("SetPassword = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestCreateAndUsers(t *testing.T) {
	e := withAdmin(t, newEnv(t))
	for _, tt := range []struct {
		name, user string
		admin      bool
		want       error
	}{
		{"user", "carol", false, nil},
		{"admin", "bob", true, nil},
		{"dots and dashes", "_svc.backup-1", false, nil},
		{"taken", "carol", false, auth.ErrExists},
		{"taken by the admin", "admin", true, auth.ErrExists},
		{"bad name", "Carol", false, auth.ErrBadName},
		{"space in name", "car ol", false, auth.ErrBadName},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, err := e.svc.Create(tt.user, userPass, tt.admin)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Create(%q) = %v, want %v", tt.user, err, tt.want)
			}
			if err == nil && (u.Name != tt.user || u.Admin != tt.admin || u.Hash != "") {
				t.Errorf("created %+v", u)
			}
		})
	}
	_, err := e.svc.Create("Bad", userPass, false)
	if err == nil || !strings.Contains(err.Error(), "lowercase letters") {
		t.Errorf("bad name error %q does not state the rule", err)
	}
	us, err := e.svc.Users()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range us {
		names = append(names, u.Name)
		if u.Hash != "" {
			t.Errorf("Users hands out the hash of %s", u.Name)
		}
	}
	if got, want := strings.Join(names, " "), "_svc.backup-1 admin bob carol"; got != want {
		t.Errorf("Users = %s, want %s", got, want)
	}
}

func TestDelete(t *testing.T) {
	e := withAdmin(t, newEnv(t))
	if _, err := e.svc.Create("bob", userPass, false); err != nil {
		t.Fatal(err)
	}
	bobSess := login(t, e, "bob", userPass)
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T)
		user  string
		want  error
	}{
		{"last admin refused", nil, "admin", auth.ErrLastAdmin},
		{"unknown", nil, "ghost", auth.ErrNotFound},
		{"user", nil, "bob", nil},
		{"admin when there is another", func(t *testing.T) {
			if _, err := e.svc.Create("admin2", userPass, true); err != nil {
				t.Fatal(err)
			}
		}, "admin", nil},
		{"then the other is the last", nil, "admin2", auth.ErrLastAdmin},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t)
			}
			if err := e.svc.Delete(tt.user); !errors.Is(err, tt.want) {
				t.Fatalf("Delete(%q) = %v, want %v", tt.user, err, tt.want)
			}
		})
	}
	if _, _, err := e.svc.Check(bobSess.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("session of a deleted user: %v, want ErrNotFound", err)
	}
	if _, ok, _ := e.st.GetSession(bobSess.ID); ok {
		t.Error("session of a deleted user still stored")
	}
}

func TestPrune(t *testing.T) {
	e := withAdmin(t, newEnv(t, func(s *auth.Service) { s.TTL = time.Hour }))
	old := login(t, e, "admin", adminPass)
	e.clock.Advance(50 * time.Minute)
	fresh := login(t, e, "admin", adminPass)
	e.clock.Advance(20 * time.Minute)
	if n, err := e.svc.Prune(); err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1", n, err)
	}
	if _, ok, _ := e.st.GetSession(old.ID); ok {
		t.Error("expired session survived Prune")
	}
	if _, _, err := e.svc.Check(fresh.ID); err != nil {
		t.Errorf("live session: %v", err)
	}
}

// TestOldHashesKeepWorking: a hash made with other parameters verifies, and the first login
// rehashes it with the current ones.
func TestOldHashesKeepWorking(t *testing.T) {
	e := withAdmin(t, newEnv(t))
	newer := auth.Params{Memory: 128, Time: 2, Threads: 2}
	e2 := newEnv(t, func(s *auth.Service) { s.Params = newer })
	e2.svc.Store = e.st
	before, _, _ := e.st.GetUser("admin")
	if !strings.Contains(before.Hash, "$m=64,t=1,p=1$") {
		t.Fatalf("hash %q not made with the test parameters", before.Hash)
	}
	login(t, e2, "admin", adminPass)
	after, _, _ := e.st.GetUser("admin")
	if !strings.Contains(after.Hash, "$m=128,t=2,p=2$") {
		t.Errorf("hash not upgraded to the current parameters: %q", after.Hash[:30])
	}
	if !after.PasswordChanged.Equal(before.PasswordChanged) {
		t.Error("rehashing counted as a password change")
	}
	login(t, e2, "admin", adminPass)
	login(t, e, "admin", adminPass)
}

// TestLogsHoldNoSecrets runs the flows and searches the log for passwords, hashes and tokens.
func TestLogsHoldNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	e := newEnv(t, func(s *auth.Service) {
		s.Log = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		s.Limits.PerAccount = auth.Rate{Burst: 2, Every: time.Minute}
	})
	code, _ := auth.NewSetupCode()
	e.svc.SetSetupCode(code)
	e.svc.RegisterWithCode(auth.Client{Addr: client1}, "GUES-SEDC-DDDD", "admin", adminPass)
	if _, err := e.svc.RegisterWithCode(auth.Client{Addr: client1}, code, "admin", adminPass); err != nil {
		t.Fatal(err)
	}
	sess := login(t, e, "admin", adminPass)
	e.svc.Login(client1, "admin", "guess number 1")
	e.svc.Login(client1, "admin", "guess number 2")
	e.svc.Login(client1, "admin", "guess number 3") // refused: the account's first budget is spent
	e.svc.Login(client2, "secretish-name", "guess number 4")
	e.svc.Check(sess.ID)
	e.clock.Advance(time.Hour)
	if _, err := e.svc.ChangePassword(auth.Client{Addr: client1}, "admin", adminPass, userPass); err != nil {
		t.Fatal(err)
	}
	u, _, _ := e.st.GetUser("admin")
	log := buf.String()
	if !strings.Contains(log, "logged in") || !strings.Contains(log, "rate limited") || !strings.Contains(log, "wrong setup code") {
		t.Fatalf("log lacks the expected events:\n%s", log)
	}
	for what, secret := range map[string]string{
		"password": adminPass, "new password": userPass, "guessed password": "guess number",
		"unknown name": "secretish-name", "hash": u.Hash, "hash salt": strings.Split(u.Hash, "$")[4],
		"session id": sess.ID, "csrf token": sess.CSRF, "device token": sess.Device,
		"setup code": code, "guessed setup code": "GUES-SEDC-DDDD",
	} {
		if strings.Contains(log, secret) {
			t.Errorf("log contains the %s:\n%s", what, log)
		}
	}
}
