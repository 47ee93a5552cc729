package ondemand

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestSlowDripMovesOn: an upstream that sends a byte now and then, each within the stall
// timeout, never counts as stalled: the fetch held a slot and every client waited for as
// long as the drip lasted (a 64 KiB package at a byte per 200 ms: 3.6 hours), while a
// working fallback sat unused. It must count as stalled and the fetch resume elsewhere.
func TestSlowDripMovesOn(t *testing.T) {
	p := mkpkg("core", "drip-1-1-x86_64.pkg.tar.zst", 64*kib)
	tr := newTree(t, p)
	release := make(chan struct{})
	drip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(p.data)))
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		for i := range p.data {
			if _, err := w.Write(p.data[i : i+1]); err != nil {
				return
			}
			rc.Flush()
			select {
			case <-time.After(200 * time.Millisecond):
			case <-r.Context().Done():
				return
			case <-release:
				return
			}
		}
	}))
	t.Cleanup(func() { close(release); drip.Close() })
	good := newUpstream(t, tr.up)
	e := newEnv(t, tr, []string{drip.URL + "/arch/", good.base}, func(c *Config) { c.StallTimeout = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res := e.doCtx(ctx, http.MethodGet, p.name())
	if ctx.Err() != nil {
		e.f.Close() // end the fetch, so the servers can close
		t.Fatal("a dripping upstream held the fetch for 15 s; the fallback was never asked")
	}
	if res.code != http.StatusOK || res.err != nil || !bytes.Equal(res.body, p.data) {
		t.Fatalf("got %d, %d bytes, err %v; want the package", res.code, len(res.body), res.err)
	}
}

// TestWaitingClientsMemory: every client of a running fetch holds its own copy buffer for
// as long as it is served; at 64 KiB each, the default 4,096 connections waiting on one
// miss (a LAN upgrading at once, or one host opening them) pin 256 MiB on a box with
// 512 MB. Measured here with 200 clients waiting on a stalled fetch: heap per client (its
// server and client connection included, ~40 KiB) was 106 KiB, must stay under 64 KiB.
func TestWaitingClientsMemory(t *testing.T) {
	p := mkpkg("core", "wait-1-1-x86_64.pkg.tar.zst", 1<<20)
	tr := newTree(t, p)
	up := newUpstream(t, tr.up)
	up.gate, up.gateAt = make(chan struct{}), 100*kib
	e := newEnv(t, tr, []string{up.base}, func(c *Config) { c.StallTimeout = time.Minute })
	e.client.Transport.(*http.Transport).MaxConnsPerHost = 0
	e.client.Transport.(*http.Transport).MaxIdleConnsPerHost = 256
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const clients = 200
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.client.Get(e.front.URL + "/" + p.name())
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	<-up.reached
	waitFor(t, "the clients to join", func() bool { return e.f.Stats().Misses == clients })
	time.Sleep(200 * time.Millisecond) // all have their headers and wait for bytes
	runtime.GC()
	runtime.ReadMemStats(&after)
	close(up.gate)
	wg.Wait()
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / clients
	t.Logf("heap per waiting client: %d KiB", per>>10)
	if per > 64<<10 {
		t.Errorf("heap per waiting client %d KiB, want ≤ 64 KiB", per>>10)
	}
}
