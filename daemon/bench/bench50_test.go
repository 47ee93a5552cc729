package bench

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// scenario50 is a country's worth of stand-in mirrors with a known right answer.
type scenario50 struct {
	cands []Candidate
	want  []string       // hosts in the order Rank must produce
	class map[string]int // host → band (see class)
}

// build50 starts 50 stand-ins sharing one rsync daemon: 24 fresh with rsync, 8 fresh
// without (no URL or a dead one), 11 stale (old, behind the rest, unknown — a few of them
// the fastest of all), 7 failing (500, refused, a hang, no database). Within a band the
// speeds are 20–50 % apart, well beyond what pacing on loopback blurs.
func build50(tb testing.TB) scenario50 {
	tb.Helper()
	rsyncd := startRsyncd(tb, lastupdateNow())
	now := time.Now()
	type spec struct {
		m     mirror
		rsync string
		class int
	}
	var specs []spec
	for k := range 24 {
		specs = append(specs, spec{mirror{rate: 150e3 * math.Pow(1.2, float64(k)), lastsync: now.Add(-time.Duration(5+2*k) * time.Minute)}, rsyncd.URL, 0})
	}
	for k := range 8 {
		rs := ""
		if k%2 == 1 {
			rs = deadRsync
		}
		specs = append(specs, spec{mirror{rate: 200e3 * math.Pow(1.5, float64(k)), lastsync: now.Add(-20 * time.Minute)}, rs, 1})
	}
	for k := range 11 {
		var ls time.Time
		switch {
		case k < 7:
			ls = now.Add(-time.Duration(7+3*k) * time.Hour) // old
		case k < 10:
			ls = now.Add(-3*time.Hour - time.Duration(k)*10*time.Minute) // behind the freshest
		} // k == 10: no lastsync at all
		rs, cl := rsyncd.URL, 2
		if k == 3 || k == 8 {
			rs, cl = deadRsync, 3
		}
		specs = append(specs, spec{mirror{rate: 300e3 * math.Pow(1.4, float64(k)), lastsync: ls}, rs, cl})
	}
	for _, f := range []string{"500", "500", "500", "refused", "refused", "hang", "db404"} {
		specs = append(specs, spec{mirror{rate: 1e6, lastsync: now, fail: f}, rsyncd.URL, 4})
	}

	rand.New(rand.NewPCG(50, 50)).Shuffle(len(specs), func(i, j int) { specs[i], specs[j] = specs[j], specs[i] })
	sc := scenario50{class: map[string]int{}}
	type truth struct {
		host  string
		class int
		rate  float64
	}
	var t []truth
	for i, s := range specs {
		host := fmt.Sprintf("mirror%02d.example", i)
		sc.cands = append(sc.cands, Candidate{Host: host, Country: "DE", HTTPURL: startMirror(tb, s.m), RsyncURL: s.rsync})
		sc.class[host] = s.class
		t = append(t, truth{host, s.class, s.m.rate})
	}
	slices.SortFunc(t, func(a, b truth) int {
		if c := cmp.Compare(a.class, b.class); c != 0 || a.class == 4 {
			return cmp.Or(c, cmp.Compare(a.host, b.host))
		}
		return cmp.Compare(b.rate, a.rate)
	})
	for _, x := range t {
		sc.want = append(sc.want, x.host)
	}
	return sc
}

// score compares a ranking with the ground truth: exact order, same bands position by
// position, same top 3, and the share of pairs in the right order.
func (sc scenario50) score(got []Result) (exact, bands, top3 bool, pairs float64) {
	hosts := hostsOf(got)
	exact = slices.Equal(hosts, sc.want)
	bands = len(hosts) == len(sc.want)
	for i := range min(len(hosts), len(sc.want)) {
		bands = bands && sc.class[hosts[i]] == sc.class[sc.want[i]]
	}
	top3 = len(hosts) >= 3 && slices.Equal(hosts[:3], sc.want[:3])
	pos := map[string]int{}
	for i, h := range hosts {
		pos[h] = i
	}
	good, all := 0, 0
	for i := range sc.want {
		for j := i + 1; j < len(sc.want); j++ {
			all++
			if pos[sc.want[i]] < pos[sc.want[j]] {
				good++
			}
		}
	}
	return exact, bands, top3, float64(good) / float64(all)
}

// TestRun50 runs the 50-mirror scenario once with the default options. What must hold
// whatever the load on the machine: usable mirrors first, and among measured mirrors every
// fresh one above every stale one. How close the order comes to the ground truth depends on
// timing; it is reported, and only a gross miss fails (BenchmarkRank50 measures it).
func TestRun50(t *testing.T) {
	t.Parallel()
	sc := build50(t)
	start := time.Now()
	got := Run(context.Background(), sc.cands, Options{})
	wall := time.Since(start)
	exact, bands, top3, pairs := sc.score(got)
	t.Logf("wall %v, exact %v, bands %v, top3 %v, pairs in order %.1f%%", wall.Round(time.Millisecond), exact, bands, top3, 100*pairs)
	for i := range got {
		for j := i + 1; j < len(got); j++ {
			a, b := got[i], got[j]
			if b.Usable && !a.Usable {
				t.Errorf("usable %s ranks below unusable %s", b.Host, a.Host)
			}
			if a.Error == "" && b.Error == "" && b.Fresh && !a.Fresh {
				t.Errorf("fresh %s ranks below stale %s", b.Host, a.Host)
			}
		}
	}
	if pairs < 0.8 {
		for i, r := range got {
			t.Logf("%2d %s (want %s) %s", r.Rank, r.Host, sc.want[i], r.Why)
		}
		t.Errorf("ranking too far from the ground truth")
	}
	if wall > 20*time.Second {
		t.Errorf("Run took %v for 50 loopback mirrors", wall)
	}
}

// BenchmarkRank50 measures and ranks 50 stand-ins with the default options, and reports
// the wall time of a run and how often the ranking matched the ground truth. Each run
// takes seconds (the hanging stand-in alone holds a slot for 6 s), so ask for a few:
//
//	go test -run '^$' -bench Rank50 -benchtime 5x ./daemon/bench/
func BenchmarkRank50(b *testing.B) {
	sc := build50(b)
	var runs, exact, bands, top3 int
	var pairs float64
	var wall, worst time.Duration
	for b.Loop() {
		start := time.Now()
		got := Run(context.Background(), sc.cands, Options{})
		el := time.Since(start)
		wall += el
		worst = max(worst, el)
		e, bd, t3, p := sc.score(got)
		runs++
		exact += b2i(e)
		bands += b2i(bd)
		top3 += b2i(t3)
		pairs += p
	}
	n := float64(runs)
	b.ReportMetric(wall.Seconds()/n, "s/run")
	b.ReportMetric(worst.Seconds(), "worst-s")
	b.ReportMetric(100*float64(exact)/n, "exact-%")
	b.ReportMetric(100*float64(bands)/n, "bands-%")
	b.ReportMetric(100*float64(top3)/n, "top3-%")
	b.ReportMetric(100*pairs/n, "pairs-%")
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
