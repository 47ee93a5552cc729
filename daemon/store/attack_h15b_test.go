package store

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amwi/amwi/daemon/traffic"
)

// TestTrafficYearReportBounded: the per-day caps (1,000 clients, 5,000 packages) bound a
// day, not a period. A LAN stranger with an IPv6 /64 (or simply dual-stack clients whose
// temporary addresses rotate daily) brings new client keys every day; after a year,
// /api/traffic?period=365d (and /traffic?period=365d) sums every one of the 365,000 keys
// into one map per request before keeping the top 20 (Store.sumNames, Recorder.TopClients,
// rank), and nothing limits how many such reports run at once.
//
// Measured on the daemon (200 MB amwi.db from 365 × (1,000 clients + 5,000 packages)):
// one 365d report 0.73 s; 16 at once took 25.7 s and peak RSS (VmHWM) went from 239 MB
// to 763 MB, about 560 MB of heap on a box whose memory_limit_mib is 48 and which may
// have 512 MB in all. Reports at once should share one reading, or a report should not
// need memory in proportion to days × cap.
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
// decodes as two uvarints but holds a number past int64 (a stray 10-byte varint) is read
// as a negative count: the period's "mirror" total in /api/traffic and the Traffic page
// goes negative ("-9223372036854775808 B"), and the next hit of that day is added to it
// and clamped to 0 by encodeCount, wiping the day. decodeCount should refuse (skip and
// count) what no Count can hold.
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
