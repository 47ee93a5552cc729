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
