package repodb

import (
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestVercmp: pacman's own cases (its test/util/vercmptest.sh) give what pacman gives.
func TestVercmp(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"1.5.0", "1.5.0", 0}, {"1.5.1", "1.5.0", 1},
		{"1.5.1", "1.5", 1}, {"1.5.0", "1.5", 1}, {"1.5", "1.5.0", -1},
		{"1.5-1", "1.5-1", 0}, {"1.5-1", "1.5-2", -1}, {"1.5-2", "1.5-1", 1},
		{"1.5", "1.5-1", 0}, {"1.5-1", "1.5", 0}, {"2.38", "2.38-3", 0},
		{"1.0a", "1.0alpha", -1}, {"1.0alpha", "1.0b", -1}, {"1.0b", "1.0beta", -1},
		{"1.0beta", "1.0rc", -1}, {"1.0rc", "1.0", -1}, {"1.0", "1.0.a", -1},
		{"1.0.a", "1.0.1", -1}, {"1.0", "1.0.1", -1},
		{"1.5.a", "1.5", 1}, {"1.5.b", "1.5.a", 1}, {"1.5.1", "1.5.b", 1},
		{"1.5.b-1", "1.5.b", 0}, {"1.5-1", "1.5.b", -1},
		{"0:1.0", "1.0", 0}, {"1:1.0", "1.0", 1}, {"1:1.0", "2:1.0", -1},
		{"1:1.0", "1.1", 1}, {"2:1.0-1", "1:2.0-1", 1}, {":1.0", "1.0", 0},
		{"1.0.0", "1.0..0", -1}, {"1.0", "1_0", 0}, {"1.001", "1.1", 0},
		{"2.37-1", "2.38", -1}, {"6.1.arch1", "6.1", 1},
	} {
		if got := Vercmp(tt.a, tt.b); got != tt.want {
			t.Errorf("Vercmp(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestVercmpAgainstPacman: random versions built from the pieces that matter (digits,
// letters, separators, epochs, releases) compare as pacman's vercmp says.
func TestVercmpAgainstPacman(t *testing.T) {
	bin, err := exec.LookPath("vercmp")
	if err != nil {
		t.Fatalf("vercmp not found: install Debian package pacman-package-manager (make test-deps does)")
	}
	r := rand.New(rand.NewPCG(1, 2))
	parts := []string{"0", "1", "2", "10", "01", "a", "b", "rc", "alpha", ".", "..", "_", "+", "-", ":", "-", "-1"}
	gen := func() string {
		var b strings.Builder
		for range 1 + r.IntN(6) {
			b.WriteString(parts[r.IntN(len(parts))])
		}
		return b.String()
	}
	for range 300 {
		a, b := gen(), gen()
		out, err := exec.Command(bin, a, b).Output()
		if err != nil {
			t.Fatalf("vercmp %q %q: %v", a, b, err)
		}
		want, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		if got := Vercmp(a, b); got != want {
			t.Errorf("Vercmp(%q, %q) = %d, pacman says %d", a, b, got, want)
		}
	}
}

// FuzzVercmp: any two strings (a hostile upstream's %VERSION%) compare without a panic,
// each equal to itself and the two ways round opposite.
func FuzzVercmp(f *testing.F) {
	for _, s := range []string{"1.0-1", "1:2.0", "1.0a", "", ":", "-", "1..0", "1.0~rc1", "0x10", "١٢"} {
		f.Add(s, "1.0-1")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if c := Vercmp(a, a); c != 0 {
			t.Errorf("Vercmp(%q, itself) = %d", a, c)
		}
		if x, y := Vercmp(a, b), Vercmp(b, a); x != -y || x < -1 || x > 1 {
			t.Errorf("Vercmp(%q, %q) = %d but the other way %d", a, b, x, y)
		}
	})
}

// TestVercmpEmptyRelease: libalpm's parseEVR leaves release pointing at "" for a
// version ending in '-', and alpm_pkg_vercmp compares releases whenever both pointers are
// set: `vercmp 1.0- 1.0-1` prints -1 (pacman 6). Vercmp once skipped an empty release, so
// a hostile db's "glibc 2.38-" met "glibc>=2.38-1" on the package page.
func TestVercmpEmptyRelease(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"1.0-", "1.0-1", -1}, {"1.0-1", "1.0-", 1}, {"1.0-", "1.0", 0}, {"1.0-", "1.0-", 0}} {
		if got := Vercmp(tt.a, tt.b); got != tt.want {
			t.Errorf("Vercmp(%q, %q) = %d, pacman's vercmp says %d", tt.a, tt.b, got, tt.want)
		}
	}
}
