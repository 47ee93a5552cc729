package web

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEventsStopClientAddressesAfterLogout: a live stream opened by a logged-in viewer
// carries the addresses of downloading clients only while its session lasts; after the
// viewer logs out (or is deleted, or changes the password) the open stream goes public.
func TestEventsStopClientAddressesAfterLogout(t *testing.T) {
	t.Parallel()
	o, _ := dashboardOptions(t)
	// A download that stays in flight: a file far larger than the socket buffers, and a
	// client that does not read.
	f, _ := os.Create(filepath.Join(o.MirrorRoot.Name(), "big.pkg"))
	f.Truncate(256 << 20)
	f.Close()
	srv := httptestServer(t, NewHandler(o))
	dl, err := net.Dial("tcp", strings.TrimPrefix(srv, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	fmt.Fprint(dl, "GET /archlinux/big.pkg HTTP/1.1\r\nHost: x\r\n\r\n")

	c := client(t)
	postForm(t, c, srv+"/register", registration("admin", testSetupCode))
	token := csrfOf(t, c, srv+"/users")
	resp, err := c.Get(srv + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	pulses := make(chan string, 100)
	go func() {
		defer close(pulses)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") {
				pulses <- sc.Text()
			}
		}
	}()
	next := func() string {
		select {
		case p := <-pulses:
			return p
		case <-time.After(5 * time.Second):
			t.Fatal("no pulse for 5 s")
		}
		return ""
	}
	seen := false
	for i := 0; i < 5 && !seen; i++ {
		seen = strings.Contains(next(), `"client":"127.0.0.1"`)
	}
	if !seen {
		t.Fatal("the logged-in stream never showed the downloading client")
	}
	if r := postForm(t, c, srv+"/logout", url.Values{"csrf": {token}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.StatusCode)
	}
	deadline := time.Now().Add(eventsSessionCheck + 2*time.Second)
	var last string
	for time.Now().Before(deadline) {
		last = next()
	}
	if strings.Contains(last, `"client"`) || !strings.Contains(last, `"file":"big.pkg"`) {
		t.Errorf("%s after the logout the stream still carries client addresses (or lost the download):\n%s", eventsSessionCheck+2*time.Second, last)
	}
}
