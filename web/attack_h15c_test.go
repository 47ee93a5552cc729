package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Attack h15c: the gzipped static assets.

func staticH15c() http.Handler {
	static, _ := fs.Sub(staticFS, "static")
	return http.StripPrefix("/static/", newStaticFiles(static))
}

// TestAttackStaticGzipExplicitRefusal: RFC 9110 §12.5.3: "*" matches only the codings
// not listed elsewhere in the field. "gzip;q=0, *" refuses gzip explicitly; the handler
// sends gzip anyway because "*" matches first in its loop.
func TestAttackStaticGzipExplicitRefusal(t *testing.T) {
	h := staticH15c()
	for _, ae := range []string{"gzip;q=0, *", "*, gzip;q=0"} {
		r := httptest.NewRequest("GET", "/static/app.js", nil)
		r.Header.Set("Accept-Encoding", ae)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Header().Get("Content-Encoding") == "gzip" {
			t.Errorf("Accept-Encoding %q (gzip refused with q=0): answered gzipped", ae)
		}
	}
}

// TestAttackStaticGzipMultiRange: a multi-range request on a gzipped asset gets a
// multipart/byteranges body under "Content-Encoding: gzip". That header says the whole
// body is gzip; it is a plain multipart text, so a client that decodes the coding
// (curl --compressed, exit 61 "Unrecognized content encoding") fails.
func TestAttackStaticGzipMultiRange(t *testing.T) {
	h := staticH15c()
	r := httptest.NewRequest("GET", "/static/app.js", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	r.Header.Set("Range", "bytes=0-0,5-5")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Header().Get("Content-Encoding") != "gzip" {
		return
	}
	if _, err := gzip.NewReader(bytes.NewReader(w.Body.Bytes())); err != nil {
		t.Errorf("%d %s with Content-Encoding: gzip, but the body is not gzip: %v (%q…)", w.Code, w.Header().Get("Content-Type"), err, w.Body.Bytes()[:min(20, w.Body.Len())])
	}
}

// TestAttackStaticGzipLength: ServeContent leaves out Content-Length when
// Content-Encoding is set, so a gzipped asset's HEAD has no length and its GET goes
// chunked; before gzip, and for the plain answer, both carry it (nginx's gzip_static
// sends it too).
func TestAttackStaticGzipLength(t *testing.T) {
	srv := httptest.NewServer(staticH15c())
	defer srv.Close()
	for _, m := range []string{"HEAD", "GET"} {
		req, _ := http.NewRequest(m, srv.URL+"/static/chart.js", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		res, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.Header.Get("Content-Encoding") == "gzip" && res.Header.Get("Content-Length") == "" {
			t.Errorf("%s gzipped chart.js: no Content-Length (Transfer-Encoding %v)", m, res.TransferEncoding)
		}
	}
}
