package traffic_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/amwi/amwi/daemon/traffic"
)

// TestAttackTopKeepsTheLeader (attack h15c): a LAN client that downloaded more than any
// other name in the period must rank first. Here it downloaded 100 kB on the period's
// first day; then a stranger with a /64 sends 990 one-off addresses a day (under the
// day's cap of clients), each downloading 90 kB: every one of them less than the
// leader. After five days the Space-Saving candidates have evicted the leader (its
// weight is the smallest once every stranger slot was bumped once), and the ranking
// shows ten strangers as the top clients and not the real top one. The shown figures
// are exact, the choice is not: "Top clients" is wrong without a hint.
func TestAttackTopKeepsTheLeader(t *testing.T) {
	e := setup(t)
	r := e.rec
	const days, strangers = 6, 990
	leader := ip("10.0.0.1") // "1" sorts before the strangers' "2001:…": walked first each day
	start := e.clk.Now().AddDate(0, 0, -days+1)
	e.clk.Set(start)
	r.Record(traffic.Hit{Time: start, Client: leader, Path: vimPath, Status: 200, Bytes: 100_000})
	for d := range days {
		day := start.AddDate(0, 0, d)
		e.clk.Set(day)
		for s := range strangers {
			a := ip(fmt.Sprintf("2001:db8:0:1:%x:%x::1", d, s))
			r.Record(traffic.Hit{Time: day, Client: a, Path: vimPath, Status: 200, Bytes: 90_000})
		}
		e.flush(t)
	}
	top, err := r.TopClients(days, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(top) == 0 || top[0].Key != leader.String() || top[0].Bytes != 100_000 {
		t.Errorf("top client over %d days = %+v, want %s with 100000 B (every other client has 90000 B)", days, top[:min(len(top), 3)], leader)
	}
}

// TestAttackTopDamagedCountOverflow (attack h15c): a damaged record that still decodes
// to a count just under 2^63 (decodeCount accepts up to MaxInt64) plus the same client's
// real bytes of another day sum past int64 in the ranking: the client is shown with a
// negative total instead of being skipped or capped.
func TestAttackTopDamagedCountOverflow(t *testing.T) {
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
