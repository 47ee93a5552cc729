package web

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the HTTP server of the box: a connection loop of its own for mirror downloads,
// in front of an ordinary http.Server for everything else.
//
// Why it exists: on a Raspberry Pi the network card is the limit and memory is scarce, and
// a LAN's pacman clients download packages all day over kept-alive connections. net/http
// gives every connection a second goroutine (the background reader), 10 KiB of buffers
// and, while it copies a file, a 32 KiB copy buffer it never touches (sendfile does the
// work). With 2,000 slow clients that was 76–98 MiB of RSS, and the earlier way around the
// copy buffer (closing the connection after every large file) cost pacman a new
// connection per package.
//
// How: each connection is one goroutine that peeks at the request line. A GET or HEAD
// under MirrorPrefix is parsed with http.ReadRequest and answered by the same handler as
// every other request (headers, Range, 304, accounting and the live view all come from
// there) through frontWriter, which holds no buffer while a file goes out with sendfile(2)
// and keeps the connection alive afterwards. The read buffer goes back to a pool between
// requests. Anything else (the dashboard, the APIs, a request line it does not like) is
// handed, with the bytes already read, to the http.Server, which keeps that connection.
//
// What it buys (make bench, 2 cores, loopback; figures in the README's "Serving" section):
// a download in flight costs one goroutine stack and about 3 KiB of heap, an idle
// kept-alive connection a goroutine and a few hundred bytes, and the total is capped by
// MaxConns (idle connections are closed to make room, and a 503 beyond it when none is).
type Server struct {
	h        http.Handler
	mirror   http.Handler // h's mirror without the router, when h has one (MirrorHandler)
	log      *slog.Logger
	maxConns int64
	std      *http.Server // everything that is not a mirror download
	handoff  *chanListener
	stdOnce  sync.Once // std serves the handed-off connections from the first Serve on

	open     atomic.Int64 // connections accepted and not yet closed, ours and std's
	accepted atomic.Int64
	refused  atomic.Int64 // over maxConns
	closing  atomic.Bool
	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	conns    map[*frontConn]struct{}
}

// ServerOptions are the knobs of NewServer.
type ServerOptions struct {
	Log *slog.Logger
	// MaxConns caps the open connections (server.max_connections). At the cap a new
	// connection closes idle ones to make room (see drainIdle); when none is idle it gets
	// a 503 and is closed. 0 means DefaultMaxConns.
	MaxConns int
}

// DefaultMaxConns is server.max_connections' default: 2,000 slow LAN clients and room for
// the dashboard.
const DefaultMaxConns = 4096

// Timeouts and limits, the same for both halves of the server.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	// maxHeaderBytes is the whole request head. net/http allows 4 KiB on top of its
	// MaxHeaderBytes, so std is given 12 KiB for the same 16 KiB.
	maxHeaderBytes = 16 << 10
)

// NewServer returns the server for h.
//
// There is deliberately no read or write timeout for a whole request: a 300 MB package to
// a LAN client at 20 KB/s is a legitimate four-hour response. Slowloris is stopped where it
// happens instead: headers must arrive within 10 s and fit in 16 KiB, idle kept-alive
// connections are closed after 2 minutes, request bodies have their own deadline (see
// guardRequests), and a download whose client stops accepting data is cut by the mirror's
// send timeout.
func NewServer(h http.Handler, o ServerOptions) *Server {
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	s := &Server{
		h:        h,
		log:      o.Log,
		maxConns: int64(o.MaxConns),
		handoff:  newChanListener(),
		lns:      map[net.Listener]struct{}{},
		conns:    map[*frontConn]struct{}{},
	}
	if mh, ok := h.(interface{ MirrorHandler() http.Handler }); ok {
		s.mirror = mh.MirrorHandler()
	}
	s.std = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes - 4<<10,
		ErrorLog:          slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug),
	}
	return s
}

// Open is the number of open connections.
func (s *Server) Open() int64 { return s.open.Load() }

// ConnStats are the server's connection counters, for /metrics.
type ConnStats struct{ Open, Max, Accepted, Refused int64 }

// Stats reads the connection counters.
func (s *Server) Stats() ConnStats {
	return ConnStats{Open: s.open.Load(), Max: s.maxConns, Accepted: s.accepted.Load(), Refused: s.refused.Load()}
}

// Serve accepts connections on l until the server is shut down; it then returns
// http.ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		l.Close()
		return http.ErrServerClosed
	}
	s.lns[l] = struct{}{}
	s.mu.Unlock()
	s.stdOnce.Do(func() { go s.std.Serve(s.handoff) })
	defer func() {
		s.mu.Lock()
		delete(s.lns, l)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				// Out of file descriptors and the like: wait a little, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("http: accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.accepted.Add(1)
		if s.open.Add(1) > s.maxConns && !s.drainIdle() {
			s.open.Add(-1)
			s.refused.Add(1)
			go refuse(c)
			continue
		}
		fc := &frontConn{s: s, c: c}
		s.track(fc, true)
		go fc.serve()
	}
}

// isTemporary is accept's "try again" errors (EMFILE, ENFILE, ECONNABORTED, …).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// refuse answers a connection over the limit: a 503 pacman reads as "try the next Server".
func refuse(c net.Conn) {
	c.SetDeadline(time.Now().Add(time.Second))
	writeReply(c, http.StatusServiceUnavailable, "503 too many connections to this mirror now", "Retry-After: 10\r\n")
	c.Close()
}

// writeReply writes a short plain-text answer that ends the connection; extra is more
// header lines, each ending in CRLF.
func writeReply(c net.Conn, code int, msg, extra string) {
	io.WriteString(c, "HTTP/1.1 "+strconv.Itoa(code)+" "+http.StatusText(code)+
		"\r\nContent-Type: text/plain; charset=utf-8\r\n"+extra+"Connection: close\r\nContent-Length: "+
		strconv.Itoa(len(msg)+2)+"\r\n\r\n"+msg+"\r\n")
}

func (s *Server) track(fc *frontConn, add bool) {
	s.mu.Lock()
	if add {
		s.conns[fc] = struct{}{}
	} else {
		delete(s.conns, fc)
	}
	s.mu.Unlock()
}

// Shutdown stops accepting, closes idle connections, and waits for the requests in flight
// (downloads included) until ctx ends; it then returns ctx's error and leaves the rest
// to Close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.closeListeners()
	stdDone := make(chan error, 1)
	go func() { stdDone <- s.std.Shutdown(ctx) }()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if s.closeIdle() == 0 {
			return <-stdDone
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.closing.Store(true)
	s.closeListeners()
	s.mu.Lock()
	for fc := range s.conns {
		fc.c.Close()
	}
	s.mu.Unlock()
	return s.std.Close()
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	for l := range s.lns {
		l.Close()
	}
	s.mu.Unlock()
	s.handoff.Close() // also when std never served
}

// drainBatch is how many idle connections drainIdle closes at most at a time (nginx's
// ngx_drain_connections closes 32 too).
const drainBatch = 32

// drainIdle makes room when the connections are at MaxConns, as nginx does when it runs
// out of worker_connections: it closes up to drainBatch of ours that wait for a request
// (kept alive between two packages, or opened and silent so far), chosen at random, and
// reports whether it closed any. Without it anyone on the LAN holding max_connections
// idle sockets (reconnecting every 10 s, or kept alive for 2 minutes after one request)
// shut every pacman client and the dashboard out with 503s. A client whose kept-alive
// connection is closed this way opens another (curl retries a reused connection that
// fails before any answer). Each connection closed here is still counted in open until
// its goroutine ends, so admitting the new one does not take open past the cap for long.
func (s *Server) drainIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for fc := range s.conns {
		if n == drainBatch {
			break
		}
		if fc.state.CompareAndSwap(stateIdle, stateClosed) {
			fc.c.Close()
			n++
		}
	}
	if n > 0 {
		s.log.Debug("http: max_connections reached; closed idle connections", "closed", n)
	}
	return n > 0
}

// closeIdle closes the connections waiting for a request and says how many of ours are
// still open.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for fc := range s.conns {
		if fc.state.CompareAndSwap(stateIdle, stateClosed) {
			fc.c.Close()
		}
	}
	return len(s.conns)
}

// Connection states, for Shutdown.
const (
	stateIdle   = iota // waiting for the first byte of a request
	stateActive        // reading a request or answering it
	stateClosed
)

// frontConn is one connection served by the front loop.
type frontConn struct {
	s     *Server
	c     net.Conn
	state atomic.Int32
	br    *bufio.Reader // pooled; held only while a request is read or bytes wait in it
	// first holds what the read that ended an idle wait got (a whole request head, most
	// often), and pending the part of it not yet given to br.
	first   [512]byte
	pending []byte
	// limit is what br may still read from c for this request's head.
	limit int
}

// Read is what br reads from: the bytes of the idle wait first, then c within the limit.
func (fc *frontConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(fc.pending) > 0 {
		n := copy(p, fc.pending)
		fc.pending = fc.pending[n:]
		return n, nil
	}
	if fc.limit <= 0 {
		return 0, errHeadTooLarge
	}
	if len(p) > fc.limit {
		p = p[:fc.limit]
	}
	n, err := fc.c.Read(p)
	fc.limit -= n
	return n, err
}

var errHeadTooLarge = errors.New("request head too large")

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

func (fc *frontConn) close() {
	if fc.br != nil {
		fc.br.Reset(nil)
		readerPool.Put(fc.br)
		fc.br = nil
	}
	fc.state.Store(stateClosed)
	fc.c.Close()
	fc.s.track(fc, false)
	fc.s.open.Add(-1)
}

func (fc *frontConn) serve() {
	handedOff := false
	defer func() {
		if err := recover(); err != nil && err != http.ErrAbortHandler {
			fc.s.log.Error("http: panic serving a request", "client", fc.c.RemoteAddr().String(), "err", err)
		}
		if !handedOff {
			fc.close()
		}
	}()
	first := true
	for {
		// Wait for the next request without the 4 KiB buffer: a kept-alive connection
		// between two packages costs its goroutine and this struct only.
		if fc.br == nil || fc.br.Buffered() == 0 {
			wait := idleTimeout
			if first {
				wait = readHeaderTimeout
			}
			fc.c.SetReadDeadline(time.Now().Add(wait))
			if fc.br != nil {
				fc.br.Reset(nil)
				readerPool.Put(fc.br)
				fc.br = nil
			}
			n, err := fc.c.Read(fc.first[:])
			if n == 0 {
				if err == nil {
					continue
				}
				return
			}
			fc.pending = fc.first[:n]
			fc.br = readerPool.Get().(*bufio.Reader)
			fc.br.Reset(fc)
		}
		if !fc.state.CompareAndSwap(stateIdle, stateActive) {
			return // Shutdown closed it
		}
		first = false
		fc.limit = maxHeaderBytes
		fc.c.SetReadDeadline(time.Now().Add(readHeaderTimeout))
		mine, err := fc.isMirrorRequest()
		if err != nil {
			if errors.Is(err, errHeadTooLarge) {
				fc.reply(http.StatusRequestHeaderFieldsTooLarge, "431 request header fields too large")
			}
			return
		}
		if !mine {
			handedOff = true
			fc.handOff()
			return
		}
		req, err := http.ReadRequest(fc.br)
		if err != nil {
			if errors.Is(err, errHeadTooLarge) {
				fc.reply(http.StatusRequestHeaderFieldsTooLarge, "431 request header fields too large")
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) {
				fc.reply(http.StatusBadRequest, "400 bad request")
			}
			return
		}
		if msg := headProblem(req); msg != "" {
			fc.reply(http.StatusBadRequest, "400 "+msg)
			return
		}
		fc.c.SetReadDeadline(time.Time{})
		req.RemoteAddr = fc.c.RemoteAddr().String()
		w := &frontWriter{c: fc.c, req: req, header: http.Header{}, cl: -1}
		w.close = req.Close || req.ContentLength != 0 || len(req.TransferEncoding) > 0 || fc.s.closing.Load()
		h := fc.s.h
		if fc.s.mirror != nil && routerNeutral(req) {
			h = fc.s.mirror
		}
		h.ServeHTTP(w, req)
		if !w.finish() {
			return
		}
		if !fc.state.CompareAndSwap(stateActive, stateIdle) || fc.s.closing.Load() {
			return
		}
	}
}

// isMirrorRequest peeks at the request line: GET or HEAD of a path under MirrorPrefix,
// HTTP/1.0 or 1.1. A line longer than br's buffer is not one (std answers it).
func (fc *frontConn) isMirrorRequest() (bool, error) {
	for n := 1; ; {
		b, err := fc.br.Peek(n)
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line := bytes.TrimSuffix(b[:i], []byte("\r"))
			target, ok := bytes.CutPrefix(line, []byte("GET "))
			if !ok {
				target, ok = bytes.CutPrefix(line, []byte("HEAD "))
			}
			ok = ok && bytes.HasPrefix(target, []byte(MirrorPrefix)) &&
				(bytes.HasSuffix(target, []byte(" HTTP/1.1")) || bytes.HasSuffix(target, []byte(" HTTP/1.0")))
			return ok, nil
		}
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return false, nil
			}
			return false, err
		}
		// Look at all that arrived; wait for more only when it holds no whole line.
		if n = fc.br.Buffered(); n == len(b) {
			n++
		}
	}
}

// routerNeutral is a path the router would pass on as it is: no escapes it could read
// differently, nothing its cleaning would redirect (//, /./, /../).
func routerNeutral(r *http.Request) bool {
	p := r.URL.Path
	if r.URL.RawPath != "" || !strings.HasPrefix(p, MirrorPrefix) {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") {
		c += "/"
	}
	return c == p
}

// headProblem is what net/http refuses in a request head that http.ReadRequest lets
// through; "" when nothing. (ReadRequest refuses a second Host header itself.)
func headProblem(r *http.Request) string {
	if r.ProtoAtLeast(1, 1) && r.Host == "" {
		return "missing required Host header"
	}
	if !validHost(r.Host) {
		return "malformed Host header"
	}
	// ReadRequest keeps a name with a space before the colon ("Content-Length : 5") as a
	// header of its own (go.dev/issue/34540) and reads no body; a proxy in front that took
	// it for a Content-Length or Transfer-Encoding would send the body on as a second
	// request. RFC 9112 section 5.1 says reject; net/http does.
	for k := range r.Header {
		if !validFieldName(k) {
			return "invalid header name"
		}
	}
	return ""
}

// validFieldName is an RFC 9110 token: the characters a header name may hold.
func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHost is a Host header without spaces, control characters or anything a URL's
// authority cannot hold.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`"<>\^`+"`"+`{|}/?#`), c) >= 0 {
			return false
		}
	}
	return true
}

// reply writes a short error and leaves the connection to be closed.
func (fc *frontConn) reply(code int, msg string) {
	fc.c.SetWriteDeadline(time.Now().Add(readHeaderTimeout))
	writeReply(fc.c, code, msg, "")
}

// handOff gives the connection, and what was read of it, to the http.Server.
func (fc *frontConn) handOff() {
	rc := &replayConn{Conn: fc.c, s: fc.s}
	if n := fc.br.Buffered(); n > 0 {
		b, _ := fc.br.Peek(n)
		rc.buf = bytes.Clone(b)
	}
	fc.br.Reset(nil)
	readerPool.Put(fc.br)
	fc.br = nil
	fc.c.SetReadDeadline(time.Time{})
	fc.s.track(fc, false)
	if !fc.s.handoff.give(rc) {
		rc.Close()
	}
}

// replayConn is a connection handed to the http.Server: the bytes the front loop had read
// come first. It keeps the TCP connection's ReadFrom (sendfile) and CloseWrite.
type replayConn struct {
	net.Conn
	s      *Server
	buf    []byte
	closed atomic.Bool
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.buf) > 0 {
		n := copy(p, r.buf)
		r.buf = r.buf[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

func (r *replayConn) ReadFrom(src io.Reader) (int64, error) { return io.Copy(r.Conn, src) }

func (r *replayConn) CloseWrite() error {
	if cw, ok := r.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (r *replayConn) Close() error {
	if r.closed.CompareAndSwap(false, true) {
		r.s.open.Add(-1)
	}
	return r.Conn.Close()
}

// chanListener is the http.Server's listener: the connections the front loop hands over.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) give(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{} }
