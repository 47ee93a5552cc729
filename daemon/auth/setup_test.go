package auth_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/auth"
)

func TestParseSetupCode(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"K7QM-2XPD-9RWA", "K7QM-2XPD-9RWA", true},
		{"k7qm2xpd9rwa", "K7QM-2XPD-9RWA", true},
		{" K7QM 2XPD 9RWA\n", "K7QM-2XPD-9RWA", true},
		{"K7QM-2XPD-9RW", "", false},   // short
		{"K7QM-2XPD-9RWAA", "", false}, // long
		{"K7QM-2XPD-9RW0", "", false},  // 0 is not in the alphabet (nor O, 1, I)
		{"K7QM-2XPD-9RWÄ", "", false},
		{"", "", false},
		{strings.Repeat("-", 10000) + "K7QM2XPD9RWA", "", false},
	} {
		got, ok := auth.ParseSetupCode(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseSetupCode(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	seen := map[string]bool{}
	for range 100 {
		c, err := auth.NewSetupCode()
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := auth.ParseSetupCode(c); !ok || p != c {
			t.Fatalf("NewSetupCode made %q, not canonical", c)
		}
		if seen[c] {
			t.Fatalf("NewSetupCode repeated %q", c)
		}
		seen[c] = true
	}
}

// TestRegisterWithCode: the web's registration takes the setup code only, once; a missing
// or wrong one changes nothing; without a code set, none is right.
func TestRegisterWithCode(t *testing.T) {
	var firstAdmin atomic.Int32
	e := newEnv(t, func(s *auth.Service) { s.OnFirstAdmin = func() { firstAdmin.Add(1) } })
	c := auth.Client{Addr: client1}
	code, _ := auth.NewSetupCode()

	if _, err := e.svc.RegisterWithCode(c, code, "admin", adminPass); !errors.Is(err, auth.ErrBadSetupCode) {
		t.Fatalf("with no code set: %v, want ErrBadSetupCode", err)
	}
	e.svc.SetSetupCode(code)
	other, _ := auth.NewSetupCode()
	for name, try := range map[string]string{"missing": "", "wrong": other, "garbage": "x' OR 1=1"} {
		if _, err := e.svc.RegisterWithCode(c, try, "admin", adminPass); !errors.Is(err, auth.ErrBadSetupCode) {
			t.Errorf("%s code: %v, want ErrBadSetupCode", name, err)
		}
	}
	// A bad name or password is said before the code is looked at.
	if _, err := e.svc.RegisterWithCode(c, "", "Admin", adminPass); !errors.Is(err, auth.ErrBadName) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := e.svc.RegisterWithCode(c, "", "admin", "short"); !errors.Is(err, auth.ErrWeakPassword) {
		t.Errorf("weak password: %v", err)
	}
	if open, _ := e.svc.NeedsSetup(); !open || firstAdmin.Load() != 0 {
		t.Fatalf("refused registrations made an account (%v) or called OnFirstAdmin (%d)", !open, firstAdmin.Load())
	}
	u, err := e.svc.RegisterWithCode(c, strings.ToLower(code), "admin", adminPass)
	if err != nil || !u.Admin {
		t.Fatalf("the right code: %+v, %v", u, err)
	}
	if firstAdmin.Load() != 1 {
		t.Errorf("OnFirstAdmin called %d times, want 1", firstAdmin.Load())
	}
	if _, err := e.svc.RegisterWithCode(c, code, "second", adminPass); !errors.Is(err, auth.ErrRegistrationClosed) {
		t.Errorf("the code a second time: %v, want ErrRegistrationClosed", err)
	}
}

// TestSetupCodeRateLimited: wrong codes are failures of the address, so a guesser is soon
// refused before its code is even looked at; but guesses from other addresses never keep
// the owner, on a clean address, from registering (the code's 60 bits are the cap).
func TestSetupCodeRateLimited(t *testing.T) {
	e := newEnv(t, func(s *auth.Service) { s.Limits = auth.Limits{} })
	code, _ := auth.NewSetupCode()
	e.svc.SetSetupCode(code)
	guesser := auth.Client{Addr: client1}
	wrong := 0
	var rl *auth.RateLimitError
	for i := range 100 {
		guess, _ := auth.NewSetupCode()
		_, err := e.svc.RegisterWithCode(guesser, guess, "mallory", adminPass)
		if errors.As(err, &rl) {
			break
		}
		if !errors.Is(err, auth.ErrBadSetupCode) {
			t.Fatalf("guess %d: %v", i, err)
		}
		wrong++
	}
	if rl == nil || wrong > 10 || rl.RetryAfter <= 0 {
		t.Fatalf("%d wrong codes, then %v; want a RateLimitError within 10", wrong, rl)
	}
	if _, err := e.svc.RegisterWithCode(guesser, code, "mallory", adminPass); !errors.Is(err, auth.ErrRateLimited) {
		t.Fatalf("the right code from the limited guesser: %v, want rate limited", err)
	}
	// A flood of wrong codes, a new address every second for an hour, then the owner on
	// an address of their own: registered at once.
	for i := range 3600 {
		e.clock.Advance(time.Second)
		guess, _ := auth.NewSetupCode()
		if _, err := e.svc.RegisterWithCode(auth.Client{Addr: addr(i)}, guess, "mallory", adminPass); !errors.Is(err, auth.ErrBadSetupCode) {
			t.Fatalf("guess from a new address %d: %v", i, err)
		}
	}
	if _, err := e.svc.RegisterWithCode(auth.Client{Addr: client2}, code, "admin", adminPass); err != nil {
		t.Fatalf("the owner's right code after a flood from many addresses: %v", err)
	}
}

func TestRegisterWithCodeConcurrent(t *testing.T) {
	var firstAdmin atomic.Int32
	e := newEnv(t, func(s *auth.Service) { s.OnFirstAdmin = func() { firstAdmin.Add(1) } })
	code, _ := auth.NewSetupCode()
	e.svc.SetSetupCode(code)
	var wg sync.WaitGroup
	var won atomic.Int32
	for i := range 8 {
		wg.Go(func() {
			_, err := e.svc.RegisterWithCode(auth.Client{Addr: addr(i)}, code, fmt.Sprint("admin", i), adminPass)
			switch {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, auth.ErrRegistrationClosed) && !errors.Is(err, auth.ErrBadSetupCode):
				t.Errorf("register %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 || firstAdmin.Load() != 1 {
		t.Fatalf("%d registrations with the code succeeded, OnFirstAdmin called %d times; want 1 and 1", won.Load(), firstAdmin.Load())
	}
}

// TestRegisterSpendsTheCode: the command line's Register (no code) also ends the code.
func TestRegisterSpendsTheCode(t *testing.T) {
	var firstAdmin atomic.Int32
	e := newEnv(t, func(s *auth.Service) { s.OnFirstAdmin = func() { firstAdmin.Add(1) } })
	code, _ := auth.NewSetupCode()
	e.svc.SetSetupCode(code)
	if _, err := e.svc.Register("admin", adminPass); err != nil {
		t.Fatal(err)
	}
	if firstAdmin.Load() != 1 {
		t.Errorf("OnFirstAdmin called %d times after Register, want 1", firstAdmin.Load())
	}
}
