package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/internal/archtest"
)

// testRepos is a small but real Arch tree: epochs, a package without a description,
// dependencies across repos, provides, and one larger package.
var testRepos = []archtest.Repo{
	{Name: "core", Pkgs: []archtest.Pkg{
		{Name: "glibc", Version: "2.40+r16-1", Desc: "GNU C Library", Licenses: []string{"GPL-2.0-or-later", "LGPL-2.1-or-later"}},
		{Name: "bash", Version: "5.2.037-1", Desc: "The GNU Bourne Again shell", Depends: []string{"glibc>=2.40", "readline"}, Provides: []string{"sh"}},
		{Name: "readline", Version: "8.2.013-1", Desc: "GNU readline library", Depends: []string{"glibc"}},
	}},
	{Name: "extra", Pkgs: []archtest.Pkg{
		{Name: "hello", Version: "2:2.12.1-3", Desc: "Prints a friendly greeting", Depends: []string{"bash"},
			OptDepends: []string{"readline: line editing"}},
		{Name: "nodesc", Version: "0.1-1"},
		{Name: "bigdata", Version: "1.0-1", Desc: "A large package", PayloadSize: 3 << 20},
	}},
}

// TestPacmanAgainstAmwi is the product's promise: a stock pacman pointed at amwi refreshes
// its databases, downloads packages and installs them with their dependencies.
func TestPacmanAgainstAmwi(t *testing.T) {
	t.Parallel()
	archtest.Require(t, "pacman", "repo-add", "bsdtar")
	dir := t.TempDir()
	mirror := filepath.Join(dir, "mirror")
	archtest.BuildTree(t, mirror, testRepos...)
	_, base := serve(t, writeConfig(t, dir, mirror, ""))

	conf := archtest.PacmanConf(t, filepath.Join(dir, "client"), base+"/archlinux", "core", "extra")
	out := archtest.Pacman(t, conf, "-Sy")
	for _, repo := range []string{"core", "extra"} {
		if _, err := os.Stat(filepath.Join(dir, "client", "db", "sync", repo+".db")); err != nil {
			t.Fatalf("pacman -Sy did not fetch %s.db: %v\n%s", repo, err, out)
		}
	}

	// -Sw: download only, into the cache.
	archtest.Pacman(t, conf, "-Sw", "bigdata")
	cached := filepath.Join(dir, "client", "cache", testRepos[1].Pkgs[2].FileName())
	want, _ := os.ReadFile(filepath.Join(mirror, "pool", "packages", testRepos[1].Pkgs[2].FileName()))
	if got, err := os.ReadFile(cached); err != nil || len(got) != len(want) || string(got) != string(want) {
		t.Fatalf("pacman -Sw: cached package differs from the mirror's (err %v, %d vs %d bytes)", err, len(got), len(want))
	}

	// Resume: pacman keeps an interrupted download as NAME.part and continues it with a
	// Range request; amwi answers 206 and the result is the whole package.
	os.Remove(cached)
	os.WriteFile(cached+".part", want[:len(want)/2], 0o644)
	out = archtest.Pacman(t, conf, "-Sw", "bigdata", "--debug")
	if !strings.Contains(out, "attempting continuation from") {
		t.Errorf("pacman did not resume the .part download:\n%s", strings.Join(lines(out, "bigdata"), "\n"))
	}
	if got, err := os.ReadFile(cached); err != nil || string(got) != string(want) {
		t.Fatalf("resumed package differs from the mirror's (err %v, %d vs %d bytes)", err, len(got), len(want))
	}

	// Keep-alive: pacman (libcurl) fetches the packages one after another over one
	// connection, the 3 MiB one included (amwi used to close after every file >= 1 MiB).
	os.Remove(cached)
	before := metricValue(t, base, "amwi_http_connections_accepted_total")
	archtest.Pacman(t, conf, "-Sw", "bigdata", "hello", "nodesc")
	if n := metricValue(t, base, "amwi_http_connections_accepted_total") - before - 1; n != 1 { // -1: this /metrics
		t.Errorf("pacman -Sw of 6 packages used %v connections, want 1", n)
	}

	// -S: resolve dependencies across repos, download, verify sizes/checksums, install.
	out = archtest.Pacman(t, conf, "-S", "hello")
	for _, f := range []string{"usr/share/hello/README", "usr/share/bash/README", "usr/share/glibc/README", "usr/share/readline/README"} {
		if _, err := os.Stat(filepath.Join(dir, "client", "root", f)); err != nil {
			t.Errorf("after pacman -S hello, %s is not installed: %v", f, err)
		}
	}
	q := archtest.Pacman(t, conf, "-Q")
	for _, p := range []string{"hello 2:2.12.1-3", "bash 5.2.037-1", "glibc 2.40+r16-1", "readline 8.2.013-1"} {
		if !strings.Contains(q, p) {
			t.Errorf("pacman -Q does not list %q:\n%s\n(install output:\n%s)", p, q, out)
		}
	}

	// A second -Sy with nothing changed: pacman sends If-Modified-Since (its "time
	// condition") and amwi answers 304 for both databases.
	out = archtest.Pacman(t, conf, "-Sy", "--debug")
	if n := strings.Count(out, "response code 304"); n != 2 {
		t.Errorf("second pacman -Sy: want 2 databases answered 304, got %d:\n%s", n, strings.Join(lines(out, ".db:"), "\n"))
	}
}

// metricValue reads one unlabelled series from amwi's /metrics, over a connection of its own.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	c := http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(b)
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("/metrics: %s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}
