package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/amwi/amwi/daemon/config"
	dsync "github.com/amwi/amwi/daemon/mirrorsync"
	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/daemon/traffic"
	"github.com/amwi/amwi/hw"
	"github.com/amwi/amwi/internal/layout"
)

type repoCount struct {
	Name  string
	Count int
}

// readStamp reads lastupdate/lastsync from the mirror root (zero time when absent).
func (u *ui) readStamp(name string) time.Time { return mirrorStamp(u.o.MirrorRoot, name) }

// mirrorStamp reads lastupdate/lastsync from the mirror root (zero time when absent).
func mirrorStamp(root *os.Root, name string) time.Time {
	if root == nil {
		return time.Time{}
	}
	f, err := root.Open(name)
	if err != nil {
		return time.Time{}
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, layout.StampMax+1))
	n, err := layout.ParseStamp(name, b)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(n, 0)
}

func (u *ui) overview(w http.ResponseWriter, r *http.Request) {
	v := u.viewer(r)
	d := map[string]any{"Host": r.Host, "LastUpdate": nilTime(u.readStamp("lastupdate")), "LastSync": nilTime(u.readStamp("lastsync"))}
	// How this client reaches the box, as /mirrorlist says it: never the raw Host header.
	base := mirrorBase(r, mirrorlistInfo(u.o), u.o.Proxies())
	d["MirrorBase"], d["SetupCommand"] = base, setupCommand(base)
	var snap hw.Snapshot
	if u.o.Machine != nil {
		snap = u.o.Machine.Latest()
	}
	d["Machine"] = snap
	d["Sync"] = dsync.State{}
	if u.o.Sync != nil {
		d["Sync"] = u.o.Sync.State()
		if r := lastFinished(u.o.Sync); r != nil {
			d["LastRun"] = *r
		}
		if v, err := u.o.Sync.LastVerification(); err == nil && v != nil {
			d["Verification"] = v
		}
	}
	d["Rate"], d["TodayBytes"], d["TodayRequests"] = 0.0, int64(0), int64(0)
	d["DashboardBytes"], d["DashboardRequests"] = int64(0), int64(0)
	if u.o.Traffic != nil {
		tb, tr := u.o.Traffic.Today()
		d["Rate"], d["TodayBytes"], d["TodayRequests"] = u.active.Rate(), tb, tr
		d["DashboardBytes"], d["DashboardRequests"] = u.o.Traffic.DashboardToday()
	}
	d["Downloads"] = u.namedDownloads(u.active.List(v.user != nil))
	var repos []repoCount
	if u.o.Search != nil {
		ix := u.o.Search.Index()
		for _, name := range ix.Repos {
			repos = append(repos, repoCount{name, ix.RepoLen(name)})
		}
	}
	d["Repos"] = repos
	if s, ok := u.usedStats(); ok {
		d["Used"] = s
		// What the disk served: every package byte sent, less those that came from fetches.
		var disk int64
		if u.met != nil {
			disk = max(int64(u.met.pkgSent.Get())-s.MissServedBytes, 0)
		}
		d["UsedDiskBytes"] = disk
		if s.BudgetBytes > 0 {
			d["UsedBudgetPct"] = min(s.HeldBytes*100/s.BudgetBytes, 100)
		}
	}
	u.render(w, r, v, "overview", "Overview", http.StatusOK, d)
}

// usedStats reads the "used" mode figures; ok only in that mode.
func (u *ui) usedStats() (UsedStats, bool) {
	if u.o.Used == nil {
		return UsedStats{}, false
	}
	s := u.o.Used()
	return s, s.Used
}

func nilTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func (u *ui) syncPage(w http.ResponseWriter, r *http.Request) {
	u.renderSync(w, r, u.viewer(r), http.StatusOK)
}

// renderSync shows the sync page: live state, the last runs, the upstream.
func (u *ui) renderSync(w http.ResponseWriter, r *http.Request, v viewer, status int, flash ...string) {
	d := map[string]any{"State": dsync.State{}, "History": []dsync.Run{}, "Upstream": ""}
	if u.o.Sync != nil {
		d["State"] = u.o.Sync.State()
		if h, err := u.o.Sync.History(30); err == nil {
			d["History"] = h
			d["Chart"] = newSyncChart(h)
		}
		if v, err := u.o.Sync.LastVerification(); err == nil && v != nil {
			d["Verification"] = v
		}
	}
	if u.o.Settings != nil {
		d["Upstream"] = u.o.Settings.Current().Sync.Upstream
	}
	if h, _ := d["History"].([]dsync.Run); len(h) == 0 {
		d["Empty"] = u.emptySync(v)
	}
	u.render(w, r, v, "sync", "Sync", status, d, flash...)
}

func (u *ui) syncStart(w http.ResponseWriter, r *http.Request, v viewer) {
	err := u.o.Sync.Start(u.o.Ctx, dsync.Options{Trigger: dsync.TriggerWeb, Force: r.PostFormValue("force") == "1"})
	if err != nil {
		status, msg := u.errorText(err, "starting the sync")
		u.renderSync(w, r, v, status, "", msg)
		return
	}
	http.Redirect(w, r, "/sync", http.StatusSeeOther)
}

func (u *ui) syncCancel(w http.ResponseWriter, r *http.Request, v viewer) {
	switch err := u.o.Sync.Cancel(); {
	case errors.Is(err, dsync.ErrNotRunning):
		u.renderSync(w, r, v, http.StatusConflict, "", "No sync is running: there is nothing to cancel.")
	case err != nil:
		status, msg := u.errorText(err, "cancelling the sync")
		u.renderSync(w, r, v, status, "", msg)
	default:
		u.renderSync(w, r, v, http.StatusOK, "Cancelling the running sync: rsync is stopped, the mirror stays as it was.")
	}
}

func (u *ui) searchPage(w http.ResponseWriter, r *http.Request) {
	v := u.viewer(r)
	q := r.URL.Query()
	ix := u.o.Search.Index()
	d := map[string]any{"Q": q.Get("q"), "Repo": q.Get("repo"), "Repos": ix.Repos, "Problems": u.o.Search.Problems()}
	if ix.Len() == 0 {
		d["Empty"] = u.emptyPackages(v)
	}
	status := http.StatusOK
	if d["Q"] != "" {
		page, _ := strconv.Atoi(q.Get("page"))
		res, err := ix.Search(search.Query{Text: q.Get("q"), Repo: q.Get("repo"), Page: max(page, 1), PerPage: u.o.PerPage()})
		if err != nil {
			d["Error"], status = err.Error(), http.StatusBadRequest
		} else {
			d["Result"] = res
			if _, used := u.usedStats(); used {
				// One stat per shown result (a page: search.per_page at most).
				onDisk := make(map[string]bool, len(res.Results))
				for _, p := range res.Results {
					onDisk[p.Repo+"/"+p.Name] = u.onDisk(p)
				}
				d["Used"], d["OnDisk"] = true, onDisk
			}
		}
	}
	u.render(w, r, v, "search", "Packages", status, d)
}

func (u *ui) packagePage(w http.ResponseWriter, r *http.Request) {
	v := u.viewer(r)
	ix := u.o.Search.Index()
	p := ix.Get(r.PathValue("repo"), r.PathValue("name"))
	if p == nil {
		u.render(w, r, v, "search", "Packages", http.StatusNotFound, map[string]any{"Repos": ix.Repos,
			"Error": "No package " + r.PathValue("repo") + "/" + r.PathValue("name") + " on this mirror."})
		return
	}
	d := map[string]any{"Pkg": p, "RequiredBy": ix.RequiredBy(p), "Download": MirrorPrefix + layout.RepoDir(p.Repo) + "/" + p.Filename,
		"Depends": depLinks(ix, p.Depends), "OptDepends": depLinks(ix, p.OptDepends),
		"MakeDepends": depLinks(ix, p.MakeDepends), "CheckDepends": depLinks(ix, p.CheckDepends)}
	if _, used := u.usedStats(); used {
		d["Used"], d["OnDisk"] = true, u.onDisk(p)
	}
	u.render(w, r, v, "package", p.Name, http.StatusOK, d)
}

// depLink is one dependency on a package page: the name it asks for, the rest of the entry
// (a version constraint, an optdepend's reason) and the package that satisfies it (nil:
// no indexed repo has it, and the page says so). Unmet says why that package's version
// does not meet the constraint ("" when it does): the link alone would suggest it does.
type depLink struct {
	Name, Rest, Unmet string
	Pkg               *search.Package
}

func depLinks(ix *search.Index, deps []string) []depLink {
	if len(deps) == 0 {
		return nil
	}
	out := make([]depLink, 0, len(deps))
	for _, d := range deps {
		name, rest := d, ""
		if i := strings.IndexAny(d, "<>=:"); i >= 0 {
			name, rest = strings.TrimSpace(d[:i]), d[i:]
		}
		l := depLink{Name: name, Rest: rest, Pkg: ix.Satisfier(d)}
		if l.Pkg != nil {
			if have, ok := search.Meets(d, l.Pkg); !ok {
				need, _, _ := strings.Cut(rest, ": ")
				l.Unmet = "needs " + need + ", repo has " + have
				if have == "" {
					l.Unmet = "needs " + need + ", " + l.Pkg.Name + " provides no version"
				}
			}
		}
		out = append(out, l)
	}
	return out
}

// onDisk tells whether p's file is on the mirror's disk ("used" mode fetches the others
// on first request): its link in the repo folder, followed into pool/. Any failure to
// stat it counts as absent, which is what a client asking for it would meet.
func (u *ui) onDisk(p *search.Package) bool {
	if u.o.MirrorRoot == nil {
		return false
	}
	fi, err := u.o.MirrorRoot.Stat(layout.RepoDir(p.Repo) + "/" + p.Filename)
	return err == nil && fi.Mode().IsRegular()
}

func hasBytes(b traffic.Bucket) bool { return b.Bytes > 0 }

func (u *ui) trafficPage(w http.ResponseWriter, r *http.Request, v viewer) {
	d := map[string]any{}
	t := u.o.Traffic
	tb, tr := t.Today()
	d["Rate"], d["TodayBytes"], d["TodayRequests"] = u.active.Rate(), tb, tr
	days, err := t.BytesPerDay(30)
	if err != nil {
		u.log().Error("ui: traffic", "err", err)
	}
	hours, err := t.Hourly(48)
	if err != nil {
		u.log().Error("ui: traffic", "err", err)
	}
	d["Days"], d["Hours"] = days, hours
	d["Chart"] = newTrafficChart(hours, days)
	if !slices.ContainsFunc(days, hasBytes) && !slices.ContainsFunc(hours, hasBytes) {
		d["Empty"] = u.emptyTraffic()
	}
	status, flashErr := u.trafficTables(r, d)
	u.render(w, r, v, "traffic", "Traffic", status, d, "", flashErr)
}

// settingsValues is the form as the template shows it.
func (u *ui) settingsValues(form map[string]string) map[string]any {
	c := u.o.Settings.Current()
	masked := ""
	if c.Discord.WebhookURL != "" {
		masked = "…" + c.Discord.WebhookURL[max(0, len(c.Discord.WebhookURL)-4):]
	}
	v := map[string]any{
		"Enabled": c.Sync.Enabled, "Upstream": c.Sync.Upstream, "Fallbacks": strings.Join(c.Sync.FallbackUpstreams, "\n"),
		"Interval": strings.Trim(mustValue(c, "sync.interval"), `"`), "Repos": strings.Join(c.Mirror.Repos, " "), "BWLimit": c.Sync.BWLimitKiB,
		"IOBusy": c.Sync.IOBusyPercent, "PerPage": c.Search.PerPage, "Country": c.Bench.Country,
		"DiscordEnabled": c.Discord.Enabled, "WebhookSet": c.Discord.WebhookURL != "", "WebhookMasked": masked,
		"Proxies":  strings.Join(c.Server.TrustedProxies, "\n"),
		"Packages": c.Mirror.Packages, "KeepDays": c.Mirror.KeepDays, "MaxGiB": strconv.FormatFloat(c.Mirror.MaxGiB, 'f', -1, 64),
		"HTTPUpstream": c.Sync.HTTPUpstream, "HTTPFallbacks": strings.Join(c.Sync.HTTPFallbackUpstreams, "\n"),
		"PublicURL": c.Server.PublicURL, "ReverseDNS": c.Traffic.ReverseDNS,
	}
	if form != nil { // show what was typed, not what is saved
		v["Enabled"], v["Upstream"], v["Fallbacks"], v["Interval"] = form["sync.enabled"] == "true", form["sync.upstream"], form["sync.fallback_upstreams"], form["sync.interval"]
		v["Repos"], v["BWLimit"], v["IOBusy"], v["PerPage"] = form["mirror.repos"], form["sync.bwlimit_kib"], form["sync.io_busy_percent"], form["search.per_page"]
		v["Country"], v["DiscordEnabled"], v["Proxies"] = form["bench.country"], form["discord.enabled"] == "true", form["server.trusted_proxies"]
		for key, name := range usedFields {
			if val, ok := form[key]; ok {
				v[name] = val
			}
		}
		if val, ok := form["traffic.reverse_dns"]; ok {
			v["ReverseDNS"] = val == "true"
		}
	}
	return v
}

func (u *ui) settingsPage(w http.ResponseWriter, r *http.Request, v viewer) {
	u.renderSettings(w, r, v, http.StatusOK, nil, nil)
}

// renderSettings shows the settings form: form (nil: the saved values) with problems next
// to their fields, and the flash messages.
func (u *ui) renderSettings(w http.ResponseWriter, r *http.Request, v viewer, status int, form, problems map[string]string, flash ...string) {
	if problems == nil {
		problems = map[string]string{}
	}
	c := u.o.Settings.Current()
	d := map[string]any{"Values": u.settingsValues(form), "Errors": problems, "Path": c.Path, "Origins": map[string]string{}}
	// What switching mirror.packages would move, said before it is saved (computed here:
	// the page has no script).
	if est, err := u.o.Settings.PackagesEstimate(); err != nil {
		u.log().Warn("ui: packages estimate", "err", err)
		d["EstimateError"] = err.Error()
	} else {
		d["Estimate"] = est
	}
	if c.Layers != nil {
		origins := map[string]string{}
		var overridden []map[string]string
		for k, o := range c.Layers.Origins {
			origins[k] = o.String()
			if o.File == c.Layers.SettingsPath {
				val := mustValue(c, k)
				if k == "discord.webhook_url" && val != `""` {
					val = "(set)"
				}
				overridden = append(overridden, map[string]string{"Key": k, "Value": val, "File": c.Path})
			}
		}
		sort.Slice(overridden, func(i, j int) bool { return overridden[i]["Key"] < overridden[j]["Key"] })
		d["Origins"], d["Overridden"], d["SettingsPath"] = origins, overridden, c.Layers.SettingsPath
	}
	u.render(w, r, v, "settings", "Settings", status, d, flash...)
}

// mustValue is a key's value as TOML.
func mustValue(c *config.Config, key string) string {
	v, _ := c.Value(key)
	return v
}

func (u *ui) settingsReset(w http.ResponseWriter, r *http.Request, v viewer) {
	key := r.PostFormValue("key")
	if err := u.o.Settings.Reset(key); err != nil {
		u.renderSettings(w, r, v, http.StatusBadRequest, nil, nil, "", "Nothing was changed: "+err.Error())
		return
	}
	u.renderSettings(w, r, v, http.StatusOK, nil, nil, key+" follows amwi.toml again (applied).")
}

// settingsKeys are the form fields, named as in amwi.toml.
var settingsKeys = []string{"sync.upstream", "sync.fallback_upstreams", "sync.interval", "mirror.repos", "sync.bwlimit_kib",
	"sync.io_busy_percent", "search.per_page", "bench.country", "discord.webhook_url", "server.trusted_proxies"}

// usedFields are the Packages section's fields (key → template value). They are passed on
// only when posted, so a form without them (an older page still open in a tab) leaves
// them as they are instead of blanking them.
var usedFields = map[string]string{"mirror.packages": "Packages", "mirror.keep_days": "KeepDays", "mirror.max_gib": "MaxGiB",
	"sync.http_upstream": "HTTPUpstream", "sync.http_fallback_upstreams": "HTTPFallbacks",
	// Not the Packages section's, but added later the same way: only when posted.
	"server.public_url": "PublicURL"}

func (u *ui) settingsSave(w http.ResponseWriter, r *http.Request, v viewer) {
	form := map[string]string{}
	for _, k := range settingsKeys {
		form[k] = r.PostFormValue(k)
	}
	for k := range usedFields {
		if _, ok := r.PostForm[k]; ok {
			form[k] = r.PostFormValue(k)
		}
	}
	// A checkbox added later: the page posts a hidden "0" before it, so that a form
	// without the field (an older page still open) leaves the setting alone, and a box
	// left unticked still says "off".
	if vals, ok := r.PostForm["traffic.reverse_dns"]; ok {
		form["traffic.reverse_dns"] = strconv.FormatBool(slices.Contains(vals, "1"))
	}
	form["sync.enabled"] = strconv.FormatBool(r.PostFormValue("sync.enabled") == "1")
	form["discord.enabled"] = strconv.FormatBool(r.PostFormValue("discord.enabled") == "1")
	problems, err := u.o.Settings.Save(form)
	if err != nil {
		u.log().Error("ui: save settings", "err", err)
		problems = map[string]string{"": "Saving failed: " + err.Error()}
	}
	if len(problems) > 0 {
		// A problem of a key the form has no field for (mirror.root, say) is shown too.
		for k, msg := range problems {
			if _, field := form[k]; !field && k != "" {
				problems[""] = strings.TrimSpace(problems[""] + " " + k + ": " + msg)
				delete(problems, k)
			}
		}
		u.renderSettings(w, r, v, http.StatusBadRequest, form, problems, "", "Nothing was changed: fix what is marked below.")
		return
	}
	u.renderSettings(w, r, v, http.StatusOK, nil, nil, "Settings saved and applied.")
}

func (u *ui) discordTest(w http.ResponseWriter, r *http.Request, v viewer) {
	flash, flashErr := "A test notification was sent to Discord.", ""
	if err := u.o.Settings.TestDiscord(); err != nil {
		flash, flashErr = "", "Discord test failed: "+err.Error()
	}
	u.renderSettings(w, r, v, http.StatusOK, nil, nil, flash, flashErr)
}

// statsHistory is the last 10 minutes of machine stats, for the charts' first draw.
func (u *ui) statsHistory(w http.ResponseWriter, r *http.Request) {
	var h []hw.Snapshot
	if u.o.Machine != nil {
		h = u.o.Machine.History()
	}
	if h == nil {
		h = []hw.Snapshot{}
	}
	writeJSON(w, http.StatusOK, h)
}

// pulseCache builds the live pulse at most once a second, however many viewers there are.
type pulseCache struct {
	at           time.Time
	public, full []byte
}

func (u *ui) pulseJSON(withClients bool) []byte {
	u.pulseMu.Lock()
	defer u.pulseMu.Unlock()
	now := time.Now()
	if now.Sub(u.pulse.at) >= 900*time.Millisecond {
		d := map[string]any{}
		if u.o.Machine != nil {
			m := u.o.Machine.Latest()
			d["machine"] = m
			rx, tx := m.NetRate()
			d["net"] = map[string]float64{"rx": rx, "tx": tx}
			d["uptime"] = roundDuration(m.Uptime)
		}
		if u.o.Traffic != nil {
			tb, tr := u.o.Traffic.Today()
			db, dr := u.o.Traffic.DashboardToday()
			d["traffic"] = map[string]any{"rate_bps": u.active.Rate(), "today_bytes": tb, "today_requests": tr, "active": u.active.Len(),
				"dashboard_today_bytes": db, "dashboard_today_requests": dr}
		}
		if u.o.Sync != nil {
			st := u.o.Sync.State()
			d["sync"], d["idle"] = st, !st.Running
		}
		if u.o.Bench != nil {
			d["bench"] = u.o.Bench.State()
		}
		d["downloads"] = u.active.List(false)
		u.pulse.public, _ = json.Marshal(d)
		d["downloads"] = u.namedDownloads(u.active.List(true))
		u.pulse.full, _ = json.Marshal(d)
		u.pulse.at = now
	}
	if withClients {
		return u.pulse.full
	}
	return u.pulse.public
}

// eventsSessionCheck is how often a live stream that carries client addresses checks that
// its session still exists.
const eventsSessionCheck = 5 * time.Second

// events is the live stream: one Server-Sent Event "pulse" a second with machine stats,
// bytes/s served, downloads running and sync progress. X-Accel-Buffering keeps nginx from
// holding it back; EventSource reconnects by itself after the retry hint.
//
// Client addresses (personal data) go only to a logged-in viewer, and only while the
// session lasts: it is checked again every eventsSessionCheck, so a stream opened before a
// logout, a password change or the user's deletion stops carrying them.
func (u *ui) events(w http.ResponseWriter, r *http.Request) {
	withClients := u.viewer(r).user != nil
	checked := time.Now()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	fmt.Fprint(w, "retry: 3000\n\n")
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if withClients && time.Since(checked) >= eventsSessionCheck {
			withClients, checked = u.viewer(r).user != nil, time.Now()
		}
		// A stuck viewer must not hold a goroutine forever.
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprintf(w, "event: pulse\ndata: %s\n\n", u.pulseJSON(withClients)); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-u.o.Ctx.Done():
			return
		case <-t.C:
		}
	}
}
