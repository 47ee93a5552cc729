package web

import (
	"bytes"
	"net/http"
	"time"
)

// favicon answers /favicon.ico, which browsers ask for whatever the page links, with the
// SVG icon (every browser that asks for it takes SVG there), cached like the static files.
func favicon(w http.ResponseWriter, r *http.Request) {
	b, err := staticFS.ReadFile("static/favicon.svg")
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	http.ServeContent(w, r, "favicon.svg", time.Time{}, bytes.NewReader(b))
}
