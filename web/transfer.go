package web

import (
	"io"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"
)

// Transfer is one finished request as traffic accounting sees it.
type Transfer struct {
	Request *http.Request
	Status  int
	// Bytes is the body bytes really handed to the connection, counted for partial and
	// aborted downloads too.
	Bytes int64
	// Client is the client's address, read once per request (trusted proxies applied).
	Client netip.Addr
	Start  time.Time
	End    time.Time
}

// Count calls onDone with every finished request's status, body bytes and client (client
// reads it once; the live view takes it from the writer). Its ResponseWriter keeps
// ReadFrom and Unwrap, so wrapping a download costs no copy: the file still goes out with
// sendfile(2), and the byte count comes from ReadFrom's return value.
func Count(next http.Handler, now func() time.Time, client func(*http.Request) netip.Addr, onDone func(Transfer)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w, client: client(r)}
		start := now()
		defer func() {
			status := cw.status
			if status == 0 {
				status = http.StatusOK
			}
			onDone(Transfer{Request: r, Status: status, Bytes: cw.sent.Load(), Client: cw.client, Start: start, End: now()})
		}()
		next.ServeHTTP(cw, r)
	})
}

// countingWriter counts the body bytes handed to the connection. sent and size are atomic
// because the live view (Active) reads them while the download runs.
type countingWriter struct {
	http.ResponseWriter
	client netip.Addr
	status int
	sent   atomic.Int64
	size   atomic.Int64 // Content-Length declared, 0 when none
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 && code >= 200 {
		c.status = code
		c.size.Store(contentLength(c.Header()))
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	n, err := c.ResponseWriter.Write(p)
	c.sent.Add(int64(n))
	return n, err
}

// ReadFrom keeps the copy zero-copy. A large file goes out in deadline chunks (see
// deadlineWriter), so the count moves as the download does.
func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	n, err := readFrom(c.ResponseWriter, src)
	c.sent.Add(n)
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// counted adds n body bytes that went out past this writer (a file the front loop sent
// itself, see deadlineWriter.ReadFrom).
func (c *countingWriter) counted(n int64) { c.sent.Add(n) }
