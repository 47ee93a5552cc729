package traffic_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/amwi/amwi/daemon/store/storetest"
	"github.com/amwi/amwi/daemon/traffic"
)

// Dashboard pages and API calls are not mirror traffic: however many there are, the
// mirror's totals, hours, days, clients, packages and repositories hold only the one
// download, before and after a flush; the dashboard's own count is apart.
func TestDashboardHitsStayOutOfMirrorStats(t *testing.T) {
	e := setup(t)
	r := e.rec
	a := ip("192.168.1.10")
	for i := range 500 {
		path := "/api/traffic"
		if i%2 == 0 {
			path = "/"
		}
		r.Record(traffic.Hit{Time: at(10, 12, 0), Client: ip(fmt.Sprintf("10.0.%d.%d", i/250, i%250)), Path: path, Status: 200, Bytes: 7000, Dashboard: true})
	}
	r.Record(traffic.Hit{Time: at(10, 12, 0), Client: a, Path: vimPath, Status: 200, Bytes: 1234, Repo: "extra"})
	want := []traffic.Top{{Key: "192.168.1.10", Bytes: 1234, Requests: 1}}
	for _, stage := range []string{"in memory", "flushed"} {
		if b, n := r.Today(); b != 1234 || n != 1 {
			t.Errorf("%s: today %d bytes in %d requests, want 1234 in 1", stage, b, n)
		}
		if b, n := r.DashboardToday(); b != 500*7000 || n != 500 {
			t.Errorf("%s: dashboard today %d bytes in %d requests, want %d in 500", stage, b, n, 500*7000)
		}
		for name, f := range map[string]func(int, int) ([]traffic.Top, error){"clients": r.TopClients, "packages": r.TopPackages, "repos": r.TopRepos} {
			got, err := f(1, 0)
			if err != nil {
				t.Fatal(err)
			}
			w := want
			switch name {
			case "packages":
				w = []traffic.Top{{Key: "vim", Bytes: 1234, Requests: 1}}
			case "repos":
				w = []traffic.Top{{Key: "extra", Bytes: 1234, Requests: 1}}
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("%s: top %s = %+v, want %+v", stage, name, got, w)
			}
		}
		hours, _ := r.Hourly(1)
		days, _ := r.BytesPerDay(1)
		if hours[0].Bytes != 1234 || hours[0].Requests != 1 || days[0].Bytes != 1234 || days[0].Requests != 1 {
			t.Errorf("%s: hour %+v, day %+v: want 1234 bytes in 1 request", stage, hours[0], days[0])
		}
		e.flush(t)
	}
	// A new day starts the dashboard's count again.
	e.clk.Set(at(11, 0, 1))
	if b, n := r.DashboardToday(); b != 0 || n != 0 {
		t.Errorf("next day: dashboard today %d in %d, want 0", b, n)
	}
}

// Repositories: 2xx only, per day over a period, a hostile client's made-up repository
// names capped per day under Other.
func TestReposCountedCappedAndByPeriod(t *testing.T) {
	e := setup(t)
	r := e.rec
	r.MaxRepos = 3
	c := ip("192.168.1.20")
	r.Record(traffic.Hit{Time: at(1, 10, 0), Client: c, Path: "/archlinux/core/os/x86_64/core.db", Status: 200, Bytes: 100, Repo: "core"})
	r.Record(traffic.Hit{Time: at(10, 10, 0), Client: c, Path: "/archlinux/core/os/x86_64/core.db", Status: 200, Bytes: 10, Repo: "core"})
	r.Record(traffic.Hit{Time: at(10, 10, 0), Client: c, Path: "/archlinux/extra/os/x86_64/x.db", Status: 404, Bytes: 5, Repo: "extra"})
	r.Record(traffic.Hit{Time: at(10, 10, 0), Client: c, Path: "/archlinux/pool/packages/vim-9.1.0-1-x86_64.pkg.tar.zst", Status: 200, Bytes: 20, Repo: traffic.Pool})
	for i := range 50 {
		name := fmt.Sprintf("junk%d", i)
		r.Record(traffic.Hit{Time: at(10, 11, 0), Client: c, Path: "/archlinux/" + name + "/os/", Status: 200, Bytes: 1, Repo: name})
	}
	e.flush(t)
	today, err := r.TopRepos(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	// core, (pool) and junk0 fill the cap of 3; the other 49 are Other.
	want := []traffic.Top{{Key: traffic.Other, Bytes: 49, Requests: 49}, {Key: traffic.Pool, Bytes: 20, Requests: 1}, {Key: "core", Bytes: 10, Requests: 1}, {Key: "junk0", Bytes: 1, Requests: 1}}
	if !reflect.DeepEqual(today, want) {
		t.Errorf("today's repos = %+v, want %+v", today, want)
	}
	month, _ := r.TopRepos(30, 1)
	if want := []traffic.Top{{Key: "core", Bytes: 110, Requests: 2}}; !reflect.DeepEqual(month, want) {
		t.Errorf("30 days' top repo = %+v, want %+v", month, want)
	}
	// Pruning drops old repository days as it does the rest.
	e.clk.Set(at(10, 12, 0).AddDate(0, 0, traffic.KeepDays+1))
	if err := r.Prune(); err != nil {
		t.Fatal(err)
	}
	if m, _ := storetest.SumTraffic(e.db, traffic.Repos, 0, 1<<30); len(m) != 0 {
		t.Errorf("after prune: %v", m)
	}
}

func TestRepoOf(t *testing.T) {
	for _, tt := range []struct{ rel, want string }{
		{"extra/os/x86_64/vim-9.1.0-1-x86_64.pkg.tar.zst", "extra"},
		{"/core/os/x86_64/core.db", "core"},
		{"core-testing/os/x86_64/", "core-testing"},
		{"multilib/os", "multilib"},
		{"pool/packages/vim-9.1.0-1-x86_64.pkg.tar.zst", traffic.Pool},
		{"pool", traffic.Pool},
		{"lastupdate", ""},
		{"iso/2025.03.01/archlinux.iso", ""},
		{"", ""},
		{"extra/x86_64/foo", ""},
		{"-bad/os/x86_64/foo", ""},
		{"sp ace/os/x", ""},
		{"(other)/os/x", ""},
	} {
		if got := traffic.RepoOf(tt.rel); got != tt.want {
			t.Errorf("RepoOf(%q) = %q, want %q", tt.rel, got, tt.want)
		}
	}
}
