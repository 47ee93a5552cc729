package store_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/auth"
	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/daemon/store/storetest"
	"github.com/amwi/amwi/daemon/traffic"
)

// TestRepairMetaPageCountFlipped: a bit flipped high in the page count of the newest meta
// page leaves its checksum failing but its fields plausible, so repair tries its root when
// it fills what else it could not read (here a zeroed leaf page). Nothing may be sized by
// that count: it claims 2^39 pages, a 64 GiB bitset, and an out-of-memory crash (no
// recover catches one) would make the file unrepairable.
func TestRepairMetaPageCountFlipped(t *testing.T) {
	dir, path := fresh(t)
	_, ps := storetest.Pages(t, path)
	slot := 0
	if metaField(t, path, 1, ps, storetest.MetaTxID) > metaField(t, path, 0, ps, storetest.MetaTxID) {
		slot = 1
	}
	storetest.Flip(t, path, int64(slot*ps+storetest.MetaPageCount+4), 0x80) // + 2^39 pages
	leaf, _ := storetest.Find(t, path, "leaf", 20)
	storetest.Zero(t, path, int64(leaf.ID*ps), ps)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rep, err := store.Repair(dir, store.RepairOptions{Now: now})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<30 {
		t.Errorf("repair of a %d-page file allocated %d MiB", metaField(t, rep.Old, 1-slot, ps, storetest.MetaPageCount), n>>20)
	}
	if rep.Kept["users"] != 3 {
		t.Errorf("kept %v: want the 3 users", rep.Kept)
	}
	checkRepaired(t, dir, pagesLost)
}

type accountVersion struct {
	admin bool
	pw    string
}

// makeDemoted fills a state dir with a backup, then, after it (before it with
// bossInBackup), an administrator "boss" made, many days of traffic, and boss deleted and made again as a viewer with a new
// password while a backup is being copied (a read transaction), so that the pages the
// old boss was on are not reused: the file holds both. It returns every version of every
// account, the current one last.
func makeDemoted(t *testing.T, dir string, bossInBackup bool) map[string][]accountVersion {
	st, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &auth.Service{Store: st, Params: cheapHash, Now: func() time.Time { return now }}
	hist := map[string][]accountVersion{}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	add := func(name string, admin bool) {
		pw := fmt.Sprintf("%s-password-%d", name, len(hist[name]))
		var err error
		if len(hist) == 0 {
			_, err = a.Register(name, pw)
		} else {
			_, err = a.Create(name, pw, admin)
		}
		must(err)
		hist[name] = append(hist[name], accountVersion{admin, pw})
	}
	for i := 0; i < 20; i++ {
		add(fmt.Sprintf("user%02d", i), i == 0)
	}
	must(st.AddTraffic(storetest.DayTraffic(traffic.DayOf(now)-40, 4, 4)))
	backup := func() {
		if _, _, err := st.DailyBackup(now); err != nil {
			t.Fatal(err)
		}
	}
	if !bossInBackup {
		backup()
	}
	add("boss", true)
	if bossInBackup {
		backup()
	}
	for i := 20; i < 50; i++ {
		add(fmt.Sprintf("user%02d", i), false)
	}
	for d := 30; d > 0; d-- {
		must(st.AddTraffic(storetest.DayTraffic(traffic.DayOf(now)-traffic.Day(d), 12, 60)))
	}
	pr, pw := io.Pipe()
	done := make(chan error)
	go func() { _, err := st.WriteBackup(pw, nil); pw.CloseWithError(err); done <- err }()
	pr.Read(make([]byte, 1))
	must(a.Delete("boss"))
	add("boss", false)
	io.Copy(io.Discard, pr)
	must(<-done)
	return hist
}

// TestRepairNamesOldAccounts cuts a file at every page boundary and inside every page.
// Whatever root repair starts from, an account that comes back as an older version of
// itself (here boss, an administrator before it was deleted and made again as a viewer)
// is named in the report, and named as an administrator: from a loose page, and from a
// top-level page found by scanning, which is as much of unknown age.
func TestRepairNamesOldAccounts(t *testing.T) {
	base := filepath.Join(t.TempDir(), "base")
	hist := makeDemoted(t, base, false)
	path := filepath.Join(base, store.FileName)
	whole := mustRead(t, path)
	_, ps := storetest.Pages(t, path)
	for size := int64(0); size < int64(len(whole)); size += int64(ps) / 2 {
		dir := filepath.Join(t.TempDir(), "state")
		os.MkdirAll(filepath.Join(dir, store.BackupDir), 0o700)
		for _, b := range store.Backups(base) {
			storetest.Copy(t, b, filepath.Join(dir, store.BackupDir, filepath.Base(b)))
		}
		if err := os.WriteFile(filepath.Join(dir, store.FileName), whole[:size], 0o600); err != nil {
			t.Fatal(err)
		}
		rep, err := store.Repair(dir, store.RepairOptions{Now: now})
		if err != nil {
			t.Errorf("cut at %d: %v", size, err)
			continue
		}
		st, err := store.Open(dir, time.Second)
		if err != nil {
			t.Errorf("cut at %d: the repaired store does not open: %v", size, err)
			continue
		}
		users, err := st.ListUsers()
		if err != nil {
			t.Fatal(err)
		}
		named := map[string]bool{}
		for _, n := range append(rep.LooseUsers, rep.UnknownAgeUsers...) {
			named[n] = true
		}
		for _, u := range users {
			hash, _ := storedHash(t, st, u.Name)
			vers := hist[u.Name]
			which := -1
			for i, v := range vers {
				if ok, err := auth.VerifyPassword(hash, v.pw); err == nil && ok && v.admin == u.Admin {
					which = i
				}
			}
			switch {
			case which < 0:
				t.Errorf("cut at %d: account %q (admin %v) is none of its versions", size, u.Name, u.Admin)
			case which < len(vers)-1 && !named[u.Name]:
				t.Errorf("cut at %d: account %q is back as it was before it was re-made (admin %v), and the report does not name it (from %s)", size, u.Name, u.Admin, rep.From)
			case which < len(vers)-1 && u.Admin && !slices.Contains(rep.Admins, u.Name):
				t.Errorf("cut at %d: account %q is back as the administrator it no longer is, and the report does not say so", size, u.Name)
			}
		}
		if st.Skipped() != 0 {
			t.Errorf("cut at %d: %d records do not decode after repair", size, st.Skipped())
		}
		st.Close()
	}
}

// TestRepairDamagedAccountNotRestored: boss, an administrator deleted and made again as a
// viewer, has its current record damaged by one flipped byte. An older copy of boss (on a
// loose page, in the backup) is the administrator it no longer is: repair must not bring
// it back, but say that boss is lost, and which older copies it left out. Every other
// account stays as it is now. An older copy that is the damaged record itself (the
// previous transaction's, when the last one did not change it) is still used.
func TestRepairDamagedAccountNotRestored(t *testing.T) {
	for _, tt := range []struct {
		name         string
		bossInBackup bool
		damage       func(t *testing.T, path string)
		victim       string
		restored     bool // from an older copy identical to the damaged record
		leftOut      bool // older copies of the victim are left out
	}{
		// The value's size: the value runs past the page ("value outside the page").
		{"value size, old copy on loose pages", false, flipValueSize, "boss", false, true},
		{"value size, old copy in the backup", true, flipValueSize, "boss", false, true},
		// The key's first letter: "zoss", out of order (after the next page's first key),
		// and naming another user.
		{"key, old copy on loose pages", false, flipKeyByte("boss", 0, 'b'^'z'), "boss", false, true},
		{"key, old copy in the backup", true, flipKeyByte("boss", 0, 'b'^'z'), "boss", false, true},
		// user48 becomes "user4:", after user49, which is then out of order but whole:
		// kept from the tree. user48 is lost: its page is the previous transaction's too,
		// and no older copy is left.
		{"key before a whole one, no older copy", false, flipKeyByte("user48", 5, '8'^':'), "user48", false, false},
		// user00 becomes "user0:", after user01. The last transaction (boss made again)
		// rewrote their page: the previous one holds user00 as it is, and it is used.
		{"key, the same record in the previous transaction", false, flipKeyByte("user00", 5, '0'^':'), "user00", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			hist := makeDemoted(t, dir, tt.bossInBackup)
			path := filepath.Join(dir, store.FileName)
			_, ps := storetest.Pages(t, path)
			tt.damage(t, path)
			if tt.bossInBackup {
				// The previous transaction (without boss) would fill the accounts whole,
				// and the backup never be read: its meta page is damaged too.
				older := 0
				if metaField(t, path, 0, ps, storetest.MetaTxID) > metaField(t, path, 1, ps, storetest.MetaTxID) {
					older = 1
				}
				storetest.Flip(t, path, int64(older*ps+storetest.MetaTxID+8), 0x01) // its checksum
			}
			rep, err := store.Repair(dir, store.RepairOptions{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("from %s: kept %v, unread %v, dropped %v, filled %v, loose %v %v, damaged %v, left out %v",
				rep.From, rep.Kept, rep.Unread, rep.Dropped, rep.Filled, rep.Loose, rep.LooseUsers, rep.DamagedUsers, rep.DamagedLeftOut)
			switch {
			case tt.restored && (len(rep.DamagedUsers) > 0 || len(rep.DamagedLeftOut) > 0):
				t.Errorf("damaged accounts reported %v, left out %v: want none", rep.DamagedUsers, rep.DamagedLeftOut)
			case !tt.restored && !slices.Equal(rep.DamagedUsers, []string{tt.victim}):
				t.Errorf("damaged accounts reported %v, want %s", rep.DamagedUsers, tt.victim)
			case tt.leftOut != (len(rep.DamagedLeftOut) > 0) || (tt.leftOut && !strings.HasPrefix(rep.DamagedLeftOut[0], tt.victim+" ")):
				t.Errorf("older copies left out %v: want %s's", rep.DamagedLeftOut, tt.victim)
			case tt.bossInBackup && !strings.Contains(rep.DamagedLeftOut[0], "backup"):
				t.Errorf("older copies left out %v: want the backup's named", rep.DamagedLeftOut)
			}
			st, users := openUsers(t, dir)
			want := len(hist)
			if !tt.restored {
				want--
			}
			if len(users) != want {
				t.Errorf("%d accounts after repair, want %d", len(users), want)
			}
			for _, u := range users {
				cur := hist[u.Name][len(hist[u.Name])-1]
				hash, _ := storedHash(t, st, u.Name)
				if u.Name == tt.victim && !tt.restored {
					t.Errorf("%s is back (admin %v), from an older copy", u.Name, u.Admin)
				} else if ok, _ := auth.VerifyPassword(hash, cur.pw); !ok || u.Admin != cur.admin {
					t.Errorf("account %q is not as it was (admin %v)", u.Name, u.Admin)
				}
			}
		})
	}
}

func flipValueSize(t *testing.T, path string) {
	storetest.Flip(t, path, storetest.LeafElement(t, path, "users", "boss")+storetest.LeafValueSize+2, 0x01)
}

// flipKeyByte returns a damage that XORs byte i of key's name in the accounts' leaf page.
func flipKeyByte(key string, i int, mask byte) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		el := storetest.LeafElement(t, path, "users", key)
		pos := binary.NativeEndian.Uint32(mustRead(t, path)[el+storetest.LeafKeyPos:])
		storetest.Flip(t, path, el+int64(pos)+int64(i), mask)
	}
}

// openUsers opens the store in dir, closed when the test ends, and lists its accounts.
func openUsers(t *testing.T, dir string) (*store.Store, []auth.User) {
	t.Helper()
	st, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	users, err := st.ListUsers()
	if err != nil {
		t.Fatal(err)
	}
	return st, users
}

// TestRepairTakesStateDirLock: repair holds the state dir's lock, the one the store takes,
// whether or not amwi.db exists: with --from and no amwi.db, a second repair or a daemon
// starting could otherwise have its file renamed over, or its temporary file removed.
func TestRepairTakesStateDirLock(t *testing.T) {
	dir, path := fresh(t)
	src := filepath.Join(t.TempDir(), "copy.db")
	storetest.Copy(t, path, src)
	noneLeft := func(t *testing.T) {
		t.Helper()
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s was put in place under the lock: %v", path, err)
		}
		if m, _ := filepath.Glob(path + ".repair-*"); len(m) > 0 {
			t.Errorf("left behind: %v", m)
		}
	}
	t.Run("another repair, no database", func(t *testing.T) {
		os.Remove(path)
		other, err := store.LockDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = store.Repair(dir, store.RepairOptions{Source: src, Now: now})
		if !errors.Is(err, store.ErrLocked) {
			t.Errorf("repair while another holds the state dir: %v", err)
		}
		noneLeft(t)
		// Nor does a store open meanwhile (it would create amwi.db).
		if st, err := store.Open(dir, 0); !errors.Is(err, store.ErrLocked) {
			if err == nil {
				st.Close()
			}
			t.Errorf("open while a repair holds the state dir: %v", err)
		}
		noneLeft(t)
		other.Close()
		if _, err := store.Repair(dir, store.RepairOptions{Source: src, Now: now}); err != nil {
			t.Fatalf("repair once the lock is free: %v", err)
		}
	})
	t.Run("a store open, its file gone", func(t *testing.T) {
		st, err := store.Open(dir, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		os.Remove(path)
		if _, err := store.Repair(dir, store.RepairOptions{Source: src, Now: now}); !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "stop") {
			t.Errorf("repair --from under an open store: %v", err)
		}
		noneLeft(t)
	})
}

// TestRepairLeftoversRemoved: the new file of a repair killed halfway (as big as the
// database) is removed when the store opens and by `amwi db check`, never while a repair
// holds the state dir, and nothing else is: only names repair makes.
func TestRepairLeftoversRemoved(t *testing.T) {
	dir, path := fresh(t)
	leftover := path + ".repair-2471938465"
	others := []string{path + ".repair-", path + ".repair-12ab", path + ".repair-1.txt",
		path + ".before-repair-20250601-120000", filepath.Join(dir, "amwi.db.repair-x"), filepath.Join(dir, "notes.repair-1")}
	for _, p := range append(others, leftover) {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(path+".repair-999", 0o700); err != nil {
		t.Fatal(err)
	}
	others = append(others, path+".repair-999")
	check := func(t *testing.T, gone bool) {
		t.Helper()
		if _, err := os.Stat(leftover); os.IsNotExist(err) != gone {
			t.Errorf("%s: gone %v, want %v", leftover, !gone, gone)
		}
		for _, p := range others {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s removed: %v", p, err)
			}
		}
	}

	repair, err := store.LockDir(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if removed, err := store.RemoveRepairLeftovers(dir); err != nil || len(removed) > 0 {
		t.Errorf("while a repair runs, removed %v (%v)", removed, err)
	}
	if st, err := store.Open(dir, 0); err == nil {
		st.Close()
		t.Errorf("the store opened while a repair runs")
	}
	check(t, false)
	repair.Close()

	if removed, err := store.RemoveRepairLeftovers(dir); err != nil || !slices.Equal(removed, []string{leftover}) {
		t.Errorf("removed %v (%v), want %s", removed, err, leftover)
	}
	check(t, true)

	os.WriteFile(leftover, []byte("x"), 0o600)
	st, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	check(t, true)
	// While the store is open (the daemon runs), `amwi db check` leaves the state dir be.
	os.WriteFile(leftover, []byte("x"), 0o600)
	if removed, err := store.RemoveRepairLeftovers(dir); err != nil || len(removed) > 0 {
		t.Errorf("with the store open, removed %v (%v)", removed, err)
	}
	st.Close()
}
