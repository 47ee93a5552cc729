package web

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/amwi/amwi/daemon/traffic"
)

// Mirror tells whether the request was for a file of the mirror (a path under
// MirrorPrefix): a download pacman made, as opposed to a dashboard page, an API call,
// /metrics, a static file or a folder's index (pacman never asks for one; people browse
// them from the dashboard's "Mirror files"). Traffic statistics count only these as
// mirror traffic, as the live view (Active) does.
func (t Transfer) Mirror() bool {
	if t.Request == nil {
		return false
	}
	p := t.Request.URL.Path
	return strings.HasPrefix(p, MirrorPrefix) && !strings.HasSuffix(p, "/")
}

// trafficPeriod is one of the periods the Traffic page and /api/traffic rank over.
type trafficPeriod struct {
	Key   string // as in ?period=
	Label string // the link's text
	Over  string // in a sentence: "mirror downloads OVER"
	Days  int
}

// trafficPeriods are the periods offered, in the order the page links them.
var trafficPeriods = []trafficPeriod{
	{"today", "today", "today", 1},
	{"7d", "7 days", "over the last 7 days", 7},
	{"30d", "30 days", "over the last 30 days", 30},
	{"90d", "90 days", "over the last 90 days", 90},
	{"365d", "365 days", "over the last 365 days", 365},
}

// defaultPeriod is what the Traffic page shows without ?period=.
const defaultPeriod = 2 // 30d

// parsePeriod reads ?period=; an empty one is the default, an unknown one an error that
// lists what is accepted.
func parsePeriod(r *http.Request) (trafficPeriod, error) {
	s := r.URL.Query().Get("period")
	if s == "" {
		return trafficPeriods[defaultPeriod], nil
	}
	keys := make([]string, len(trafficPeriods))
	for i, p := range trafficPeriods {
		if p.Key == s {
			return p, nil
		}
		keys[i] = p.Key
	}
	if len(s) > 32 {
		s = s[:32] + "…"
	}
	return trafficPeriods[defaultPeriod], fmt.Errorf("unknown period %q: use one of %s", s, strings.Join(keys, ", "))
}

// rankRows is how many rows each ranking shows.
const rankRows = 20

// trafficReport is the rankings and totals of a period: what the Traffic page's tables show
// and /api/traffic answers.
type trafficReport struct {
	Period string `json:"period"`
	Days   int    `json:"days"`
	// Mirror is the mirror downloads over the period: what pacman clients fetched.
	Mirror traffic.Count `json:"mirror"`
	// Dashboard is today's dashboard pages and API calls, apart from the mirror's and not
	// kept across restarts.
	Dashboard traffic.Count `json:"dashboard_today"`
	Clients   []clientRow   `json:"clients"`
	Packages  []traffic.Top `json:"packages"`
	Repos     []traffic.Top `json:"repos"`
	// Errors says what could not be read (the rest is shown).
	Errors []string `json:"errors,omitempty"`
}

// clientRow is a client's line: its address, and its name where reverse DNS found one.
type clientRow struct {
	traffic.Top
	Name string `json:"name,omitempty"`
}

// clientName is the client's name from reverse DNS, "" when none is known (yet) or the
// lookups are off. It never waits for a lookup.
func (u *ui) clientName(addr string) string {
	if u.o.ClientName == nil {
		return ""
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "" // Other, Unknown
	}
	return u.o.ClientName(a)
}

// trafficReport reads the period's rankings; a failing part is named in Errors.
func (u *ui) trafficReport(p trafficPeriod) trafficReport {
	t := u.o.Traffic
	rep := trafficReport{Period: p.Key, Days: p.Days, Clients: []clientRow{}}
	note := func(err error) {
		if err != nil {
			u.log().Error("ui: traffic", "err", err)
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	days, err := t.BytesPerDay(p.Days)
	note(err)
	for _, d := range days {
		rep.Mirror = rep.Mirror.Add(traffic.Count{Bytes: d.Bytes, Requests: d.Requests})
	}
	rep.Dashboard.Bytes, rep.Dashboard.Requests = t.DashboardToday()
	clients, err := t.TopClients(p.Days, rankRows)
	note(err)
	for _, c := range clients {
		rep.Clients = append(rep.Clients, clientRow{Top: c, Name: u.clientName(c.Key)})
	}
	rep.Packages, err = t.TopPackages(p.Days, rankRows)
	note(err)
	rep.Repos, err = t.TopRepos(p.Days, rankRows)
	note(err)
	if rep.Packages == nil {
		rep.Packages = []traffic.Top{}
	}
	if rep.Repos == nil {
		rep.Repos = []traffic.Top{}
	}
	return rep
}

// trafficAPI answers GET /api/traffic?period=: the period's mirror total, today's
// dashboard requests and the top clients, packages and repositories, as the Traffic page
// shows them. Viewers only: client addresses are personal data.
func (u *ui) trafficAPI(w http.ResponseWriter, r *http.Request, v viewer) {
	p, err := parsePeriod(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, u.trafficReport(p))
}

// trafficTables adds the period links and rankings to the Traffic page's data; a bad
// ?period= shows the default period, says so, and answers 400.
func (u *ui) trafficTables(r *http.Request, d map[string]any) (status int, flashErr string) {
	p, err := parsePeriod(r)
	status = http.StatusOK
	if err != nil {
		status, flashErr = http.StatusBadRequest, err.Error()+"; showing "+p.Label+"."
	}
	d["Period"], d["Periods"], d["Report"] = p, trafficPeriods, u.trafficReport(p)
	return status, flashErr
}

// namedDownloads adds reverse-DNS names to downloads that carry a client address.
func (u *ui) namedDownloads(dls []Download) []Download {
	for i := range dls {
		if dls[i].Client != "" {
			dls[i].Name = u.clientName(dls[i].Client)
		}
	}
	return dls
}
