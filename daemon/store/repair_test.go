package store_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
	days, err := s.TrafficPackages(traffic.DayOf(now)-100, traffic.DayOf(now))
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
		// The sync history's root page: the previous transaction (traffic only) has the
		// same page, so the backup fills it, and the runs after it are lost.
		{"sync history root page", func(t *testing.T, p string) {
			_, ps := storetest.Pages(t, p)
			root := storetest.BucketRoot(t, p, "sync_runs")
			storetest.Flip(t, p, int64(root*ps+storetest.HeaderFlags), 0x03)
		}, 40, "backup"},
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
