package mirrorlists

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const sampleStatus = `{"cutoff":86400,"last_check":"2023-06-28T19:09:25.337Z","num_checks":157,"check_frequency":534,"version":3,"urls":[
 {"url":"https://a.example/archlinux/","protocol":"https","last_sync":"2023-06-28T18:27:53Z","completion_pct":1,"delay":1710,"duration_avg":1.3,"duration_stddev":0.5,"score":2.3,"active":true,"country":"Germany","country_code":"DE","isos":true,"ipv4":true,"ipv6":true,"details":"https://archlinux.org/mirrors/a/1/"},
 {"url":"rsync://a.example/archlinux/","protocol":"rsync","last_sync":null,"completion_pct":0,"delay":null,"duration_avg":null,"duration_stddev":null,"score":null,"active":true,"country":"Germany","country_code":"DE","isos":true,"ipv4":true,"ipv6":false,"details":"https://archlinux.org/mirrors/a/2/"}]}`

// fakeArch stands in for archlinux.org's /mirrors/status/json/.
type fakeArch struct {
	mu    sync.Mutex
	body  string // what a 200 answer carries
	code  int    // 0 = 200
	hang  bool   // never answer
	chunk bool   // no Content-Length
	hits  atomic.Int32
}

func (f *fakeArch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	f.mu.Lock()
	body, code, hang, chunk := f.body, f.code, f.hang, f.chunk
	f.mu.Unlock()
	if hang {
		<-r.Context().Done()
		return
	}
	if code != 0 {
		http.Error(w, "boom", code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if chunk {
		for b := range strings.SplitSeq(body, "\n") {
			w.Write([]byte(b + "\n"))
			w.(http.Flusher).Flush()
		}
		return
	}
	w.Write([]byte(body))
}

func (f *fakeArch) set(fn func(*fakeArch)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

type cacheEnv struct {
	fake  *fakeArch
	srv   *httptest.Server
	cache *StatusCache
	now   time.Time
}

func newCacheEnv(t *testing.T) *cacheEnv {
	t.Helper()
	e := &cacheEnv{fake: &fakeArch{body: sampleStatus}, now: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	e.srv = httptest.NewServer(e.fake)
	t.Cleanup(e.srv.Close)
	e.cache = &StatusCache{
		URL:    e.srv.URL + "/mirrors/status/json/",
		Path:   filepath.Join(t.TempDir(), "state", "mirror-status.json"),
		Client: &http.Client{Timeout: 2 * time.Second},
		Now:    func() time.Time { return e.now },
	}
	return e
}

type getResult struct {
	s      *Status
	source string
	age    time.Duration
	note   string
	err    error
}

func (e *cacheEnv) get(t *testing.T, refresh bool) getResult {
	t.Helper()
	var r getResult
	r.s, r.source, r.age, r.note, r.err = e.cache.Get(context.Background(), refresh)
	return r
}

func (e *cacheEnv) cacheBytes(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(e.cache.Path)
	if err != nil {
		t.Fatalf("cache file: %v", err)
	}
	return b
}

func TestStatusCacheFetchThenCache(t *testing.T) {
	e := newCacheEnv(t)
	r := e.get(t, false)
	if r.err != nil || r.source != "fetched" || r.age != 0 || r.note != "" || len(r.s.URLs) != 2 {
		t.Fatalf("first Get: %+v", r)
	}
	var f cacheFile
	if err := json.Unmarshal(e.cacheBytes(t), &f); err != nil || f.URL != e.cache.URL || !f.FetchedAt.Equal(e.now) {
		t.Fatalf("cache file: %+v, %v", f, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(e.cache.Path)); len(entries) != 1 {
		t.Errorf("temp files left beside the cache: %v", entries)
	}

	e.now = e.now.Add(10 * time.Minute)
	r = e.get(t, false)
	if r.err != nil || r.source != "cache" || r.age != 10*time.Minute || r.note != "" || len(r.s.URLs) != 2 || e.fake.hits.Load() != 1 {
		t.Fatalf("Get within MaxAge: source %q age %s note %q hits %d err %v", r.source, r.age, r.note, e.fake.hits.Load(), r.err)
	}
	if d := r.s.URLs[1].Delay; d != nil {
		t.Errorf("cached copy lost a null: delay %d", *d)
	}

	r = e.get(t, true)
	if r.err != nil || r.source != "fetched" || e.fake.hits.Load() != 2 {
		t.Fatalf("refresh: source %q hits %d err %v", r.source, e.fake.hits.Load(), r.err)
	}

	e.now = e.now.Add(time.Hour + time.Second)
	if r = e.get(t, false); r.source != "fetched" || e.fake.hits.Load() != 3 {
		t.Fatalf("after MaxAge: source %q hits %d", r.source, e.fake.hits.Load())
	}

	e.cache.URL += "?other"
	if r = e.get(t, false); r.source != "fetched" || e.fake.hits.Load() != 4 {
		t.Errorf("another URL: source %q hits %d; want a fetch", r.source, e.fake.hits.Load())
	}
}

func TestStatusCacheOffline(t *testing.T) {
	e := newCacheEnv(t)
	if r := e.get(t, false); r.err != nil {
		t.Fatal(r.err)
	}
	e.srv.Close() // archlinux.org unreachable
	e.now = e.now.Add(3*time.Hour + 30*time.Second)
	r := e.get(t, false)
	if r.err != nil || r.source != "cache" || r.age != 3*time.Hour+30*time.Second || len(r.s.URLs) != 2 {
		t.Fatalf("offline with a cache: %+v", r)
	}
	for _, w := range []string{"could not refresh", e.cache.URL, "3h0m30s ago", "2024-01-02T03:04:05Z"} {
		if !strings.Contains(r.note, w) {
			t.Errorf("note %q lacks %q", r.note, w)
		}
	}

	// a clock that went back (an SBC without RTC before NTP): refetch, report age 0
	e.now = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	if r := e.get(t, false); r.err != nil || r.source != "cache" || r.age != 0 || !strings.Contains(r.note, "clock is behind") {
		t.Errorf("clock behind: %+v", r)
	}

	os.Remove(e.cache.Path)
	r = e.get(t, false)
	if r.err == nil || r.s != nil || !strings.Contains(r.err.Error(), e.cache.URL) || strings.Count(r.err.Error(), e.cache.URL) != 1 {
		t.Errorf("offline without a cache: err %v; want it to name the URL once", r.err)
	}
}

func TestStatusCacheKeepsGoodCopy(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(*fakeArch, *StatusCache)
		wantErr []string
	}{
		{"HTTP 500", func(f *fakeArch, _ *StatusCache) { f.code = http.StatusInternalServerError }, []string{"HTTP 500"}},
		{"HTTP 404", func(f *fakeArch, _ *StatusCache) { f.code = http.StatusNotFound }, []string{"HTTP 404"}},
		{"HTML page", func(f *fakeArch, _ *StatusCache) { f.body = "<html>maintenance</html>" }, []string{"not a JSON object"}},
		{"truncated JSON", func(f *fakeArch, _ *StatusCache) { f.body = sampleStatus[:100] }, []string{"truncated JSON"}},
		{"invalid JSON", func(f *fakeArch, _ *StatusCache) { f.body = `{"urls":[}` }, []string{"invalid JSON"}},
		{"no urls", func(f *fakeArch, _ *StatusCache) { f.body = `{"cutoff":1}` }, []string{`no "urls"`}},
		{"oversize", func(f *fakeArch, c *StatusCache) { c.MaxSize = int64(len(sampleStatus)) - 1 }, []string{"refused", "limit"}},
		{"oversize, chunked", func(f *fakeArch, c *StatusCache) { f.chunk = true; c.MaxSize = int64(len(sampleStatus)) - 1 }, []string{"larger than the limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCacheEnv(t)
			if r := e.get(t, false); r.err != nil {
				t.Fatal(r.err)
			}
			before := e.cacheBytes(t)
			e.fake.set(func(f *fakeArch) { tt.setup(f, e.cache) })
			e.now = e.now.Add(2 * time.Hour)
			r := e.get(t, false)
			if r.err != nil || r.source != "cache" || r.age != 2*time.Hour || len(r.s.URLs) != 2 {
				t.Fatalf("want the cached copy: %+v", r)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(r.note, w) {
					t.Errorf("note %q lacks %q", r.note, w)
				}
			}
			if !bytes.Equal(e.cacheBytes(t), before) {
				t.Error("a bad answer overwrote the cache")
			}

			// and with no cache, the same failure is an error naming the URL
			os.Remove(e.cache.Path)
			r = e.get(t, false)
			if r.err == nil || !strings.Contains(r.err.Error(), e.cache.URL) || !strings.Contains(r.err.Error(), tt.wantErr[0]) {
				t.Errorf("no cache: err %v", r.err)
			}
			if _, err := os.Stat(e.cache.Path); err == nil {
				t.Error("a bad answer created a cache")
			}
		})
	}
}

func TestStatusCacheHangingServer(t *testing.T) {
	e := newCacheEnv(t)
	e.fake.set(func(f *fakeArch) { f.hang = true })
	e.cache.Client = &http.Client{Timeout: 200 * time.Millisecond}
	start := time.Now()
	r := e.get(t, false)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Get took %s with a 200ms client timeout", took)
	}
	if r.err == nil || !strings.Contains(r.err.Error(), e.cache.URL) || !strings.Contains(r.err.Error(), "Timeout") {
		t.Errorf("err %v; want a timeout naming the URL", r.err)
	}

	// the caller's context bounds it too
	e.cache.Client = nil // default 20 s
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, _, _, _, err := e.cache.Get(ctx, true)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("context deadline: err %v after %s", err, time.Since(start))
	}
}

func TestStatusCacheBrokenCacheFile(t *testing.T) {
	e := newCacheEnv(t)
	writeFiles(t, filepath.Dir(e.cache.Path), map[string]string{filepath.Base(e.cache.Path): "{half a file"})
	if r := e.get(t, false); r.err != nil || r.source != "fetched" {
		t.Fatalf("a broken cache file should be replaced by a fetch: %+v", r)
	}
	if !bytes.Contains(e.cacheBytes(t), []byte(`"fetched_at"`)) {
		t.Error("cache not rewritten")
	}

	writeFiles(t, filepath.Dir(e.cache.Path), map[string]string{filepath.Base(e.cache.Path): `{"something":"else"}`})
	e.srv.Close()
	r := e.get(t, false)
	if r.err == nil || !strings.Contains(r.err.Error(), e.cache.URL) || !strings.Contains(r.err.Error(), "not an AMWI mirror status cache") {
		t.Errorf("offline with a foreign cache file: err %v", r.err)
	}
}

func TestStatusCacheUnwritableCache(t *testing.T) {
	e := newCacheEnv(t)
	blocker := filepath.Join(t.TempDir(), "file")
	writeFiles(t, filepath.Dir(blocker), map[string]string{"file": "x"})
	e.cache.Path = filepath.Join(blocker, "mirror-status.json") // its "dir" is a file
	r := e.get(t, false)
	if r.err != nil || r.source != "fetched" || !strings.Contains(r.note, "could not keep a copy") {
		t.Errorf("unwritable cache: %+v; want the fetched status and a note", r)
	}
}

func TestStatusCacheConcurrent(t *testing.T) {
	e := newCacheEnv(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, _, _, _, err := e.cache.Get(context.Background(), false); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := e.fake.hits.Load(); n != 1 {
		t.Errorf("%d fetches for 8 concurrent Gets, want 1", n)
	}
}
