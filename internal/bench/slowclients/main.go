// Command slowclients holds many slow HTTP downloads open against one URL, the way a room
// full of machines on a poor Wi-Fi link would: every client asks for the same file and reads
// the response at a fixed, low rate through a small TCP receive buffer, so the server really
// has to keep each connection (and its send buffer) around for the whole run.
//
// It is a load tool for scripts/bench.sh, not a test: it always runs for -duration and then
// prints one parseable summary line on stdout,
//
//	clients=2000 ok=2000 dropped=0 behind=0 bytes=11870000000 ideal=11875000000 elapsed=120.0s errors="none"
//
// A client is "dropped" when its connection fails, or its body ends before both the
// duration is up and Content-Length is reached. "ideal" is what the clients' rates allowed
// while they were connected, so bytes/ideal is how well the server kept up; "behind" counts
// clients that got less than half of their share (starved, though not cut). Only usage
// errors make it exit non-zero.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// recvBuf is each client's TCP receive buffer: small, so the server's send buffer fills and
// the server sees a slow reader instead of the kernel soaking the file up on our side.
const recvBuf = 16 << 10

type config struct {
	url      *url.URL
	addr     string
	clients  int
	rate     int64 // bytes per second per client
	duration time.Duration
	ramp     time.Duration
	chunk    int
	progress time.Duration
}

type stats struct {
	ok, dropped, behind atomic.Int64
	bytes               atomic.Int64 // body bytes received by all clients
	ideal               atomic.Int64 // what their rates allowed while they were connected
	active              atomic.Int64

	mu     sync.Mutex
	errs   map[string]int
	errSeq []string // first-seen order
}

func (s *stats) addErr(err error) {
	msg := errText(err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.errs[msg]; !seen {
		s.errSeq = append(s.errSeq, msg)
	}
	s.errs[msg]++
}

// errText drops the addresses (which differ per connection) from network errors so that
// equal causes collapse into one entry.
func errText(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Op + ": " + oe.Err.Error()
	}
	return err.Error()
}

func (s *stats) errorSummary(max int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errSeq) == 0 {
		return "none"
	}
	seq := append([]string(nil), s.errSeq...)
	sort.SliceStable(seq, func(i, j int) bool { return s.errs[seq[i]] > s.errs[seq[j]] })
	var parts []string
	for i, msg := range seq {
		if i == max {
			parts = append(parts, fmt.Sprintf("+%d more kinds", len(seq)-max))
			break
		}
		parts = append(parts, fmt.Sprintf("%s x%d", msg, s.errs[msg]))
	}
	return strings.ReplaceAll(strings.Join(parts, "; "), `"`, `'`)
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "slowclients: %v\n", err)
		os.Exit(2)
	}
	raiseNofile()

	st := &stats{errs: map[string]int{}}
	start := time.Now()
	end := start.Add(cfg.duration)
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()

	stopProgress := make(chan struct{})
	if cfg.progress > 0 {
		go progress(cfg, st, start, stopProgress)
	}

	var wg sync.WaitGroup
	for i := 0; i < cfg.clients; i++ {
		// Ramp: client i starts at i/n of the ramp time, so the server sees connections
		// arrive over a few seconds instead of one SYN flood.
		at := start.Add(time.Duration(int64(cfg.ramp) * int64(i) / int64(cfg.clients)))
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.active.Add(1)
			defer st.active.Add(-1)
			client(ctx, cfg, st, end)
		}()
	}
	wg.Wait()
	close(stopProgress)

	fmt.Printf("clients=%d ok=%d dropped=%d behind=%d bytes=%d ideal=%d elapsed=%.1fs errors=\"%s\"\n",
		cfg.clients, st.ok.Load(), st.dropped.Load(), st.behind.Load(), st.bytes.Load(),
		st.ideal.Load(), time.Since(start).Seconds(), st.errorSummary(5))
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("slowclients", flag.ContinueOnError)
	rawURL := fs.String("url", "", "URL to GET (http:// only), e.g. http://127.0.0.1:8000/archlinux/big.bin")
	n := fs.Int("n", 2000, "number of concurrent clients")
	rate := fs.Int64("rate", 50000, "bytes per second each client reads")
	duration := fs.Duration("duration", 2*time.Minute, "how long to run; every client stops when it is up")
	ramp := fs.Duration("ramp", 5*time.Second, "spread the connection starts over this long")
	chunk := fs.Int("chunk", 4096, "bytes per read")
	prog := fs.Duration("progress", 10*time.Second, "print a progress line on stderr this often (0: never)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	u, err := url.Parse(*rawURL)
	switch {
	case *rawURL == "":
		return nil, errors.New("-url is required")
	case err != nil:
		return nil, fmt.Errorf("-url: %w", err)
	case u.Scheme != "http" || u.Host == "":
		return nil, fmt.Errorf("-url must be http://HOST[:PORT]/PATH, not %q", *rawURL)
	case *n < 1:
		return nil, errors.New("-n must be at least 1")
	case *rate < 1:
		return nil, errors.New("-rate must be at least 1 byte/s")
	case *duration <= 0:
		return nil, errors.New("-duration must be positive")
	case *ramp < 0:
		return nil, errors.New("-ramp must not be negative")
	case *chunk < 1:
		return nil, errors.New("-chunk must be at least 1")
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	// Never let the ramp eat the run: every client gets at least half of it.
	r := min(*ramp, *duration/2)
	return &config{url: u, addr: addr, clients: *n, rate: *rate, duration: *duration,
		ramp: r, chunk: *chunk, progress: *prog}, nil
}

// raiseNofile lifts the soft open-files limit to the hard one: 2000 clients need 2000 fds.
func raiseNofile() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintf(os.Stderr, "slowclients: getrlimit: %v\n", err)
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintf(os.Stderr, "slowclients: setrlimit: %v\n", err)
		}
	}
}

func progress(cfg *config, st *stats, start time.Time, stop <-chan struct{}) {
	t := time.NewTicker(cfg.progress)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			fmt.Fprintf(os.Stderr, "slowclients: t=%.0fs active=%d dropped=%d bytes=%d\n",
				time.Since(start).Seconds(), st.active.Load(), st.dropped.Load(), st.bytes.Load())
		}
	}
}

// client runs one slow download until end and records how it went.
func client(ctx context.Context, cfg *config, st *stats, end time.Time) {
	got, t0, err := download(ctx, cfg, end, st)
	if !t0.IsZero() {
		// What the rate allowed from the first body byte to the end (or to the drop).
		stop := time.Now()
		if stop.After(end) {
			stop = end
		}
		want := float64(cfg.rate) * stop.Sub(t0).Seconds()
		st.ideal.Add(int64(want))
		if err == nil && want > float64(4*cfg.chunk) && float64(got) < want/2 {
			st.behind.Add(1)
		}
	}
	if err != nil {
		st.dropped.Add(1)
		st.addErr(err)
		return
	}
	st.ok.Add(1)
}

var errShort = errors.New("body ended before Content-Length and before the duration was up")

// download does one paced GET and returns the body bytes it read and when the body started.
// The error is nil when the client lasted until end or read the whole body.
func download(ctx context.Context, cfg *config, end time.Time, st *stats) (got int64, t0 time.Time, err error) {
	d := net.Dialer{
		Timeout: 10 * time.Second,
		// Before connect, so the window scale offered in the SYN matches the small buffer.
		Control: func(network, address string, c syscall.RawConn) error {
			var serr error
			if cerr := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, recvBuf)
			}); cerr != nil {
				return cerr
			}
			return serr
		},
	}
	conn, err := d.DialContext(ctx, "tcp", cfg.addr)
	if err != nil {
		if time.Now().After(end) {
			return 0, t0, nil // the run ended while dialling
		}
		return 0, t0, err
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(recvBuf)
	}
	// Every read and write unblocks at the end of the run; hitting that deadline is success.
	_ = conn.SetDeadline(end)
	atEnd := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout() && !time.Now().Before(end.Add(-50*time.Millisecond))
	}

	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: amwi-slowclients\r\nAccept: */*\r\nConnection: close\r\n\r\n",
		cfg.url.RequestURI(), cfg.url.Host)
	if _, err := io.WriteString(conn, req); err != nil {
		if atEnd(err) {
			return 0, t0, nil
		}
		return 0, t0, err
	}
	br := bufio.NewReaderSize(conn, cfg.chunk)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		if atEnd(err) {
			return 0, t0, nil
		}
		return 0, t0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, t0, fmt.Errorf("status %s", resp.Status)
	}

	buf := make([]byte, cfg.chunk)
	t0 = time.Now()
	for {
		n, err := resp.Body.Read(buf)
		got += int64(n)
		st.bytes.Add(int64(n))
		if err != nil {
			switch {
			case atEnd(err):
				return got, t0, nil
			case errors.Is(err, io.EOF) && (resp.ContentLength < 0 || got >= resp.ContentLength):
				return got, t0, nil // the whole file arrived
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				return got, t0, fmt.Errorf("%w (%d of %d bytes)", errShort, got, resp.ContentLength)
			default:
				return got, t0, err
			}
		}
		// Pace: byte number got is due at t0 + got/rate; sleep until then, but not past end.
		due := t0.Add(time.Duration(float64(got) / float64(cfg.rate) * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			if left := time.Until(end); wait > left {
				wait = left
			}
			if wait > 0 {
				time.Sleep(wait)
			}
		}
		if !time.Now().Before(end) {
			return got, t0, nil
		}
	}
}
