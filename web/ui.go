package web

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/amwi/amwi/daemon/auth"
	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/daemon/traffic"
	"github.com/amwi/amwi/hw"
	"github.com/amwi/amwi/internal/units"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// AuthService is accounts and sessions (auth.Service implements it).
type AuthService interface {
	NeedsSetup() (bool, error)
	RegisterWithCode(c auth.Client, code, name, password string) (auth.User, error)
	Create(name, password string, admin bool) (auth.User, error)
	LoginFrom(c auth.Client, name, password string) (auth.Session, error)
	Check(id string) (auth.Session, auth.User, error)
	Logout(id string) error
	ChangePassword(c auth.Client, name, old, new string) (auth.Session, error)
	Delete(name string) error
	Users() ([]auth.User, error)
}

var _ AuthService = (*auth.Service)(nil)

// MachineService is the machine's stats (hw.Sampler implements it).
type MachineService interface {
	Latest() hw.Snapshot
	History() []hw.Snapshot
}

var _ MachineService = (*hw.Sampler)(nil)

// TrafficService is traffic statistics (traffic.Recorder implements it).
type TrafficService interface {
	Today() (bytes, requests int64)
	TopClients(days, n int) ([]traffic.Top, error)
	TopPackages(days, n int) ([]traffic.Top, error)
	BytesPerDay(days int) ([]traffic.Bucket, error)
	Hourly(hours int) ([]traffic.Bucket, error)
	// DashboardToday is today's dashboard pages and API calls, not mirror traffic.
	DashboardToday() (bytes, requests int64)
	TopRepos(days, n int) ([]traffic.Top, error)
}

var _ TrafficService = (*traffic.Recorder)(nil)

// SettingsService reads and saves the runtime-tunable settings (the daemon implements it:
// it validates, keeps the changes in the state dir laid over amwi.toml, which it never
// writes, and applies them everywhere before Save returns).
type SettingsService interface {
	Current() *config.Config
	// Save applies form values (keys as in amwi.toml, e.g. "sync.upstream"); problems are
	// returned per key and nothing is changed when there is any.
	Save(values map[string]string) (problems map[string]string, err error)
	// Reset sets a key back to amwi.toml's value.
	Reset(key string) error
	TestDiscord() error
	// PackagesEstimate says what switching mirror.packages would move on disk, for the
	// settings page to tell before the switch is saved.
	PackagesEstimate() (PackagesEstimate, error)
}

const (
	sessionCookie = "amwi_session"
	// deviceCookie keeps the device token of the last account logged in with this
	// browser: with it, that account's logins from here are limited only by their own
	// failures (see auth.Limits). It outlives sessions and logouts on purpose.
	deviceCookie = "amwi_device"
	deviceMaxAge = 365 * 24 * time.Hour
)

// ui is the dashboard: pages, the live stream, the account flows.
type ui struct {
	o       Options
	pages   map[string]*template.Template
	active  *Active
	met     *promMetrics // its package byte count, for the "used" mode card (nil in some tests)
	pulseMu sync.Mutex
	pulse   pulseCache
}

var funcs = template.FuncMap{
	"bytes": func(v any) string {
		switch n := v.(type) {
		case int64:
			return units.Bytes(n)
		case uint64:
			return units.Bytes(int64(n))
		case int:
			return units.Bytes(int64(n))
		}
		return fmt.Sprint(v)
	},
	"rate":  func(v float64) string { return units.Bytes(int64(v)) + "/s" },
	"deref": func(p *float64) float64 { return *p },
	"duration": func(d time.Duration) string {
		if d <= 0 {
			return "–"
		}
		return roundDuration(d)
	},
	"ago":    func(t time.Time) string { return roundDuration(time.Since(t)) },
	"plural": units.Plural,
	// count is plural for the int64 counters (requests) as well as len's int; app.js's
	// "count" format keeps the noun right as the number changes live.
	"count": func(n any, noun string) (string, error) {
		switch v := n.(type) {
		case int:
			return units.Plural(v, noun), nil
		case int64:
			return units.Plural(int(v), noun), nil
		}
		return "", fmt.Errorf("count: %T is not a count", n)
	},
	"until": func(t time.Time) string { return roundDuration(time.Until(t)) },
	"unix": func(s int64) string {
		if s == 0 {
			return ""
		}
		return time.Unix(s, 0).UTC().Format("2006-01-02 15:04 UTC")
	},
	"join": func(l []string) string { return strings.Join(l, ", ") },
	"add":  func(a, b int) int { return a + b },
	// shorten cuts s to n bytes (at a rune boundary) with an ellipsis.
	"shorten": func(s string, n int) string {
		if len(s) <= n {
			return s
		}
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		return s[:n] + "…"
	},
	"mul":     func(a, b int) int { return a * b },
	"sub":     func(a, b int) int { return a - b },
	"percent": func(a, b int64) string { return fmt.Sprintf("%d %%", a*100/max(b, 1)) },
	// gib shows a size as the settings are written (mirror.max_gib): "12.3".
	"gib": func(n int64) string { return fmt.Sprintf("%.1f", float64(n)/(1<<30)) },
	"scale": func(v, maxV int64, h int) int {
		if maxV <= 0 {
			return 0
		}
		return int(v * int64(h) / maxV)
	},
	"changes": func(raw json.RawMessage) *search.Changes {
		if len(raw) == 0 {
			return nil
		}
		var c search.Changes
		if json.Unmarshal(raw, &c) != nil {
			return nil
		}
		return &c
	},
}

// roundDuration prints a duration for people: "42s", "5m", "3h 10m", "2d 4h".
func roundDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}

func newUI(o Options, active *Active) *ui {
	u := &ui{o: o, pages: map[string]*template.Template{}, active: active}
	layout := template.Must(template.New("layout").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	names, _ := fs.Glob(templateFS, "templates/*.html")
	for _, n := range names {
		if n == "templates/layout.html" {
			continue
		}
		t := template.Must(template.Must(layout.Clone()).ParseFS(templateFS, n))
		u.pages[strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")] = t
	}
	return u
}

// page is what every template gets.
type page struct {
	Title, Nav, Flash, FlashErr, CSRF, Version string
	User                                       *auth.User
	Setup                                      bool
	Data                                       any
}

// viewer is who is asking.
type viewer struct {
	session auth.Session
	user    *auth.User
}

func (u *ui) viewer(r *http.Request) viewer {
	c, err := r.Cookie(sessionCookie)
	if err != nil || u.o.Auth == nil {
		return viewer{}
	}
	s, usr, err := u.o.Auth.Check(c.Value)
	if err != nil {
		return viewer{}
	}
	return viewer{session: s, user: &usr}
}

func (u *ui) render(w http.ResponseWriter, r *http.Request, v viewer, name, title string, status int, data any, flash ...string) {
	p := page{Title: title, Nav: name, Version: u.o.Version, User: v.user, CSRF: v.session.CSRF, Data: data}
	if len(flash) > 0 {
		p.Flash = flash[0]
	}
	if len(flash) > 1 {
		p.FlashErr = flash[1]
	}
	if u.o.Auth != nil && v.user == nil {
		p.Setup, _ = u.o.Auth.NeedsSetup()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := u.pages[name].ExecuteTemplate(w, "layout", p); err != nil {
		u.o.Log.Error("ui: render", "page", name, "err", err)
	}
}

// table is the dashboard's part of the route table: every route with its role.
func (u *ui) table() []route {
	static, _ := fs.Sub(staticFS, "static")
	rs := []route{
		{"GET /static/", Anyone, public(http.StripPrefix("/static/", newStaticFiles(static)).ServeHTTP)},
		{"GET /{$}", Anyone, public(u.overview)},
		{"GET /events", Anyone, public(u.events)},
		{"GET /api/stats/history", Anyone, public(u.statsHistory)},
		{"GET /api/stats/series", Anyone, public(u.statsSeries)},
		{"GET /sync", Anyone, public(u.syncPage)},
		{"POST /sync/start", Admin, u.syncStart},
		{"POST /sync/cancel", Admin, u.syncCancel},
		{"GET /search", Anyone, public(u.searchPage)},
		{"GET /packages/{repo}/{name}", Anyone, public(u.packagePage)},
		{"GET /traffic", Viewer, u.trafficPage},
		{"GET /settings", Admin, u.settingsPage},
		{"POST /settings", Admin, u.settingsSave},
		{"POST /settings/discord-test", Admin, u.discordTest},
		{"POST /settings/reset", Admin, u.settingsReset},
		{"GET /users", Viewer, u.usersPage},
		{"POST /users", Admin, u.userCreate},
		{"POST /users/delete", Admin, u.userDelete},
		{"POST /account/password", Viewer, u.passwordChange},
		{"GET /login", Anyone, public(u.loginPage)},
		{"POST /login", Anyone, public(u.login)},
		{"POST /logout", Viewer, u.logout},
		{"GET /register", Anyone, public(u.registerPage)},
		{"POST /register", Anyone, public(u.register)},
		{"GET /favicon.ico", Anyone, public(favicon)},
		{"GET /api/traffic", Viewer, u.trafficAPI},
	}
	if u.o.Bench != nil {
		rs = append(rs,
			route{"GET /bench", Viewer, func(w http.ResponseWriter, r *http.Request, v viewer) { u.benchPage(w, r, v, http.StatusOK) }},
			route{"POST /bench/start", Admin, u.benchStart},
			route{"POST /bench/use", Admin, u.benchUse},
			route{"GET /api/bench", Viewer, u.benchAPIGet},
			route{"POST /api/bench", Admin, u.benchAPIStart},
		)
	}
	return rs
}

func (u *ui) log() *slog.Logger { return u.o.Log }

// setSession sets the session cookie, and the device cookie when the login brought a
// token: HttpOnly, SameSite=Lax, Secure when the request came over HTTPS (directly or
// through a trusted proxy).
func (u *ui) setSession(w http.ResponseWriter, r *http.Request, s auth.Session) {
	secure := u.o.Proxies().HTTPS(r)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.ID, Path: "/", Expires: s.Expires, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: secure})
	if s.Device != "" {
		http.SetCookie(w, &http.Cookie{Name: deviceCookie, Value: s.Device, Path: "/", MaxAge: int(deviceMaxAge.Seconds()), HttpOnly: true,
			SameSite: http.SameSiteLaxMode, Secure: secure})
	}
}

// client is who asks, for the login limits: the address and the device cookie.
func (u *ui) client(r *http.Request) auth.Client {
	c := auth.Client{Addr: u.o.Proxies().ClientIP(r)}
	if ck, err := r.Cookie(deviceCookie); err == nil {
		c.Device = ck.Value
	}
	return c
}

// setRetryAfter sets Retry-After for a refused attempt (err is an *auth.RateLimitError)
// and returns the wait.
func setRetryAfter(w http.ResponseWriter, err error) time.Duration {
	wait := time.Minute // only if the error lost its details
	var rl *auth.RateLimitError
	if errors.As(err, &rl) {
		wait = rl.RetryAfter
	}
	w.Header().Set("Retry-After", fmt.Sprint(max(1, int((wait+time.Second-1)/time.Second))))
	return wait
}

// limitMessage says why a login was refused, and sets Retry-After.
func limitMessage(w http.ResponseWriter, err error) string {
	setRetryAfter(w, err)
	var rl *auth.RateLimitError
	if !errors.As(err, &rl) {
		return "Too many failed attempts. Wait a little and try again."
	}
	if rl.Account {
		return "This account had too many failed attempts. Try again in " + roundDuration(rl.RetryAfter) +
			", or from a browser that logged in to it before."
	}
	return "Too many failed attempts from here. Try again in " + roundDuration(rl.RetryAfter) + "."
}

// nextOf is the form's (or else the query's) "next" when it is a path of this site
// (safeNext), else "".
func nextOf(r *http.Request) string {
	n := r.PostFormValue("next")
	if n == "" {
		n = r.URL.Query().Get("next")
	}
	return safeNext(n)
}

// next is where to go after logging in: nextOf, else the overview.
func next(r *http.Request) string {
	if n := nextOf(r); n != "" {
		return n
	}
	return "/"
}

func (u *ui) loginPage(w http.ResponseWriter, r *http.Request) {
	v := u.viewer(r)
	if v.user != nil {
		http.Redirect(w, r, next(r), http.StatusSeeOther)
		return
	}
	if setup, _ := u.o.Auth.NeedsSetup(); setup {
		http.Redirect(w, r, "/register", http.StatusSeeOther)
		return
	}
	// The form carries next through the POST (only a safe one: the page never holds
	// another).
	u.render(w, r, v, "login", "Log in", http.StatusOK, map[string]any{"Next": nextOf(r)})
}

func (u *ui) login(w http.ResponseWriter, r *http.Request) {
	name, pw := strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("password")
	s, err := u.o.Auth.LoginFrom(u.client(r), name, pw)
	if err != nil {
		status, msg := http.StatusUnauthorized, "Wrong user name or password."
		if errors.Is(err, auth.ErrRateLimited) {
			status, msg = http.StatusTooManyRequests, limitMessage(w, err)
		} else if !errors.Is(err, auth.ErrBadCredentials) {
			u.log().Error("ui: login", "err", err)
			status, msg = http.StatusInternalServerError, "Logging in failed; see the daemon's log."
		}
		u.render(w, r, viewer{}, "login", "Log in", status, map[string]any{"Name": name, "Error": msg, "Next": nextOf(r)})
		return
	}
	u.setSession(w, r, s)
	http.Redirect(w, r, next(r), http.StatusSeeOther)
}

func (u *ui) logout(w http.ResponseWriter, r *http.Request, v viewer) {
	u.o.Auth.Logout(v.session.ID)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (u *ui) registerPage(w http.ResponseWriter, r *http.Request) {
	if setup, _ := u.o.Auth.NeedsSetup(); !setup {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	u.render(w, r, viewer{}, "login", "Create the admin account", http.StatusOK, map[string]any{"Register": true, "SetupCodeFile": u.o.SetupCodeFile})
}

// register creates the first admin; the form must bring the setup code (setup_code) the
// daemon printed in its log. Wrong codes count against the login limits.
func (u *ui) register(w http.ResponseWriter, r *http.Request) {
	name, pw := strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("password")
	data := map[string]any{"Register": true, "Name": name, "SetupCodeFile": u.o.SetupCodeFile}
	if pw != r.PostFormValue("password2") {
		data["Error"] = "The two passwords differ."
		u.render(w, r, viewer{}, "login", "Create the admin account", http.StatusBadRequest, data)
		return
	}
	if _, err := u.o.Auth.RegisterWithCode(u.client(r), r.PostFormValue("setup_code"), name, pw); err != nil {
		status, msg := u.errorText(err, "Creating the account")
		switch {
		case errors.Is(err, auth.ErrRegistrationClosed):
			http.Error(w, "403 an administrator exists already; ask them for an account", http.StatusForbidden)
			return
		case errors.Is(err, auth.ErrBadSetupCode):
			msg = "Missing or wrong setup code: copy it from the daemon's log (the line with “setup code:”)"
			if u.o.SetupCodeFile != "" {
				msg += " or from the file " + u.o.SetupCodeFile
			}
			msg += "."
		case errors.Is(err, auth.ErrRateLimited):
			msg = "Too many wrong setup codes. Try again in " + roundDuration(setRetryAfter(w, err)) + "."
		}
		data["Error"] = msg
		u.render(w, r, viewer{}, "login", "Create the admin account", status, data)
		return
	}
	s, err := u.o.Auth.LoginFrom(u.client(r), name, pw)
	if err == nil {
		u.setSession(w, r, s)
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (u *ui) usersPage(w http.ResponseWriter, r *http.Request, v viewer) {
	u.renderUsers(w, r, v, http.StatusOK, map[string]any{})
}

func (u *ui) renderUsers(w http.ResponseWriter, r *http.Request, v viewer, status int, data map[string]any, flash ...string) {
	if v.user != nil && v.user.Admin { // a viewer sees only their own account
		users, err := u.o.Auth.Users()
		if err != nil {
			u.log().Error("ui: users", "err", err)
		}
		data["Users"] = users
	}
	u.render(w, r, v, "users", "Users", status, data, flash...)
}

func (u *ui) userCreate(w http.ResponseWriter, r *http.Request, v viewer) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if _, err := u.o.Auth.Create(name, r.PostFormValue("password"), r.PostFormValue("admin") == "1"); err != nil {
		u.renderUsers(w, r, v, http.StatusBadRequest, map[string]any{"Error": err.Error()})
		return
	}
	u.renderUsers(w, r, v, http.StatusOK, map[string]any{}, "User "+name+" added.")
}

func (u *ui) userDelete(w http.ResponseWriter, r *http.Request, v viewer) {
	name := r.PostFormValue("name")
	if name == v.user.Name {
		u.renderUsers(w, r, v, http.StatusBadRequest, map[string]any{}, "", "You cannot delete yourself.")
		return
	}
	if err := u.o.Auth.Delete(name); err != nil {
		u.renderUsers(w, r, v, http.StatusBadRequest, map[string]any{}, "", err.Error())
		return
	}
	u.renderUsers(w, r, v, http.StatusOK, map[string]any{}, "User "+name+" deleted.")
}

func (u *ui) passwordChange(w http.ResponseWriter, r *http.Request, v viewer) {
	s, err := u.o.Auth.ChangePassword(u.client(r), v.user.Name, r.PostFormValue("old"), r.PostFormValue("new"))
	if err != nil {
		status, msg := http.StatusBadRequest, err.Error()
		switch {
		case errors.Is(err, auth.ErrBadCredentials):
			msg = "The current password is wrong."
		case errors.Is(err, auth.ErrRateLimited):
			status, msg = http.StatusTooManyRequests, limitMessage(w, err)
		}
		u.renderUsers(w, r, v, status, map[string]any{"PasswordError": msg})
		return
	}
	// Every session of the user ended; this one is new (with a new device token).
	u.setSession(w, r, s)
	v.session = s
	u.renderUsers(w, r, v, http.StatusOK, map[string]any{}, "Password changed; your other sessions were logged out.")
}
