package repodb

import "testing"

// TestAttackVercmpEmptyRelease (attack h15c): libalpm's parseEVR leaves release pointing
// at "" for a version ending in '-', and alpm_pkg_vercmp compares releases whenever both
// pointers are set: `vercmp 1.0- 1.0-1` prints -1 (pacman 6). Vercmp skips an empty
// release, so a package "glibc 2.38-" in a hostile db meets "glibc>=2.38-1" on the
// package page while pacman says it does not.
func TestAttackVercmpEmptyRelease(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"1.0-", "1.0-1", -1}, {"1.0-1", "1.0-", 1}} {
		if got := Vercmp(tt.a, tt.b); got != tt.want {
			t.Errorf("Vercmp(%q, %q) = %d, pacman's vercmp says %d", tt.a, tt.b, got, tt.want)
		}
	}
}
