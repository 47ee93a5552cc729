package repodb

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Package is one entry of a sync database (one NAME-VER/desc).
type Package struct {
	Filename, Name, Base, Version, Desc, URL, Arch, Packager string
	MD5Sum, SHA256Sum, PGPSig                                string // "" when absent: format v2 drops MD5SUM, PGPSIG is optional
	CSize, ISize                                             int64  // bytes
	BuildDate                                                int64  // Unix seconds

	// Relations as written: "glibc>=2.38", "python: for scripts".
	Groups, Licenses, Replaces, Conflicts, Provides, Depends, OptDepends, MakeDepends, CheckDepends []string
}

// key is a desc section this package knows. The order groups them by kind: strings,
// numbers, lists.
type key uint8

const (
	kUnknown key = iota
	kFilename
	kName
	kBase
	kVersion
	kDesc
	kURL
	kArch
	kPackager
	kMD5Sum
	kSHA256Sum
	kPGPSig // a string, but not kept in the shared buffer (see doc.go)
	kCSize
	kISize
	kBuildDate
	kGroups
	kLicense
	kReplaces
	kConflicts
	kProvides
	kDepends
	kOptDepends
	kMakeDepends
	kCheckDepends
	nKeys

	firstNumber = kCSize
	firstList   = kGroups
)

var keyNames = [nKeys]string{
	kFilename: "%FILENAME%", kName: "%NAME%", kBase: "%BASE%", kVersion: "%VERSION%",
	kDesc: "%DESC%", kURL: "%URL%", kArch: "%ARCH%", kPackager: "%PACKAGER%",
	kMD5Sum: "%MD5SUM%", kSHA256Sum: "%SHA256SUM%", kPGPSig: "%PGPSIG%",
	kCSize: "%CSIZE%", kISize: "%ISIZE%", kBuildDate: "%BUILDDATE%",
	kGroups: "%GROUPS%", kLicense: "%LICENSE%", kReplaces: "%REPLACES%",
	kConflicts: "%CONFLICTS%", kProvides: "%PROVIDES%", kDepends: "%DEPENDS%",
	kOptDepends: "%OPTDEPENDS%", kMakeDepends: "%MAKEDEPENDS%", kCheckDepends: "%CHECKDEPENDS%",
}

// lookupKey maps a section line (with its % signs) to its key; the switch on
// string(b) does not allocate.
func lookupKey(b []byte) key {
	switch string(b) {
	case "%FILENAME%":
		return kFilename
	case "%NAME%":
		return kName
	case "%BASE%":
		return kBase
	case "%VERSION%":
		return kVersion
	case "%DESC%":
		return kDesc
	case "%URL%":
		return kURL
	case "%ARCH%":
		return kArch
	case "%PACKAGER%":
		return kPackager
	case "%MD5SUM%":
		return kMD5Sum
	case "%SHA256SUM%":
		return kSHA256Sum
	case "%PGPSIG%":
		return kPGPSig
	case "%CSIZE%":
		return kCSize
	case "%ISIZE%":
		return kISize
	case "%BUILDDATE%":
		return kBuildDate
	case "%GROUPS%":
		return kGroups
	case "%LICENSE%":
		return kLicense
	case "%REPLACES%":
		return kReplaces
	case "%CONFLICTS%":
		return kConflicts
	case "%PROVIDES%":
		return kProvides
	case "%DEPENDS%":
		return kDepends
	case "%OPTDEPENDS%":
		return kOptDepends
	case "%MAKEDEPENDS%":
		return kMakeDepends
	case "%CHECKDEPENDS%":
		return kCheckDepends
	}
	return kUnknown
}

func (p *Package) str(k key) *string {
	switch k {
	case kFilename:
		return &p.Filename
	case kName:
		return &p.Name
	case kBase:
		return &p.Base
	case kVersion:
		return &p.Version
	case kDesc:
		return &p.Desc
	case kURL:
		return &p.URL
	case kArch:
		return &p.Arch
	case kPackager:
		return &p.Packager
	case kMD5Sum:
		return &p.MD5Sum
	case kSHA256Sum:
		return &p.SHA256Sum
	}
	return &p.PGPSig
}

func (p *Package) num(k key) *int64 {
	switch k {
	case kCSize:
		return &p.CSize
	case kISize:
		return &p.ISize
	}
	return &p.BuildDate
}

func (p *Package) list(k key) *[]string {
	switch k {
	case kGroups:
		return &p.Groups
	case kLicense:
		return &p.Licenses
	case kReplaces:
		return &p.Replaces
	case kConflicts:
		return &p.Conflicts
	case kProvides:
		return &p.Provides
	case kDepends:
		return &p.Depends
	case kOptDepends:
		return &p.OptDepends
	case kMakeDepends:
		return &p.MakeDepends
	}
	return &p.CheckDepends
}

// descScanner walks the value lines of a desc file. A section is a %KEY% line, its values
// one per line, and a blank line (or the end of the data). Inside a section every
// non-blank line is a value, even one that looks like %KEY%, as pacman reads it.
type descScanner struct {
	data []byte
	pos  int
	line int  // number of the line last read, from 1
	in   bool // inside a section
	key  key  // the section's key (kUnknown for keys we ignore)
	nth  int  // values read in this section so far
}

// next returns the next value line (without its line end) and its section's key; ok is
// false at the end of the data.
func (s *descScanner) next() (k key, val []byte, ok bool, err error) {
	for s.pos < len(s.data) {
		line := s.data[s.pos:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
			s.pos += i + 1
		} else {
			s.pos = len(s.data)
		}
		s.line++
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		switch {
		case len(line) == 0:
			s.in = false
		case s.in:
			s.nth++
			return s.key, line, true, nil
		case len(line) >= 3 && line[0] == '%' && line[len(line)-1] == '%':
			s.in, s.key, s.nth = true, lookupKey(line), 0
		default:
			return 0, nil, false, fmt.Errorf("line %d: %s is not a %%KEY%% line", s.line, quote(line))
		}
	}
	return 0, nil, false, nil
}

// parseDesc parses one desc file. Unknown keys are ignored and every section is optional
// except %NAME% and %VERSION%. A single-value key takes the first line of its section (a
// repeated section replaces it); a list key collects every line of all its sections.
// Empty numbers read as 0.
func parseDesc(data []byte) (Package, error) {
	var p Package
	// First pass: validate, and size the shared string buffer and list backing.
	var (
		s      = descScanner{data: data}
		size   int
		counts [nKeys]int
	)
	for {
		k, v, ok, err := s.next()
		if err != nil {
			return p, err
		}
		if !ok {
			break
		}
		switch {
		case k == kUnknown:
		case k >= firstList:
			counts[k]++
			size += len(v)
		case s.nth > 1: // extra lines of a single-value section are ignored
		case k >= firstNumber:
			n, err := parseNumber(v)
			if err != nil {
				return p, fmt.Errorf("%s %s %w", keyNames[k], quote(v), err)
			}
			*p.num(k) = n
		case k == kPGPSig:
		default:
			size += len(v)
		}
	}

	// Second pass: fill. Every string is a substring of buf's one allocation: Grow makes
	// it big enough, so String never sees a reallocation and earlier substrings stay put.
	var buf strings.Builder
	buf.Grow(size)
	add := func(v []byte) string {
		if len(v) == 0 {
			return ""
		}
		buf.Write(v)
		s := buf.String()
		return s[len(s)-len(v):]
	}
	var (
		all   []string
		start [nKeys]int // where each list begins in all
		fill  [nKeys]int // how many of its values are in
	)
	if n := sumLists(&counts, &start); n > 0 {
		all = make([]string, n)
	}
	s = descScanner{data: data}
	for {
		k, v, ok, _ := s.next()
		if !ok {
			break
		}
		switch {
		case k == kUnknown:
		case k >= firstList:
			all[start[k]+fill[k]] = add(v)
			fill[k]++
		case s.nth > 1 || k >= firstNumber:
		case k == kPGPSig:
			p.PGPSig = string(v)
		default:
			*p.str(k) = add(v)
		}
	}
	for k := firstList; k < nKeys; k++ {
		if n := counts[k]; n > 0 {
			*p.list(k) = all[start[k] : start[k]+n : start[k]+n]
		}
	}
	switch {
	case p.Name == "":
		return p, errors.New("no %NAME%")
	case p.Version == "":
		return p, errors.New("no %VERSION%")
	}
	return p, nil
}

// sumLists sets start for each list key and returns the number of list values.
func sumLists(counts, start *[nKeys]int) int {
	n := 0
	for k := firstList; k < nKeys; k++ {
		start[k] = n
		n += counts[k]
	}
	return n
}

// parseNumber parses a non-negative decimal; "" is 0. It works on bytes so that a good
// number costs no allocation (strconv would need a string).
func parseNumber(b []byte) (int64, error) {
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errors.New("is not a number")
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, errors.New("is out of range")
		}
		n = n*10 + d
	}
	return n, nil
}

// quote quotes b for an error message, shortened: a damaged entry may hold a megabyte.
func quote(b []byte) string {
	const max = 64
	if len(b) > max {
		return fmt.Sprintf("%q…", b[:max])
	}
	return fmt.Sprintf("%q", b)
}

// SplitVersion splits "[epoch:]pkgver-pkgrel" into its parts as pacman does: the epoch
// is the digits before the first ':' and is "" when absent (pacman compares that as 0);
// pkgrel is what follows the last '-' and is "" when there is no '-'.
func SplitVersion(v string) (epoch, pkgver, pkgrel string) {
	if i := strings.IndexByte(v, ':'); i > 0 && allDigits(v[:i]) {
		epoch, v = v[:i], v[i+1:]
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
