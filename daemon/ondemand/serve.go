package ondemand

import (
	"bytes"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ServeMiss answers a request for name, a mirror-relative path already cleaned by the
// caller ("core/os/x86_64/FILE"), which the caller could not open. It returns false,
// having written nothing and asked no upstream, when name is not a file it may fetch (the
// caller answers 404); otherwise it writes the whole response and returns true.
//
// A package is streamed as it arrives; the last byte of the response is held back until
// the file is verified, and a failure then aborts the response with
// panic(http.ErrAbortHandler), so the client sees a truncated transfer, never a complete
// wrong one. No lock is held while writing to the client.
func (f *Fetcher) ServeMiss(w http.ResponseWriter, r *http.Request, name string) bool {
	_, _, e, isSig, ok := f.lookup(name)
	if !ok {
		return false
	}
	if f.closing.Load() {
		httpError(w, http.StatusServiceUnavailable, "503 the mirror is shutting down")
		return true
	}
	key, ok := f.target(name)
	if !ok {
		return false
	}
	switch done, exists := f.serveExisting(w, r, key); {
	case done:
		return true
	case exists: // something that is not a regular file: nothing to fetch over it
		return false
	}
	start, end, partial := int64(0), e.size-1, false
	if !isSig {
		if start, end, partial, ok = parseRange(r.Header.Get("Range"), e.size); !ok {
			w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(e.size, 10))
			http.Error(w, "416 requested range not satisfiable", http.StatusRequestedRangeNotSatisfiable)
			return true
		}
	}
	if r.Method == http.MethodHead {
		// From the database alone: a HEAD (a download manager's probe) fetches nothing.
		if isSig {
			w.Header().Set("Content-Type", "application/octet-stream")
			if e.sigLen != 0 {
				w.Header().Set("Content-Length", strconv.Itoa(int(e.sigLen)))
			}
			w.WriteHeader(http.StatusOK)
		} else {
			writeHeaders(w, e.size, start, end, partial)
		}
		return true
	}
	ft, code, msg := f.join(key, name, e, isSig)
	if ft == nil {
		httpError(w, code, msg)
		return true
	}
	defer ft.release()
	if isSig {
		f.serveSig(w, r, ft)
	} else {
		f.stream(w, r, ft, start, end, partial)
	}
	return true
}

// target is where name's symlink in the repo dir leads, mirror-relative, when that is a
// plain path inside pool/ to a file of the same name. Read through the root: the link is read, not followed.
func (f *Fetcher) target(name string) (string, bool) {
	dest, err := f.root.Readlink(name)
	if err != nil || dest == "" || path.IsAbs(dest) {
		return "", false
	}
	t := path.Join(path.Dir(name), dest)
	rest, ok := strings.CutPrefix(t, "pool/")
	// Arch's links keep the file's name; one that renames (FILE.sig → pool/…/FILE) would
	// have a fetch store one file's bytes under another's name.
	if !ok || path.Base(t) != path.Base(name) {
		return "", false
	}
	for _, p := range strings.Split(rest, "/") {
		if !plainName(p) {
			return "", false
		}
	}
	return t, true
}

// serveExisting serves key when it is on disk after all: a fetch finished between the
// caller's open and this call. exists reports something there that is not a regular file.
func (f *Fetcher) serveExisting(w http.ResponseWriter, r *http.Request, key string) (done, exists bool) {
	file, err := f.root.Open(key)
	if err != nil {
		return false, !errors.Is(err, fs.ErrNotExist)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false, true
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(&countingWriter{w, &f.served}, r, "", fi.ModTime(), file)
	return true, true
}

// serveSig waits for a signature's fetch, which reads it whole before anyone is answered.
func (f *Fetcher) serveSig(w http.ResponseWriter, r *http.Request, ft *fetch) {
	for {
		st, _, ch := ft.snapshot()
		switch st {
		case stored:
			w.Header().Set("Content-Type", "application/octet-stream")
			http.ServeContent(&countingWriter{w, &f.served}, r, "", time.Time{}, bytes.NewReader(ft.data))
			return
		case failed:
			httpError(w, ft.code, ft.msg)
			return
		}
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		}
	}
}

// stream answers bytes start..end (inclusive) of a package from the growing temp file.
func (f *Fetcher) stream(w http.ResponseWriter, r *http.Request, ft *fetch, start, end int64, partial bool) {
	ctx := r.Context()
	for {
		st, _, ch := ft.snapshot()
		if st == failed {
			httpError(w, ft.code, ft.msg) // code, msg are set before the state and never after
			return
		}
		if st != waiting {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
	writeHeaders(w, ft.e.size, start, end, partial)
	rc := http.NewResponseController(w)
	off, last := start, end+1
	for off < last {
		ft.mu.Lock()
		st, written, ch, file := ft.state, ft.written, ft.changed, ft.file
		ft.mu.Unlock()
		if st == failed {
			// The status is written: the only way left to say "this is not the file" is to
			// cut the connection before the last byte. The head goes out first, so the
			// client sees a 200 cut short, not a connection closed without an answer
			// (which it got when the fetch failed before any byte was sent).
			_ = rc.Flush()
			panic(http.ErrAbortHandler)
		}
		limit := last
		if st != stored {
			// Hold back the response's final byte until the file is verified: a client
			// must not get a complete-looking transfer of bytes that may yet fail.
			limit = min(written, last-1)
		}
		if off < limit {
			// A buffer only while there is something to send: clients waiting for the
			// upstream (hundreds, when a LAN upgrades at once) hold none.
			bp := bufPool.Get().(*[]byte)
			buf := *bp
			n := min(int64(len(buf)), limit-off)
			m, err := file.ReadAt(buf[:n], off) // file stays open: this request holds a reference
			var werr error
			if m > 0 {
				var wn int
				wn, werr = w.Write(buf[:m])
				f.served.Add(int64(wn))
				off += int64(wn)
			}
			bufPool.Put(bp)
			if werr != nil {
				return // the client left; the fetch goes on for the others and the next request
			}
			if err != nil && int64(m) < n {
				f.log.Error("ondemand: read temp file", "name", ft.name, "err", err)
				panic(http.ErrAbortHandler)
			}
			continue
		}
		// Nothing new to send: what is buffered goes out now, not when the next chunk does.
		_ = rc.Flush()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// bufPool holds stream's copy buffers.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

func writeHeaders(w http.ResponseWriter, size, start, end int64, partial bool) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	if partial {
		h.Set("Content-Range", "bytes "+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(end, 10)+"/"+strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusPartialContent)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// parseRange reads a Range header for a file of size bytes: the inclusive byte range to
// answer and whether it is partial (206). ok is false for a range that cannot be served
// (416). Several ranges get the whole file: pacman never asks for them.
func parseRange(h string, size int64) (start, end int64, partial, ok bool) {
	if h == "" {
		return 0, size - 1, false, true
	}
	spec, isBytes := strings.CutPrefix(h, "bytes=")
	if !isBytes {
		return 0, 0, false, false
	}
	if strings.Contains(spec, ",") {
		return 0, size - 1, false, true
	}
	a, b, dash := strings.Cut(strings.TrimSpace(spec), "-")
	if !dash {
		return 0, 0, false, false
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" {
		n, err := digits(b)
		if err != nil || n == 0 {
			return 0, 0, false, false
		}
		return size - min(n, size), size - 1, true, true
	}
	start, err := digits(a)
	if err != nil || start >= size {
		return 0, 0, false, false
	}
	end = size - 1
	if b != "" {
		e, err := digits(b)
		if err != nil || e < start {
			return 0, 0, false, false
		}
		end = min(e, size-1)
	}
	return start, end, true, true
}

// digits parses a non-negative decimal without sign.
func digits(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, 10, 64)
}

// httpError answers a failure with a short text; a 503 says when to come back.
func httpError(w http.ResponseWriter, code int, msg string) {
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "30")
	}
	http.Error(w, msg, code)
}

// countingWriter counts body bytes for Stats.ServedBytes.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
