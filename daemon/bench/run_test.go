package bench

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func hostsOf(rs []Result) []string {
	var hs []string
	for _, r := range rs {
		hs = append(hs, r.Host)
	}
	return hs
}

func byHost(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.Host] = r
	}
	return m
}

// TestRunGroundTruth measures stand-ins whose qualities are known and checks the ranking
// against the order they must come in.
func TestRunGroundTruth(t *testing.T) {
	t.Parallel()
	rsyncd := startRsyncd(t, lastupdateNow())
	now := time.Now()
	fresh, old := now.Add(-10*time.Minute), now.Add(-10*time.Hour)
	specs := []struct {
		host  string
		m     mirror
		rsync string
	}{
		{"http-500", mirror{fail: "500"}, rsyncd.URL},
		{"slow", mirror{rate: 100e3, lastsync: fresh}, rsyncd.URL},
		{"stale-fastest", mirror{rate: 6.4e6, lastsync: old}, rsyncd.URL},
		{"dead-rsync", mirror{rate: 800e3, lastsync: fresh}, deadRsync},
		{"fast", mirror{rate: 1.6e6, lastsync: fresh}, rsyncd.URL},
		{"refused", mirror{fail: "refused"}, rsyncd.URL},
		{"no-rsync", mirror{rate: 3.2e6, lastsync: fresh}, ""},
		{"medium", mirror{rate: 400e3, lastsync: fresh}, rsyncd.URL},
	}
	var cands []Candidate
	for _, s := range specs {
		cands = append(cands, Candidate{Host: s.host, Country: "DE", HTTPURL: startMirror(t, s.m), RsyncURL: s.rsync})
	}

	got := Run(context.Background(), cands, Options{})

	want := []string{"fast", "medium", "slow", "no-rsync", "dead-rsync", "stale-fastest", "http-500", "refused"}
	if hs := hostsOf(got); !slices.Equal(hs, want) {
		for _, r := range got {
			t.Logf("%d %s: %s", r.Rank, r.Host, r.Why)
		}
		t.Fatalf("order = %v\nwant    %v", hs, want)
	}
	rs := byHost(got)
	for _, s := range specs {
		r := rs[s.host]
		t.Logf("%d %-13s usable=%-5v %8.0f B/s %.2f ms  %s", r.Rank, r.Host, r.Usable, r.ThroughputBps, r.LatencyMS, r.Why)
		wantUsable := s.host == "fast" || s.host == "medium" || s.host == "slow"
		if r.Usable != wantUsable {
			t.Errorf("%s: Usable = %v, want %v", s.host, r.Usable, wantUsable)
		}
		if s.m.rate > 0 {
			// Loose: the figure is the stand-in's rate, give or take scheduling.
			if r.ThroughputBps < s.m.rate/2 || r.ThroughputBps > s.m.rate*2 {
				t.Errorf("%s: throughput %.0f B/s, served at %.0f", s.host, r.ThroughputBps, s.m.rate)
			}
			if r.LatencyMS <= 0 {
				t.Errorf("%s: latency not measured", s.host)
			}
			if r.LastSync == nil || r.LastSync.Unix() != s.m.lastsync.Unix() {
				t.Errorf("%s: LastSync = %v, want %v", s.host, r.LastSync, s.m.lastsync)
			}
		}
	}
	if a, b := rs["stale-fastest"], rs["slow"]; a.ThroughputBps <= b.ThroughputBps || a.Rank <= b.Rank {
		t.Errorf("the stale mirror should be faster yet rank lower: %+v vs %+v", a, b)
	}
	checks := map[string][]string{
		"fast":          {"fresh, rsync ok, ", "iB/s, "},
		"no-rsync":      {"no rsync URL; fresh, "},
		"dead-rsync":    {"rsync unreachable: connection refused; fresh, "},
		"stale-fastest": {"stale: lastsync 9h50m behind the freshest; rsync ok, "},
		"http-500":      {"http failed: 500 Internal Server Error"},
		"refused":       {"http failed: connect: connection refused"},
	}
	for host, subs := range checks {
		for _, sub := range subs {
			if !strings.Contains(rs[host].Why, sub) {
				t.Errorf("%s: Why %q lacks %q", host, rs[host].Why, sub)
			}
		}
	}
	if rs["http-500"].Error == "" || rs["refused"].Error == "" || rs["fast"].Error != "" {
		t.Errorf("Error: http-500 %q, refused %q, fast %q", rs["http-500"].Error, rs["refused"].Error, rs["fast"].Error)
	}
	if !rs["http-500"].RsyncOK {
		t.Errorf("http-500: the rsync check should still have run and passed")
	}
}

// TestRunHanging checks that a mirror that never answers costs no more than the limits.
func TestRunHanging(t *testing.T) {
	t.Parallel()
	rsyncd := startRsyncd(t, lastupdateNow())
	good := Candidate{Host: "good", HTTPURL: startMirror(t, mirror{rate: 2e6, lastsync: time.Now()}), RsyncURL: rsyncd.URL}
	hang := Candidate{Host: "hang", HTTPURL: startMirror(t, mirror{fail: "hang"}), RsyncURL: rsyncd.URL}

	t.Run("Total", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		got := Run(context.Background(), []Candidate{hang, good}, Options{Total: 3 * time.Second})
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("Run took %v with Total 3s", el)
		}
		if hs := hostsOf(got); !slices.Equal(hs, []string{"good", "hang"}) {
			t.Fatalf("order = %v", hs)
		}
		if r := got[1]; r.Error != "timed out" || r.Why != "timed out" || r.Usable {
			t.Errorf("hang: Error %q, Why %q, Usable %v", r.Error, r.Why, r.Usable)
		}
		if r := got[0]; !r.Usable || r.Error != "" {
			t.Errorf("good: %+v", r)
		}
	})
	t.Run("PerStep", func(t *testing.T) {
		t.Parallel()
		// lastsync gets 2 × ConnectTimeout to answer; when it does not, the download is
		// not tried, and the candidate is done well before PerMirror.
		start := time.Now()
		got := Run(context.Background(), []Candidate{hang}, Options{ConnectTimeout: 500 * time.Millisecond})
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("Run took %v", el)
		}
		if r := got[0]; r.Error != "http failed: lastsync: timed out" || !r.RsyncOK {
			t.Errorf("hang: Error %q, RsyncOK %v", r.Error, r.RsyncOK)
		}
	})
	t.Run("Cancel", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(300*time.Millisecond, cancel)
		start := time.Now()
		got := Run(ctx, []Candidate{hang, hang, hang}, Options{Concurrency: 1})
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("Run took %v after cancelling at 300ms", el)
		}
		for _, r := range got {
			if r.Error != "cancelled" {
				t.Errorf("%d %s: Error %q, want cancelled", r.Rank, r.Host, r.Error)
			}
		}
	})
}

func TestRunCaveats(t *testing.T) {
	t.Parallel()
	rsyncd := startRsyncd(t, lastupdateNow())
	fresh := time.Now().Add(-time.Minute)
	statusTime := time.Now().Add(-20 * time.Minute)
	cands := []Candidate{
		{Host: "truncated", HTTPURL: startMirror(t, mirror{rate: 1e6, size: 400_000, lastsync: fresh, fail: "truncate"}), RsyncURL: rsyncd.URL},
		{Host: "no-lastsync", HTTPURL: startMirror(t, mirror{rate: 1e6}), RsyncURL: rsyncd.URL, LastSync: &statusTime},
		{Host: "no-lastsync-at-all", HTTPURL: startMirror(t, mirror{rate: 1e6}), RsyncURL: rsyncd.URL},
		{Host: "rsync-only", RsyncURL: rsyncd.URL, LastSync: &statusTime},
		{Host: "no-db", HTTPURL: startMirror(t, mirror{lastsync: fresh, fail: "db404"}), RsyncURL: rsyncd.URL},
	}
	rs := byHost(Run(context.Background(), cands, Options{}))
	for _, r := range rs {
		t.Logf("%d %-18s usable=%-5v %s", r.Rank, r.Host, r.Usable, r.Why)
	}

	if r := rs["truncated"]; !r.Usable || r.ThroughputBps <= 0 || r.Error != "" ||
		!strings.Contains(r.Why, "; download cut after 195.3 KiB: body shorter than announced") {
		t.Errorf("truncated: usable %v, %.0f B/s, Error %q, Why %q", r.Usable, r.ThroughputBps, r.Error, r.Why)
	}
	if r := rs["no-lastsync"]; !r.Usable || r.LastSync == nil || !r.LastSync.Equal(statusTime.Truncate(0)) ||
		!strings.HasSuffix(r.Why, "; lastsync from the status JSON (mirror's own: 404 Not Found)") {
		t.Errorf("no-lastsync: usable %v, LastSync %v, Why %q", r.Usable, r.LastSync, r.Why)
	}
	if r := rs["no-lastsync-at-all"]; r.Usable || r.LastSync != nil || !strings.HasPrefix(r.Why, "stale: lastsync unknown (404 Not Found); rsync ok") {
		t.Errorf("no-lastsync-at-all: usable %v, Why %q", r.Usable, r.Why)
	}
	if r := rs["rsync-only"]; !r.Usable || r.Why != "fresh, rsync ok, speed not measured (no http URL); lastsync from the status JSON" {
		t.Errorf("rsync-only: usable %v, Why %q", r.Usable, r.Why)
	}
	if r := rs["no-db"]; r.Usable || r.Error != "http failed: 404 Not Found" || r.LastSync == nil {
		t.Errorf("no-db: usable %v, Error %q, LastSync %v", r.Usable, r.Error, r.LastSync)
	}
}

// TestRunCaps checks that the download stops at MaxBytes or MaxSeconds and that both
// still give the stand-in's rate.
func TestRunCaps(t *testing.T) {
	t.Parallel()
	rsyncd := startRsyncd(t, lastupdateNow())
	const rate = 200e3
	big := startMirror(t, mirror{rate: rate, size: 10 << 20, lastsync: time.Now()})
	for _, tt := range []struct {
		name string
		o    Options
	}{
		{"MaxSeconds", Options{MaxSeconds: 600 * time.Millisecond}},
		{"MaxBytes", Options{MaxBytes: 100_000}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := Run(context.Background(), []Candidate{{Host: "big", HTTPURL: big, RsyncURL: rsyncd.URL}}, tt.o)[0]
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("Run took %v", el)
			}
			if r.ThroughputBps < rate*0.7 || r.ThroughputBps > rate*1.5 || strings.Contains(r.Why, "cut") {
				t.Errorf("%.0f B/s (served at %.0f), Why %q", r.ThroughputBps, rate, r.Why)
			}
		})
	}
}

func TestCheckRsync(t *testing.T) {
	t.Parallel()
	good := startRsyncd(t, lastupdateNow())
	empty := startRsyncd(t, "")
	garbage := startRsyncd(t, "<html>not here</html>\n")
	m := &meter{o: Options{}.withDefaults()}
	for _, tt := range []struct{ url, want string }{
		{good.URL, ""},
		{strings.TrimSuffix(good.URL, "/"), ""},
		{deadRsync, "connection refused"},
		{"rsync://" + good.Addr + "/nope/", "Unknown module 'nope'"},
		{empty.URL, "no lastupdate on the mirror"},
		{garbage.URL, "lastupdate is not a Unix time"},
		{"", "no rsync URL"},
		{"http://example.org/", `"http://example.org/" is not an rsync:// URL`},
	} {
		err := m.checkRsync(context.Background(), tt.url, t.TempDir())
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("checkRsync(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
	t.Run("missing binary", func(t *testing.T) {
		m := &meter{o: Options{RsyncBin: "/nonexistent/rsync"}.withDefaults()}
		err := m.checkRsync(context.Background(), good.URL, t.TempDir())
		if err == nil || !strings.HasPrefix(err.Error(), "run /nonexistent/rsync: ") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestRunProgressAndCleanup checks Progress's contract and that the rsync temp dir goes.
func TestRunProgressAndCleanup(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where Run makes its rsync directory
	rsyncd := startRsyncd(t, lastupdateNow())
	var cands []Candidate
	for i := range 5 {
		cands = append(cands, Candidate{Host: string(rune('a' + i)),
			HTTPURL: startMirror(t, mirror{rate: 1e6, lastsync: time.Now()}), RsyncURL: rsyncd.URL})
	}
	var calls int // unsynchronised on purpose: -race fails if calls overlap
	var inside atomic.Int32
	Run(context.Background(), cands, Options{Concurrency: 3, Progress: func(done, total int, last Result) {
		if inside.Add(1) != 1 {
			t.Error("Progress called concurrently")
		}
		defer inside.Add(-1)
		calls++
		if done != calls || total != len(cands) || last.Host == "" || last.Why == "" || !last.Usable {
			t.Errorf("Progress(%d, %d, %+v) on call %d", done, total, last, calls)
		}
	}})
	if calls != len(cands) {
		t.Errorf("Progress called %d times, want %d", calls, len(cands))
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("left behind in TMPDIR: %v", ents)
	}
}
