package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amwi/amwi/daemon/auth"
	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/daemon/store/storetest"
	"github.com/amwi/amwi/daemon/traffic"
)

// TestRepair: repair recovers the accounts and the sync history from each damaged file,
// keeps the damaged file beside the new one, and the store opens afterwards. Damage in
// the traffic counters loses some counters, said in the report.
func TestRepair(t *testing.T) {
	for _, tt := range damages {
		if tt.name == "zero length" || strings.HasPrefix(tt.name, "truncated") || tt.name == "last page gone" {
			continue // TestRepairFromBackup
		}
		t.Run(tt.name, func(t *testing.T) {
			dir, path := fresh(t)
			tt.damage(t, path)
			damaged, _ := os.ReadFile(path)
			rep, err := store.Repair(dir, store.RepairOptions{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("from %s: kept %v, unread %d, filled %v, incomplete %v, dropped %d", rep.From, rep.Kept, rep.UnreadN, rep.Filled, rep.Incomplete, rep.DroppedN)
			kept, err := os.ReadFile(rep.Old)
			if err != nil || !bytes.Equal(kept, damaged) {
				t.Fatalf("the damaged file was not kept as it was at %s: %v", rep.Old, err)
			}
			if rep.Kept["users"] != 3 || rep.Kept["sync_runs"] != uint64(tmpl.Runs) || rep.Sessions != 2 {
				t.Fatalf("kept %v, dropped %d sessions: want 3 users, %d runs, 2 sessions dropped", rep.Kept, rep.Sessions, tmpl.Runs)
			}
			if tt.lost != nothing && rep.UnreadN == 0 && len(rep.Notes) == 0 {
				t.Errorf("the report says nothing of what the damage may have cost")
			}
			// What could not be read was filled from the previous transaction (lastTx), or
			// stays short and the report says which bucket (pagesLost: no backup here).
			if tt.lost == lastTx && len(rep.Incomplete) > 0 {
				t.Errorf("unread places not filled from the previous transaction: filled %v, incomplete %v", rep.Filled, rep.Incomplete)
			}
			if tt.lost == pagesLost && (rep.UnreadN == 0 || len(rep.Incomplete) == 0) {
				t.Errorf("pages lost, but the report lists %d unread and %v incomplete", rep.UnreadN, rep.Incomplete)
			}
			checkRepaired(t, dir, tt.lost)
		})
	}
}

// checkRepaired opens the repaired store and checks what a user would: the accounts, the
// history, new run ids after the old ones, no sessions, the traffic (all of it unless lost).
func checkRepaired(t *testing.T, dir string, lost int) {
	t.Helper()
	s, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatalf("the repaired store does not open: %v", err)
	}
	defer s.Close()
	users, err := s.ListUsers()
	if err != nil || len(users) != 3 || users[0].Name != "alice" || !users[0].Admin || users[0].Hash == "" {
		t.Fatalf("users after repair: %v %+v", err, users)
	}
	runs, err := s.Runs(1000)
	if err != nil || len(runs) != tmpl.Runs {
		t.Fatalf("runs after repair: %v, %d of %d", err, len(runs), tmpl.Runs)
	}
	if id, err := s.NextRunID(); err != nil || id <= uint64(tmpl.Runs) {
		t.Fatalf("next run id after repair %d (%v): would overwrite a kept run", id, err)
	}
	if _, ok, _ := s.GetSession("x"); ok {
		t.Fatal("session")
	}
	days, err := storetest.SumTraffic(s, traffic.Packages, traffic.DayOf(now)-100, traffic.DayOf(now))
	if err != nil {
		t.Fatal(err)
	}
	var reqs int64
	for _, c := range days {
		reqs += c.Requests
	}
	// The last transaction is one day's batch.
	want := int64(tmpl.Days * 150)
	if (lost == nothing && reqs != want) || (lost == lastTx && reqs < want-150) {
		t.Errorf("package downloads after repair: %d of %d", reqs, want)
	}
	if s.Skipped() != 0 {
		t.Errorf("%d records skipped after repair", s.Skipped())
	}
}

// TestRepairFromBackup: a file emptied or cut short is repaired from the daily backup, by
// itself when nothing of the file is readable, on request (Source) otherwise.
func TestRepairFromBackup(t *testing.T) {
	for _, name := range []string{"zero length", "truncated to 16 KiB", "last page gone"} {
		t.Run(name, func(t *testing.T) {
			dir, path := fresh(t)
			s, err := store.Open(dir, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			backup, _, err := s.DailyBackup(now)
			s.Close()
			if err != nil || backup == "" {
				t.Fatalf("backup: %q %v", backup, err)
			}
			for _, d := range damages {
				if d.name == name {
					d.damage(t, path)
				}
			}
			o := store.RepairOptions{Now: now}
			if name != "zero length" {
				o.Source = backup
			}
			rep, err := store.Repair(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Source != backup || (name == "zero length") != rep.FellBack {
				t.Fatalf("repaired from %s (fell back %v), want the backup %s", rep.Source, rep.FellBack, backup)
			}
			checkRepaired(t, dir, nothing)
		})
	}
}

// TestRepairFillsFromOlderCopies: what of the file cannot be read is filled from the
// file's previous transaction or the daily backup, bucket by bucket; what the file still
// holds, newer, is kept.
func TestRepairFillsFromOlderCopies(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, path string)
		// runs: the sync history after repair; from: where the lost bucket came from.
		runs int
		from string
	}{
		// The sync history's root (branch) page: the previous transaction (traffic only)
		// has the same page, so the backup fills it, and the runs made after it come back
		// from the leaf pages the damaged root pointed to (loose pages, see loose.go).
		{"sync history root page", func(t *testing.T, p string) {
			_, ps := storetest.Pages(t, p)
			root := storetest.BucketRoot(t, p, "sync_runs")
			storetest.Flip(t, p, int64(root*ps+storetest.HeaderFlags), 0x03)
		}, 45, "backup"},
		// The accounts' name in the top-level page: the bucket is gone from the newest
		// transaction; the previous one has it whole, with the account made after the backup.
		{"accounts' name in the top-level page", func(t *testing.T, p string) {
			storetest.Flip(t, p, storetest.TopLevelKey(t, p, "users"), 0x20)
		}, 45, "meta page"},
		// The accounts' name overwritten beyond recognition (keys still in order) and its
		// bucket header with it: a bucket amwi does not know is damaged, so the top level
		// is, and the accounts come from the previous transaction, not "0 users".
		{"accounts' name and header overwritten", func(t *testing.T, p string) {
			off := storetest.TopLevelKey(t, p, "users")
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// The name, then the high byte of the bucket's root page number after it.
			if _, err := f.WriteAt([]byte("~:\xdb\xf0j"), off); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte{0xab}, off+5+7); err != nil {
				t.Fatal(err)
			}
		}, 45, "meta page"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, path := fresh(t)
			s, err := store.Open(dir, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			backup, _, err := s.DailyBackup(now)
			if err != nil {
				t.Fatal(err)
			}
			// After the backup: an account, five runs, then a traffic batch (the last
			// transaction, which touches neither).
			if err := s.PutUser(auth.User{Name: "dave", Hash: "$argon2id$x", Created: now}); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 5; i++ {
				id, _ := s.NextRunID()
				if err := s.PutRun(id, []byte(`{"result":"ok"}`), 500); err != nil {
					t.Fatal(err)
				}
			}
			s.AddTraffic(traffic.Batch{Days: map[traffic.Day]traffic.Count{traffic.DayOf(now) + 1: {Bytes: 1, Requests: 1}}})
			s.Close()
			tt.damage(t, path)

			rep, err := store.Repair(dir, store.RepairOptions{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("from %s: kept %v, unread %v, filled %v, incomplete %v", rep.From, rep.Kept, rep.Unread, rep.Filled, rep.Incomplete)
			if rep.UnreadN == 0 || len(rep.Incomplete) > 0 || len(rep.Filled) != 1 || !strings.Contains(rep.Filled[0], tt.from) {
				t.Fatalf("report: unread %v, filled %v, incomplete %v: want the lost bucket filled from the %s", rep.Unread, rep.Filled, rep.Incomplete, tt.from)
			}
			if tt.from == "backup" && !strings.Contains(rep.Filled[0], backup) {
				t.Errorf("filled %v: want the backup named", rep.Filled)
			}
			if n := rep.Loose["sync_runs"]; (tt.from == "backup") != (n == 5) || len(rep.LooseUsers) > 0 {
				t.Errorf("from loose pages %v %v: want the 5 runs made after the backup when it fills", rep.Loose, rep.LooseUsers)
			}
			st, err := store.Open(dir, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			users, err := st.ListUsers()
			if err != nil || len(users) != 4 {
				t.Fatalf("users after repair: %v %v: want the 3 of the backup and dave, made after it", err, users)
			}
			runs, err := st.Runs(1000)
			if err != nil || len(runs) != tt.runs {
				t.Fatalf("runs after repair: %v, %d, want %d", err, len(runs), tt.runs)
			}
			if id, err := st.NextRunID(); err != nil || id <= 45 {
				t.Fatalf("next run id %d (%v): would reuse the id of a run made before the damage", id, err)
			}
		})
	}
}

// TestMissingWithBackupsRefused: a database that vanished where backups exist is not a
// first start: refused, not replaced by an empty one (which would open first-admin
// registration to whoever comes first).
func TestMissingWithBackupsRefused(t *testing.T) {
	dir, path := fresh(t)
	s, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.DailyBackup(now); err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.Remove(path)
	_, err = store.Open(dir, time.Second)
	if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), "--from-backup") {
		t.Fatalf("open without the file: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("an empty database was created")
	}
	if _, err := store.Repair(dir, store.RepairOptions{Source: store.Backups(dir)[0]}); err != nil {
		t.Fatal(err)
	}
	checkRepaired(t, dir, nothing)
}

// TestRepairKeepsOwner: root repairing the service user's database leaves a file that
// user can open. (Not as root, the file is the runner's before and after.)
func TestRepairKeepsOwner(t *testing.T) {
	dir, path := fresh(t)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if uid == 0 {
		uid, gid = 4242, 4343
		if err := os.Chown(path, int(uid), int(gid)); err != nil {
			t.Fatal(err)
		}
	}
	storetest.Flip(t, path, storetest.MetaRoot, 0x04)
	if _, err := store.Repair(dir, store.RepairOptions{Now: now}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != gid {
		t.Fatalf("repaired file owned by %d:%d, want the old file's %d:%d", st.Uid, st.Gid, uid, gid)
	}
}

// TestRepairYoungDatabase: the newest transaction's top-level page lost in a database
// whose previous transaction is the empty one it was created with: the accounts come from
// the daily backup, not "no account" (which would open first-admin registration).
func TestRepairYoungDatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutUser(auth.User{Name: "alice", Hash: "$argon2id$x", Admin: true, Created: now}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.DailyBackup(now); err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, store.FileName)
	_, ps := storetest.Pages(t, path)
	root := int64(storetest.TopLevelKey(t, path, "users")) / int64(ps)
	storetest.Zero(t, path, root*int64(ps), ps)

	rep, err := store.Repair(dir, store.RepairOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("from %s: kept %v, filled %v, notes %v", rep.From, rep.Kept, rep.Filled, rep.Notes)
	if rep.Kept["users"] != 1 || len(rep.Filled) != 1 || !strings.Contains(rep.Filled[0], "backup") {
		t.Fatalf("kept %v, filled %v: want alice from the backup", rep.Kept, rep.Filled)
	}
}

// TestRepairTwiceInASecond: a second repair at the same time keeps the file it replaces
// under a name of its own.
func TestRepairTwiceInASecond(t *testing.T) {
	dir, path := fresh(t)
	storetest.Flip(t, path, storetest.MetaRoot, 0x04)
	first, err := store.Repair(dir, store.RepairOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	repaired, _ := os.ReadFile(path)
	second, err := store.Repair(dir, store.RepairOptions{Now: now, Source: first.Old})
	if err != nil {
		t.Fatal(err)
	}
	if second.Old == first.Old {
		t.Fatalf("both repairs kept the old file as %s", first.Old)
	}
	if kept, _ := os.ReadFile(second.Old); !bytes.Equal(kept, repaired) {
		t.Fatalf("the second repair did not keep the first one's result at %s", second.Old)
	}
}

// TestRepairWhileOpenRefused: repair does not touch a database a daemon has open.
func TestRepairWhileOpenRefused(t *testing.T) {
	dir, _ := fresh(t)
	s, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := store.Repair(dir, store.RepairOptions{}); !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "stop") {
		t.Fatalf("repair of an open store: %v", err)
	}
}

// cutShortDir is a state dir for the tests of a file cut short: a daily backup made after
// the first 20 accounts, then 42 more accounts, sync runs and traffic; a password changed
// and two accounts deleted after the backup, the last deletion the last write.
type cutShortDir struct {
	dir, path, backup string
	users             map[string][]string // name → its passwords, the current one last
	inBackup          map[string]bool
	deleted           []string
	runs              int
}

// cheapHash keeps 62 argon2id hashes quick; the format is the real one.
var cheapHash = auth.Params{Memory: 64, Time: 1, Threads: 1}

func makeCutShort(t *testing.T) cutShortDir {
	t.Helper()
	c := cutShortDir{dir: filepath.Join(t.TempDir(), "state"), users: map[string][]string{}, inBackup: map[string]bool{}}
	c.path = filepath.Join(c.dir, store.FileName)
	st, err := store.Open(c.dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &auth.Service{Store: st, Params: cheapHash, Now: func() time.Time { return now }}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	add := func(i int) {
		name := fmt.Sprintf("user%02d", i)
		pw := name + "-password"
		var err error
		if i == 0 {
			_, err = a.Register(name, pw)
		} else {
			_, err = a.Create(name, pw, i%10 == 0)
		}
		must(err)
		c.users[name] = []string{pw}
	}
	addRuns := func(n int) {
		for ; n > 0; n-- {
			id, err := st.NextRunID()
			must(err)
			must(st.PutRun(id, fmt.Appendf(nil, `{"id":%d,"result":"ok","stderr_tail":["%0300d"]}`, id, id), 500))
			c.runs++
		}
	}
	addTraffic := func(day traffic.Day) { must(st.AddTraffic(storetest.DayTraffic(day, 4, 4))) }
	for i := 0; i < 20; i++ {
		add(i)
	}
	addRuns(10)
	addTraffic(traffic.DayOf(now) - 2)
	c.backup, _, err = st.DailyBackup(now)
	if err != nil || c.backup == "" {
		t.Fatalf("backup %q: %v", c.backup, err)
	}
	for n := range c.users {
		c.inBackup[n] = true
	}
	for i := 20; i < 62; i++ {
		add(i)
		if i%7 == 0 {
			addRuns(1)
		}
	}
	addTraffic(traffic.DayOf(now) - 1)
	c.users["user30"] = append(c.users["user30"], "user30-new-password")
	must(a.SetPassword("user30", "user30-new-password"))
	_, err = a.Login(netip.MustParseAddr("192.168.1.20"), "user00", "user00-password")
	must(err)
	addTraffic(traffic.DayOf(now))
	for _, name := range []string{"user45", "user22"} {
		must(a.Delete(name))
		c.deleted = append(c.deleted, name)
	}
	return c
}

// TestRepairCutShort: a file cut short, whose meta pages point past its end, gives back
// the accounts, runs and counters still on its leaf pages, beside the backup's; nothing is
// invented or mangled, and every account taken from a loose page is named in the report,
// so that one deleted before the damage (whose old page may remain) can be deleted again.
func TestRepairCutShort(t *testing.T) {
	full := makeCutShort(t)
	pages, ps := storetest.Pages(t, full.path)
	t.Logf("%d pages of %d bytes", len(pages), ps)
	for _, tt := range []struct {
		size int64
		// what the report says came from loose pages
		users, runs, hours int
	}{
		// Both meta pages, the first 16 accounts (in the backup): the backup alone.
		{16 << 10, 0, 0, 0},
		// Accounts 20–23 and a stale copy of their page with user22, deleted since.
		{24 << 10, 4, 0, 0},
		// And the page of accounts 40–47 (user45 deleted), whole or cut mid-page.
		{28<<10 + 1000, 11, 0, 0},
		{32 << 10, 11, 0, 0},
		// And the runs made after the backup and two days of hourly counters.
		{40 << 10, 11, 6, 48},
	} {
		t.Run(fmt.Sprint(tt.size), func(t *testing.T) {
			c := makeCutShort(t)
			storetest.Truncate(t, c.path, tt.size)
			left, err := os.ReadFile(c.path)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := store.Repair(c.dir, store.RepairOptions{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("from %s %s: kept %v; loose %v: %v; left out %v; notes %v", rep.Source, rep.From, rep.Kept, rep.Loose, rep.LooseUsers, rep.LooseLeftOut, rep.Notes)
			if len(rep.Loose) > 0 && (rep.LooseFrom == "" || rep.LooseFrom != rep.Old) {
				t.Errorf("loose pages said to come from %q, want the damaged file, kept as %q", rep.LooseFrom, rep.Old)
			}
			if rep.Loose["users"] != uint64(tt.users) || rep.Loose["sync_runs"] != uint64(tt.runs) || rep.Loose["traffic_hours"] != uint64(tt.hours) {
				t.Errorf("from loose pages %v: want %d users, %d runs, %d hourly counters", rep.Loose, tt.users, tt.runs, tt.hours)
			}
			st, users := openUsers(t, c.dir)
			named := map[string]bool{}
			for _, n := range rep.LooseUsers {
				named[n] = true
			}
			got := map[string]bool{}
			for _, u := range users {
				got[u.Name] = true
				pws, ok := c.users[u.Name]
				if !ok && !slices.Contains(c.deleted, u.Name) {
					t.Errorf("user %q was never made", u.Name)
					continue
				}
				if slices.Contains(c.deleted, u.Name) {
					if !named[u.Name] {
						t.Errorf("the deleted user %q is back, and the report does not name it", u.Name)
					}
					continue
				}
				// The stored hash verifies with the current password, or (taken from an
				// old page, named in the report) with an earlier one: never mangled.
				hash, _ := storedHash(t, st, u.Name)
				which := -1
				for i, pw := range pws {
					if ok, err := auth.VerifyPassword(hash, pw); err == nil && ok {
						which = i
					}
				}
				switch {
				case which < 0:
					t.Errorf("user %q: its hash verifies with none of its passwords", u.Name)
				case which < len(pws)-1 && !named[u.Name]:
					t.Errorf("user %q is back with an old password and the report does not name it", u.Name)
				case !c.inBackup[u.Name] && !named[u.Name]:
					t.Errorf("user %q, made after the backup, is back but not named as from a loose page", u.Name)
				}
			}
			// Exactly the backup's accounts and those whose record remains in the file (as
			// a plain search of its bytes finds them), but those with differing copies.
			for name := range c.users {
				want := c.inBackup[name] || (bytes.Contains(left, []byte(`{"name":"`+name+`"`)) && !leftOut(rep, name))
				if got[name] != want {
					t.Errorf("user %q after repair: %v, want %v", name, got[name], want)
				}
			}
			for _, name := range c.deleted {
				if bytes.Contains(left, []byte(`{"name":"`+name+`"`)) {
					t.Logf("the deleted user %q is on a page that remains: back %v, named %v", name, got[name], named[name])
				}
			}
			// Runs: the backup's 10, and those left in the file, whole.
			runs, err := st.Runs(1000)
			if err != nil || len(runs) < 10 || len(runs) != 10+tt.runs {
				t.Errorf("runs after repair: %d (%v), want %d", len(runs), err, 10+tt.runs)
			}
			for _, r := range runs {
				if !bytes.Contains(left, r) && !bytes.Contains(mustRead(t, c.backup), r) {
					t.Errorf("run record %.60s… is in neither the file nor the backup", r)
				}
			}
			if id, err := st.NextRunID(); err != nil || id <= uint64(10+tt.runs) {
				t.Errorf("next run id %d (%v): would overwrite a kept run", id, err)
			}
			if st.Skipped() != 0 {
				t.Errorf("%d records do not decode after repair", st.Skipped())
			}
		})
	}
}

func leftOut(rep *store.RepairReport, name string) bool {
	for _, l := range rep.LooseLeftOut {
		if strings.Contains(l, `"`+name+`"`) {
			return true
		}
	}
	return false
}

// storedHash reads a user's password hash as the store keeps it (auth hands out none).
func storedHash(t *testing.T, st *store.Store, name string) (string, bool) {
	t.Helper()
	u, ok, err := st.GetUser(name)
	if err != nil {
		t.Fatal(err)
	}
	return u.Hash, ok
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRepairHealthyUnchanged: a healthy file's repair reads no loose page: every record
// of it, as it was, and nothing else.
func TestRepairHealthyUnchanged(t *testing.T) {
	c := makeCutShort(t)
	before := dump(t, c.path)
	rep, err := store.Repair(c.dir, store.RepairOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Loose) > 0 || len(rep.LooseUsers) > 0 || rep.LooseLeftOutN > 0 || len(rep.Filled) > 0 {
		t.Errorf("repair of a healthy file: loose %v %v, left out %v, filled %v", rep.Loose, rep.LooseUsers, rep.LooseLeftOut, rep.Filled)
	}
	after := dump(t, c.path)
	if len(after["sessions"]) != 0 {
		t.Errorf("%d sessions after repair", len(after["sessions"]))
	}
	delete(before, "sessions") // repair drops them
	delete(after, "sessions")
	if len(after) != len(before) {
		t.Errorf("buckets after repair %d, before %d", len(after), len(before))
	}
	for b, kv := range before {
		if !maps.Equal(kv, after[b]) {
			t.Errorf("bucket %s differs after repair: %d records, was %d", b, len(after[b]), len(kv))
		}
	}
}

// dump reads every top-level bucket of the database at path through bbolt.
func dump(t *testing.T, path string) map[string]map[string]string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]map[string]string{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			m := map[string]string{}
			out[string(name)] = m
			return b.ForEach(func(k, v []byte) error { m[string(k)] = string(v); return nil })
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
