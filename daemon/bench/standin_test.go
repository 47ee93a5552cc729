package bench

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/amwi/amwi/internal/archtest"
)

// mirror describes a stand-in Arch mirror served over http on loopback.
type mirror struct {
	rate     float64   // bytes/s at which extra.db is served
	size     int       // bytes of extra.db; 0: rate × 0.3 s (at least 16 kB, at most 2 MiB)
	lastsync time.Time // zero: lastsync answers 404
	fail     string    // "": healthy; "500", "refused", "hang", "truncate", "db404"
}

const dbPath = "/extra/os/x86_64/extra.db"

// startMirror serves m until the test ends and returns its root URL (with trailing slash).
func startMirror(tb testing.TB, m mirror) string {
	tb.Helper()
	if m.fail == "refused" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nothing listens there any more: connect is refused
		return "http://" + addr + "/"
	}
	size := m.size
	if size == 0 {
		size = min(max(int(m.rate*0.3), 16<<10), 2<<20)
	}
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case m.fail == "hang":
			select { // never answers; gives up when the client does or the test ends
			case <-r.Context().Done():
			case <-stop:
			}
		case m.fail == "500":
			http.Error(w, "backend on fire", http.StatusInternalServerError)
		case r.URL.Path == "/lastsync":
			if m.lastsync.IsZero() {
				http.NotFound(w, r)
				return
			}
			fmt.Fprintf(w, "%d\n", m.lastsync.Unix())
		case r.URL.Path == dbPath && m.fail != "db404":
			servePaced(w, r, size, m.rate, m.fail == "truncate", stop)
		default:
			http.NotFound(w, r)
		}
	}))
	tb.Cleanup(func() { close(stop); srv.Close() })
	return srv.URL + "/"
}

// servePaced sends size bytes at rate bytes/s: headers at once, then equal chunks (at
// least 20, at least 50 a second), each due when the rate says its last byte is, so a
// client timing from the headers to the last byte sees the rate itself. A truncated body
// stops halfway, short of its Content-Length.
func servePaced(w http.ResponseWriter, r *http.Request, size int, rate float64, truncate bool, stop <-chan struct{}) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(size))
	w.WriteHeader(http.StatusOK)
	f := w.(http.Flusher)
	f.Flush()
	chunk := max(1, min((size+19)/20, int(rate/50)))
	buf := make([]byte, chunk)
	start := time.Now()
	for sent := 0; sent < size; {
		k := min(chunk, size-sent)
		due := start.Add(time.Duration(float64(sent+k) / rate * float64(time.Second)))
		t := time.NewTimer(time.Until(due))
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-stop:
			t.Stop()
			return
		}
		if _, err := w.Write(buf[:k]); err != nil {
			return
		}
		f.Flush()
		sent += k
		if truncate && sent >= size/2 {
			return // net/http closes the connection: the body is short
		}
	}
}

// startRsyncd runs a real rsync daemon whose module holds lastupdate (content as given).
func startRsyncd(tb testing.TB, lastupdate string) *archtest.Rsyncd {
	tb.Helper()
	dir := tb.TempDir()
	if lastupdate != "" {
		if err := os.WriteFile(filepath.Join(dir, "lastupdate"), []byte(lastupdate), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return archtest.StartRsyncd(tb, dir)
}

// deadRsync is an rsync URL where nothing listens.
const deadRsync = "rsync://127.0.0.1:1/x/"

func lastupdateNow() string { return strconv.FormatInt(time.Now().Unix(), 10) + "\n" }
