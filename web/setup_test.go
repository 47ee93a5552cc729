package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRegistrationNeedsSetupCode: over real HTTP, the first admin's registration refuses
// a missing, a malformed and a wrong setup code, takes the right one (typed loosely), and
// then the code is spent.
func TestRegistrationNeedsSetupCode(t *testing.T) {
	o, _ := dashboardOptions(t)
	o.SetupCodeFile = "/var/lib/amwi/setup-code"
	srv := httptest.NewServer(NewHandler(o))
	defer srv.Close()

	resp, err := client(t).Get(srv.URL + "/register")
	if err != nil {
		t.Fatal(err)
	}
	page := body(resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="setup_code"`) || !strings.Contains(page, o.SetupCodeFile) {
		t.Fatalf("the registration page (%d) has no setup_code field or does not say where the code is:\n%s", resp.StatusCode, page)
	}
	for _, tt := range []struct{ name, code string }{
		{"no code", ""},
		{"malformed", "letmein"},
		{"wrong", "TEST-CAFE-2346"},
		{"right code with a character more", testSetupCode + "2"},
	} {
		c := client(t)
		resp := postForm(t, c, srv.URL+"/register", registration("mallory", tt.code))
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body(resp), "setup code") {
			t.Errorf("%s: %d, want 403 saying why\n%s", tt.name, resp.StatusCode, body(resp))
		}
		if cookie(resp, sessionCookie) != nil {
			t.Errorf("%s: a session cookie was set", tt.name)
		}
	}
	if setup, _ := o.Auth.NeedsSetup(); !setup {
		t.Fatal("an account was created without the right setup code")
	}
	// The right one, in lower case with spaces, from another address (the failures above
	// came from 127.0.0.1).
	c := clientFrom(t, "127.0.0.3")
	resp = postForm(t, c, srv.URL+"/register", registration("admin", " "+strings.ToLower(strings.ReplaceAll(testSetupCode, "-", " "))+" "))
	if resp.StatusCode != http.StatusSeeOther || cookie(resp, sessionCookie) == nil {
		t.Fatalf("the right setup code: %d\n%s", resp.StatusCode, body(resp))
	}
	users, _ := o.Auth.Users()
	if len(users) != 1 || users[0].Name != "admin" || !users[0].Admin {
		t.Fatalf("users after registering: %+v", users)
	}
	// Spent: the same code opens nothing any more.
	if resp := postForm(t, client(t), srv.URL+"/register", registration("second", testSetupCode)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("registering again with the spent code: %d", resp.StatusCode)
	}
	if resp, _ := client(t).Get(srv.URL + "/register"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the registration page once an admin exists: %d, want a redirect to /login", resp.StatusCode)
	}
}

// TestSetupCodeGuessesLimited: wrong setup codes count against the login limits: from one
// address they soon answer 429 with Retry-After, even for the right code, while the owner
// on another address still registers with it.
func TestSetupCodeGuessesLimited(t *testing.T) {
	srv, _ := dashboard(t)
	stranger := clientFrom(t, "127.0.0.2")
	guesses := 0
	for i := range 50 {
		resp := postForm(t, stranger, srv.URL+"/register", registration("mallory", "GUES-SXYZ-"+strings.Repeat(string("ABCDEFGHJKLMNPQRSTUVWXYZ"[i%24]), 4)))
		if resp.StatusCode == http.StatusTooManyRequests {
			retryAfter(t, resp)
			if !strings.Contains(body(resp), "Too many wrong setup codes") {
				t.Errorf("429 without saying why:\n%s", body(resp))
			}
			break
		}
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("wrong code %d: %d\n%s", i, resp.StatusCode, body(resp))
		}
		guesses++
	}
	if guesses == 0 || guesses > 10 { // the defaults: 5 for the "account", 10 for the address
		t.Fatalf("%d wrong setup codes before a 429", guesses)
	}
	if resp := postForm(t, stranger, srv.URL+"/register", registration("mallory", testSetupCode)); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the right code from the limited address: %d, want 429", resp.StatusCode)
	}
	if resp := postForm(t, clientFrom(t, "127.0.0.3"), srv.URL+"/register", registration("admin", testSetupCode)); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the owner's right code from another address while a stranger guesses: %d\n%s", resp.StatusCode, body(resp))
	}
}
