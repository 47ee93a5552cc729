package e2e

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/daemon/store/storetest"
)

// dbSetup makes a mirror, a config and a state database filled as months of use leave it
// (three accounts, 40 sync runs, 30 days of traffic: branch pages in the bigger buckets),
// and returns the config and the database file.
func dbSetup(t *testing.T) (cfg, db string) {
	t.Helper()
	dir := t.TempDir()
	root, _ := mirrorWithFile(t, dir, "x", 10)
	cfg = writeConfig(t, dir, root, "")
	state := filepath.Join(dir, "state")
	// Dated now: the daemon prunes traffic older than its retention as it starts.
	storetest.Fill(t, state, 40, 30, 150, time.Now())
	return cfg, filepath.Join(state, store.FileName)
}

// refused runs `amwi serve` on a damaged database and checks the refusal: exit 3, the file
// named, what to run (with this config), no crash, and the file exactly as it was.
func refused(t *testing.T, cfg, db string) string {
	t.Helper()
	before, _ := os.ReadFile(db)
	p := start(t, nil, amwiBin, "-c", cfg, "serve")
	code := p.wait(t, 30*time.Second)
	out := p.Output()
	if code != 3 || !strings.Contains(out, db) || !strings.Contains(out, "amwi -c "+cfg+" db repair") {
		t.Fatalf("amwi serve on a damaged database: exit %d, output:\n%s\nwant exit 3 naming %s and what to run", code, out, db)
	}
	for _, crash := range []string{"panic", "SIGBUS", "goroutine ", "signal"} {
		if strings.Contains(out, crash) {
			t.Fatalf("amwi serve crashed (%q):\n%s", crash, out)
		}
	}
	if after, err := os.ReadFile(db); err != nil || !bytes.Equal(before, after) {
		t.Fatalf("the refused database changed or is gone: %v (%d → %d bytes)", err, len(before), len(after))
	}
	for _, pattern := range []string{".new-*", ".repair-*"} {
		if left, _ := filepath.Glob(db + pattern); len(left) > 0 {
			t.Fatalf("files left beside the refused database: %v", left)
		}
	}
	return out
}

// TestDamagedDatabaseRefused: `amwi serve` refuses each kind of damage an SD card or a
// power cut leaves, naming the file and what to do, without a panic or a SIGBUS, and
// never starts on an empty database in its place; `amwi db check` says DAMAGED (exit 1).
func TestDamagedDatabaseRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, db string)
		want   string
	}{
		{"zero length", func(t *testing.T, db string) { storetest.Truncate(t, db, 0) }, "the file is empty"},
		// bbolt maps the file: a page past the end of a file cut short is a SIGBUS.
		{"truncated to 16 KiB", func(t *testing.T, db string) { storetest.Truncate(t, db, 16<<10) }, "cut short"},
		{"flipped meta page", func(t *testing.T, db string) { storetest.Flip(t, db, storetest.MetaRoot, 0x04) }, "meta page 0 is damaged"},
		{"flipped freelist", func(t *testing.T, db string) {
			fl := storetest.WithFreelist(t, db)
			_, ps := storetest.Pages(t, db)
			storetest.Flip(t, db, int64(fl.ID*ps+storetest.FreelistEntries+1), 0x01)
		}, "freelist page"},
		{"flipped branch page", func(t *testing.T, db string) {
			br, ps := storetest.Find(t, db, "branch", 30)
			storetest.Flip(t, db, int64(br.ID*ps+storetest.Elements+16+storetest.BranchChild+3), 0x01)
		}, "outside the database's pages"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, db := dbSetup(t)
			tt.damage(t, db)
			if out := refused(t, cfg, db); !strings.Contains(out, tt.want) {
				t.Errorf("refusal does not say %q:\n%s", tt.want, out)
			}
			out, code := run(t, nil, nil, "-c", cfg, "db", "check")
			if code != 1 || !strings.Contains(out, db+": DAMAGED") || !strings.Contains(out, tt.want) {
				t.Errorf("amwi db check: exit %d\n%s", code, out)
			}
		})
	}
}

// TestDatabaseBackupCheckRepair walks the way out as an admin would: a hot backup while
// the daemon runs, the daily backup it keeps, repair refused while it runs; then a damaged
// branch page repaired (filled from the daily backup) and an emptied file repaired from the
// backup, each followed by a start that serves and a login that works.
func TestDatabaseBackupCheckRepair(t *testing.T) {
	t.Parallel()
	cfg, db := dbSetup(t)
	state := filepath.Dir(db)
	p, _ := serve(t, cfg)

	// The daily backup is made as the daemon starts.
	deadline := time.Now().Add(10 * time.Second)
	for len(store.Backups(state)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no daily backup in %s:\n%s", state, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// An account made after it, through the running daemon.
	if out, code := run(t, strings.NewReader("dave-password-1\n"), nil, "-c", cfg, "user", "add", "dave"); code != 0 {
		t.Fatalf("user add: %d\n%s", code, out)
	}
	// A hot copy, while the daemon holds the database.
	copyFile := filepath.Join(t.TempDir(), "copy.db")
	if out, code := run(t, nil, nil, "-c", cfg, "db", "backup", copyFile); code != 0 || !strings.Contains(out, "4 users") {
		t.Fatalf("db backup while serving: exit %d\n%s", code, out)
	}
	// Not over a device or a FIFO (as root, /dev/null was replaced by a regular file).
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := run(t, nil, nil, "-c", cfg, "db", "backup", fifo); code != 1 || !strings.Contains(out, "not a regular file") {
		t.Fatalf("db backup over a FIFO: exit %d\n%s", code, out)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode().Type() != os.ModeNamedPipe {
		t.Fatalf("db backup replaced the FIFO: %v %v", fi.Mode(), err)
	}
	if out, code := run(t, nil, nil, "db", "check", copyFile); code != 0 || !strings.Contains(out, "4 users") || !strings.Contains(out, "40 sync runs") {
		t.Fatalf("db check of the copy: exit %d\n%s", code, out)
	}
	if out, code := run(t, nil, nil, "-c", cfg, "db", "check"); code != 0 || !strings.Contains(out, "a copy the running daemon made") {
		t.Fatalf("db check while serving: exit %d\n%s", code, out)
	}
	if out, code := run(t, nil, nil, "-c", cfg, "db", "repair"); code != 1 || !strings.Contains(out, "stop amwi") {
		t.Fatalf("db repair while serving: exit %d\n%s", code, out)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("serve exit %d", code)
	}

	// A flipped bit in the sync history's root page: refused, then repaired from what the
	// file still holds and the daily backup.
	_, ps := storetest.Pages(t, db)
	storetest.Flip(t, db, int64(storetest.BucketRoot(t, db, "sync_runs")*ps+storetest.HeaderFlags), 0x03)
	refused(t, cfg, db)
	out, code := run(t, nil, nil, "-c", cfg, "db", "repair")
	if code != 0 || !strings.Contains(out, "repaired "+db) || !strings.Contains(out, "filled in") || !strings.Contains(out, store.Backups(state)[0]) {
		t.Fatalf("db repair: exit %d\n%s", code, out)
	}
	if out, code := run(t, nil, nil, "-c", cfg, "db", "check"); code != 0 || !strings.Contains(out, "4 users") || !strings.Contains(out, "40 sync runs") {
		t.Fatalf("db check after repair: exit %d\n%s", code, out)
	}
	if kept, _ := filepath.Glob(db + ".before-repair-*"); len(kept) != 1 {
		t.Fatalf("the damaged file was not kept: %v", kept)
	}
	loginWorks(t, cfg, "alice", "alice-password-1")

	// Emptied: nothing of the file is readable, so repair restores the daily backup, made
	// before dave.
	storetest.Truncate(t, db, 0)
	refused(t, cfg, db)
	out, code = run(t, nil, nil, "-c", cfg, "db", "repair")
	if code != 0 || !strings.Contains(out, "the newest good backup") || !strings.Contains(out, "3 users") || !strings.Contains(out, "40 sync runs") {
		t.Fatalf("db repair of an empty file: exit %d\n%s", code, out)
	}
	loginWorks(t, cfg, "bob", "bob-password-1")
}

// loginWorks starts amwi, checks it is healthy and that name logs in with password, and
// stops it.
func loginWorks(t *testing.T, cfg, name, password string) {
	t.Helper()
	p, base := serve(t, cfg)
	if code, body := httpGet(t, base+"/healthz"); code != 200 || !strings.Contains(body, `"store":"ok"`) {
		t.Fatalf("healthz after repair: %d %s", code, body)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(base+"/login", url.Values{"name": {name}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login as %s after repair: %d", name, resp.StatusCode)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, 30*time.Second)
}

// TestMissingDatabase: the first start creates the database; a database gone later, where
// the daily backups show there was one, is refused rather than started afresh (which would
// open first-admin registration to whoever comes first), and restored from the backup.
func TestMissingDatabase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root, _ := mirrorWithFile(t, dir, "x", 10)
	cfg := writeConfig(t, dir, root, "")
	db := filepath.Join(dir, "state", store.FileName)
	if out, code := run(t, strings.NewReader("alice-password-1\n"), nil, "-c", cfg, "user", "add", "--admin", "alice"); code != 0 {
		t.Fatalf("user add on the first start: %d\n%s", code, out)
	}
	p, _ := serve(t, cfg)
	for deadline := time.Now().Add(10 * time.Second); len(store.Backups(filepath.Dir(db))) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no daily backup")
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, 30*time.Second)

	os.Remove(db)
	p = start(t, nil, amwiBin, "-c", cfg, "serve")
	if code := p.wait(t, 30*time.Second); code != 3 || !strings.Contains(p.Output(), db+" is missing") || !strings.Contains(p.Output(), "db repair --from-backup") {
		t.Fatalf("serve without its database: exit %d\n%s", code, p.Output())
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatalf("a database was created in place of the missing one: %v", err)
	}
	if out, code := run(t, nil, nil, "-c", cfg, "db", "repair", "--from-backup"); code != 0 || !strings.Contains(out, "1 user;") {
		t.Fatalf("db repair --from-backup: exit %d\n%s", code, out)
	}
	loginWorks(t, cfg, "alice", "alice-password-1")
}
