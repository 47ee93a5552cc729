package ondemand

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
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
