package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// meter measures one candidate at a time; it is shared by a run's workers.
type meter struct {
	o      Options
	client *http.Client
	tmpErr string // set when the run has no temp dir for rsync
}

// maxLastsync bounds the read of a mirror's lastsync: an epoch and a newline.
const maxLastsync = 64

// measure runs the four steps for c within o.PerMirror: the rsync check alongside the
// http(s) steps (it is a separate host:port and a few bytes, so it does not disturb the
// throughput figure), and connect latency, lastsync and throughput one after the other so
// that the download does not inflate the connect times.
func (m *meter) measure(ctx context.Context, c Candidate, dir string) Result {
	ctx, cancel := context.WithTimeout(ctx, m.o.PerMirror)
	defer cancel()
	r := Result{Host: c.Host, Country: c.Country, URL: c.HTTPURL, RsyncURL: c.RsyncURL}

	var rsyncErr error
	var wg sync.WaitGroup
	wg.Go(func() { rsyncErr = m.checkRsync(ctx, c.RsyncURL, dir) })
	m.measureHTTP(ctx, c, &r)
	wg.Wait()

	r.RsyncOK = rsyncErr == nil
	if rsyncErr != nil {
		r.note.rsyncErr = rsyncErr.Error()
	}
	if r.LastSync == nil && c.LastSync != nil {
		t := c.LastSync.UTC()
		r.LastSync, r.note.lastsyncStatus = &t, true
	}
	return r
}

// measureHTTP fills in latency, the mirror's own lastsync and throughput, or r.Error
// when the mirror cannot be measured over http(s) at all.
func (m *meter) measureHTTP(ctx context.Context, c Candidate, r *Result) {
	if c.HTTPURL == "" {
		r.note.noHTTP = true
		return
	}
	base, hostport, err := parseHTTPURL(c.HTTPURL)
	if err != nil {
		r.Error = "http failed: " + err.Error()
		return
	}

	lat, err := m.latency(ctx, hostport)
	if err != nil {
		// The requests would fail the same way, each after its own timeout.
		r.Error = "http failed: connect: " + short(err)
		r.note.lastsyncErr = "not tried"
		return
	}
	r.LatencyMS = lat

	ls, err := m.lastsync(ctx, base)
	if err != nil {
		r.note.lastsyncErr = short(err)
		var st statusError
		if !errors.As(err, &st) && isTimeout(err) {
			// A mirror that cannot send 20 bytes in time will not send megabytes.
			r.Error = "http failed: lastsync: " + short(err)
			return
		}
	} else {
		r.LastSync = &ls
	}

	bps, n, caveat, err := m.throughput(ctx, base)
	if n == 0 {
		r.Error = "http failed: " + short(err)
		return
	}
	r.ThroughputBps, r.note.throughput = bps, caveat
}

// parseHTTPURL checks an http(s) mirror root and returns it with a trailing slash, and the
// host:port to connect to.
func parseHTTPURL(s string) (base, hostport string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("bad URL %q", s)
	}
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
	default:
		return "", "", fmt.Errorf("bad URL %q: must be http:// or https://", s)
	}
	if u.Hostname() == "" {
		return "", "", fmt.Errorf("bad URL %q: no host", s)
	}
	if !strings.HasSuffix(s, "/") {
		s += "/"
	}
	return s, net.JoinHostPort(u.Hostname(), port), nil
}

// latency is the median of three TCP connects to hostport, in milliseconds. The name is
// resolved once beforehand so that DNS is not timed.
func (m *meter) latency(ctx context.Context, hostport string) (float64, error) {
	host, port, _ := net.SplitHostPort(hostport)
	lctx, cancel := context.WithTimeout(ctx, m.o.ConnectTimeout)
	addrs, err := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
	cancel()
	if err != nil {
		return 0, err
	}
	if len(addrs) == 0 {
		return 0, fmt.Errorf("no address for %s", host)
	}
	addr := net.JoinHostPort(addrs[0].Unmap().String(), port)
	var ds []time.Duration
	for range 3 {
		d := net.Dialer{Timeout: m.o.ConnectTimeout}
		start := time.Now()
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			if len(ds) == 0 {
				return 0, err
			}
			break // one good try is still a figure
		}
		ds = append(ds, time.Since(start))
		conn.Close()
	}
	slices.Sort(ds)
	return float64(ds[len(ds)/2]) / float64(time.Millisecond), nil
}

// statusError is an http(s) answer other than 200.
type statusError struct{ status string }

func (e statusError) Error() string { return e.status }

// lastsync reads and parses the mirror's own lastsync file.
func (m *meter) lastsync(ctx context.Context, base string) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*m.o.ConnectTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"lastsync", nil)
	if err != nil {
		return time.Time{}, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return time.Time{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return time.Time{}, statusError{resp.Status}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxLastsync+1))
	if err != nil {
		return time.Time{}, err
	}
	if len(b) > maxLastsync {
		return time.Time{}, fmt.Errorf("lastsync longer than %d bytes", maxLastsync)
	}
	return parseLastsync(b)
}

// parseLastsync reads a lastsync or lastupdate file: a Unix time in seconds, usually
// followed by a newline.
func parseLastsync(b []byte) (time.Time, error) {
	s := strings.TrimSpace(string(b))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("lastsync %q is not a Unix time", truncate(s, 20))
	}
	// Before 2002 (Arch's first release) or after year 5000 it is not a sync time.
	if n < 1_000_000_000 || n > 100_000_000_000 {
		return time.Time{}, fmt.Errorf("lastsync %d is out of range", n)
	}
	return time.Unix(n, 0).UTC(), nil
}

// errTimeCap ends a throughput download that reached MaxSeconds: a normal end.
var errTimeCap = errors.New("time cap reached")

// throughput downloads up to MaxBytes of ThroughputPath for at most MaxSeconds and
// returns bytes/s, the bytes read and, when the download broke off early, a caveat.
//
// The clock starts when the response headers arrive, not when the request is made: the
// upstream is used for long rsync transfers, where connection set-up is paid once, and
// connect latency is measured and ranked on its own. A download that fails after some
// bytes still gives a figure, with the caveat saying so.
func (m *meter) throughput(ctx context.Context, base string) (bps float64, n int64, caveat string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*m.o.ConnectTimeout+m.o.MaxSeconds)
	defer cancel()
	rctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, base+m.o.ThroughputPath, nil)
	if err != nil {
		return 0, 0, "", err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, "", statusError{resp.Status}
	}
	start := time.Now()
	capTimer := time.AfterFunc(m.o.MaxSeconds, func() { stop(errTimeCap) })
	defer capTimer.Stop()

	buf := make([]byte, 32<<10)
	var readErr error
	for n < m.o.MaxBytes {
		k, err := resp.Body.Read(buf[:min(int64(len(buf)), m.o.MaxBytes-n)])
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			if !errors.Is(context.Cause(rctx), errTimeCap) {
				readErr = err
			}
			break
		}
	}
	elapsed := max(time.Since(start), time.Millisecond) // a whole body in one read
	if n == 0 {
		if readErr == nil {
			readErr = errors.New("empty body")
		}
		return 0, 0, "", readErr
	}
	if readErr != nil {
		caveat = fmt.Sprintf("download cut after %s: %s", fmtBytes(float64(n)), short(readErr))
	}
	return float64(n) / elapsed.Seconds(), n, caveat, nil
}

// checkRsync fetches lastupdate from the candidate's rsync URL into dir with the real
// rsync; nil means rsync reached the daemon and got a file holding a number.
func (m *meter) checkRsync(ctx context.Context, rsyncURL, dir string) error {
	switch {
	case rsyncURL == "":
		return errors.New("no rsync URL")
	case !strings.HasPrefix(rsyncURL, "rsync://"):
		return fmt.Errorf("%q is not an rsync:// URL", rsyncURL)
	case m.tmpErr != "":
		return errors.New(m.tmpErr)
	}
	if !strings.HasSuffix(rsyncURL, "/") {
		rsyncURL += "/"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("temp dir: %s", short(err))
	}
	secs := max(1, int((m.o.ConnectTimeout+time.Second-1)/time.Second))
	n := strconv.Itoa(secs)
	// --contimeout bounds the connect and --timeout any stall; the context is the backstop
	// should rsync itself hang.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(2*secs+2)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.o.RsyncBin, "--no-motd", "--contimeout="+n, "--timeout="+n,
		rsyncURL+"lastupdate", dir+"/")
	cmd.Env = append(os.Environ(), "LC_ALL=C") // rsyncReason reads the English messages
	var stderr bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &limitedBuffer{b: &stderr, max: 4 << 10}
	// The receiving rsync forks; kill the whole group so no child holds the pipe open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return errors.New("timed out")
	}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return fmt.Errorf("run %s: %s", m.o.RsyncBin, short(err))
		}
		return errors.New(rsyncReason(ee.ExitCode(), stderr.String()))
	}
	b, err := os.ReadFile(filepath.Join(dir, "lastupdate"))
	if err != nil {
		return errors.New("no lastupdate fetched")
	}
	if _, err := parseLastsync(b); err != nil {
		return errors.New("lastupdate is not a Unix time")
	}
	return nil
}

// rsyncReason turns a failed rsync's exit code and stderr into a few words, the cause
// first: "connection refused", "connect timed out", "unknown module \"x\"".
func rsyncReason(code int, stderr string) string {
	low := strings.ToLower(stderr)
	for _, k := range []struct{ in, say string }{
		// First: rsync 3.x may add "Connection reset by peer" after the daemon hangs up
		// on a client that asked for a missing file.
		{"no such file or directory", "no lastupdate on the mirror"},
		{"connection refused", "connection refused"},
		{"no route to host", "no route to host"},
		{"network is unreachable", "network unreachable"},
		{"name or service not known", "host not found"},
		{"temporary failure in name resolution", "host not found"},
		{"nodename nor servname", "host not found"},
		{"connection timed out", "connect timed out"},
		{"connection reset", "connection reset"},
		{"max connections", "daemon full (max connections reached)"},
	} {
		if strings.Contains(low, k.in) {
			return k.say
		}
	}
	for _, line := range strings.Split(stderr, "\n") {
		if msg, ok := strings.CutPrefix(strings.TrimSpace(line), "@ERROR: "); ok {
			return truncate(msg, 80) // the daemon's own words: "Unknown module 'x'"
		}
	}
	switch code {
	case 35:
		return "connect timed out"
	case 30:
		return "timed out"
	}
	for _, line := range strings.Split(stderr, "\n") {
		if msg, ok := strings.CutPrefix(strings.TrimSpace(line), "rsync: "); ok {
			return truncate(msg, 80)
		}
	}
	return "rsync exit status " + strconv.Itoa(code)
}

// limitedBuffer keeps the first max bytes written to it and drops the rest.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// short says what went wrong in a few words, without the URL or the Go call chain that
// the Result already shows.
func short(err error) string {
	if err == nil {
		return "unknown error"
	}
	var st statusError
	switch {
	case errors.As(err, &st):
		return st.status
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case isTimeout(err):
		return "timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "body shorter than announced"
	}
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return "host not found"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	return truncate(err.Error(), 80)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
