package mirrorsync_test

import (
	"os"
	"testing"

	"github.com/amwi/amwi/daemon/mirrorsync"
)

// TestMain lets the test binary be the rsync guard, as amwi's binary is in production.
func TestMain(m *testing.M) {
	mirrorsync.RunGuardIfAsked()
	os.Exit(m.Run())
}
