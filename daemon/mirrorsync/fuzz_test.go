package mirrorsync

import (
	"github.com/amwi/amwi/internal/layout"
	"path"
	"strings"
	"testing"
)

// FuzzParseStamp: whatever an upstream's lastupdate holds, the answer is a positive
// number or a short error.
func FuzzParseStamp(f *testing.F) {
	for _, s := range []string{"1700000000\n", "abc\n", "-5\n", "+5\n", " 17\n", "1e9", "", "99999999999999999999\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseStamp("lastupdate", b)
		if err != nil {
			if len(err.Error()) > 200 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		if v <= 0 || len(b) > stampMax {
			t.Fatalf("%q read as %d", b, v)
		}
	})
}

// FuzzLinkTarget: a link of a repo dir is taken only when it stays in the tree and leads
// into pool/ (one level down) or to a file of the same dir.
func FuzzLinkTarget(f *testing.F) {
	for _, s := range []string{"../../../pool/packages/a.pkg.tar.zst", "core.db.tar.gz", "/etc/passwd", "../../../../x",
		"../../../pool/../../x", "../../../iso/x", "../../../pool/packages/../community/x", "./x", "a/b"} {
		f.Add("core", s)
	}
	f.Fuzz(func(t *testing.T, repo, target string) {
		if !safeName(repo) {
			return
		}
		p, ok := linkTarget(repo, target)
		if !ok {
			return
		}
		if p != path.Clean(p) || strings.HasPrefix(p, "../") || p == ".." || path.IsAbs(p) {
			t.Fatalf("%q → %q escapes", target, p)
		}
		inPool := strings.HasPrefix(p, "pool/") && strings.Count(p, "/") == 2
		inDir := path.Dir(p) == layout.RepoDir(repo)
		if !inPool && !inDir {
			t.Fatalf("%q → %q is neither in pool/ nor in the repo dir", target, p)
		}
		for _, part := range strings.Split(p, "/") {
			if !safeName(part) {
				t.Fatalf("%q → %q has an unsafe part %q", target, p, part)
			}
		}
	})
}
