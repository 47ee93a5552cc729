package web

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// frontWriter is the http.ResponseWriter of the front loop (see Server): HTTP/1.1 framing
// the way net/http does it (Content-Length worked out for a body that fits in the buffer,
// chunked otherwise, nothing for HEAD, 204 and 304), with a ReadFrom that sends a file with
// sendfile(2) on the connection and keeps no buffer meanwhile.
type frontWriter struct {
	c      net.Conn
	req    *http.Request
	header http.Header
	status int // 0 until WriteHeader

	bw      *bufio.Writer // pooled; nil until needed and while a file goes out
	sink    moreSink      // what bw writes to
	headOut bool          // the status line and headers are written (to bw at least)
	cl      int64         // Content-Length announced, -1 when none
	chunked bool
	written int64  // body bytes accepted
	pre     []byte // body written before the head, see Write; then a chunk being gathered
	close   bool   // close the connection after this response
	corked  bool   // TCP_CORK is set for this response's head and file
	// disk is what the sendfile calls of this response learnt of the file: whether the
	// rest goes through Go's ordinary system call path (see sendFile).
	disk   diskState
	failed bool // a write failed: the connection is gone
	// progress moves the write deadline while a file goes out (see sendTimed); nil
	// otherwise.
	progress *sendProgress
}

var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

// errBodyLength is a handler writing more than the Content-Length it announced.
var errBodyLength = errors.New("http: wrote more than the declared Content-Length")

func (w *frontWriter) Header() http.Header { return w.header }

func (w *frontWriter) WriteHeader(code int) {
	if w.status != 0 || code < 200 { // informational answers are not sent: no handler asks for them
		return
	}
	w.status = code
	w.cl = -1
	if v := w.header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			w.header.Del("Content-Length")
		}
	}
}

// bodyAllowed: HEAD, 204 and 304 answers have no body.
func (w *frontWriter) bodyAllowed() bool {
	return w.req.Method != http.MethodHead && w.status != http.StatusNoContent && w.status != http.StatusNotModified
}

func (w *frontWriter) buf() *bufio.Writer {
	if w.bw == nil {
		w.sink.c = w.c
		w.bw = writerPool.Get().(*bufio.Writer)
		w.bw.Reset(&w.sink)
	}
	return w.bw
}

// moreSink is what the buffer writes to: the connection, with MSG_MORE (more data follows
// at once: hold a part-filled segment for it) while more is set.
type moreSink struct {
	c    net.Conn
	more bool
}

func (s *moreSink) Write(p []byte) (int, error) {
	sc, ok := s.c.(syscall.Conn)
	if !s.more || !ok {
		return s.c.Write(p)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	n := 0
	var serr error
	werr := rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, e := unix.SendmsgN(int(fd), p[n:], nil, nil, unix.MSG_MORE)
			switch e {
			case nil:
				n += m
			case unix.EINTR:
			case unix.EAGAIN:
				return false // the socket is full: wait until it takes more
			default:
				serr = e
				return true
			}
		}
		return true
	})
	if serr == nil {
		serr = werr
	}
	return n, serr
}

func (w *frontWriter) release() {
	if w.bw != nil {
		w.bw.Reset(nil)
		writerPool.Put(w.bw)
		w.bw = nil
	}
}

// writeHead writes the status line and headers to the buffer. final says the handler has
// finished, so a body without a Content-Length is all in the buffer and its length known.
func (w *frontWriter) writeHead(final bool, buffered []byte) {
	w.headOut = true
	h := w.header
	if w.bodyAllowed() && w.cl < 0 {
		switch {
		case final:
			w.cl = int64(len(buffered))
			h.Set("Content-Length", strconv.Itoa(len(buffered)))
		case w.req.ProtoAtLeast(1, 1):
			w.chunked = true
			h.Set("Transfer-Encoding", "chunked")
		default:
			w.close = true // an HTTP/1.0 body without a length ends with the connection
		}
	}
	if !w.bodyAllowed() && w.status != http.StatusNotModified && w.req.Method != http.MethodHead {
		h.Del("Content-Length")
	}
	if h.Get("Connection") == "close" {
		w.close = true
	}
	switch {
	case w.close:
		h.Set("Connection", "close")
	case !w.req.ProtoAtLeast(1, 1):
		h.Set("Connection", "keep-alive")
	}
	if _, ok := h["Content-Type"]; !ok && w.bodyAllowed() && len(buffered) > 0 {
		h.Set("Content-Type", http.DetectContentType(buffered))
	}
	if _, ok := h["Date"]; !ok {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	b := w.buf()
	b.WriteString("HTTP/1.1 ")
	b.WriteString(strconv.Itoa(w.status))
	b.WriteByte(' ')
	b.WriteString(http.StatusText(w.status))
	b.WriteString("\r\n")
	h.Write(b)
	b.WriteString("\r\n")
}

// Write frames the body. Until the head is out, a body without a Content-Length waits in
// pre: when the handler ends first, it gets a Content-Length (a short page, an error).
func (w *frontWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.failed {
		return 0, net.ErrClosed
	}
	if !w.bodyAllowed() {
		if w.status == http.StatusNotModified || w.status == http.StatusNoContent {
			return 0, http.ErrBodyNotAllowed
		}
		return len(p), nil // HEAD: the body is dropped, as net/http does
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, errBodyLength
	}
	if !w.headOut {
		if w.cl < 0 && len(w.pre)+len(p) <= preMax {
			w.pre = append(w.pre, p...)
			w.written += int64(len(p))
			return len(p), nil
		}
		if w.cl >= 0 {
			w.writeHead(false, p)
		} else {
			w.flushPre(false)
		}
	}
	if w.chunked && len(p) <= preMax {
		// Gathered into chunks of up to preMax: a template writes a few bytes at a time,
		// and a chunk for each write made a directory index a third longer on the wire.
		if len(w.pre)+len(p) > preMax {
			if err := w.writeChunk(); err != nil {
				return 0, err
			}
		}
		w.pre = append(w.pre, p...)
		w.written += int64(len(p))
		return len(p), nil
	}
	if err := w.writeChunk(); err != nil {
		return 0, err
	}
	n, err := w.writeBody(p)
	w.written += int64(n)
	return n, w.fail(err)
}

// writeChunk writes what waits in pre as one chunk (chunked answers only; pre is empty
// otherwise once the head is out).
func (w *frontWriter) writeChunk() error {
	if len(w.pre) == 0 {
		return nil
	}
	_, err := w.writeBody(w.pre)
	w.pre = w.pre[:0]
	return w.fail(err)
}

// preMax is how much of a body without a Content-Length waits for the handler to end.
const preMax = 4 << 10

// flushPre writes the head, then the body that waited for it.
func (w *frontWriter) flushPre(final bool) {
	w.writeHead(final, w.pre)
	if len(w.pre) > 0 {
		_, err := w.writeBody(w.pre)
		w.fail(err)
	}
	w.pre = w.pre[:0]
}

func (w *frontWriter) writeBody(p []byte) (int, error) {
	b := w.buf()
	if !w.chunked {
		return b.Write(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	b.WriteString(strconv.FormatInt(int64(len(p)), 16))
	b.WriteString("\r\n")
	n, err := b.Write(p)
	b.WriteString("\r\n")
	return n, err
}

func (w *frontWriter) fail(err error) error {
	if err != nil {
		w.failed = true
		w.close = true
	}
	return err
}

// ReadFrom sends a file with sendfile(2) straight to the connection once the head is out;
// the buffer goes back to the pool first, so a download of any length holds none. Other
// sources are copied through Write.
func (w *frontWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	sized, slr, isSized := asSized(src)
	if !(isSized || isFile(src)) || !w.bodyAllowed() || w.cl < 0 {
		return io.CopyBuffer(writerOnly{w}, src, make([]byte, 8<<10))
	}
	if w.failed {
		return 0, net.ErrClosed
	}
	if lr, ok := src.(*io.LimitedReader); ok && w.written+lr.N > w.cl {
		lr.N = w.cl - w.written
	}
	sc, isConn := w.c.(syscall.Conn)
	if bare := isConn && isSized && sized.f == nil; !w.headOut {
		// The head and the file's first bytes must leave in full-sized segments, not a
		// small one each: on a 150 KB file that is a third less CPU per request. For the
		// mirror's files (bare) the head is sent with MSG_MORE, which holds it for the
		// sendfile that follows at once, whose last bytes go without it and push
		// everything out; that is nginx's tcp_nopush without TCP_CORK's two setsockopt
		// calls per request. Other files are corked, and finish uncorks.
		if bare && slr.N > 0 {
			w.sink.more = true
		} else {
			w.corked = setCork(w.c, true)
		}
		w.writeHead(false, nil)
	}
	err := w.flush()
	w.sink.more = false
	if err != nil {
		return 0, err
	}
	w.release()
	if isConn && isSized && sized.f == nil {
		// The mirror's files: sendfile at the reader's offset, no seek (see sendFile).
		whole := sized.pos == 0 && slr.N == sized.size && sized.size <= hotMax
		if whole && !w.disk.slow && sized.hot.has(sized.id) {
			w.disk.hot = true
		}
		n, err := sendFile(sc, sized.fd, &sized.pos, slr.N, &w.disk, w.progress)
		if w.disk.slow || whole && err == nil && n == sized.size {
			sized.hot.sent(sized.id, !w.disk.slow)
		}
		slr.N -= n
		w.written += n
		return n, w.fail(err)
	}
	rf, ok := w.c.(io.ReaderFrom)
	if !ok {
		return io.CopyBuffer(writerOnly{w}, src, make([]byte, 8<<10))
	}
	var n int64
	if isSized {
		n, err = sized.sendTo(rf, slr.N)
		slr.N -= n
	} else {
		n, err = rf.ReadFrom(src)
	}
	w.written += n
	return n, w.fail(err)
}

// sendsItself reports whether ReadFrom sends src with sendFile: a file of the mirror
// (a length-limited sizedFile with no *os.File yet) on a connection, for a response with
// a body and a Content-Length.
func (w *frontWriter) sendsItself(src io.Reader) bool {
	sized, _, ok := asSized(src)
	_, isConn := w.c.(syscall.Conn)
	return ok && sized.f == nil && isConn && !w.failed && w.status != 0 && w.bodyAllowed() && w.cl >= 0
}

// sendTimed sends src, which must be one sendsItself accepts, in one go, the write
// deadline moving with the progress (sendProgress) rather than in deadline chunks;
// counted, when not nil, gets every part that went.
func (w *frontWriter) sendTimed(src io.Reader, timeout time.Duration, counted func(int64)) (int64, error) {
	w.progress = &sendProgress{c: w.c, timeout: timeout, counted: counted}
	defer func() { w.progress = nil }()
	if err := w.progress.start(); err != nil {
		return 0, w.fail(err)
	}
	return w.ReadFrom(src)
}

// isFile is a file or a length-limited file: what the connection's ReadFrom sends with
// sendfile(2).
func isFile(src io.Reader) bool {
	if lr, ok := src.(*io.LimitedReader); ok {
		src = lr.R
	}
	_, ok := src.(*os.File)
	return ok
}

func (w *frontWriter) flush() error {
	if w.bw == nil || w.failed {
		return nil
	}
	return w.fail(w.bw.Flush())
}

// Flush sends the head and what is buffered.
func (w *frontWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headOut {
		w.flushPre(false)
	}
	w.writeChunk()
	w.flush()
}

// FlushError is Flush with its error, for http.ResponseController.
func (w *frontWriter) FlushError() error {
	w.Flush()
	if w.failed {
		return net.ErrClosed
	}
	return nil
}

// SetWriteDeadline and SetReadDeadline serve http.ResponseController.
func (w *frontWriter) SetWriteDeadline(t time.Time) error { return w.c.SetWriteDeadline(t) }
func (w *frontWriter) SetReadDeadline(t time.Time) error  { return w.c.SetReadDeadline(t) }

// finish ends the response after the handler returned; it reports whether the connection
// may carry another request.
func (w *frontWriter) finish() bool {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headOut {
		w.flushPre(true)
	}
	if w.chunked && !w.failed {
		w.writeChunk()
		w.buf().WriteString("0\r\n\r\n")
	}
	if w.bodyAllowed() && w.cl >= 0 && w.written != w.cl {
		w.close = true // the client waits for bytes that will not come: end it
	}
	w.flush()
	w.release()
	if w.corked {
		setCork(w.c, false) // sends what waits in a partial segment
	}
	w.c.SetWriteDeadline(time.Time{})
	return !w.close && !w.failed
}

// setCork sets or clears TCP_CORK on a TCP connection; it reports whether it could.
func setCork(c net.Conn, on bool) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	v := 0
	if on {
		v = 1
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v)
	}); err != nil {
		return false
	}
	return serr == nil
}
