package web

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"time"
)

// MirrorPrefix is where the mirror tree is served; pacman clients use
// Server = http://HOST/archlinux/$repo/os/$arch.
const MirrorPrefix = "/archlinux/"

// Options is what the daemon hands the web side.
type Options struct {
	MirrorRoot  *os.Root
	SendTimeout time.Duration
	Log         *slog.Logger
	Now         func() time.Time
	// Health returns named checks: a *Degraded error makes /healthz say "degraded", any
	// other non-nil error "failing" (503).
	Health func() map[string]error
	// OnTransfer sees every finished request (traffic accounting); may be nil.
	OnTransfer func(Transfer)
	Version    string
	// Sync is the sync engine; nil leaves /api/sync and /api/changes out.
	Sync SyncService
	// Search is the package index; nil leaves /api/search and /api/packages out.
	Search SearchService
	// PerPage is search.per_page (a func: settings change it at runtime).
	PerPage func() int
	// The dashboard's services; with Auth nil the dashboard is left out (mirror only).
	Auth     AuthService
	Machine  MachineService
	Traffic  TrafficService
	Settings SettingsService
	Bench    BenchService
	// SetupCodeFile is where the first admin's setup code is kept, for the registration
	// page to say where to find it ("" says only: in the daemon's log).
	SetupCodeFile string
	// Proxies is server.trusted_proxies and server.client_ip_header (a func: settings
	// change them at runtime).
	Proxies func() Proxies
	// Ctx ends with the daemon: live streams close and syncs started from the web use it.
	Ctx context.Context
	// Conns reads the server's connection counters (nil leaves them out of /metrics).
	Conns func() ConnStats
	// Misses fetches files the databases name and the disk lacks ("used" mode); nil:
	// those are 404s.
	Misses Misses
	// Used reports the "used" mode figures for the Overview and /metrics; nil when the
	// daemon has none.
	Used func() UsedStats
	// Commit is the build's VCS commit, for amwi_build_info ("" says "unknown").
	Commit string
	// ClientName is a client's name from reverse DNS, "" while none is known or when the
	// lookups are off; it must answer at once (never wait for a lookup). nil: addresses only.
	ClientName func(netip.Addr) string
	// Mirrorlist is server.public_url and the upstream's HTTP mirror, for /mirrorlist and
	// the Overview's set-up line (a func: settings and the benchmark change them); nil:
	// the request's host and no upstream.
	Mirrorlist func() MirrorlistInfo
}

// NewHandler returns the whole HTTP surface.
func NewHandler(o Options) http.Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Ctx == nil {
		o.Ctx = context.Background()
	}
	if o.Proxies == nil {
		o.Proxies = func() Proxies { return Proxies{} }
	}
	if o.PerPage == nil {
		o.PerPage = func() int { return 50 }
	}
	active := NewActive()
	mux := http.NewServeMux()
	mirror := NewMirror(o.MirrorRoot, MirrorPrefix, o.SendTimeout, o.Log)
	mirror.Misses = o.Misses
	if used := o.Used; used != nil {
		// Hits are counted where files are served: here.
		o.Used = func() UsedStats { s := used(); s.Hits = mirror.Hits(); return s }
	}
	met := newMetrics(o, active)
	u, routes := routeTable(o, mirror, active, met)
	register(mux, u, routes)
	// outer is what every request goes through: the live view, accounting, security
	// headers and request limits.
	outer := func(h http.Handler) http.Handler {
		h = active.track(h)
		h = Count(h, o.Now, func(r *http.Request) netip.Addr { return o.Proxies().ClientIP(r) }, func(t Transfer) {
			met.observe(t)
			if o.OnTransfer != nil {
				o.OnTransfer(t)
			}
		})
		return guardRequests(h)
	}
	// Cross-site POSTs are refused before any handler sees them (Sec-Fetch-Site/Origin);
	// forms also carry the session's CSRF token.
	return &handler{
		all:    outer(http.NewCrossOriginProtection().Handler(mux)),
		mirror: outer(mirror),
	}
}

// handler is the whole HTTP surface, and the same for mirror downloads without the router.
type handler struct {
	all    http.Handler
	mirror http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.all.ServeHTTP(w, r) }

// MirrorHandler is the mirror with what every request goes through but the router: the
// front loop (Server) sends it the GET and HEAD requests it has seen are under MirrorPrefix
// with a clean path, which the router would hand the mirror unchanged anyway (a GET or
// HEAD passes the cross-origin check, the mirror's route is open to anyone). It spares a
// small file a tenth of its serving time.
func (h *handler) MirrorHandler() http.Handler { return h.mirror }

// routeTable is every route of the HTTP surface with its role: the mirror, health,
// metrics and the public APIs, then the dashboard's (when there is one).
func routeTable(o Options, mirror *Mirror, active *Active, met *promMetrics) (*ui, []route) {
	rs := []route{
		{MirrorPrefix, Anyone, public(mirror.ServeHTTP)},
		{"GET /healthz", Anyone, public(func(w http.ResponseWriter, r *http.Request) { healthz(w, o.Health) })},
		{"GET /metrics", Anyone, public(met.ServeHTTP)},
		{"GET /mirrorlist", Anyone, public(mirrorlist(o))},
	}
	if o.Sync != nil {
		rs = append(rs, route{"GET /api/sync", Anyone, public(syncAPI(o.Sync, o.Log))},
			route{"GET /api/changes", Anyone, public(changesAPI(o.Sync))})
	}
	if o.Search != nil {
		rs = append(rs, route{"GET /api/search", Anyone, public(searchAPI(o.Search, o.PerPage))},
			route{"GET /api/packages/{repo}/{name}", Anyone, public(packageAPI(o.Search))})
	}
	if o.Auth == nil {
		return nil, append(rs, route{"GET /{$}", Anyone, public(func(w http.ResponseWriter, r *http.Request) { home(w, r, o) })})
	}
	u := newUI(o, active)
	u.met = met
	return u, append(rs, u.table()...)
}

// Degraded marks a health check's finding that leaves the mirror serving but not as it
// should be (a sync that failed or left files out): /healthz then says "degraded" and
// still answers 200, so load balancers keep sending clients; any other error is
// "failing", 503.
type Degraded struct{ Reason string }

func (d *Degraded) Error() string { return d.Reason }

func healthz(w http.ResponseWriter, checks func() map[string]error) {
	out := struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}{Status: "ok", Checks: map[string]string{}}
	if checks != nil {
		for name, err := range checks() {
			var d *Degraded
			switch {
			case err == nil:
				out.Checks[name] = "ok"
				continue
			case errors.As(err, &d):
				if out.Status == "ok" {
					out.Status = "degraded"
				}
			default:
				out.Status = "failing"
			}
			out.Checks[name] = err.Error()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if out.Status == "failing" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(out)
}

func home(w http.ResponseWriter, r *http.Request, o Options) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	base := mirrorBase(r, mirrorlistInfo(o), o.Proxies())
	_ = homeTmpl.Execute(w, struct{ Base, Command, Version string }{base, setupCommand(base), o.Version})
}

var homeTmpl = template.Must(template.New("home").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>AMWI — Arch Linux mirror</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:46rem;padding:0 1rem;color:#222}code,pre{background:#f2f5fa;padding:.2rem .4rem;border-radius:4px}pre{padding:.8rem;overflow-x:auto}a{color:#1793d1}</style>
</head><body>
<h1>AMWI — Arch Linux mirror</h1>
<p>This box mirrors Arch Linux for the local network. Browse the <a href="/archlinux/">mirror tree</a>.</p>
<p>To use it, run this on your Arch machines (it writes <a href="/mirrorlist">this mirror's list</a> as <code>/etc/pacman.d/mirrorlist</code>):</p>
<pre>{{.Command}}</pre>
<p>or put this line first in <code>/etc/pacman.d/mirrorlist</code>:</p>
<pre>Server = {{.Base}}/archlinux/$repo/os/$arch</pre>
<p><small>amwi {{.Version}} · <a href="/healthz">health</a></small></p>
</body></html>
`))
