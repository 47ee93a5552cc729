package store_test

import (
	"runtime"
	"testing"

	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/daemon/store/storetest"
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
