package daemon

import (
	"strings"
	"testing"

	"github.com/amwi/amwi/daemon/store"
)

// TestPrintRepairLoose: what came from loose pages is counted per bucket, and the accounts
// among it are named, so that the admin can delete one that was deleted before.
func TestPrintRepairLoose(t *testing.T) {
	var b strings.Builder
	printRepair(&b, &store.RepairReport{Path: "/s/amwi.db", Source: "/s/amwi.db", Kept: map[string]uint64{"users": 24},
		Loose: map[string]uint64{"users": 4, "sync_runs": 6}, LooseUsers: []string{"user20", "user22"},
		LooseLeftOut: []string{`"users" "user30"`}, LooseLeftOutN: 1})
	out := b.String()
	for _, want := range []string{"brought back from loose pages", "4 in users", "6 in sync_runs", "user20, user22", `left out`, `"user30"`} {
		if !strings.Contains(out, want) {
			t.Errorf("repair report lacks %q:\n%s", want, out)
		}
	}
}

// TestPrintRepairDamagedUsers: an account whose record was damaged is said to be lost, with
// how to get it back, and the older copies left out are named.
func TestPrintRepairDamagedUsers(t *testing.T) {
	var b strings.Builder
	printRepair(&b, &store.RepairReport{Path: "/s/amwi.db", Source: "/s/amwi.db", Kept: map[string]uint64{"users": 24},
		DamagedUsers: []string{"boss"}, DamagedLeftOut: []string{"boss from the backup /s/backup/amwi-2025-06-01.db (transaction 24), loose pages"}})
	out := b.String()
	for _, want := range []string{"account boss was damaged and is not restored: re-create it with `amwi user add`", "left out", "boss from the backup"} {
		if !strings.Contains(out, want) {
			t.Errorf("repair report lacks %q:\n%s", want, out)
		}
	}
}
