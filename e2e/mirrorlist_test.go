package e2e

import (
	"context"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/amwi/amwi/internal/archtest"
	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// setupLine is the Overview's one-line set-up command, as the page shows it.
var setupLine = regexp.MustCompile(`<code id="setup-command">([^<]*)</code>`)

// TestMirrorlistSetsUpPacman: the one-line set-up the Overview shows, run as a user runs
// it (curl piped into tee, only the destination changed), writes a mirrorlist that a real
// pacman uses: this amwi first, and while it is down, the upstream's HTTP mirror the list
// names second.
func TestMirrorlistSetsUpPacman(t *testing.T) {
	t.Parallel()
	archtest.Require(t, "pacman", "repo-add", "bsdtar", "curl")
	dir := t.TempDir()
	mirror := filepath.Join(dir, "mirror")
	archtest.BuildTree(t, mirror, testRepos...)

	// The upstream's HTTP side: a stand-in for an internet mirror serving the same tree.
	var upstreamHits atomic.Int64
	fileServer := http.FileServer(http.Dir(mirror))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamHits.Add(1)
		fileServer.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)

	// sync.upstream names the same host over rsync (no sync runs); sync.http_upstream is
	// its HTTP root, as the benchmark's "use as upstream" sets them.
	upHost, _, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "http://"))
	cfg := filepath.Join(dir, "amwi.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[server]\nlisten = \"127.0.0.1:0\"\n\n[mirror]\nroot = %q\nrepos = [\"core\", \"extra\"]\n\n"+
		"[sync]\nenabled = false\nupstream = \"rsync://%s:1/archlinux/\"\nhttp_upstream = %q\n\n[state]\ndir = %q\n",
		mirror, upHost, up.URL+"/", filepath.Join(dir, "state"))), 0o644)
	p, base := serve(t, cfg)

	// The command, as the Overview shows it.
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := setupLine.FindSubmatch(page)
	if m == nil {
		t.Fatalf("the Overview shows no set-up command:\n%s", page)
	}
	command := html.UnescapeString(string(m[1]))
	if want := "curl -fsS " + base + "/mirrorlist | sudo tee /etc/pacman.d/mirrorlist"; command != want {
		t.Fatalf("set-up command %q, want %q", command, want)
	}
	list := filepath.Join(dir, "client-mirrorlist")
	run := strings.Replace(command, "sudo tee /etc/pacman.d/mirrorlist", "tee "+list, 1)
	if out, err := exec.Command("sh", "-c", run).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", run, err, out)
	}
	text, _ := os.ReadFile(list)
	var servers []string
	for _, l := range strings.Split(string(text), "\n") {
		if s, ok := strings.CutPrefix(l, "Server = "); ok {
			servers = append(servers, s)
		} else if l != "" && !strings.HasPrefix(l, "#") {
			t.Errorf("mirrorlist line %q is neither a comment nor a Server line", l)
		}
	}
	want := []string{base + "/archlinux/$repo/os/$arch", up.URL + "/$repo/os/$arch"}
	if fmt.Sprint(servers) != fmt.Sprint(want) {
		t.Fatalf("Server lines %q, want %q:\n%s", servers, want, text)
	}

	// A client whose repos include that file, as /etc/pacman.conf includes the mirrorlist.
	client := filepath.Join(dir, "client")
	conf := archtest.PacmanConf(t, client, "")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[core]\nInclude = %s\n\n[extra]\nInclude = %s\n", list, list)
	f.Close()

	out := archtest.Pacman(t, conf, "-Sy")
	for _, repo := range []string{"core", "extra"} {
		if _, err := os.Stat(filepath.Join(client, "db", "sync", repo+".db")); err != nil {
			t.Fatalf("pacman -Sy did not fetch %s.db: %v\n%s", repo, err, out)
		}
	}
	archtest.Pacman(t, conf, "-Sw", "bigdata")
	big := testRepos[1].Pkgs[2].FileName()
	wantPkg, _ := os.ReadFile(filepath.Join(mirror, "pool", "packages", big))
	if got, err := os.ReadFile(filepath.Join(client, "cache", big)); err != nil || string(got) != string(wantPkg) {
		t.Fatalf("pacman -Sw through the mirrorlist: cached package differs (err %v)", err)
	}
	if n := upstreamHits.Load(); n != 0 {
		t.Errorf("with amwi up, pacman asked the upstream %d times; amwi is first in the list", n)
	}

	// amwi stops: pacman moves on to the upstream's line, which works as written.
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, 30*time.Second)
	archtest.Pacman(t, conf, "-Sy")
	archtest.Pacman(t, conf, "-Sw", "hello")
	hello := testRepos[1].Pkgs[0].FileName()
	if _, err := os.Stat(filepath.Join(client, "cache", hello)); err != nil {
		t.Fatalf("with amwi down, pacman -Sw hello did not download from the upstream's line: %v", err)
	}
	if upstreamHits.Load() == 0 {
		t.Errorf("with amwi down, the upstream's HTTP mirror was never asked")
	}
}

// TestSetupLineInBrowser: on a 390 px phone, from a plain-http LAN name (no clipboard API
// there: not a secure context), the Overview's set-up command is readable in full and its
// Copy button selects it and says so, without a console error; with the clipboard API
// (loopback is a secure context) it copies and says "Copied".
func TestSetupLineInBrowser(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mirror := filepath.Join(dir, "mirror")
	os.MkdirAll(mirror, 0o755)
	_, base := serve(t, writeConfig(t, dir, mirror, ""))
	port := base[strings.LastIndexByte(base, ':')+1:]
	// pi.lan is this amwi, as a LAN's DNS would have it.
	ctx := browser(t, chromedp.Flag("host-resolver-rules", "MAP pi.lan 127.0.0.1"))
	shots := artifacts(t)
	run := func(step string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	// visible lists the set-up command or its button where either is not wholly on screen.
	const visible = `(() => {
	  const vw = document.documentElement.clientWidth, out = [];
	  for (const sel of ["#setup-command", "button[data-copy]"]) {
	    const el = document.querySelector(sel), r = el.getBoundingClientRect();
	    if (r.left < 0 || r.right > vw || el.scrollWidth > el.clientWidth + 1) out.push(sel + " not wholly visible: " + Math.round(r.left) + ".." + Math.round(r.right) + ", scrollWidth " + el.scrollWidth + " > " + el.clientWidth);
	  }
	  return out;
	})()`
	var problems, hidden []string
	var command, status, selected string
	var hasClipboard bool
	lan := "http://pi.lan:" + port
	run("phone overview", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(lan+"/"), chromedp.WaitVisible(`#setup-command`, chromedp.ByQuery),
		chromedp.Text(`#setup-command`, &command, chromedp.ByQuery),
		chromedp.Evaluate(overflowJS, &problems), chromedp.Evaluate(visible, &hidden),
		chromedp.Evaluate(`!!navigator.clipboard`, &hasClipboard))
	if want := "curl -fsS " + lan + "/mirrorlist | sudo tee /etc/pacman.d/mirrorlist"; command != want {
		t.Errorf("command %q, want %q", command, want)
	}
	for _, p := range append(problems, hidden...) {
		t.Errorf("at 390 px: %s", p)
	}
	if hasClipboard {
		t.Errorf("http://pi.lan is not a secure context, yet navigator.clipboard exists: the fallback is not tested")
	}
	run("copy on plain http", chromedp.Click(`button[data-copy]`, chromedp.ByQuery),
		chromedp.Poll(`document.querySelector('[data-copy-status]').textContent !== ""`, nil, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Text(`[data-copy-status]`, &status, chromedp.ByQuery),
		chromedp.Evaluate(`window.getSelection().toString()`, &selected),
		chromedp.Evaluate(overflowJS, &problems), chromedp.Evaluate(visible, &hidden),
		screenshot(shots, "mirrorlist-setup-390"))
	if status != "Copied" && status != "Select and copy" {
		t.Errorf("after Copy on plain http the page says %q", status)
	}
	if selected != command {
		t.Errorf("after Copy on plain http the selection is %q, want the command", selected)
	}
	for _, p := range append(problems, hidden...) {
		t.Errorf("at 390 px after Copy: %s", p)
	}

	// Loopback is a secure context: the clipboard API copies.
	var clip string
	run("copy with the clipboard API", chromedp.ActionFunc(func(ctx context.Context) error {
		return grantClipboard(ctx, base)
	}), chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#setup-command`, chromedp.ByQuery),
		chromedp.Text(`#setup-command`, &command, chromedp.ByQuery),
		chromedp.Click(`button[data-copy]`, chromedp.ByQuery),
		chromedp.Poll(`document.querySelector('[data-copy-status]').textContent !== ""`, nil, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Text(`[data-copy-status]`, &status, chromedp.ByQuery),
		chromedp.Evaluate(`navigator.clipboard.readText()`, &clip, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if status != "Copied" || clip != command {
		t.Errorf("with the clipboard API: page says %q, clipboard holds %q, want %q", status, clip, command)
	}
}

// grantClipboard lets pages of origin use the clipboard without asking (a headless
// browser has nobody to ask).
func grantClipboard(ctx context.Context, origin string) error {
	perms := []cdpbrowser.PermissionType{cdpbrowser.PermissionTypeClipboardReadWrite, cdpbrowser.PermissionTypeClipboardSanitizedWrite}
	return cdpbrowser.GrantPermissions(perms).WithOrigin(origin).Do(cdp.WithExecutor(ctx, chromedp.FromContext(ctx).Browser))
}

// TestMirrorlistBehindProxy: behind a real nginx serving AMWI under /mirror/ (and sending
// its own Host, as proxy_pass does by default), server.public_url makes the Overview's
// command and /mirrorlist name the proxy's address and path, and a real pacman set up
// with that list works through the proxy.
func TestMirrorlistBehindProxy(t *testing.T) {
	t.Parallel()
	archtest.Require(t, "pacman", "repo-add", "bsdtar", "curl", "nginx")
	dir := t.TempDir()
	mirror := filepath.Join(dir, "mirror")
	archtest.BuildTree(t, mirror, testRepos...)
	proxyAddr := freePort(t)
	public := "http://" + proxyAddr + "/mirror"
	cfg := filepath.Join(dir, "amwi.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[server]\nlisten = \"127.0.0.1:0\"\npublic_url = %q\n\n[mirror]\nroot = %q\nrepos = [\"core\", \"extra\"]\n\n[state]\ndir = %q\n",
		public+"/", mirror, filepath.Join(dir, "state"))), 0o644)
	_, base := serve(t, cfg)

	ng := filepath.Join(dir, "nginx")
	os.MkdirAll(filepath.Join(ng, "logs"), 0o755)
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen %[2]s;
		location /mirror/ { proxy_pass %[3]s/; }
	}
}
`, ng, proxyAddr, base)
	os.WriteFile(filepath.Join(ng, "nginx.conf"), []byte(conf), 0o644)
	nginx := start(t, nil, "nginx", "-p", ng, "-c", filepath.Join(ng, "nginx.conf"))
	var page []byte
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(public + "/")
		if err == nil {
			page, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not proxy to amwi: %v\n%s", err, nginx.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}

	m := setupLine.FindSubmatch(page)
	if m == nil {
		t.Fatalf("the Overview through the proxy shows no set-up command:\n%s", page)
	}
	command := html.UnescapeString(string(m[1]))
	if want := "curl -fsS " + public + "/mirrorlist | sudo tee /etc/pacman.d/mirrorlist"; command != want {
		t.Fatalf("set-up command through the proxy %q, want %q", command, want)
	}
	list := filepath.Join(dir, "client-mirrorlist")
	run := strings.Replace(command, "sudo tee /etc/pacman.d/mirrorlist", "tee "+list, 1)
	if out, err := exec.Command("sh", "-c", run).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", run, err, out)
	}
	text, _ := os.ReadFile(list)
	if !strings.Contains(string(text), "\nServer = "+public+"/archlinux/$repo/os/$arch\n") || strings.Count(string(text), "Server = ") != 1 ||
		!strings.Contains(string(text), "## No upstream is configured yet") {
		t.Fatalf("mirrorlist through the proxy:\n%s", text)
	}

	client := filepath.Join(dir, "client")
	pconf := archtest.PacmanConf(t, client, "")
	f, err := os.OpenFile(pconf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[core]\nInclude = %s\n\n[extra]\nInclude = %s\n", list, list)
	f.Close()
	archtest.Pacman(t, pconf, "-Sy")
	archtest.Pacman(t, pconf, "-Sw", "hello")
	if _, err := os.Stat(filepath.Join(client, "cache", testRepos[1].Pkgs[0].FileName())); err != nil {
		t.Fatalf("pacman -Sw hello through the proxy's mirrorlist: %v", err)
	}
}
