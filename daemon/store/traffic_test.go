package store

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amwi/amwi/daemon/traffic"
)

type cnt = traffic.Count

func n(bytes, requests int64) cnt { return cnt{Bytes: bytes, Requests: requests} }

func openTrafficStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// txID is the id of the last committed write transaction.
func txID(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestTrafficAddMergesAndRanges(t *testing.T) {
	s := openTrafficStore(t)
	const d = traffic.Day(20000)
	const h = traffic.Hour(480000)
	add := func(b traffic.Batch) {
		t.Helper()
		if err := s.AddTraffic(b); err != nil {
			t.Fatal(err)
		}
	}
	add(traffic.Batch{
		Hours: map[traffic.Hour]cnt{h: n(100, 1), h + 1: n(200, 2), h + 5: n(1, 1)},
		Days:  map[traffic.Day]cnt{d: n(300, 3), d + 1: n(1, 1), -3: n(7, 7)},
		Clients: map[traffic.DayKey]cnt{
			{Day: d, Key: "192.168.1.2"}: n(250, 2), {Day: d, Key: "2001:db8::1"}: n(50, 1),
			{Day: d + 1, Key: "192.168.1.2"}: n(1, 1), {Day: d + 2, Key: "192.168.1.2"}: n(1000, 1),
		},
		Packages: map[traffic.DayKey]cnt{{Day: d, Key: "vim"}: n(250, 2), {Day: d - 1, Key: "vim"}: n(5, 1)},
	})
	add(traffic.Batch{ // merges into what is there
		Hours:    map[traffic.Hour]cnt{h: n(1, 1)},
		Days:     map[traffic.Day]cnt{d: n(1, 1)},
		Clients:  map[traffic.DayKey]cnt{{Day: d, Key: "192.168.1.2"}: n(1, 1)},
		Packages: map[traffic.DayKey]cnt{{Day: d, Key: "vim"}: n(1, 1), {Day: d, Key: "python-requests"}: n(9, 1)},
	})

	hours, err := s.TrafficHours(h, h+4)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[traffic.Hour]cnt{h: n(101, 2), h + 1: n(200, 2)}; !reflect.DeepEqual(hours, want) {
		t.Errorf("hours = %v, want %v", hours, want)
	}
	days, err := s.TrafficDays(-10, d)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[traffic.Day]cnt{-3: n(7, 7), d: n(301, 4)}; !reflect.DeepEqual(days, want) {
		t.Errorf("days = %v, want %v (negative days sort before positive ones)", days, want)
	}
	clients, err := sumTraffic(s, traffic.Clients, d, d+1)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]cnt{"192.168.1.2": n(252, 4), "2001:db8::1": n(50, 1)}; !reflect.DeepEqual(clients, want) {
		t.Errorf("clients = %v, want %v", clients, want)
	}
	pkgs, err := sumTraffic(s, traffic.Packages, d, d)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]cnt{"vim": n(251, 3), "python-requests": n(9, 1)}; !reflect.DeepEqual(pkgs, want) {
		t.Errorf("packages = %v, want %v", pkgs, want)
	}
	if m, err := sumTraffic(s, traffic.Clients, d+1, d); err != nil || len(m) != 0 {
		t.Errorf("empty range: %v, %v", m, err)
	}
}

func TestTrafficReadsOnEmptyStore(t *testing.T) {
	s := openTrafficStore(t)
	if m, err := s.TrafficHours(0, 1<<40); err != nil || len(m) != 0 {
		t.Errorf("hours: %v, %v", m, err)
	}
	if m, err := sumTraffic(s, traffic.Packages, 0, 100000); err != nil || len(m) != 0 {
		t.Errorf("packages: %v, %v", m, err)
	}
}

func TestTrafficPrune(t *testing.T) {
	s := openTrafficStore(t)
	err := s.AddTraffic(traffic.Batch{
		Hours:    map[traffic.Hour]cnt{10: n(1, 1), 11: n(1, 1), 12: n(1, 1)},
		Days:     map[traffic.Day]cnt{1: n(1, 1), 2: n(1, 1)},
		Clients:  map[traffic.DayKey]cnt{{Day: 1, Key: "a"}: n(1, 1), {Day: 2, Key: "a"}: n(1, 1)},
		Packages: map[traffic.DayKey]cnt{{Day: 1, Key: "p"}: n(1, 1), {Day: 2, Key: "q"}: n(1, 1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PruneTraffic(12, 2); err != nil {
		t.Fatal(err)
	}
	hours, _ := s.TrafficHours(0, 100)
	days, _ := s.TrafficDays(0, 100)
	clients, _ := sumTraffic(s, traffic.Clients, 0, 100)
	pkgs, _ := sumTraffic(s, traffic.Packages, 0, 100)
	if !reflect.DeepEqual(hours, map[traffic.Hour]cnt{12: n(1, 1)}) || !reflect.DeepEqual(days, map[traffic.Day]cnt{2: n(1, 1)}) ||
		!reflect.DeepEqual(clients, map[string]cnt{"a": n(1, 1)}) || !reflect.DeepEqual(pkgs, map[string]cnt{"q": n(1, 1)}) {
		t.Errorf("after prune: hours %v days %v clients %v packages %v", hours, days, clients, pkgs)
	}

	// Nothing left to drop: no write transaction (SD cards).
	before := txID(t, s)
	if err := s.PruneTraffic(12, 2); err != nil {
		t.Fatal(err)
	}
	if after := txID(t, s); after != before {
		t.Errorf("a prune with nothing to drop committed a transaction (txid %d → %d)", before, after)
	}
}

func TestTrafficCorruptValueTolerated(t *testing.T) {
	s := openTrafficStore(t)
	s.AddTraffic(traffic.Batch{Days: map[traffic.Day]cnt{5: n(1, 1), 6: n(2, 2)}})
	s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTrafficDays).Put(dayKey(5, ""), []byte{0xff})
	})
	days, err := s.TrafficDays(0, 10)
	if err != nil || !reflect.DeepEqual(days, map[traffic.Day]cnt{6: n(2, 2)}) {
		t.Errorf("read past a bad value: %v, %v", days, err)
	}
	if err := s.AddTraffic(traffic.Batch{Days: map[traffic.Day]cnt{5: n(3, 3)}}); err != nil {
		t.Fatalf("a bad value stopped accounting: %v", err)
	}
	if days, _ := s.TrafficDays(5, 5); days[5] != (n(3, 3)) {
		t.Errorf("bad value not replaced: %v", days)
	}
}

func TestTrafficCountEncoding(t *testing.T) {
	for _, c := range []cnt{{}, n(1, 1), n(1<<40, 12345), n(-5, 1)} {
		got, ok := decodeCount(encodeCount(c))
		want := cnt{Bytes: max(c.Bytes, 0), Requests: c.Requests}
		if !ok || got != want {
			t.Errorf("round trip %v = %v, %v", c, got, ok)
		}
	}
	for _, v := range [][]byte{nil, {}, {1}, {1, 1, 1}, {0x80}} {
		if _, ok := decodeCount(v); ok {
			t.Errorf("decodeCount(%x) accepted", v)
		}
	}
}

// sumTraffic sums kind's per-name counts over the days, as a ranking of few names sees them.
func sumTraffic(s *Store, kind traffic.Kind, from, to traffic.Day) (map[string]traffic.Count, error) {
	m := map[string]traffic.Count{}
	err := s.WalkTraffic(kind, from, to, func(name []byte, c traffic.Count) {
		m[string(name)] = m[string(name)].Add(c)
	})
	return m, err
}

// TestTrafficYearReportBounded: the per-day caps (1,000 clients, 5,000 packages) bound a
// day, not a period. A LAN stranger with an IPv6 /64 (or dual-stack clients whose
// temporary addresses rotate daily) brings new client keys every day; after a year,
// /api/traffic?period=365d once summed all 365,000 keys into one map per request: on the
// daemon (a 200 MB amwi.db), 16 reports at once took peak RSS from 239 to 763 MB. A
// ranking now follows a bounded set of candidates (traffic.topCandidates), so eight
// reports at once stay within a few MiB of heap.
func TestTrafficYearReportBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a year of traffic")
	}
	s, err := Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	today := traffic.DayOf(now)
	const days, perDay = 365, 1000
	for i := 0; i < days; i++ {
		day := today - traffic.Day(i)
		b := traffic.Batch{Days: map[traffic.Day]traffic.Count{day: {Bytes: 1 << 30, Requests: perDay}},
			Clients: map[traffic.DayKey]traffic.Count{}}
		for c := 0; c < perDay; c++ {
			b.Clients[traffic.DayKey{Day: day, Key: fmt.Sprintf("2001:db8:%x:%x::%x", i, c, c+1)}] = traffic.Count{Bytes: int64(c + 1), Requests: 1}
		}
		if err := s.AddTraffic(b); err != nil {
			t.Fatal(err)
		}
	}
	r := &traffic.Recorder{Store: s, Now: func() time.Time { return now }}

	// Eight viewers open the Traffic page's 365-day view at once.
	const viewers = 8
	var peak uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var wg sync.WaitGroup
	for range viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if top, err := r.TopClients(days, 20); err != nil || len(top) != 20 {
				t.Errorf("TopClients: %d rows, %v", len(top), err)
			}
		}()
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	grew := int64(peak) - int64(base.HeapAlloc)
	// server.memory_limit_mib defaults to 48 for the whole daemon.
	const budget = 16 << 20
	if grew > budget {
		t.Errorf("%d reports of 365 days at once took the heap up by %d MiB (budget %d MiB for what is 20 rows each)", viewers, grew>>20, budget>>20)
	}
}

// TestTrafficDamagedCountNotNegative: a record damaged on the SD card whose value still
// decodes as two uvarints but holds a number past int64 (a stray 10-byte varint) was read
// as a negative count: the Traffic page's total went negative ("-9223372036854775808 B")
// and the next hit of that day, added to it and clamped to 0, wiped the day. decodeCount
// refuses (skips and counts) what no Count can hold.
func TestTrafficDamagedCountNotNegative(t *testing.T) {
	s := openTrafficStore(t)
	const d = traffic.Day(20000)
	if err := s.AddTraffic(traffic.Batch{Days: map[traffic.Day]traffic.Count{d: {Bytes: 5000, Requests: 5}}}); err != nil {
		t.Fatal(err)
	}
	// The damage: the day's value is now 2^63 bytes, 1 request.
	bad := binary.AppendUvarint(binary.AppendUvarint(nil, 1<<63), 1)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTrafficDays).Put(dayKey(d, ""), bad)
	}); err != nil {
		t.Fatal(err)
	}
	m, err := s.TrafficDays(d, d)
	if err != nil {
		t.Fatal(err)
	}
	if c := m[d]; c.Bytes < 0 || c.Requests < 0 {
		t.Errorf("a damaged record reads as %+v: a negative count reaches the Traffic page", c)
	}
}
