package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Role is who may use a route. Every route declares one in the route table; the zero
// value is no role at all, and registering such a route panics (a test walks the table).
type Role int

const (
	roleUnset Role = iota
	// Anyone: no login (the mirror, the public pages and APIs).
	Anyone
	// Viewer: any logged-in user. Viewers read (traffic, benchmark results) and change
	// their own password.
	Viewer
	// Admin: administrators only (settings, the webhook test, sync start/cancel, the
	// benchmark's start and use, users).
	Admin
)

func (r Role) String() string {
	switch r {
	case Anyone:
		return "anyone"
	case Viewer:
		return "viewer"
	case Admin:
		return "admin"
	}
	return "unset"
}

// route is one line of the route table.
type route struct {
	pattern string // as http.ServeMux takes it: "GET /sync"
	role    Role
	h       func(http.ResponseWriter, *http.Request, viewer)
}

// public makes a plain handler a route handler (it does not look at the viewer).
func public(h http.HandlerFunc) func(http.ResponseWriter, *http.Request, viewer) {
	return func(w http.ResponseWriter, r *http.Request, _ viewer) { h(w, r) }
}

// register adds every route to mux behind its role's check.
func register(mux *http.ServeMux, u *ui, routes []route) {
	for _, rt := range routes {
		if rt.role == roleUnset {
			panic(fmt.Sprintf("web: route %q declares no role", rt.pattern))
		}
		mux.HandleFunc(rt.pattern, u.guard(rt.role, rt.h))
	}
}

// guard checks the viewer against role (and, for a POST by a logged-in user, the
// session's CSRF token) before h runs.
func (u *ui) guard(role Role, h func(http.ResponseWriter, *http.Request, viewer)) http.HandlerFunc {
	if role == Anyone {
		return func(w http.ResponseWriter, r *http.Request) {
			var v viewer
			if u != nil {
				v = u.viewer(r)
			}
			h(w, r, v)
		}
	}
	return func(w http.ResponseWriter, r *http.Request) {
		v := u.viewer(r)
		switch {
		case v.user == nil && r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api/"):
			// A page sends a person to the login form; an API call gets its 401, so that
			// a script's curl -f fails instead of reading the form as its answer.
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		case v.user == nil:
			http.Error(w, "401 log in first", http.StatusUnauthorized)
			return
		case role == Admin && !v.user.Admin:
			http.Error(w, "403 administrators only", http.StatusForbidden)
			return
		}
		token := r.Header.Get("X-CSRF-Token")
		if token == "" && r.Method == http.MethodPost && r.Header.Get("Content-Type") != "application/json" {
			token = r.PostFormValue("csrf")
		}
		if r.Method == http.MethodPost && !v.session.ValidCSRF(token) {
			// Same-origin checks (CrossOriginProtection) come first; this token is the
			// second line, for old browsers without Sec-Fetch-Site.
			http.Error(w, "403 the form is stale or came from another site; reload the page and try again", http.StatusForbidden)
			return
		}
		h(w, r, v)
	}
}
