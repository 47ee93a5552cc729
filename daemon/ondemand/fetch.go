package ondemand

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// state is where a fetch stands, as its clients see it.
type state uint8

const (
	waiting   state = iota // no upstream has answered yet: clients wait for their status
	streaming              // an upstream answered; written grows
	stored                 // verified and renamed into place: everything may be served
	failed                 // gave up; clients that have their status are aborted
)

// fetch is one upstream transfer that any number of clients read as it is written.
type fetch struct {
	key   string // target, mirror-relative: "pool/packages/FILE"
	name  string // request name, mirror-relative: "core/os/x86_64/FILE"
	e     entry
	isSig bool
	size  int64 // bytes reserved: the package's %CSIZE%, or maxSig

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change of the fields below
	state   state
	written int64    // bytes of file that are written and may be read
	file    *os.File // the temp file (packages); closed when refs drops to 0
	data    []byte   // a .sig's bytes, once stored
	code    int      // failed before streaming: the status waiting clients get
	msg     string
	refs    int // the fetch goroutine and each client
}

// snapshot returns what a client needs to decide, and the channel to wait on for more.
func (ft *fetch) snapshot() (state, int64, <-chan struct{}) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.state, ft.written, ft.changed
}

// set changes the fetch under its lock and wakes everyone waiting.
func (ft *fetch) set(fn func()) {
	ft.mu.Lock()
	fn()
	close(ft.changed)
	ft.changed = make(chan struct{})
	ft.mu.Unlock()
}

func (ft *fetch) acquire() {
	ft.mu.Lock()
	ft.refs++
	ft.mu.Unlock()
}

// release drops a reference; the last one closes the temp file. The file outlives the
// fetch goroutine so a slow client keeps reading it after the rename (or it is unlinked).
func (ft *fetch) release() {
	ft.mu.Lock()
	ft.refs--
	var file *os.File
	if ft.refs == 0 {
		file, ft.file = ft.file, nil
	}
	ft.mu.Unlock()
	if file != nil {
		file.Close()
	}
}

// join attaches the caller to the running fetch of key, or starts one. On refusal it
// returns nil and the status and text to answer with.
func (f *Fetcher) join(key, name string, e entry, isSig bool) (ft *fetch, code int, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, http.StatusServiceUnavailable, "503 the mirror is shutting down"
	}
	if ft := f.fetches[key]; ft != nil {
		if ft.e != e || ft.isSig != isSig {
			// Two repos' databases name one pool file with different contents: one of
			// them is stale. Do not hand this client bytes checked against the other.
			return nil, http.StatusBadGateway, "502 the databases disagree about this file; try again after the next sync"
		}
		ft.acquire()
		f.misses.Add(1)
		f.shared.Add(1)
		return ft, 0, ""
	}
	if len(f.fetches) >= f.cfg.MaxFetches {
		return nil, http.StatusServiceUnavailable, fmt.Sprintf("503 this mirror is already fetching %d files from upstream; try again shortly", len(f.fetches))
	}
	size := uint64(maxSig)
	if !isSig {
		size = uint64(e.size)
	}
	// The running fetches' whole sizes stay reserved although part of them is already
	// written (and so no longer free): erring on the full side is the cheap mistake.
	free, err := f.cfg.FreeBytes(f.rootPath)
	floor := f.cfg.MinFreeBytes()
	if err != nil || free < f.reserved+size || free-f.reserved-size < floor {
		if now := f.cfg.Now(); now.Sub(f.spaceLogged) >= time.Minute || f.spaceLogged.After(now) {
			f.spaceLogged = now
			f.log.Warn("ondemand: not fetching, the mirror's disk is too full", "name", name, "size", size,
				"free", free, "reserved", f.reserved, "min_free", floor, "err", err)
		}
		return nil, http.StatusServiceUnavailable, "503 this mirror's disk is too full to fetch the file"
	}
	ft = &fetch{key: key, name: name, e: e, isSig: isSig, size: int64(size), changed: make(chan struct{}), refs: 2}
	f.fetches[key] = ft
	f.reserved += size
	f.misses.Add(1)
	f.started.Add(1)
	f.wg.Add(1)
	go f.run(ft)
	return ft, 0, ""
}

// run is a fetch's goroutine. It runs under the Fetcher's context, not a client's: a
// client that leaves does not cancel what others share, and a fetch nobody watches any
// more finishes so the next request is a hit. Close cancels it.
func (f *Fetcher) run(ft *fetch) {
	defer f.wg.Done()
	defer func() {
		f.mu.Lock()
		delete(f.fetches, ft.key)
		f.reserved -= uint64(ft.size)
		f.mu.Unlock()
		ft.release()
	}()
	var err error
	if ft.isSig {
		err = f.fetchSig(ft)
	} else {
		err = f.fetchPackage(ft)
	}
	if err == nil {
		if f.cfg.OnStored != nil {
			size := ft.e.size
			if ft.isSig {
				size = int64(len(ft.data)) // set by this goroutine
			}
			f.cfg.OnStored(ft.name, size)
		}
		return
	}
	f.failed.Add(1)
	var fe *fetchError
	if !errors.As(err, &fe) {
		fe = &fetchError{code: http.StatusBadGateway, msg: "502 the file could not be fetched", err: err}
	}
	if f.ctx.Err() != nil {
		fe.code, fe.msg = http.StatusServiceUnavailable, "503 the mirror is shutting down"
	}
	f.log.Warn("ondemand: fetch failed", "name", ft.name, "err", fe.err)
	ft.set(func() {
		ft.state, ft.code, ft.msg = failed, fe.code, fe.msg
	})
}

// fetchError is how a fetch ends badly: the status for clients still waiting for theirs,
// a short text for them, and the cause for the log.
type fetchError struct {
	code int
	msg  string
	err  error
}

func (e *fetchError) Error() string { return e.err.Error() }

func gatewayError(timedOut bool, err error) *fetchError {
	if timedOut {
		return &fetchError{http.StatusGatewayTimeout, "504 no upstream mirror answered in time", err}
	}
	return &fetchError{http.StatusBadGateway, "502 no upstream mirror could deliver this file", err}
}

// errMismatch marks an upstream answer that disagrees with the database.
var errMismatch = errors.New("does not match the database")

// attempt is one request to one upstream, with its own timer: headers must arrive before
// it fires, then the body must bring stallBytes (or its end) before it fires again (the
// stall timeout). Its firing cancels the request, so a blocked read returns. Progress is
// counted in bytes, not reads: an upstream dripping a byte now and then would otherwise
// hold the fetch, and its clients, for days while a working fallback goes unasked.
type attempt struct {
	resp     *http.Response
	host     string
	cancel   context.CancelFunc
	timer    *time.Timer
	stall    time.Duration
	timedOut atomic.Bool
	started  bool  // the body's first read re-armed the timer
	progress int64 // bytes since the timer was last re-armed
}

// stallBytes is the progress that re-arms the stall timer: 16 KiB per StallTimeout (30 s:
// ~550 B/s) is far below any working mirror and far above a drip.
const stallBytes = 16 << 10

func (a *attempt) Read(p []byte) (int, error) {
	if !a.started {
		a.started = true
		a.timer.Reset(a.stall)
	}
	n, err := a.resp.Body.Read(p)
	if a.progress += int64(n); a.progress >= stallBytes {
		a.progress = 0
		a.timer.Reset(a.stall)
	}
	if err != nil && a.timedOut.Load() {
		err = fmt.Errorf("%s sent less than %d bytes in %v: %w", a.host, stallBytes, a.stall, context.DeadlineExceeded)
	}
	return n, err
}

func (a *attempt) close() {
	a.timer.Stop()
	a.cancel()
	if a.resp != nil {
		a.resp.Body.Close()
	}
}

// request asks base for ft's name, from offset on, and waits for headers at most timeout.
func (f *Fetcher) request(ft *fetch, base string, offset int64, timeout time.Duration) (*attempt, error) {
	u, err := upstreamURL(base, ft.name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(f.ctx)
	a := &attempt{host: u.Host, cancel: cancel, stall: f.cfg.StallTimeout}
	a.timer = time.AfterFunc(timeout, func() { a.timedOut.Store(true); cancel() })
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		a.close()
		return nil, fmt.Errorf("%s: %w", u.Host, err)
	}
	req.Header.Set("User-Agent", "amwi-ondemand")
	// An explicit identity also stops a caller's transport from decompressing for us.
	req.Header.Set("Accept-Encoding", "identity")
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		a.close()
		if a.timedOut.Load() {
			return nil, fmt.Errorf("%s: no answer within %v: %w", u.Host, timeout, context.DeadlineExceeded)
		}
		return nil, fmt.Errorf("%s: %w", u.Host, unwrapURL(err))
	}
	a.resp = resp
	return a, nil
}

// upstreamURL is base + name, each element of name escaped on its own (a '#', '?' or '%'
// in a file name must reach the upstream as part of the path).
func upstreamURL(base, name string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("upstream %q is not an http(s) URL", redact(base))
	}
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	esc := strings.TrimSuffix(u.EscapedPath(), "/") + "/" + strings.Join(parts, "/")
	return u.Parse(esc) // an absolute path: the base's query and fragment go, its host stays
}

// redact shows an upstream without what could be secret in it (user info, path, query).
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// unwrapURL drops *url.Error's URL: it may carry a token in its path or query, and the log
// already names the host.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// open tries upstreams, starting at index first and going round once, until one answers
// with ft's bytes from offset on. It returns the attempt, the index that answered and how
// many leading body bytes to skip (an upstream that ignored the Range sends from zero).
// deadline bounds the whole try.
func (f *Fetcher) open(ft *fetch, ups []string, first int, offset int64, deadline time.Time) (*attempt, int, int64, error) {
	var errs []error
	timedOut := false
	for k := range ups {
		i := (first + k) % len(ups)
		left := deadline.Sub(f.cfg.Now())
		if left <= 0 {
			timedOut = true
			errs = append(errs, errors.New("time budget for the upstreams used up"))
			break
		}
		a, err := f.request(ft, ups[i], offset, min(left, f.cfg.HeaderTimeout))
		if err != nil {
			timedOut = errors.Is(err, context.DeadlineExceeded)
			errs = append(errs, err)
			if f.ctx.Err() != nil {
				break
			}
			continue
		}
		skip, err := f.accept(ft, a.resp, offset)
		if err == nil {
			return a, i, skip, nil
		}
		a.close()
		timedOut = false
		if errors.Is(err, errMismatch) {
			f.mismatched.Add(1)
			f.log.Warn("ondemand: upstream's file differs from the database", "name", ft.name, "upstream", a.host, "err", err)
		}
		errs = append(errs, fmt.Errorf("%s: %w", a.host, err))
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no upstream"))
	}
	return nil, 0, 0, gatewayError(timedOut, errors.Join(errs...))
}

// accept checks an upstream's status and length before a byte is written.
func (f *Fetcher) accept(ft *fetch, resp *http.Response, offset int64) (skip int64, err error) {
	switch {
	case resp.StatusCode == http.StatusOK:
		if !ft.isSig && resp.ContentLength >= 0 && resp.ContentLength != ft.e.size {
			return 0, fmt.Errorf("length %d, database says %d: %w", resp.ContentLength, ft.e.size, errMismatch)
		}
		return offset, nil
	case resp.StatusCode == http.StatusPartialContent && offset > 0 && !ft.isSig:
		want := fmt.Sprintf("bytes %d-%d/%d", offset, ft.e.size-1, ft.e.size)
		if got := resp.Header.Get("Content-Range"); got != want {
			return 0, fmt.Errorf("Content-Range %q, asked for %q", trunc(got, 80), want)
		}
		return 0, nil
	default:
		return 0, errors.New(resp.Status)
	}
}

// fetchPackage downloads a package into a temp file, resuming on the next upstream when a
// body breaks, checks size and sha256, and renames it into the pool.
func (f *Fetcher) fetchPackage(ft *fetch) error {
	ups := f.cfg.Upstreams()
	if len(ups) == 0 {
		return &fetchError{http.StatusBadGateway, "502 this mirror holds only used packages and has no HTTP upstream to fetch this one from (sync.http_upstream)", errors.New("no HTTP upstream configured")}
	}
	tmp, file, err := f.createTemp(ft)
	if err != nil {
		return &fetchError{http.StatusInternalServerError, "500 the mirror could not store the file", err}
	}
	ft.mu.Lock()
	ft.file = file // refs: the goroutine's reference covers it; the last release closes it
	ft.mu.Unlock()
	keep := false
	defer func() {
		if !keep {
			f.root.Remove(tmp)
		}
	}()

	h := sha256.New()
	buf := make([]byte, 64<<10)
	var written int64
	cur, resumes, host, short := 0, 0, "", false
	deadline := f.cfg.Now().Add(f.cfg.HeaderBudget)
	for {
		a, i, skip, err := f.open(ft, ups, cur, written, deadline)
		if err != nil {
			if short {
				// The upstream ended cleanly, short of the database's size, and no one
				// had the rest: its file is not the database's.
				f.mismatched.Add(1)
			}
			return err
		}
		cur, host = i, a.host
		if written == 0 {
			ft.set(func() { ft.state = streaming })
		}
		n, err := f.copyBody(ft, a, file, h, buf, written, skip)
		a.close()
		written += n
		if err == nil {
			break
		}
		if errors.Is(err, errMismatch) || errors.Is(err, errLocal) {
			if errors.Is(err, errMismatch) {
				f.mismatched.Add(1)
			}
			return err
		}
		if f.ctx.Err() != nil {
			return fmt.Errorf("%s: %w", a.host, f.ctx.Err())
		}
		if resumes++; resumes > maxResumes {
			return fmt.Errorf("%s: %w (gave up after %d resumes)", a.host, err, maxResumes)
		}
		short = errors.Is(err, errShort)
		f.log.Info("ondemand: upstream body broke, resuming", "name", ft.name, "upstream", a.host, "at", written, "err", err)
		// The next upstream first, this one last; each resume gets a fresh budget, the
		// clients already have their status.
		cur = (cur + 1) % len(ups)
		deadline = f.cfg.Now().Add(f.cfg.HeaderBudget)
	}
	if got := h.Sum(nil); !bytes.Equal(got, ft.e.sum[:]) {
		f.mismatched.Add(1)
		return fmt.Errorf("%s: sha256 %x, database says %x: %w", host, got, ft.e.sum, errMismatch)
	}
	if err := file.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.root.Rename(tmp, ft.key); err != nil {
		return fmt.Errorf("rename into %s: %w", ft.key, err)
	}
	keep = true
	ft.set(func() { ft.state = stored })
	return nil
}

// errShort marks a body that ended cleanly before the database's size: a break to resume
// from, or an upstream whose file is shorter.
var errShort = errors.New("short body")

// errLocal marks a failure on this side (disk full, I/O error): no upstream can help.
var errLocal = errors.New("local")

// copyBody appends a's body (after skipping skip bytes) to file at offset, hashing and
// publishing as it goes. It returns the bytes appended; a nil error means the file is
// complete.
func (f *Fetcher) copyBody(ft *fetch, a *attempt, file *os.File, h io.Writer, buf []byte, offset, skip int64) (int64, error) {
	if skip > 0 {
		// The upstream ignored our Range and sends from zero: skip what we have. The
		// hash over the whole file still catches an upstream whose bytes differ.
		if n, err := io.CopyN(io.Discard, a, skip); err != nil {
			f.fetched.Add(n)
			return 0, fmt.Errorf("skipping to %d: %w", skip, err)
		}
		f.fetched.Add(skip)
	}
	var total int64
	for {
		n, rerr := a.Read(buf)
		if n > 0 {
			f.fetched.Add(int64(n))
			if offset+total+int64(n) > ft.e.size {
				return total, fmt.Errorf("%s sent more than the database's %d bytes: %w", a.host, ft.e.size, errMismatch)
			}
			if _, err := file.WriteAt(buf[:n], offset+total); err != nil {
				return total, fmt.Errorf("write temp file: %w (%w)", err, errLocal)
			}
			h.Write(buf[:n])
			total += int64(n)
			w := offset + total
			ft.set(func() { ft.written = w })
		}
		if rerr == io.EOF {
			if offset+total == ft.e.size {
				return total, nil
			}
			return total, fmt.Errorf("%s ended the body at %d of %d bytes: %w", a.host, offset+total, ft.e.size, errShort)
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// createTemp makes the pool dir if needed and a fresh temp file in fetchDir; both through
// the root, so a link cannot lead them elsewhere.
func (f *Fetcher) createTemp(ft *fetch) (string, *os.File, error) {
	if err := f.root.MkdirAll(path.Dir(ft.key), 0o755); err != nil {
		return "", nil, fmt.Errorf("create %s: %w", path.Dir(ft.key), err)
	}
	tmp := fmt.Sprintf("%s/%d-%s", fetchDir, f.seq.Add(1), trunc(path.Base(ft.key), 200))
	file, err := f.root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", nil, fmt.Errorf("create temp file: %w", err)
	}
	return tmp, file, nil
}

// fetchSig downloads a detached signature whole (it is small, and its size is not in the
// database), checks it against %PGPSIG% when the database has one, and stores it.
func (f *Fetcher) fetchSig(ft *fetch) error {
	ups := f.cfg.Upstreams()
	if len(ups) == 0 {
		return &fetchError{http.StatusBadGateway, "502 this mirror holds only used packages and has no HTTP upstream to fetch this one from (sync.http_upstream)", errors.New("no HTTP upstream configured")}
	}
	deadline := f.cfg.Now().Add(f.cfg.HeaderBudget)
	var errs []error
	timedOut := false
	for start := 0; start < len(ups); {
		a, i, _, err := f.open(ft, ups[start:], 0, 0, deadline)
		if err != nil {
			return err
		}
		start += i + 1
		// The header timer keeps running through the body: a signature is a few hundred
		// bytes and comes within the same budget.
		a.stall = max(deadline.Sub(f.cfg.Now()), time.Millisecond)
		data, err := io.ReadAll(io.LimitReader(a, maxSig+1))
		a.close()
		f.fetched.Add(int64(len(data)))
		switch {
		case err != nil:
			timedOut = errors.Is(err, context.DeadlineExceeded)
			errs = append(errs, fmt.Errorf("%s: %w", a.host, err))
			continue
		case len(data) > maxSig:
			err = fmt.Errorf("%s: signature larger than %d bytes: %w", a.host, maxSig, errMismatch)
		case len(data) == 0:
			err = fmt.Errorf("%s: empty signature: %w", a.host, errMismatch)
		case ft.e.sigLen != 0 && (len(data) != int(ft.e.sigLen) || sha256.Sum256(data) != ft.e.sigSum):
			err = fmt.Errorf("%s: signature differs from the database's %%PGPSIG%%: %w", a.host, errMismatch)
		}
		if err != nil {
			timedOut = false
			f.mismatched.Add(1)
			f.log.Warn("ondemand: upstream's signature differs from the database, discarded", "name", ft.name, "upstream", a.host, "err", err)
			errs = append(errs, err)
			continue
		}
		if err := f.storeSig(ft, data); err != nil {
			return &fetchError{http.StatusInternalServerError, "500 the mirror could not store the file", err}
		}
		ft.set(func() { ft.state, ft.data = stored, data })
		return nil
	}
	return gatewayError(timedOut, errors.Join(errs...))
}

func (f *Fetcher) storeSig(ft *fetch, data []byte) error {
	tmp, file, err := f.createTemp(ft)
	if err != nil {
		return err
	}
	_, err = file.Write(data)
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = f.root.Rename(tmp, ft.key)
	}
	if err != nil {
		f.root.Remove(tmp)
		return fmt.Errorf("store %s: %w", ft.key, err)
	}
	return nil
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
