package daemon

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/daemon/traffic"
	"github.com/amwi/amwi/web"
)

// TestMirrorTrafficCountsOnlyDownloads: the Traffic page, /api/traffic and the Overview
// say "mirror downloads" ("Only mirror downloads count as traffic", README), but
// Daemon.count records every request under /archlinux/ that does not end in "/" as one,
// whatever its status: a stranger's 404s (a scanner trying /archlinux/wp-login.php), the
// 301 of a folder asked without its slash, a 405 for a POST — each adds to today's mirror
// requests and bytes and puts the stranger among the top clients. Seen live: five 404s
// from 127.0.0.5 gave "mirror": {"bytes": 95, "requests": 5} and 127.0.0.5 as top client.
func TestMirrorTrafficCountsOnlyDownloads(t *testing.T) {
	st, err := store.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := &Daemon{traffic: &traffic.Recorder{Store: st}}
	stranger := netip.MustParseAddr("192.168.1.66")
	now := time.Now()
	for _, tr := range []struct {
		method, path string
		status       int
		bytes        int64
	}{
		{"GET", "/archlinux/wp-login.php", http.StatusNotFound, 19},
		{"GET", "/archlinux/core/os/x86_64/nothere-1-1-x86_64.pkg.tar.zst", http.StatusNotFound, 19},
		{"GET", "/archlinux/core/os", http.StatusMovedPermanently, 54},
		{"POST", "/archlinux/core.db", http.StatusMethodNotAllowed, 23},
	} {
		d.count(web.Transfer{Request: httptest.NewRequest(tr.method, tr.path, nil), Status: tr.status, Bytes: tr.bytes,
			Client: stranger, Start: now, End: now})
	}
	if b, n := d.traffic.Today(); n != 0 || b != 0 {
		t.Errorf("after only 404/301/405 answers under /archlinux/, today's mirror downloads are %d requests, %d bytes; want none", n, b)
	}
	top, err := d.traffic.TopClients(1, 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range top {
		if c.Key == stranger.String() {
			t.Errorf("a client that downloaded nothing is ranked among the top clients: %+v", c)
		}
	}
}
