package web

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Active is the registry of downloads in progress, for the live view: who fetches what and
// how far along it is. Entries read the byte count the accounting writer keeps, so
// tracking costs no copy.
type Active struct {
	mu   sync.Mutex
	m    map[*activeDL]struct{}
	done int64 // bytes of finished downloads
	// last sample for Rate
	lastAt    time.Time
	lastTotal int64
	rate      float64
}

type activeDL struct {
	client string
	file   string
	start  time.Time
	cw     *countingWriter
}

// Download is one download in progress.
type Download struct {
	Client string `json:"client,omitempty"`
	// Name is the client's name from reverse DNS, when one is known.
	Name string `json:"name,omitempty"`
	File string `json:"file"`
	Sent int64  `json:"sent"`
	Size int64  `json:"size"`
}

// NewActive returns an empty registry.
func NewActive() *Active { return &Active{m: map[*activeDL]struct{}{}} }

// Len is the number of downloads in progress.
func (a *Active) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.m)
}

// List returns the downloads in progress, longest running first; client addresses only
// when asked (they are personal data: only logged-in viewers see them).
func (a *Active) List(withClients bool) []Download {
	a.mu.Lock()
	dls := make([]*activeDL, 0, len(a.m))
	for d := range a.m {
		dls = append(dls, d)
	}
	a.mu.Unlock()
	sort.Slice(dls, func(i, j int) bool { return dls[i].start.Before(dls[j].start) })
	out := make([]Download, 0, len(dls))
	for _, d := range dls {
		dl := Download{File: d.file, Sent: d.cw.sent.Load(), Size: d.cw.size.Load()}
		if withClients {
			dl.Client = d.client
		}
		out = append(out, dl)
	}
	return out
}

// Rate is the bytes per second mirror downloads are being sent at, running ones included
// (a 300 MB package at 20 KB/s counts while it goes, not only when it ends). Sampled at
// most about once a second; callers (the live pulse) ask that often.
func (a *Active) Rate() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	total := a.done
	for d := range a.m {
		total += d.cw.sent.Load()
	}
	now := time.Now()
	if el := now.Sub(a.lastAt); el >= 900*time.Millisecond {
		if !a.lastAt.IsZero() {
			a.rate = float64(total-a.lastTotal) / el.Seconds()
		}
		a.lastAt, a.lastTotal = now, total
	}
	return a.rate
}

// track registers mirror downloads while they run. It must sit inside Count, whose
// writer (byte count, client) it reads.
func (a *Active) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw, ok := w.(*countingWriter)
		if !ok || r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, MirrorPrefix) || strings.HasSuffix(r.URL.Path, "/") {
			next.ServeHTTP(w, r)
			return
		}
		d := &activeDL{client: cw.client.String(), file: strings.TrimPrefix(r.URL.Path, MirrorPrefix), start: time.Now(), cw: cw}
		a.mu.Lock()
		a.m[d] = struct{}{}
		a.mu.Unlock()
		defer func() {
			a.mu.Lock()
			delete(a.m, d)
			a.done += cw.sent.Load()
			a.mu.Unlock()
		}()
		next.ServeHTTP(w, r)
	})
}

// contentLength reads a response's declared length, 0 when none.
func contentLength(h http.Header) int64 {
	n, _ := strconv.ParseInt(h.Get("Content-Length"), 10, 64)
	return n
}
