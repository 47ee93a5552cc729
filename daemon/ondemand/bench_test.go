package ondemand

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// BenchmarkMiss compares a miss served through the fetcher with the same 64 MiB file
// downloaded straight from the upstream (net/http's file server, sendfile), both over
// loopback: time to the first body byte and to the last. The file is removed after each
// miss so every round is one. "loopback" is the upstream at full speed (what the fetcher
// itself costs: hashing, writing the disk, reading it back); "20MBps" an upstream at a
// good internet line's rate, as a LAN mirror sees one. Figures come out as metrics:
//
//	go test -run '^$' -bench Miss -benchtime 5x ./daemon/ondemand
func BenchmarkMiss(b *testing.B) {
	b.Run("loopback", func(b *testing.B) { benchMiss(b, 0) })
	b.Run("20MBps", func(b *testing.B) { benchMiss(b, 20e6) })
}

func benchMiss(b *testing.B, rate float64) {
	p := mkpkg("extra", "big-1.0-1-x86_64.pkg.tar.zst", 64<<20)
	tr := newTree(b, p)
	files := http.StripPrefix("/arch/", http.FileServer(http.Dir(tr.up)))
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rate > 0 {
			w = &paced{ResponseWriter: w, rate: rate, start: time.Now()}
		}
		files.ServeHTTP(w, r)
	}))
	defer upSrv.Close()
	up := struct{ base string }{upSrv.URL + "/arch/"}
	f, err := New(Config{Root: tr.root, Upstreams: func() []string { return []string{up.base} },
		MinFreeBytes: func() uint64 { return 0 }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Reload([]string{"extra"}); err != nil {
		b.Fatal(err)
	}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.ServeMiss(w, r, p.name()) {
			http.NotFound(w, r)
		}
	}))
	defer front.Close()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
	fetch := func(url string) (first, total time.Duration) {
		start := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 64<<10)
		n, err := resp.Body.Read(buf)
		first = time.Since(start)
		rest, err2 := io.CopyBuffer(io.Discard, resp.Body, buf)
		if resp.StatusCode != 200 || int64(n)+rest != int64(len(p.data)) || (err != nil && err != io.EOF) || err2 != nil {
			b.Fatalf("GET %s: %d, %d bytes, %v %v", url, resp.StatusCode, int64(n)+rest, err, err2)
		}
		return first, time.Since(start)
	}
	var dFirst, dTotal, mFirst, mTotal time.Duration
	for b.Loop() {
		f1, t1 := fetch(up.base + p.name())
		os.Remove(p.poolPath(tr.root))
		f2, t2 := fetch(front.URL + "/" + p.name())
		dFirst, dTotal, mFirst, mTotal = dFirst+f1, dTotal+t1, mFirst+f2, mTotal+t2
		for f.Stats().Active > 0 { // the fetch ends (and renames) just after the last byte
			time.Sleep(time.Millisecond)
		}
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(dFirst), "direct-ttfb-ms")
	b.ReportMetric(ms(mFirst), "miss-ttfb-ms")
	b.ReportMetric(ms(dTotal), "direct-total-ms")
	b.ReportMetric(ms(mTotal), "miss-total-ms")
	b.ReportMetric(float64(mTotal)/float64(dTotal), "miss/direct-total")
}

// paced writes at most rate bytes per second (hiding ReadFrom, so no sendfile).
type paced struct {
	http.ResponseWriter
	rate  float64
	start time.Time
	sent  int64
}

func (p *paced) Write(b []byte) (int, error) {
	n, err := p.ResponseWriter.Write(b)
	p.sent += int64(n)
	if ahead := time.Duration(float64(p.sent)/p.rate*float64(time.Second)) - time.Since(p.start); ahead > 0 {
		time.Sleep(ahead)
	}
	return n, err
}
