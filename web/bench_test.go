package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// pickyBench refuses a start without a country, as the daemon's does when bench.country is
// unset too.
type pickyBench struct{ fakeBench }

func (p *pickyBench) Start(c string) error {
	if c == "" {
		return BadRequest("say which country to measure (or set bench.country)")
	}
	return p.fakeBench.Start(c)
}

// TestBenchStartRefusalIsAClientError: a start the request got wrong answers 400 with the
// reason, on the page and in the API, not 200 with an error in the body.
func TestBenchStartRefusalIsAClientError(t *testing.T) {
	o, _ := dashboardOptions(t)
	o.Bench = &pickyBench{}
	srv := httptest.NewServer(NewHandler(o))
	defer srv.Close()
	c := client(t)
	registerAdmin(t, srv, c)
	token := csrfOf(t, c, srv.URL+"/bench")
	resp := postForm(t, c, srv.URL+"/bench/start", url.Values{"csrf": {token}})
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "say which country") {
		t.Errorf("form start without a country: %d\n%.1500s", resp.StatusCode, b)
	}
	resp = postForm(t, c, srv.URL+"/api/bench", url.Values{"csrf": {token}})
	b, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "say which country") {
		t.Errorf("API start without a country: %d %s", resp.StatusCode, b)
	}
	if resp := postForm(t, c, srv.URL+"/bench/start", url.Values{"csrf": {token}, "country": {"Germany"}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("form start with a country: %d", resp.StatusCode)
	}
}
