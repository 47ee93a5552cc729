package web

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
)

// directThreshold is the body size from which the mirror sends a file straight to the
// socket (see directSend). Smaller files (databases, signatures) keep the ordinary path
// and keep-alive.
const directThreshold = 1 << 20

type connKey struct{}

// withConn is http.Server.ConnContext: it makes the raw connection reachable from the
// request, for directSend.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// directSend lets a handler send a file body with sendfile(2) on the raw connection,
// bypassing net/http's response.ReadFrom. That path holds a 32 KiB copy buffer for the
// whole transfer although sendfile never touches it: with 2,000 slow LAN clients that is
// 64 MB of buffers doing nothing, on a 512 MB board. The handler opts in per response by
// setting "Connection: close" and a Content-Length before WriteHeader: net/http then
// closes the connection after the response, so it never matters that it did not see the
// body bytes go by.
func directSend(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(connKey{}).(net.Conn)
		rf, ok := c.(io.ReaderFrom)
		if !ok || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(&directWriter{ResponseWriter: w, conn: rf}, r)
	})
}

type directWriter struct {
	http.ResponseWriter
	conn    io.ReaderFrom
	flushed bool
}

func (d *directWriter) ReadFrom(src io.Reader) (int64, error) {
	lr, ok := src.(*io.LimitedReader)
	if ok {
		_, ok = lr.R.(*os.File)
	}
	h := d.ResponseWriter.Header()
	if !ok || h.Get("Connection") != "close" || h.Get("Content-Length") == "" {
		return readFrom(d.ResponseWriter, src)
	}
	if !d.flushed {
		// Headers (and anything buffered) go out first, through net/http.
		if err := http.NewResponseController(d.ResponseWriter).Flush(); err != nil {
			return 0, err
		}
		d.flushed = true
	}
	return d.conn.ReadFrom(lr)
}

func (d *directWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
