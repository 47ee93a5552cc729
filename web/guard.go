package web

import (
	"net/http"
	"strings"
	"time"
)

// contentSecurityPolicy: scripts and everything else from this origin only (the
// dashboard's one script is a static file), no framing (clickjacking), forms only to
// here. Inline style attributes remain allowed: they carry no code.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// mirrorSecurityPolicy is for everything under the mirror: its files come from the
// upstream mirror (any volunteer's server the benchmark picked), not from us, yet they are
// served on the dashboard's origin. An .html file there (text/html, see contentTypes) must
// not run script as the dashboard: "sandbox" gives it an origin of its own and
// default-src 'none' runs nothing. The directory index needs only its inline style and
// the dashboard's favicon (an image: img-src 'self' lets no code in).
const mirrorSecurityPolicy = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// bodyDeadline is how long a request body may take to arrive (dashboard forms, API
// calls): a client trickling a body a byte every few seconds is cut, not kept for ever.
const bodyDeadline = 15 * time.Second

// maxBodyBytes bounds a request body. The dashboard's forms and the API's JSON are a few
// KiB at most, and net/http would otherwise read up to 10 MiB of a form, and 32 MiB of a
// multipart one, into memory (the rest into temporary files) for anyone: a few dozen such
// posts to /login would take a 512 MB board's memory.
const maxBodyBytes = 64 << 10

// guardRequests sets the security headers every response carries and refuses or bounds
// request bodies:
//   - every response: X-Content-Type-Options: nosniff;
//   - the mirror's files and directory index: mirrorSecurityPolicy;
//   - the dashboard and the APIs (everything but the mirror): contentSecurityPolicy,
//     Referrer-Policy: same-origin, X-Frame-Options: DENY (for browsers without
//     frame-ancestors);
//   - a GET or HEAD with a body is refused (nothing reads it; a slow one would hold the
//     connection);
//   - any other body must arrive within bodyDeadline and hold at most maxBodyBytes (413
//     when it says it is longer; a longer chunked body is cut).
func guardRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		if strings.HasPrefix(r.URL.Path, MirrorPrefix) {
			h.Set("Content-Security-Policy", mirrorSecurityPolicy)
		} else {
			h.Set("Content-Security-Policy", contentSecurityPolicy)
			h.Set("Referrer-Policy", "same-origin")
			h.Set("X-Frame-Options", "DENY")
		}
		hasBody := r.ContentLength > 0 || r.ContentLength == -1
		if hasBody && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			h.Set("Connection", "close")
			http.Error(w, "400 a GET or HEAD request has no body", http.StatusBadRequest)
			return
		}
		if r.ContentLength > maxBodyBytes {
			h.Set("Connection", "close")
			http.Error(w, "413 request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if hasBody {
			r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
			// Refreshed by net/http for the next request on the connection (its header
			// deadline), so it bounds this body only.
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyDeadline))
		}
		next.ServeHTTP(w, r)
	})
}
