package traffic

import "strings"

// PackageName returns the package name of a pacman package file, from a URL path or file
// name: "/archlinux/extra/os/x86_64/python-requests-2.32.3-1-any.pkg.tar.zst" →
// "python-requests". The last three dash-separated fields before ".pkg.tar" are version
// (which may carry an epoch, "2:1.0"), release and architecture; the rest is the name,
// dashes and all. The compression suffix may be missing or any short extension (.zst, .xz,
// .gz, .bz2, .lz4, .lrz, .lzo, .Z). Signatures (".sig") and anything else report false.
//
// The name is checked against makepkg's rules (alphanumerics and @._+-, not starting with
// - or .), so what is stored as a key is always a plausible package name.
func PackageName(path string) (string, bool) {
	base := path[strings.LastIndexByte(path, '/')+1:]
	if len(base) > 512 {
		return "", false
	}
	i := strings.LastIndex(base, ".pkg.tar")
	if i <= 0 || !validExt(base[i+len(".pkg.tar"):]) {
		return "", false
	}
	stem := base[:i]
	arch, stem, ok := cutLast(stem)
	if !ok || !validArch(arch) {
		return "", false
	}
	rel, stem, ok := cutLast(stem)
	if !ok || !validRel(rel) {
		return "", false
	}
	ver, name, ok := cutLast(stem)
	if !ok || !validVer(ver) || !validName(name) {
		return "", false
	}
	return name, true
}

// cutLast splits s at its last dash: the part after it and the part before it.
func cutLast(s string) (last, rest string, ok bool) {
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return "", "", false
	}
	return s[i+1:], s[:i], true
}

// validExt: "" or "." and 1 to 4 alphanumerics (".sig" is not a compression, so a
// signature's ".pkg.tar.zst.sig" fails here).
func validExt(e string) bool {
	if e == "" {
		return true
	}
	if e[0] != '.' || len(e) < 2 || len(e) > 5 || e == ".sig" {
		return false
	}
	for _, c := range []byte(e[1:]) {
		if !isAlnum(c) {
			return false
		}
	}
	return true
}

func validArch(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		if !isAlnum(c) && c != '_' {
			return false
		}
	}
	return true
}

// validRel: pkgrel is a number, optionally with one dotted minor ("1", "2.1").
func validRel(s string) bool {
	if s == "" || len(s) > 16 || s[0] == '.' || s[len(s)-1] == '.' || strings.Count(s, ".") > 1 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// validVer: [epoch:]pkgver, pkgver without dashes (they were split off) or slashes.
func validVer(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	if i := strings.IndexByte(s, ':'); i >= 0 {
		for _, c := range []byte(s[:i]) {
			if c < '0' || c > '9' {
				return false
			}
		}
		s = s[i+1:]
		if i == 0 || s == "" {
			return false
		}
	}
	for _, c := range []byte(s) {
		if !isAlnum(c) && c != '.' && c != '_' && c != '+' && c != '~' {
			return false
		}
	}
	return true
}

func validName(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '-' || s[0] == '.' {
		return false
	}
	for _, c := range []byte(s) {
		if !isAlnum(c) && !strings.ContainsRune("@._+-", rune(c)) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// RepoOf returns the repository of a file from its path under the mirror root:
// "extra/os/x86_64/vim-9.1-1-x86_64.pkg.tar.zst" → "extra", "core/os/x86_64/core.db" →
// "core", anything under "pool/" → Pool (the path does not say which repos name a pool
// file), "" for the rest (lastupdate, iso/, the root's index). A repository is a first
// folder with an os/ folder in it, as pacman's $repo/os/$arch asks; its name is checked
// like a package name, so a key is never arbitrary text.
func RepoOf(rel string) string {
	rel = strings.TrimPrefix(rel, "/")
	first, rest, _ := strings.Cut(rel, "/")
	if first == "pool" {
		return Pool
	}
	if len(first) > 64 || !validName(first) || (rest != "os" && !strings.HasPrefix(rest, "os/")) {
		return ""
	}
	return first
}
