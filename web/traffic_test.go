package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/traffic"
)

func TestParsePeriod(t *testing.T) {
	for _, tt := range []struct {
		q    string
		days int
		err  string
	}{
		{"", 30, ""},
		{"period=today", 1, ""},
		{"period=7d", 7, ""},
		{"period=30d", 30, ""},
		{"period=90d", 90, ""},
		{"period=365d", 365, ""},
		{"period=1y", 30, `unknown period "1y": use one of today, 7d, 30d, 90d, 365d`},
		{"period=" + strings.Repeat("x", 100), 30, `unknown period "` + strings.Repeat("x", 32) + `…"`},
	} {
		p, err := parsePeriod(httptest.NewRequest("GET", "/traffic?"+tt.q, nil))
		if p.Days != tt.days || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%q: %d days, %v; want %d, %q", tt.q, p.Days, err, tt.days, tt.err)
		}
	}
}

// The period chosen filters every ranking and the total: a download ten days ago is in
// 30d, not in 7d or today. A viewer may read it; a stranger may not.
func TestTrafficAPIPeriods(t *testing.T) {
	o, _ := dashboardOptions(t)
	rec := o.Traffic.(*traffic.Recorder)
	o.ClientName = func(a netip.Addr) string {
		if a == netip.MustParseAddr("192.168.1.5") {
			return "desk.lan"
		}
		return ""
	}
	srv := httptest.NewServer(NewHandler(o))
	t.Cleanup(srv.Close)
	now := time.Now()
	rec.Record(traffic.Hit{Time: now.AddDate(0, 0, -10), Client: netip.MustParseAddr("192.168.1.5"), Path: "/archlinux/extra/os/x86_64/gimp-3.0-1-x86_64.pkg.tar.zst", Status: 200, Bytes: 5000, Repo: "extra"})
	rec.Record(traffic.Hit{Time: now, Client: netip.MustParseAddr("192.168.1.6"), Path: "/archlinux/core/os/x86_64/zlib-1.3-1-x86_64.pkg.tar.zst", Status: 200, Bytes: 100, Repo: "core"})
	rec.Record(traffic.Hit{Time: now, Client: netip.MustParseAddr("192.168.1.6"), Path: "/traffic", Status: 200, Bytes: 9999, Dashboard: true})
	if err := rec.Flush(); err != nil {
		t.Fatal(err)
	}

	anon := client(t)
	resp, err := anon.Get(srv.URL + "/api/traffic")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous /api/traffic: %d, want 401 (an API call is not sent to the login form)", resp.StatusCode)
	}
	c := client(t)
	registerAdmin(t, srv, c)
	if _, err := o.Auth.Create("vera", "vera-password-1", false); err != nil {
		t.Fatal(err)
	}
	viewer := client(t)
	loginAs(t, viewer, srv.URL, "vera", "vera-password-1")

	read := func(period string) trafficReport {
		t.Helper()
		resp, err := viewer.Get(srv.URL + "/api/traffic?period=" + period)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("period %s: %d %s", period, resp.StatusCode, body)
		}
		var rep trafficReport
		if err := json.Unmarshal(body, &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	for _, tt := range []struct {
		period               string
		bytes                int64
		clients, pkgs, repos string
	}{
		{"today", 100, "192.168.1.6", "zlib", "core"},
		{"7d", 100, "192.168.1.6", "zlib", "core"},
		{"30d", 5100, "desk.lan 192.168.1.5,192.168.1.6", "gimp,zlib", "extra,core"},
		{"365d", 5100, "desk.lan 192.168.1.5,192.168.1.6", "gimp,zlib", "extra,core"},
	} {
		rep := read(tt.period)
		var cl, pk, rp []string
		for _, r := range rep.Clients {
			cl = append(cl, strings.TrimSpace(r.Name+" "+r.Key))
		}
		for _, r := range rep.Packages {
			pk = append(pk, r.Key)
		}
		for _, r := range rep.Repos {
			rp = append(rp, r.Key)
		}
		got := []string{strings.Join(cl, ","), strings.Join(pk, ","), strings.Join(rp, ",")}
		if rep.Period != tt.period || rep.Mirror.Bytes != tt.bytes || got[0] != tt.clients || got[1] != tt.pkgs || got[2] != tt.repos {
			t.Errorf("%s: period %q, %d bytes, %q; want %d bytes, %q %q %q", tt.period, rep.Period, rep.Mirror.Bytes, got, tt.bytes, tt.clients, tt.pkgs, tt.repos)
		}
		if rep.Dashboard.Requests != 1 || rep.Dashboard.Bytes != 9999 {
			t.Errorf("%s: dashboard today %+v, want the one page apart", tt.period, rep.Dashboard)
		}
	}
	// A bad period: 400 with the accepted ones on the API; the page shows 30 days and says so.
	resp, err = viewer.Get(srv.URL + "/api/traffic?period=week")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "use one of today, 7d, 30d, 90d, 365d") {
		t.Errorf("bad period: %d %s", resp.StatusCode, body)
	}
	resp, err = viewer.Get(srv.URL + "/traffic?period=week")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if page := string(body); resp.StatusCode != 400 || !strings.Contains(page, `unknown period &#34;week&#34;`) || !strings.Contains(page, "showing 30 days") ||
		!strings.Contains(page, `<b aria-current="page">30 days</b>`) || !strings.Contains(page, `<td>desk.lan <small class="muted">192.168.1.5</small></td>`) {
		t.Errorf("page with a bad period: %d\n%s", resp.StatusCode, page)
	}
	// The page's period links.
	resp, err = viewer.Get(srv.URL + "/traffic?period=today")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`href="/traffic?period=7d#rankings"`, `href="/traffic?period=365d#rankings"`, `<b aria-current="page">today</b>`, `<td>zlib</td>`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("today's page lacks %s", want)
		}
	}
	if strings.Contains(string(body), "gimp") {
		t.Error("today's page ranks a package downloaded ten days ago")
	}
}

func TestTransferMirror(t *testing.T) {
	for path, want := range map[string]bool{
		"/archlinux/core/os/x86_64/core.db":                       true,
		"/archlinux/extra/os/x86_64/vim-9.1-1-x86_64.pkg.tar.zst": true,
		"/archlinux/lastupdate":                                   true,
		"/archlinux/":                                             false, // an index page
		"/archlinux/core/os/x86_64/":                              false,
		"/archlinux":                                              false,
		"/":                                                       false,
		"/api/traffic":                                            false,
		"/metrics":                                                false,
		"/static/app.js":                                          false,
		"/events":                                                 false,
	} {
		if got := (Transfer{Request: httptest.NewRequest("GET", path, nil)}).Mirror(); got != want {
			t.Errorf("%s: mirror %v, want %v", path, got, want)
		}
	}
	if (Transfer{}).Mirror() {
		t.Error("a transfer without a request is not the mirror's")
	}
}
