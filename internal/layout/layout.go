// Package layout is the one place that knows how an Arch Linux mirror tree is laid out:
// which architecture it publishes, where a repository's databases and package links live
// ($repo/os/$arch), and what its database is called. Everything else asks it, so a mirror
// of more architectures changes this package, not the callers.
package layout

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Arch is the architecture Arch Linux publishes.
const Arch = "x86_64"

// RepoDir is the mirror-relative folder (slash-separated) of a repository's databases and
// package links: "core/os/x86_64".
func RepoDir(repo string) string { return repo + "/os/" + Arch }

// RepoPath is RepoDir under the mirror root, as a file path.
func RepoPath(root, repo string) string { return filepath.Join(root, repo, "os", Arch) }

// DB is a repository's database link in its folder: "core.db".
func DB(repo string) string { return repo + ".db" }

// DBPath is the repository's database under the mirror root.
func DBPath(root, repo string) string { return filepath.Join(RepoPath(root, repo), DB(repo)) }

// StampMax bounds a lastupdate/lastsync file: a Unix time and a newline.
const StampMax = 32

// ParseStamp parses a lastupdate/lastsync file's content: a positive Unix time in decimal,
// maybe a newline. Anything else (larger than StampMax, signs, letters) is refused with a
// short message; name is the file's, for it.
func ParseStamp(name string, b []byte) (int64, error) {
	if len(b) > StampMax {
		return 0, fmt.Errorf("%s is larger than %d bytes: not a Unix time", name, StampMax)
	}
	s := strings.TrimRight(string(b), "\n\r ")
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || strings.ContainsAny(s, "+-") {
		return 0, fmt.Errorf("%s holds %s, not a Unix time", name, strconv.QuoteToASCII(s))
	}
	return v, nil
}
