package web

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/auth"
)

// nextCorpus: what a login's next= may hold, and whether it is followed.
var nextCorpus = []struct {
	next string
	ok   bool
}{
	{"/", true},
	{"/traffic", true},
	{"/traffic?days=7", true},
	{"/search?q=a%20b&repo=core", true},
	{"/packages/core/gtk%2B", true},
	{"/settings#discord", true},
	{"/search?q=%5C%2F%2F", true}, // encoded in the query: stays in the query

	{"", false},
	{"traffic", false},
	{"evil.example", false},
	{"//evil.example", false},
	{"///evil.example", false},
	{"/\\evil.example", false}, // the finding: browsers go to evil.example
	{"\\/evil.example", false},
	{"/\\\\evil.example", false},
	{"/\t/evil.example", false}, // the finding: a TAB in the header, stripped by browsers
	{"/\n/evil.example", false},
	{"/\r\nSet-Cookie: amwi_session=x", false},
	{"/ /evil.example", false},
	{"/\x00", false},
	{"/\x7f", false},
	{"/\x1b[31m", false},
	{"/é", false},
	{"/\u2028/evil.example", false},
	{"/\uff3cevil.example", false}, // fullwidth reverse solidus
	{"http://evil.example", false},
	{"https:evil.example", false},
	{"https:/evil.example", false},
	{"javascript:alert(1)", false},
	{"data:text/html,x", false},
	{"/.//evil.example", false},
	{"/..//evil.example", false},
	{"/a/../..//evil.example", false},
	{"/./", false},
	{"/..", false},
	{"/%2F/evil.example", false},
	{"/%2f%2fevil.example", false},
	{"/%5Cevil.example", false},
	{"/%5cevil.example", false},
	{"/%09/evil.example", false},
	{"/%0d%0aSet-Cookie:x=y", false},
	{"/%2e%2e/%2fevil.example", false},
	{"/%2e/", false},
	{"/%zz", false},
	{"/" + strings.Repeat("a", maxNext), false},
}

func TestSafeNext(t *testing.T) {
	for _, tt := range nextCorpus {
		got := safeNext(tt.next)
		if tt.ok && got != tt.next {
			t.Errorf("safeNext(%q) = %q, want it kept", tt.next, got)
		}
		if !tt.ok && got != "" {
			t.Errorf("safeNext(%q) = %q, want refused", tt.next, got)
		}
	}
}

func FuzzSafeNext(f *testing.F) {
	for _, tt := range nextCorpus {
		f.Add(tt.next)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if got == "" {
			return
		}
		// What is kept is a same-origin path however a browser reads it.
		base, _ := url.Parse("http://amwi.lan/login")
		ref, err := url.Parse(got)
		if err != nil {
			t.Fatalf("kept %q, which does not parse: %v", got, err)
		}
		if u := base.ResolveReference(ref); u.Host != "amwi.lan" || u.Scheme != "http" {
			t.Fatalf("kept %q, which leads to %s", got, u)
		}
		if !plain(got) || strings.HasPrefix(got, "//") || got[0] != '/' {
			t.Fatalf("kept %q", got)
		}
	})
}

// TestLoginNext: the login follows next= only to a path of this site, from the query (the
// finding's form) or from the form, and the login page carries it through.
func TestLoginNext(t *testing.T) {
	o, _ := dashboardOptions(t)
	a := o.Auth.(*auth.Service)
	a.Limits = auth.Limits{PerAccount: auth.Rate{Burst: 1000, Every: time.Millisecond}, PerClient: auth.Rate{Burst: 1000, Every: time.Millisecond}}
	srv := httptest.NewServer(NewHandler(o))
	defer srv.Close()
	registerAdmin(t, srv, client(t))
	creds := url.Values{"name": {"admin"}, "password": {"a long password"}}
	for _, tt := range nextCorpus {
		want := "/"
		if tt.ok {
			want = tt.next
		}
		t.Run(fmt.Sprintf("%q", tt.next), func(t *testing.T) {
			// In the query, as the attacker sent it.
			resp := postForm(t, client(t), srv.URL+"/login?next="+url.QueryEscape(tt.next), creds)
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != want {
				t.Errorf("POST /login?next=: %d Location %q, want %q", resp.StatusCode, loc, want)
			}
			// In the form, as the login page sends it.
			form := url.Values{"next": {tt.next}}
			for k, v := range creds {
				form[k] = v
			}
			resp = postForm(t, client(t), srv.URL+"/login", form)
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != want {
				t.Errorf("POST /login next in the form: %d Location %q, want %q", resp.StatusCode, loc, want)
			}
		})
	}

	// A real user's way: an admin page sends the anonymous browser to the login page with
	// next, the page's form carries it, logging in lands on the page asked for.
	c := client(t)
	resp, err := c.Get(srv.URL + "/traffic?days=7")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loginURL := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || loginURL != "/login?next="+url.QueryEscape("/traffic?days=7") {
		t.Fatalf("anonymous GET /traffic?days=7: %d Location %q", resp.StatusCode, loginURL)
	}
	resp, err = c.Get(srv.URL + loginURL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	field := `<input type="hidden" name="next" value="/traffic?days=7">`
	if !strings.Contains(string(b), field) {
		t.Fatalf("the login page does not carry next (%s):\n%s", field, b)
	}
	form := url.Values{"next": {"/traffic?days=7"}, "name": {"admin"}, "password": {"wrong password"}}
	resp = postForm(t, c, srv.URL+"/login", form)
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), field) {
		t.Fatalf("a failed login drops next: %d\n%s", resp.StatusCode, b)
	}
	form.Set("password", "a long password")
	if resp := postForm(t, c, srv.URL+"/login", form); resp.Header.Get("Location") != "/traffic?days=7" {
		t.Fatalf("after logging in: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Logged in, the login page sends on to next at once.
	if resp, _ := c.Get(srv.URL + "/login?next=%2Fusers"); resp.Header.Get("Location") != "/users" {
		t.Errorf("GET /login?next=/users logged in: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// An unsafe next never reaches the page.
	resp, _ = client(t).Get(srv.URL + "/login?next=" + url.QueryEscape("/\\evil.example"))
	if b, _ := io.ReadAll(resp.Body); strings.Contains(string(b), "evil.example") {
		t.Errorf("the login page holds an unsafe next:\n%s", b)
	}
}
