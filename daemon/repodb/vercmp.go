package repodb

import "strings"

// Vercmp compares two package versions ([epoch:]pkgver[-pkgrel]) as pacman's vercmp
// (alpm_pkg_vercmp) does: -1 when a is older, 0 when equal, 1 when newer. The epoch
// counts first (none is 0); the pkgrel only when both have one, so "2.38" matches any
// release of 2.38, as a dependency "glibc>=2.38" means.
func Vercmp(a, b string) int {
	if a == b {
		return 0
	}
	e1, v1, r1, ok1 := parseEVR(a)
	e2, v2, r2, ok2 := parseEVR(b)
	ret := rpmvercmp(e1, e2)
	if ret == 0 {
		ret = rpmvercmp(v1, v2)
		if ret == 0 && ok1 && ok2 {
			ret = rpmvercmp(r1, r2)
		}
	}
	return ret
}

// parseEVR is libalpm's: the epoch is the leading digits before a ':' ("0" when there is
// none or it is empty), the release whatever follows the last '-'; hasRel says there was
// a '-' (libalpm's release pointer is set even when what follows is empty: "1.0-" is
// older than "1.0-1").
func parseEVR(evr string) (epoch, version, release string, hasRel bool) {
	i := 0
	for i < len(evr) && isDigit(evr[i]) {
		i++
	}
	epoch, version = "0", evr
	if i < len(evr) && evr[i] == ':' {
		if i > 0 {
			epoch = evr[:i]
		}
		version = evr[i+1:]
	}
	if j := strings.LastIndexByte(version, '-'); j >= 0 {
		version, release, hasRel = version[:j], version[j+1:], true
	}
	return epoch, version, release, hasRel
}

// rpmvercmp is libalpm's segment comparison, ported as it is: runs of digits compare as
// numbers, runs of letters as strings, a number beats letters, and a trailing letter run
// ("1.0rc1" vs "1.0") is older than nothing.
func rpmvercmp(a, b string) int {
	if a == b {
		return 0
	}
	one, two := 0, 0   // where the current segments start
	ptr1, ptr2 := 0, 0 // where the previous segments ended
	for one < len(a) && two < len(b) {
		for one < len(a) && !isAlnum(a[one]) {
			one++
		}
		for two < len(b) && !isAlnum(b[two]) {
			two++
		}
		if one >= len(a) || two >= len(b) {
			break
		}
		// Separators of different lengths decide.
		if one-ptr1 != two-ptr2 {
			if one-ptr1 < two-ptr2 {
				return -1
			}
			return 1
		}
		ptr1, ptr2 = one, two
		isNum := isDigit(a[ptr1])
		class := isAlpha
		if isNum {
			class = isDigit
		}
		for ptr1 < len(a) && class(a[ptr1]) {
			ptr1++
		}
		for ptr2 < len(b) && class(b[ptr2]) {
			ptr2++
		}
		// b has no segment of a's kind here: a number is newer than letters.
		if two == ptr2 {
			if isNum {
				return 1
			}
			return -1
		}
		s1, s2 := a[one:ptr1], b[two:ptr2]
		if isNum {
			s1, s2 = strings.TrimLeft(s1, "0"), strings.TrimLeft(s2, "0")
			if len(s1) != len(s2) {
				if len(s1) > len(s2) {
					return 1
				}
				return -1
			}
		}
		if c := strings.Compare(s1, s2); c != 0 {
			return c
		}
		one, two = ptr1, ptr2
	}
	if one >= len(a) && two >= len(b) {
		return 0
	}
	// What is left decides: a remaining letter run never beats nothing.
	if (one >= len(a) && !isAlpha(b[two])) || (one < len(a) && isAlpha(a[one])) {
		return -1
	}
	return 1
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
