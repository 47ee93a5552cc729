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

// TestStaticGzip: the dashboard's assets go gzipped to a browser that accepts it, the
// same bytes once unpacked, with their own type and Vary; as they are to anyone who does
// not (q=0 is a refusal); the cache header either way.
func TestStaticGzip(t *testing.T) {
	static, _ := fs.Sub(staticFS, "static")
	h := staticHandler()
	for _, tt := range []struct {
		file, ctype string
	}{{"app.css", "text/css; charset=utf-8"}, {"app.js", "text/javascript; charset=utf-8"}, {"chart.js", "text/javascript; charset=utf-8"}} {
		want, err := fs.ReadFile(static, tt.file)
		if err != nil {
			t.Fatal(err)
		}
		for _, ae := range []string{"", "gzip", "gzip, deflate, br, zstd", "br;q=1.0, gzip;q=0.8", "x-gzip", "*", "gzip;q=0", "gzip;q=0.000", "identity", "deflate"} {
			r := httptest.NewRequest("GET", "/static/"+tt.file, nil)
			if ae != "" {
				r.Header.Set("Accept-Encoding", ae)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			res := w.Result()
			body, _ := io.ReadAll(res.Body)
			gz := res.Header.Get("Content-Encoding") == "gzip"
			if wantGz := ae != "" && ae != "gzip;q=0" && ae != "gzip;q=0.000" && ae != "identity" && ae != "deflate"; gz != wantGz {
				t.Errorf("%s with Accept-Encoding %q: gzipped %v, want %v", tt.file, ae, gz, wantGz)
			}
			if gz {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("%s: %v", tt.file, err)
				}
				if body, _ = io.ReadAll(zr); len(body) == len(want) && w.Body.Len() >= len(want) {
					t.Errorf("%s: gzipped to %d bytes of %d", tt.file, w.Body.Len(), len(want))
				}
			}
			if res.StatusCode != 200 || !bytes.Equal(body, want) {
				t.Errorf("%s with %q: %d, %d bytes, want the file's %d", tt.file, ae, res.StatusCode, len(body), len(want))
			}
			if ct := res.Header.Get("Content-Type"); ct != tt.ctype {
				t.Errorf("%s with %q: Content-Type %q", tt.file, ae, ct)
			}
			if res.Header.Get("Vary") != "Accept-Encoding" || res.Header.Get("Cache-Control") != "public, max-age=86400" {
				t.Errorf("%s with %q: Vary %q, Cache-Control %q", tt.file, ae, res.Header.Get("Vary"), res.Header.Get("Cache-Control"))
			}
		}
	}
	// A HEAD is answered with the headers alone; a name not there is a 404.
	r := httptest.NewRequest("HEAD", "/static/app.js", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Encoding") != "gzip" {
		t.Errorf("HEAD: %d, %d bytes, %q", w.Code, w.Body.Len(), w.Header().Get("Content-Encoding"))
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/static/nope.js", nil))
	if w.Code != 404 {
		t.Errorf("a missing asset: %d", w.Code)
	}
}

func staticHandler() http.Handler {
	static, _ := fs.Sub(staticFS, "static")
	return http.StripPrefix("/static/", newStaticFiles(static))
}

// TestStaticGzipExplicitRefusal: RFC 9110 §12.5.3: "*" matches only the codings not
// listed elsewhere in the field, so "gzip;q=0, *" refuses gzip whatever the order.
func TestStaticGzipExplicitRefusal(t *testing.T) {
	h := staticHandler()
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

// TestStaticGzipMultiRange: a multi-range request on a gzipped asset once got a
// multipart/byteranges body under "Content-Encoding: gzip" (curl --compressed: exit 61).
// A gzipped answer is the whole gzip.
func TestStaticGzipMultiRange(t *testing.T) {
	h := staticHandler()
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

// TestStaticGzipLength: a gzipped asset's HEAD and GET carry its Content-Length, as
// the plain answer and nginx's gzip_static do (ServeContent leaves it out under a
// Content-Encoding, and the GET went chunked).
func TestStaticGzipLength(t *testing.T) {
	srv := httptest.NewServer(staticHandler())
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
