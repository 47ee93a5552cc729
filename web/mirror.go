package web

import (
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/amwi/amwi/internal/units"
)

// Mirror serves the files of the local Arch mirror, as nginx with autoindex would.
//
// Every path is opened beneath the mirror root (openat2 RESOLVE_BENEATH, or an os.Root), so
// symlinks are followed only while they stay inside the mirror (Arch's
// ../../../pool/packages/… links do; an absolute or escaping one is refused by the kernel,
// not by string checks). Names starting with a
// dot — rsync's .~tmp~ staging dirs, dotfiles — are invisible.
type Mirror struct {
	root        *os.Root
	files       *beneath
	prefix      string
	sendTimeout time.Duration
	log         *slog.Logger
	// Misses, when set, is asked about a file that is not on disk before it is a 404
	// ("used" mode: the databases name it, daemon/ondemand fetches it). Set it before
	// serving.
	Misses Misses
	// hits counts package files served from disk (what "used" mode calls a hit).
	hits atomic.Int64
}

// Misses answers requests for files not on disk that the mirror can fetch.
type Misses interface {
	// ServeMiss answers the request for name (mirror-relative, cleaned: no dot names,
	// no "..") and reports true, or reports false having written nothing when it has no
	// such file to offer (the request is then a 404).
	ServeMiss(w http.ResponseWriter, r *http.Request, name string) bool
}

// Hits is how many package files (and their signatures) were served from disk.
func (m *Mirror) Hits() int64 { return m.hits.Load() }

// NewMirror serves root at URL prefix (e.g. "/archlinux/"). sendTimeout closes a download
// whose client accepted nothing for that long; 0 disables it.
func NewMirror(root *os.Root, prefix string, sendTimeout time.Duration, log *slog.Logger) *Mirror {
	return &Mirror{root: root, files: newBeneath(root), prefix: prefix, sendTimeout: sendTimeout, log: log}
}

func (m *Mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rel, ok := strings.CutPrefix(r.URL.Path, m.prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	name, ok := cleanName(rel)
	if !ok {
		http.NotFound(w, r)
		return
	}
	f, fi, err := m.files.OpenSized(name)
	if err != nil {
		if m.Misses != nil && errors.Is(err, fs.ErrNotExist) {
			dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: m.sendTimeout}
			served := m.Misses.ServeMiss(dw, r, name)
			dw.done()
			if served {
				return
			}
		}
		m.fail(w, r, err)
		return
	}
	defer f.Close()
	switch {
	case fi.IsDir():
		if !strings.HasSuffix(r.URL.Path, "/") {
			target := r.URL.EscapedPath() + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
		// Listed through os.Root: its entries' Info() is then read relative to the
		// directory, not to a path name.
		d, err := m.root.Open(name)
		if err != nil {
			m.fail(w, r, err)
			return
		}
		defer d.Close()
		// A client that stops reading an index larger than the socket buffers (extra's
		// is megabytes) would otherwise hold the connection, and the listing's entries
		// in memory, for ever: the send timeout cuts it as it cuts a download.
		dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: m.sendTimeout}
		m.index(dw, r, d, name)
		dw.done()
	case !fi.Mode().IsRegular() || strings.HasSuffix(r.URL.Path, "/"):
		http.NotFound(w, r)
	default:
		h := w.Header()
		h.Set("Content-Type", contentType(name))
		h.Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.ModTime().Unix(), fi.Size()))
		// ServeContent does Range (206, resume of pacman's .part files), HEAD,
		// If-Modified-Since/If-None-Match (304) and Content-Length, and copies an *os.File
		// with io.CopyN, which reaches the connection's ReadFrom: sendfile(2). The size is
		// known from the Stat above, so its seeks to learn it cost nothing (sizedFile).
		if isPackageFile(name) {
			m.hits.Add(1)
		}
		dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: m.sendTimeout}
		http.ServeContent(dw, r, fi.Name(), fi.ModTime(), f)
		dw.done()
	}
}

// contentTypes is deliberately small and fixed: what a mirror holds is packages, databases,
// signatures and images, all application/octet-stream (nginx's default_type), and a fixed
// table keeps answers the same whatever /etc/mime.types the box has. It also spares
// ServeContent a sniffing read.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".txt":  "text/plain; charset=utf-8",
	".json": "application/json",
}

func contentType(name string) string {
	if t, ok := contentTypes[path.Ext(name)]; ok {
		return t
	}
	return "application/octet-stream"
}

// isPackageFile reports a package file or its signature by name (NAME-VER-REL-ARCH.pkg.tar.*).
func isPackageFile(name string) bool {
	return strings.Contains(path.Base(name), ".pkg.tar")
}

// cleanName turns the part of the URL path after the prefix into a name for os.Root, or
// reports false for anything that is not a plain downward path to a visible file.
func cleanName(rel string) (string, bool) {
	rel = strings.TrimSuffix(rel, "/")
	if rel == "" {
		return ".", true
	}
	if strings.IndexByte(rel, 0) >= 0 || strings.Contains(rel, "\\") {
		return "", false
	}
	for _, part := range strings.Split(rel, "/") {
		// Empty (//), ".", ".." and hidden names (.~tmp~, .git, dotfiles) are not served.
		if part == "" || part[0] == '.' {
			return "", false
		}
	}
	return rel, true
}

// fail maps an open/stat error to a status; the cause is logged, never shown.
func (m *Mirror) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case notServed(err):
		http.NotFound(w, r)
	case errors.Is(err, fs.ErrPermission):
		http.Error(w, "403 forbidden", http.StatusForbidden)
	default:
		m.log.Error("mirror: open failed", "path", r.URL.Path, "err", err)
		http.Error(w, "500 internal server error", http.StatusInternalServerError)
	}
}

// notServed is an open error that means "no such file here" to a client: missing, outside
// the mirror, through a non-directory, a link loop, a name too long.
func notServed(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || isEscape(err) || errors.Is(err, syscall.ENOTDIR) ||
		errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENAMETOOLONG)
}

// isEscape reports os.Root's refusal of a path or symlink that leaves the root.
func isEscape(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && (pe.Err == errEscapes || strings.Contains(pe.Err.Error(), "escapes from parent"))
}

// deadlineWriter gives a download a write deadline that moves forward with progress: each
// chunk must be accepted within the timeout, so a stalled client is cut while a slow one
// (20 KB/s for an hour) is not. It keeps ReadFrom, so the copy stays sendfile(2); a file
// the front loop sends itself goes whole, under sendProgress's equal rule.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	armed   bool
	at      time.Time // when Write last moved the deadline
}

// deadlineChunk is what must go out within one timeout: 256 KiB per send_timeout (at least
// 30 s) tolerates clients down to ~8 KB/s. It cannot adapt to the client's rate: socket
// buffers swallow the first megabytes at once, so a measured rate would say nothing about
// a slow Wi-Fi client. Sending in chunks of it costs a trip through the writers and a
// new sendfile call per chunk, a fifth more CPU per GiB at 16 connections; the front loop
// therefore sends a mirror file whole and moves the deadline by the same rule itself
// (sendProgress), and the chunks remain for net/http's connections.
const deadlineChunk = 256 << 10

func (d *deadlineWriter) arm() {
	if d.timeout > 0 && d.rc.SetWriteDeadline(time.Now().Add(d.timeout)) == nil {
		d.armed = true
	}
}

// done clears the deadline so it does not outlive this response on a kept-alive connection.
func (d *deadlineWriter) done() {
	if d.armed {
		_ = d.rc.SetWriteDeadline(time.Time{})
	}
}

// Write moves the deadline at most every timeout/8: a template's many small writes would
// otherwise reset the connection's timer for each.
func (d *deadlineWriter) Write(p []byte) (int, error) {
	if d.timeout > 0 {
		if now := time.Now(); !d.armed || now.Sub(d.at) >= d.timeout/8 {
			d.at = now
			d.arm()
		}
	}
	return d.ResponseWriter.Write(p)
}

func (d *deadlineWriter) ReadFrom(src io.Reader) (int64, error) {
	lr, ok := src.(*io.LimitedReader)
	if d.timeout <= 0 || !ok {
		d.arm()
		return readFrom(d.ResponseWriter, src)
	}
	if fw, cw := frontOf(d.ResponseWriter); fw != nil && fw.sendsItself(src) {
		// The front loop sends the whole file and moves the deadline itself, which saves
		// a trip up here and a new sendfile call per chunk (see sendProgress).
		d.armed = true // done clears the deadline
		var counted func(int64)
		if cw != nil {
			counted = cw.counted
		}
		return fw.sendTimed(src, d.timeout, counted)
	}
	var total int64
	for lr.N > 0 {
		d.arm()
		chunk := &io.LimitedReader{R: lr.R, N: min(lr.N, deadlineChunk)}
		n, err := readFrom(d.ResponseWriter, chunk)
		total += n
		lr.N -= n
		if err != nil {
			return total, err
		}
		if n == 0 { // the file is shorter than announced
			break
		}
	}
	return total, nil
}

func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// frontOf is the front loop's writer under w, straight or under the traffic count, and
// that count (nil when w is not counted).
func frontOf(w http.ResponseWriter) (*frontWriter, *countingWriter) {
	cw, ok := w.(*countingWriter)
	if ok {
		w = cw.ResponseWriter
	}
	fw, _ := w.(*frontWriter)
	return fw, cw
}

// readFrom uses w's ReadFrom when it has one, else a plain copy. The mirror's writers and
// frontWriter take a sizedFile as it is; to any other (net/http's response, whose
// ReadFrom does sendfile(2) for an *os.File) it goes as the file itself.
func readFrom(w http.ResponseWriter, src io.Reader) (int64, error) {
	rf, ok := w.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{w}, src)
	}
	switch w.(type) {
	case *countingWriter, *deadlineWriter, *frontWriter:
		return rf.ReadFrom(src)
	}
	if s, lr, ok := asSized(src); ok {
		n, err := s.sendTo(rf, lr.N)
		lr.N -= n
		return n, err
	}
	return rf.ReadFrom(src)
}

// writerOnly hides ReadFrom so io.Copy does not recurse into it.
type writerOnly struct{ io.Writer }

type indexEntry struct {
	Name    string
	IsDir   bool
	Size    int64
	ModTime time.Time
}

// index lists a directory like nginx's autoindex: hidden names left out, symlinks shown as
// what they point to, entries that cannot be served (broken or escaping links) left out.
func (m *Mirror) index(w http.ResponseWriter, r *http.Request, dir *os.File, name string) {
	des, err := dir.ReadDir(-1)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	entries := make([]indexEntry, 0, len(des))
	for _, de := range des {
		if de.Name()[0] == '.' {
			continue
		}
		var fi fs.FileInfo
		if de.Type()&fs.ModeSymlink != 0 {
			fi, err = m.root.Stat(path.Join(name, de.Name()))
		} else {
			fi, err = de.Info()
		}
		if err != nil || !(fi.IsDir() || fi.Mode().IsRegular()) {
			continue
		}
		entries = append(entries, indexEntry{Name: de.Name(), IsDir: fi.IsDir(), Size: fi.Size(), ModTime: fi.ModTime()})
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].IsDir != entries[j].IsDir {
			return entries[i].IsDir
		}
		return entries[i].Name < entries[j].Name
	})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.Method == http.MethodHead {
		return
	}
	err = indexTmpl.Execute(w, struct {
		Path    string
		Root    bool
		Crumbs  []crumb
		Entries []indexEntry
	}{r.URL.Path, name == ".", crumbs(m.prefix, name), entries})
	if err != nil {
		m.log.Debug("mirror: index write failed", "path", r.URL.Path, "err", err)
	}
}

// crumb is one step of the index's breadcrumb: a folder's name and its URL ("" for the
// folder shown).
type crumb struct{ Name, Href string }

// crumbs is the breadcrumb to the folder name (mirror-relative, cleaned; "." for the
// root) under prefix: "archlinux / core / os / x86_64", each step but the last a link.
func crumbs(prefix, name string) []crumb {
	href := prefix
	out := []crumb{{Name: strings.Trim(prefix, "/"), Href: href}}
	if name != "." {
		for _, part := range strings.Split(name, "/") {
			href += url.PathEscape(part) + "/"
			out = append(out, crumb{Name: part, Href: href})
		}
	}
	out[len(out)-1].Href = ""
	return out
}

// indexTmpl is the mirror's directory listing, with the dashboard's header and a
// breadcrumb, laid out for a phone too (long names wrap, the table fits 390 px). The
// mirror's CSP (mirrorSecurityPolicy) runs no script and loads nothing but the favicon:
// the styles are inline, which it allows, and nothing in the page is an inline script or
// event handler.
var indexTmpl = template.Must(template.New("index").Funcs(template.FuncMap{
	"size":       units.Bytes,
	"pathEscape": url.PathEscape,
	"date":       func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"clock":      func(t time.Time) string { return t.UTC().Format("15:04") },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Index of {{.Path}} · AMWI</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<style>
:root{--bg:#fff;--fg:#1d2125;--muted:#5f6b76;--line:#dde3ea;--card:#f6f8fa;--accent:#1793d1}
@media (prefers-color-scheme:dark){:root{--bg:#15181b;--fg:#e4e8ec;--muted:#9aa6b2;--line:#2c3339;--card:#1d2226;--accent:#4fb3e8}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
header{display:flex;flex-wrap:wrap;align-items:center;gap:.3rem 1rem;padding:.6rem 1rem;border-bottom:1px solid var(--line)}
header .brand{font-weight:700;color:var(--fg)}
nav{display:flex;flex-wrap:wrap;gap:.2rem .8rem}nav a{color:var(--muted)}nav a.on{color:var(--fg);font-weight:600}
main{max-width:64rem;margin:0 auto;padding:1rem}
h1{font-size:1.2rem;font-weight:600;margin:.2rem 0 1rem;overflow-wrap:anywhere}
h1 .sep{color:var(--muted);margin:0 .25rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.85rem;color:var(--muted);font-weight:600}
td.name{overflow-wrap:anywhere;word-break:break-word}
td.t,td.s{white-space:nowrap;color:var(--muted);font-variant-numeric:tabular-nums}
th.s,td.s{text-align:right}
tr:hover td{background:var(--card)}
@media (max-width:40rem){main{padding:.6rem}th,td{padding:.3rem .3rem}td.t,td.s{font-size:.8rem}td.t{white-space:normal}td.t span{display:block}}
</style>
</head><body>
<header>
<a class="brand" href="/">AMWI</a>
<nav aria-label="Main"><a href="/">Overview</a><a href="/sync">Sync</a><a href="/search">Packages</a><a href="{{(index .Crumbs 0).Href}}" class="on" aria-current="page">Mirror files</a></nav>
</header>
<main>
<h1><span class="muted">Index of</span> <span class="crumbs">{{range $i, $c := .Crumbs}}{{if $i}}<span class="sep">/</span>{{end}}{{if $c.Href}}<a href="{{$c.Href}}">{{$c.Name}}</a>{{else}}<span aria-current="page">{{$c.Name}}</span>{{end}}{{end}}</span></h1>
<table><thead><tr><th>Name</th><th class="t">Modified (UTC)</th><th class="s">Size</th></tr></thead><tbody>
{{if not .Root}}<tr><td class="name"><a href="../">../</a></td><td class="t"></td><td class="s">-</td></tr>
{{end}}{{range .Entries}}<tr><td class="name"><a href="./{{pathEscape .Name}}{{if .IsDir}}/{{end}}">{{.Name}}{{if .IsDir}}/{{end}}</a></td><td class="t"><span>{{date .ModTime}}</span> <span>{{clock .ModTime}}</span></td><td class="s">{{if .IsDir}}-{{else}}{{size .Size}}{{end}}</td></tr>
{{end}}</tbody></table>
</main>
</body></html>
`))
