package store_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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

// makeDemoted fills a state dir with a backup, then, after it, an administrator "boss"
// made, many days of traffic, and boss deleted and made again as a viewer with a new
// password while a backup is being copied (a read transaction), so that the pages the
// old boss was on are not reused: the file holds both. It returns every version of every
// account, the current one last.
func makeDemoted(t *testing.T, dir string) map[string][]accountVersion {
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
	if _, _, err := st.DailyBackup(now); err != nil {
		t.Fatal(err)
	}
	add("boss", true)
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
	hist := makeDemoted(t, base)
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
