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
// say "mirror downloads". A request under /archlinux/ that served nothing (a scanner's
// 404, the 301 of a folder asked without its slash, a 405 for a POST) is none: it once
// added to today's mirror requests and put the stranger among the top clients. A HEAD of
// a package is a mirror request but no download of the package (used mode keeps what was
// downloaded). A 304 (pacman -Sy asking whether a database changed) is mirror traffic.
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
	lan := netip.MustParseAddr("192.168.1.10")
	for _, tr := range []struct {
		method, path string
		status       int
	}{
		{"HEAD", "/archlinux/extra/os/x86_64/vim-9.1.0-1-x86_64.pkg.tar.zst", http.StatusOK},
		{"GET", "/archlinux/core/os/x86_64/core.db", http.StatusNotModified},
	} {
		d.count(web.Transfer{Request: httptest.NewRequest(tr.method, tr.path, nil), Status: tr.status, Client: lan, Start: now, End: now})
	}
	if _, n := d.traffic.Today(); n != 2 {
		t.Errorf("a HEAD and a 304 under /archlinux/ made %d mirror requests, want 2", n)
	}
	if pkgs, err := d.traffic.TopPackages(1, 0); err != nil || len(pkgs) != 0 {
		t.Errorf("a HEAD counted as a package download: %+v %v", pkgs, err)
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
