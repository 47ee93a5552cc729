package web

import (
	"io"
	"net/http"
	"time"
)

// Transfer is one finished request as traffic accounting sees it.
type Transfer struct {
	Request *http.Request
	Status  int
	// Bytes is the body bytes really handed to the connection, counted for partial and
	// aborted downloads too.
	Bytes int64
	Start time.Time
	End   time.Time
}

// Count calls onDone with every finished request's status and body bytes. Its
// ResponseWriter keeps ReadFrom and Unwrap, so wrapping a download costs no copy: the file
// still goes out with sendfile(2), and the byte count comes from ReadFrom's return value.
func Count(next http.Handler, now func() time.Time, onDone func(Transfer)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		start := now()
		defer func() {
			status := cw.status
			if status == 0 {
				status = http.StatusOK
			}
			onDone(Transfer{Request: r, Status: status, Bytes: cw.n, Start: start, End: now()})
		}()
		next.ServeHTTP(cw, r)
	})
}

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 && code >= 200 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := readFrom(c.ResponseWriter, src)
	c.n += n
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
