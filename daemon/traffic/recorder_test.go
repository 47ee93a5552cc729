package traffic_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/daemon/store/storetest"
	"github.com/amwi/amwi/daemon/traffic"
)

// cet is the zone of the tests' clock: days are calendar days there, not in UTC.
var cet = time.FixedZone("CET", 3600)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
func (c *clock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

// countingStore is the real store, with AddTraffic and PruneTraffic counted and an
// optional hook run before each add (to slow it down or fail it).
type countingStore struct {
	traffic.Store
	adds, prunes atomic.Int32
	beforeAdd    func() error
}

var _ traffic.Store = (*countingStore)(nil)

func (s *countingStore) AddTraffic(b traffic.Batch) error {
	s.adds.Add(1)
	if s.beforeAdd != nil {
		if err := s.beforeAdd(); err != nil {
			return err
		}
	}
	return s.Store.AddTraffic(b)
}

func (s *countingStore) PruneTraffic(h traffic.Hour, d traffic.Day) error {
	s.prunes.Add(1)
	return s.Store.PruneTraffic(h, d)
}

type env struct {
	rec   *traffic.Recorder
	st    *countingStore
	db    *store.Store
	clk   *clock
	dir   string
	start time.Time
}

func setup(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	start := time.Date(2025, 3, 10, 12, 0, 0, 0, cet)
	clk := &clock{t: start}
	st := &countingStore{Store: db}
	return &env{rec: &traffic.Recorder{Store: st, Now: clk.Now}, st: st, db: db, clk: clk, dir: dir, start: start}
}

func (e *env) flush(t *testing.T) {
	t.Helper()
	if err := e.rec.Flush(); err != nil {
		t.Fatal(err)
	}
}

func at(day, hour, min int) time.Time { return time.Date(2025, 3, day, hour, min, 0, 0, cet) }

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

const (
	vimPath  = "/archlinux/extra/os/x86_64/vim-9.1.0-1-x86_64.pkg.tar.zst"
	reqsPath = "/archlinux/extra/os/x86_64/python-requests-2.32.3-1-any.pkg.tar.zst"
)

func TestRecordFlushAndReports(t *testing.T) {
	e := setup(t)
	r := e.rec
	a, b, c := ip("192.168.1.10"), ip("2001:db8::b"), ip("::ffff:192.168.1.30")
	for _, h := range []traffic.Hit{
		{Time: at(9, 20, 0), Client: a, Path: vimPath, Status: 200, Bytes: 1000},
		{Time: at(10, 9, 15), Client: a, Path: "/archlinux/core/os/x86_64/core.db", Status: 200, Bytes: 50},
		{Time: at(10, 10, 5), Client: b, Path: reqsPath, Status: 200, Bytes: 3000},
		{Time: at(10, 10, 40), Client: b, Path: vimPath + ".sig", Status: 200, Bytes: 10},
		{Time: at(10, 11, 59), Client: c, Path: vimPath, Status: 206, Bytes: 400},
		{Time: at(10, 11, 59), Client: c, Path: "/archlinux/extra/os/x86_64/nope-1-1-any.pkg.tar.zst", Status: 404, Bytes: 100},
	} {
		r.Record(h)
	}
	check := func(stage string, extra int64) {
		t.Helper()
		days, err := r.BytesPerDay(3)
		if err != nil {
			t.Fatal(err)
		}
		want := []traffic.Bucket{
			{Start: at(8, 0, 0), Bytes: 0, Requests: 0},
			{Start: at(9, 0, 0), Bytes: 1000, Requests: 1},
			{Start: at(10, 0, 0), Bytes: 3560 + extra, Requests: 5 + min(extra, 1)},
		}
		if !reflect.DeepEqual(days, want) {
			t.Errorf("%s: BytesPerDay(3) = %v, want %v", stage, days, want)
		}
		if b, n := r.Today(); b != 3560+extra || n != 5+min(extra, 1) {
			t.Errorf("%s: Today = %d bytes, %d requests", stage, b, n)
		}

		hours, err := r.Hourly(24)
		if err != nil {
			t.Fatal(err)
		}
		if len(hours) != 24 || !hours[23].Start.Equal(at(10, 12, 0)) || !hours[0].Start.Equal(at(9, 13, 0)) {
			t.Fatalf("%s: Hourly(24) spans %v … %v", stage, hours[0].Start, hours[len(hours)-1].Start)
		}
		byHour := map[int]traffic.Bucket{}
		for _, h := range hours {
			if h.Requests > 0 {
				byHour[h.Start.In(cet).Hour()] = h
			}
		}
		wantHours := map[int]int64{20: 1000, 9: 50, 10: 3010, 11: 500}
		if extra > 0 {
			wantHours[12] = extra
		}
		if len(byHour) != len(wantHours) {
			t.Errorf("%s: hours with traffic %v, want %v", stage, byHour, wantHours)
		}
		for h, b := range wantHours {
			if byHour[h].Bytes != b {
				t.Errorf("%s: hour %d: %d bytes, want %d", stage, h, byHour[h].Bytes, b)
			}
		}
	}
	check("unflushed", 0)
	e.flush(t)
	if n := e.st.adds.Load(); n != 1 {
		t.Fatalf("%d AddTraffic calls for one flush", n)
	}
	check("flushed", 0)

	top, err := r.TopClients(2, 10)
	if err != nil {
		t.Fatal(err)
	}
	wantTop := []traffic.Top{{"2001:db8::b", 3010, 2}, {"192.168.1.10", 1050, 2}, {"192.168.1.30", 500, 2}}
	if !reflect.DeepEqual(top, wantTop) {
		t.Errorf("TopClients(2) = %v, want %v (mapped address unmapped)", top, wantTop)
	}
	top, _ = r.TopClients(1, 10)
	wantTop = []traffic.Top{{"2001:db8::b", 3010, 2}, {"192.168.1.30", 500, 2}, {"192.168.1.10", 50, 1}}
	if !reflect.DeepEqual(top, wantTop) {
		t.Errorf("TopClients(1) = %v, want %v", top, wantTop)
	}
	pk, err := r.TopPackages(2, 10)
	if err != nil {
		t.Fatal(err)
	}
	// The .sig, the database and the 404 are not packages; the 206 is, with its 400 bytes.
	if want := []traffic.Top{{"python-requests", 3000, 1}, {"vim", 1400, 2}}; !reflect.DeepEqual(pk, want) {
		t.Errorf("TopPackages(2) = %v, want %v", pk, want)
	}
	if pk, _ := r.TopPackages(2, 1); len(pk) != 1 || pk[0].Key != "python-requests" {
		t.Errorf("TopPackages(2, 1) = %v", pk)
	}

	// A hit not yet flushed shows in every report, and moves vim to the top.
	r.Record(traffic.Hit{Time: at(10, 12, 0), Client: a, Path: vimPath, Status: 200, Bytes: 2000})
	check("stored+unflushed", 2000)
	pk, _ = r.TopPackages(2, 10)
	if want := []traffic.Top{{"vim", 3400, 3}, {"python-requests", 3000, 1}}; !reflect.DeepEqual(pk, want) {
		t.Errorf("TopPackages with unflushed = %v, want %v", pk, want)
	}
	e.flush(t)
	check("flushed twice", 2000)
	pk2, _ := r.TopPackages(2, 10)
	if !reflect.DeepEqual(pk, pk2) {
		t.Errorf("TopPackages changed by a flush: %v → %v", pk, pk2)
	}
}

func TestRecorderDaysAreInTheClocksZone(t *testing.T) {
	e := setup(t)
	e.clk.Set(at(11, 12, 0))
	// 23:30 UTC on the 10th is 00:30 on the 11th in CET.
	e.rec.Record(traffic.Hit{Time: time.Date(2025, 3, 10, 23, 30, 0, 0, time.UTC), Client: ip("10.0.0.1"), Status: 200, Bytes: 7})
	days, err := e.rec.BytesPerDay(2)
	if err != nil {
		t.Fatal(err)
	}
	if days[0].Bytes != 0 || days[1].Bytes != 7 || !days[1].Start.Equal(at(11, 0, 0)) {
		t.Errorf("BytesPerDay = %v, want the 7 bytes on the 11th", days)
	}
}

func TestRecorderPartialAndAbortedDownloadsCountBytesSent(t *testing.T) {
	e := setup(t)
	// A 300 MB package: resumed from the middle (206, 1234 bytes sent before the client
	// went away), then aborted after 5000 bytes of a full (200) answer.
	e.rec.Record(traffic.Hit{Time: e.start, Client: ip("10.0.0.1"), Path: vimPath, Status: 206, Bytes: 1234})
	e.rec.Record(traffic.Hit{Time: e.start, Client: ip("10.0.0.1"), Path: vimPath, Status: 200, Bytes: 5000})
	e.flush(t)
	pk, _ := e.rec.TopPackages(1, 0)
	if want := []traffic.Top{{"vim", 6234, 2}}; !reflect.DeepEqual(pk, want) {
		t.Errorf("TopPackages = %v, want %v", pk, want)
	}
	if b, _ := e.rec.Today(); b != 6234 {
		t.Errorf("Today bytes = %d, want 6234", b)
	}
}

func TestRecorderNoWriteWhenNothingChanged(t *testing.T) {
	e := setup(t)
	for range 3 {
		e.flush(t)
	}
	if n := e.st.adds.Load(); n != 0 {
		t.Fatalf("%d writes with nothing recorded", n)
	}
	e.rec.Record(traffic.Hit{Time: e.start, Client: ip("10.0.0.1"), Status: 200, Bytes: 1})
	e.flush(t)
	e.flush(t)
	if n := e.st.adds.Load(); n != 1 {
		t.Fatalf("%d writes for one batch", n)
	}

	// Run: idle ticks write nothing; the batch gets written by a tick or at the end, once.
	e.rec.FlushEvery = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.rec.Run(ctx); close(done) }()
	time.Sleep(50 * time.Millisecond)
	if n := e.st.adds.Load(); n != 1 {
		t.Errorf("%d writes after idle ticks, want still 1", n)
	}
	e.rec.Record(traffic.Hit{Time: e.start, Client: ip("10.0.0.1"), Status: 200, Bytes: 1})
	cancel()
	<-done
	if n := e.st.adds.Load(); n != 2 {
		t.Errorf("%d writes, want 2 (the hit recorded before the end is written once)", n)
	}
	if n := e.st.prunes.Load(); n != 1 {
		t.Errorf("Run pruned %d times in its first day, want once at start", n)
	}
	if _, n := e.rec.Today(); n != 2 {
		t.Errorf("Today requests = %d, want 2", n)
	}
}

func TestRecorderRunFlushesOnTicks(t *testing.T) {
	e := setup(t)
	e.rec.FlushEvery = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.rec.Run(ctx)
	e.rec.Record(traffic.Hit{Time: e.start, Client: ip("10.0.0.1"), Status: 200, Bytes: 42})
	deadline := time.Now().Add(5 * time.Second)
	for {
		days, err := e.db.TrafficDays(traffic.DayOf(e.start), traffic.DayOf(e.start))
		if err != nil {
			t.Fatal(err)
		}
		if days[traffic.DayOf(e.start)].Bytes == 42 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not write the batch within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRecordDoesNotWaitForASlowFlush(t *testing.T) {
	e := setup(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.st.beforeAdd = func() error {
		once.Do(func() { close(entered) })
		<-release
		return nil
	}
	hit := traffic.Hit{Time: e.start, Client: ip("10.0.0.1"), Path: vimPath, Status: 200, Bytes: 100}
	e.rec.Record(hit)
	e.rec.Today() // loads today's stored part before the store is busy
	flushed := make(chan error)
	go func() { flushed <- e.rec.Flush() }()
	<-entered

	recorded := make(chan struct{})
	go func() {
		for range 1000 {
			e.rec.Record(hit)
		}
		e.rec.Today()
		close(recorded)
	}()
	select {
	case <-recorded:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("Record (or a live figure) waited for the store")
	}
	if b, n := e.rec.Today(); b != 1001*100 || n != 1001 {
		t.Errorf("Today during the flush = %d, %d", b, n)
	}
	close(release)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	e.flush(t)
	days, _ := e.db.TrafficDays(traffic.DayOf(e.start), traffic.DayOf(e.start))
	if got := days[traffic.DayOf(e.start)]; got != (traffic.Count{Bytes: 1001 * 100, Requests: 1001}) {
		t.Errorf("stored %v after both flushes", got)
	}
}

func TestRecorderFlushFailureKeepsTheBatch(t *testing.T) {
	e := setup(t)
	fail := true
	e.st.beforeAdd = func() error {
		if fail {
			return errors.New("disk on fire")
		}
		return nil
	}
	hit := traffic.Hit{Time: e.start, Client: ip("10.0.0.1"), Path: vimPath, Status: 200, Bytes: 10}
	e.rec.Record(hit)
	if err := e.rec.Flush(); err == nil {
		t.Fatal("Flush hid the store's error")
	}
	e.rec.Record(hit)
	if pk, _ := e.rec.TopPackages(1, 0); len(pk) != 1 || pk[0].Requests != 2 {
		t.Errorf("after a failed flush, TopPackages = %v, want vim with 2 requests", pk)
	}
	fail = false
	e.flush(t)
	pk, _ := storetest.SumTraffic(e.db, traffic.Packages, 0, 1<<30)
	if pk["vim"] != (traffic.Count{Bytes: 20, Requests: 2}) {
		t.Errorf("stored %v, want both hits", pk)
	}
	e.flush(t)
	if n := e.st.adds.Load(); n != 2 {
		t.Errorf("%d AddTraffic calls, want 2", n)
	}
}

func TestRecorderPruneKeepsHoursTwoWeeksAndDaysOverAYear(t *testing.T) {
	e := setup(t)
	r := e.rec
	day0 := traffic.DayOf(e.start)
	r.Record(traffic.Hit{Time: e.start, Client: ip("10.0.0.1"), Path: vimPath, Status: 200, Bytes: 1})
	e.flush(t)

	e.clk.Add(15 * 24 * time.Hour)
	r.Record(traffic.Hit{Time: e.clk.Now(), Client: ip("10.0.0.2"), Path: reqsPath, Status: 200, Bytes: 2})
	e.flush(t)
	if err := r.Prune(); err != nil {
		t.Fatal(err)
	}
	hours, _ := e.db.TrafficHours(0, 1<<40)
	if len(hours) != 1 || hours[traffic.HourOf(e.clk.Now())].Bytes != 2 {
		t.Errorf("hours after 15 days = %v, want only the recent one", hours)
	}
	days, err := r.BytesPerDay(16)
	if err != nil {
		t.Fatal(err)
	}
	if days[0].Bytes != 1 || days[15].Bytes != 2 {
		t.Errorf("days after 15 days = %v, want both days kept", days)
	}

	e.clk.Set(e.start.Add(400 * 24 * time.Hour))
	r.Prune()
	if d, _ := e.db.TrafficDays(0, 1<<30); len(d) != 2 {
		t.Errorf("a day exactly %d days old was dropped: %v", traffic.KeepDays, d)
	}
	e.clk.Add(24 * time.Hour)
	if err := r.Prune(); err != nil {
		t.Fatal(err)
	}
	d, _ := e.db.TrafficDays(0, 1<<30)
	clients, _ := storetest.SumTraffic(e.db, traffic.Clients, 0, 1<<30)
	pkgs, _ := storetest.SumTraffic(e.db, traffic.Packages, 0, 1<<30)
	if _, ok := d[day0]; ok || len(d) != 1 {
		t.Errorf("days after 401 days = %v", d)
	}
	if _, ok := clients["10.0.0.1"]; ok || len(clients) != 1 {
		t.Errorf("clients after 401 days = %v", clients)
	}
	if _, ok := pkgs["vim"]; ok || len(pkgs) != 1 {
		t.Errorf("packages after 401 days = %v", pkgs)
	}
	if n := e.st.adds.Load(); n != 2 {
		t.Errorf("%d AddTraffic calls, want 2 (pruning is not a batch)", n)
	}
}

func TestRecorderDistinctKeysPerDayAreCapped(t *testing.T) {
	e := setup(t)
	e.rec.MaxClients, e.rec.MaxPackages = 2, 1
	for i := range 5 {
		e.rec.Record(traffic.Hit{Time: e.start, Client: ip(fmt.Sprintf("10.0.0.%d", i+1)), Path: vimPath, Status: 200, Bytes: 10})
	}
	e.rec.Record(traffic.Hit{Time: e.start, Client: ip("10.0.0.1"), Path: reqsPath, Status: 200, Bytes: 10})
	e.rec.Record(traffic.Hit{Time: e.start, Client: netip.Addr{}, Status: 200, Bytes: 1})
	e.flush(t)
	top, _ := e.rec.TopClients(1, 0)
	want := []traffic.Top{{traffic.Other, 31, 4}, {"10.0.0.1", 20, 2}, {"10.0.0.2", 10, 1}}
	if !reflect.DeepEqual(top, want) {
		t.Errorf("TopClients = %v, want %v", top, want)
	}
	pk, _ := e.rec.TopPackages(1, 0)
	if want := []traffic.Top{{"vim", 50, 5}, {traffic.Other, 10, 1}}; !reflect.DeepEqual(pk, want) {
		t.Errorf("TopPackages = %v, want %v", pk, want)
	}

	// A new day starts with a fresh allowance.
	next := e.start.Add(24 * time.Hour)
	e.clk.Set(next)
	e.rec.Record(traffic.Hit{Time: next, Client: ip("10.0.0.5"), Path: reqsPath, Status: 200, Bytes: 3})
	e.rec.Record(traffic.Hit{Time: next, Client: netip.Addr{}, Status: 200, Bytes: 1})
	top, _ = e.rec.TopClients(1, 0)
	if want := []traffic.Top{{"10.0.0.5", 3, 1}, {traffic.Unknown, 1, 1}}; !reflect.DeepEqual(top, want) {
		t.Errorf("next day TopClients = %v, want %v", top, want)
	}
	if pk, _ := e.rec.TopPackages(1, 0); len(pk) != 1 || pk[0].Key != "python-requests" {
		t.Errorf("next day TopPackages = %v", pk)
	}
}

func TestRecorderTodayAcrossRestartAndMidnight(t *testing.T) {
	e := setup(t)
	if b, n := e.rec.Today(); b != 0 || n != 0 {
		t.Errorf("Today on an empty store = %d, %d", b, n)
	}
	e.rec.Record(traffic.Hit{Time: at(10, 1, 0), Client: ip("10.0.0.1"), Status: 200, Bytes: 100})
	e.rec.Record(traffic.Hit{Time: at(9, 23, 0), Client: ip("10.0.0.1"), Status: 200, Bytes: 5}) // yesterday
	e.flush(t)

	// A new Recorder on the same store (a restart) knows what was served today.
	r2 := &traffic.Recorder{Store: e.db, Now: e.clk.Now}
	r2.Record(traffic.Hit{Time: at(10, 12, 0), Client: ip("10.0.0.1"), Status: 200, Bytes: 20})
	if b, n := r2.Today(); b != 120 || n != 2 {
		t.Errorf("Today after restart = %d, %d; want 120, 2", b, n)
	}
	r2.Record(traffic.Hit{Time: at(10, 12, 1), Client: ip("10.0.0.1"), Status: 200, Bytes: 3})
	if b, n := r2.Today(); b != 123 || n != 3 {
		t.Errorf("Today = %d, %d; want 123, 3", b, n)
	}

	e.clk.Set(at(11, 0, 0))
	if b, n := r2.Today(); b != 0 || n != 0 {
		t.Errorf("Today after midnight = %d, %d", b, n)
	}
	r2.Record(traffic.Hit{Time: at(11, 0, 0), Client: ip("10.0.0.1"), Status: 200, Bytes: 7})
	if b, n := r2.Today(); b != 7 || n != 1 {
		t.Errorf("Today after midnight = %d, %d; want 7, 1", b, n)
	}
}

// TestRecorderReportsSeeEachHitOnce runs records, flushes and reports at once: a report that saw
// a batch both in memory and in the store, or in neither, would make the total jump.
func TestRecorderReportsSeeEachHitOnce(t *testing.T) {
	e := setup(t)
	const writers, perWriter = 4, 300
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range writers {
		wg.Go(func() {
			for range perWriter {
				e.rec.Record(traffic.Hit{Time: e.start, Client: ip("10.0.0.1"), Path: vimPath, Status: 200, Bytes: 1})
			}
		})
	}
	flusher := make(chan struct{})
	go func() {
		defer close(flusher)
		for {
			select {
			case <-stop:
				return
			default:
				e.rec.Flush()
				time.Sleep(time.Millisecond)
			}
		}
	}()
	var last int64
	check := func() {
		days, err := e.rec.BytesPerDay(1)
		if err != nil {
			t.Fatal(err)
		}
		if n := days[0].Requests; n < last {
			t.Fatalf("total went from %d down to %d", last, n)
		} else {
			last = n
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		check()
	}
	close(stop)
	<-flusher
	check()
	if last != writers*perWriter {
		t.Errorf("total %d, want %d", last, writers*perWriter)
	}
}

func BenchmarkRecord(b *testing.B) {
	clk := &clock{t: time.Date(2025, 3, 10, 12, 0, 0, 0, cet)}
	r := &traffic.Recorder{Store: nil, Now: clk.Now} // Record never touches the store
	var hits []traffic.Hit
	for i := range 256 {
		hits = append(hits, traffic.Hit{
			Client: netip.AddrFrom4([4]byte{192, 168, 1, byte(i % 40)}),
			Path:   fmt.Sprintf("/archlinux/extra/os/x86_64/pkg%d-1.0-1-x86_64.pkg.tar.zst", i%100),
			Status: 200, Bytes: 1 << 20, Duration: 200 * time.Millisecond,
		})
	}
	t0 := clk.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h := hits[i%len(hits)]
		h.Time = t0.Add(time.Duration(i) * time.Millisecond)
		r.Record(h)
		i++
	}
}

// LastUsed ("used" mode's source) gives each package's last day of download within the
// days asked, from the store and from the batch not yet written, and nothing for 404s,
// signatures or downloads older than the window.
func TestLastUsed(t *testing.T) {
	e := setup(t)
	r := e.rec
	a := ip("192.168.1.10")
	for _, h := range []traffic.Hit{
		{Time: at(1, 10, 0), Client: a, Path: "/archlinux/core/os/x86_64/old-1-1-x86_64.pkg.tar.zst", Status: 200, Bytes: 1},
		{Time: at(8, 10, 0), Client: a, Path: vimPath, Status: 200, Bytes: 1},
		{Time: at(9, 10, 0), Client: a, Path: reqsPath, Status: 206, Bytes: 1},
	} {
		e.clk.Set(h.Time)
		r.Record(h)
	}
	e.flush(t)
	e.clk.Set(at(10, 12, 0))
	for _, h := range []traffic.Hit{
		{Time: at(10, 11, 0), Client: a, Path: vimPath, Status: 200, Bytes: 1}, // pending, newer
		{Time: at(10, 11, 0), Client: a, Path: "/archlinux/extra/os/x86_64/gone-1-1-any.pkg.tar.zst", Status: 404},
		{Time: at(10, 11, 0), Client: a, Path: "/archlinux/extra/os/x86_64/sig-1-1-any.pkg.tar.zst.sig", Status: 200, Bytes: 1},
	} {
		r.Record(h)
	}
	got, err := r.LastUsed(5) // days 6..10
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"vim": at(10, 0, 0), "python-requests": at(9, 0, 0)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LastUsed(5) = %v, want %v", got, want)
	}
}
