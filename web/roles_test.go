package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestRolesOfEveryRoute walks every registered route as an anonymous client, a viewer and
// an admin: each gets in exactly where the route's declared role lets it.
func TestRolesOfEveryRoute(t *testing.T) {
	o, _ := dashboardOptions(t)
	srv := httptest.NewServer(NewHandler(o))
	defer srv.Close()
	_, routes := routeTable(o, NewMirror(o.MirrorRoot, MirrorPrefix, 0, quiet()), NewActive(), newMetrics(o, NewActive()))
	// Logging out ends the session the later requests use: it goes last.
	sort.SliceStable(routes, func(i, j int) bool { return routes[j].pattern == "POST /logout" })

	admin := client(t)
	registerAdmin(t, srv, admin)
	adminToken := csrfOf(t, admin, srv.URL+"/users")
	if resp := postForm(t, admin, srv.URL+"/users", url.Values{"csrf": {adminToken}, "name": {"vera"}, "password": {"a viewer's password"}},
		"Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusOK {
		t.Fatalf("create a viewer: %d", resp.StatusCode)
	}
	viewer := client(t)
	postForm(t, viewer, srv.URL+"/login", url.Values{"name": {"vera"}, "password": {"a viewer's password"}})
	viewerToken := csrfOf(t, viewer, srv.URL+"/users")
	anon := client(t)

	for _, c := range []struct {
		who    string
		client *http.Client
		token  string
	}{{"anonymous", anon, ""}, {"viewer", viewer, viewerToken}, {"admin", admin, adminToken}} {
		c.client.Timeout = 2 * time.Second // /events is a stream
		for _, rt := range routes {
			if rt.role == roleUnset {
				t.Errorf("%s declares no role", rt.pattern)
			}
			method, path, ok := strings.Cut(rt.pattern, " ")
			if !ok {
				method, path = "GET", rt.pattern
			}
			path = strings.NewReplacer("{$}", "", "{repo}", "core", "{name}", "glibc").Replace(path)
			var resp *http.Response
			var err error
			if method == http.MethodPost {
				req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(url.Values{"csrf": {c.token}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Sec-Fetch-Site", "same-origin")
				resp, err = c.client.Do(req)
			} else {
				resp, err = c.client.Get(srv.URL + path)
			}
			if err != nil {
				if rt.role == Anyone && strings.Contains(err.Error(), "Timeout") {
					continue // a stream that answered and went on
				}
				t.Errorf("%s %s %s: %v", c.who, method, path, err)
				continue
			}
			body := make([]byte, 512)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			// The guard's own answers (a handler may refuse for its own reasons: a wrong
			// password, an admin that exists already).
			toLogin := resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), "/login?next=")
			refused := toLogin || (resp.StatusCode == http.StatusUnauthorized && strings.Contains(string(body[:n]), "log in first")) ||
				(resp.StatusCode == http.StatusForbidden && strings.Contains(string(body[:n]), "administrators only"))
			allowed := rt.role == Anyone || (rt.role == Viewer && c.who != "anonymous") || c.who == "admin"
			if refused == allowed {
				t.Errorf("%s %s (%s): %d %s, want allowed=%v", c.who, rt.pattern, rt.role, resp.StatusCode, resp.Header.Get("Location"), allowed)
			}
		}
	}
}
