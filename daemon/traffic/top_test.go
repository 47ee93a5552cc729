package traffic_test

import (
	"fmt"
	"math"
	"net/netip"
	"testing"

	"github.com/amwi/amwi/daemon/traffic"
)

// TestTopPastCandidates: a period with far more clients than a ranking follows (60 days ×
// 990 one-off addresses, as rotating IPv6 temporary addresses or a stranger's /64 bring)
// still ranks the LAN's real clients first with their exact totals, including what the
// unflushed batch holds, and the one-off addresses do not displace them.
func TestTopPastCandidates(t *testing.T) {
	e := setup(t)
	r := e.rec
	const days, strangers = 60, 990 // under the day's cap of clients
	heavy := []netip.Addr{ip("192.168.1.10"), ip("192.168.1.11"), ip("192.168.1.12")}
	want := map[string]traffic.Count{}
	start := e.clk.Now().AddDate(0, 0, -days+1)
	back := ip("192.168.1.99")
	r.Record(traffic.Hit{Time: start, Client: back, Path: vimPath, Status: 200, Bytes: 2000})
	for d := range days {
		day := start.AddDate(0, 0, d)
		e.clk.Set(day)
		for i, a := range heavy {
			// Each real client downloads every day, less than some strangers do in a hit.
			b := int64(1000 * (i + 1))
			r.Record(traffic.Hit{Time: day, Client: a, Path: vimPath, Status: 200, Bytes: b})
			c := want[a.String()]
			want[a.String()] = c.Add(traffic.Count{Bytes: b, Requests: 1})
		}
		for s := range strangers {
			a := netip.MustParseAddr(fmt.Sprintf("2001:db8:%x:%x::1", d, s))
			r.Record(traffic.Hit{Time: day, Client: a, Path: vimPath, Status: 200, Bytes: int64(100 + s%900)})
		}
		if d < days-1 {
			e.flush(t) // the last day stays in the pending batch
		}
	}
	// A client seen on the first day and again now (unflushed) was dropped from the
	// candidates in between: its total must still be both days'.
	r.Record(traffic.Hit{Time: e.clk.Now(), Client: back, Path: vimPath, Status: 200, Bytes: 2000})
	top, err := r.TopClients(days, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(top) != 3 {
		t.Fatalf("top 3 of %d days: %+v", days, top)
	}
	for i, a := range []netip.Addr{heavy[2], heavy[1], heavy[0]} {
		w := want[a.String()]
		if top[i].Key != a.String() || top[i].Bytes != w.Bytes || top[i].Requests != w.Requests {
			t.Errorf("rank %d: %+v, want %s with %d B in %d requests", i+1, top[i], a, w.Bytes, w.Requests)
		}
	}
	// All that is kept is bounded: never every one of the 60,000 names; what is shown is
	// exact.
	all, _ := r.TopClients(days, 0)
	if len(all) > 2048 || len(all) < 3 {
		t.Errorf("an unbounded ranking kept %d names", len(all))
	}
	for _, c := range all {
		if c.Key == back.String() && (c.Bytes != 4000 || c.Requests != 2) {
			t.Errorf("a client back after being dropped from the candidates: %+v, want 4000 B in 2 requests", c)
		}
	}
}

// TestTopDamagedCountOverflow: a damaged record that still decodes to a count just under
// 2^63 plus the same client's real bytes of another day once summed past int64: the
// client showed a negative total. Sums stop at the largest count.
func TestTopDamagedCountOverflow(t *testing.T) {
	e := setup(t)
	to := traffic.DayOf(e.clk.Now())
	c := ip("192.168.1.10").String()
	for d, n := range map[traffic.Day]int64{to - 1: math.MaxInt64 - 10, to: 1000} {
		b := traffic.Batch{Clients: map[traffic.DayKey]traffic.Count{{Day: d, Key: c}: {Bytes: n, Requests: 1}}}
		if err := e.db.AddTraffic(b); err != nil {
			t.Fatal(err)
		}
	}
	top, err := e.rec.TopClients(2, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range top {
		if row.Bytes < 0 || row.Requests < 0 {
			t.Errorf("ranking row %+v: a negative total", row)
		}
	}
}
