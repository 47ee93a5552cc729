package repodb

import (
	"bytes"
	"errors"
	"io"
	"strconv"
)

// tarReader streams the members of a tar archive without allocating per member.
//
// Why not archive/tar: it allocates a Header and half a dozen strings per member, ~13
// allocations, and a 15,000-package database has 30,000 members; that was a third of
// the time of a Read and most of its garbage. This reader understands what Arch's tools
// and Go write — ustar with its name prefix, pax 'x' records for path and size, GNU 'L'
// long names, the checksum — and skips everything else ('g' global headers, GNU long
// links, sparse maps are data it never looks into). FuzzTarReader checks it against
// archive/tar: whatever archive/tar reads in full, this reads the same.
type tarReader struct {
	r     io.Reader
	blk   [512]byte
	left  int64 // unread data of the current member
	pad   int64 // padding after it
	name  []byte
	ext   []byte // data of the last extended header
	long  []byte // path from a pax header, for the next member
	gnu   []byte // name from a GNU 'L' header, for the next member
	trash []byte // for skipping
}

// maxExtHeader caps the data of a pax or GNU long-name header, as archive/tar does.
const maxExtHeader = 1 << 20

var errTarHeader = errors.New("invalid tar header")

func newTarReader(r io.Reader) *tarReader {
	return &tarReader{r: r}
}

// next advances to the next member and returns its type flag ('0' for a regular file)
// and data size; its name is in t.name until the following call. It returns io.EOF at
// the end of the archive (the first zero block, or the end of the input at a member
// boundary); what follows the end marker is the caller's to drain.
//
// Extended headers apply as in archive/tar: the last pax 'x' header before a member
// gives its path and size, a GNU 'L' header its name, overriding the pax path.
func (t *tarReader) next() (typ byte, size int64, err error) {
	var (
		paxPath, gnuLong bool // t.long / t.gnu hold a name
		paxSize          = int64(-1)
	)
	for {
		if err := t.skip(t.left, false); err != nil {
			return 0, 0, err
		}
		if err := t.skip(t.pad, true); err != nil {
			return 0, 0, err
		}
		t.left, t.pad = 0, 0
		if _, err := io.ReadFull(t.r, t.blk[:]); err != nil {
			return 0, 0, err
		}
		if t.blk == [512]byte{} {
			return 0, 0, io.EOF
		}
		if !t.checksumOK() {
			return 0, 0, errTarHeader
		}
		size, ok := tarNumber(t.blk[124:136])
		if !ok {
			return 0, 0, errTarHeader
		}
		typ = t.blk[156]
		switch typ {
		case 'x', 'g', 'L', 'K':
			// Headers about the next member: read their data whole.
			if size > maxExtHeader {
				return 0, 0, errors.New("tar: extended header too long")
			}
			t.ext = grow(t.ext, int(size))
			if _, err := io.ReadFull(t.r, t.ext); err != nil {
				return 0, 0, noEOF(err)
			}
			t.pad = -size & 511
			switch typ {
			case 'x', 'g':
				path, psize, err := parsePAX(t.ext)
				if err != nil {
					return 0, 0, err
				}
				if typ == 'g' {
					// archive/tar hands a global header to its caller as a member,
					// forgetting what came before; it applies to nothing here.
					paxPath, gnuLong, paxSize = false, false, -1
					continue
				}
				// Each 'x' header replaces the previous one's records.
				paxPath, paxSize = path != nil, psize
				t.long = append(t.long[:0], path...)
			case 'L':
				n := cstring(t.ext)
				gnuLong = len(n) > 0
				t.gnu = append(t.gnu[:0], n...)
			}
			continue
		}
		switch {
		case gnuLong:
			t.name = append(t.name[:0], t.gnu...)
		case paxPath:
			t.name = append(t.name[:0], t.long...)
		default:
			t.name = t.ustarName()
		}
		if paxSize >= 0 {
			size = paxSize
		}
		if typ == 0 { // pre-POSIX regular file, or directory by its trailing slash
			typ = '0'
			if bytes.HasSuffix(t.name, []byte("/")) {
				typ = '5'
			}
		}
		if typ >= '1' && typ <= '6' { // links, devices, directories, FIFOs: no data
			size = 0
		}
		t.left, t.pad = size, -size&511
		return typ, size, nil
	}
}

// readAll reads the whole data of the current member into buf, which must be its size.
func (t *tarReader) readAll(buf []byte) error {
	if _, err := io.ReadFull(t.r, buf); err != nil {
		return noEOF(err)
	}
	t.left -= int64(len(buf))
	return nil
}

// skip discards n bytes; a short input is io.ErrUnexpectedEOF, or io.EOF when eofOK:
// archive/tar takes an archive cut in the padding after its last member as complete.
func (t *tarReader) skip(n int64, eofOK bool) error {
	if t.trash == nil && n > 0 {
		t.trash = make([]byte, 32<<10)
	}
	for n > 0 {
		k, err := io.ReadFull(t.r, t.trash[:min(n, int64(len(t.trash)))])
		n -= int64(k)
		if err != nil {
			if eofOK && (err == io.EOF || err == io.ErrUnexpectedEOF) {
				return io.EOF
			}
			return noEOF(err)
		}
	}
	return nil
}

// checksumOK verifies the header checksum, which may be the sum of the bytes taken as
// unsigned or (old tars) signed, with the checksum field counted as spaces.
func (t *tarReader) checksumOK() bool {
	want, ok := tarOctal(t.blk[148:156])
	if !ok {
		return false
	}
	var unsigned, signed int64
	for i, c := range t.blk {
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	return want == unsigned || want == signed
}

// ustarName is the name field, joined to the prefix field in ustar (and star) headers.
func (t *tarReader) ustarName() []byte {
	name := cstring(t.blk[0:100])
	var prefix []byte
	switch string(t.blk[257:263]) {
	case "ustar\x00":
		if string(t.blk[508:512]) == "tar\x00" { // star: a shorter prefix
			prefix = cstring(t.blk[345:476])
		} else {
			prefix = cstring(t.blk[345:500])
		}
	}
	out := t.name[:0]
	if len(prefix) > 0 {
		out = append(append(out, prefix...), '/')
	}
	return append(out, name...)
}

// parsePAX reads pax records ("LEN key=value\n"), returning the path (nil when absent)
// and the size (-1 when absent).
func parsePAX(b []byte) (path []byte, size int64, err error) {
	size = -1
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		if sp <= 0 {
			return nil, 0, errTarHeader
		}
		n, perr := strconv.Atoi(string(b[:sp]))
		if perr != nil || n < 5 || n > len(b) || n <= sp+1 || b[n-1] != '\n' {
			return nil, 0, errTarHeader
		}
		rec := b[sp+1 : n-1]
		b = b[n:]
		k, v, ok := bytes.Cut(rec, []byte("="))
		if !ok || len(k) == 0 {
			return nil, 0, errTarHeader
		}
		switch string(k) {
		case "path", "linkpath", "uname", "gname":
			if bytes.IndexByte(v, 0) >= 0 {
				return nil, 0, errTarHeader
			}
			if string(k) == "path" {
				path = v[:len(v):len(v)] // non-nil even when empty
			}
		case "size":
			s, perr := strconv.ParseInt(string(v), 10, 64)
			if perr != nil || s < 0 {
				return nil, 0, errTarHeader
			}
			size = s
		default:
			if bytes.IndexByte(k, 0) >= 0 {
				return nil, 0, errTarHeader
			}
		}
	}
	return path, size, nil
}

// tarNumber parses a numeric header field: octal text, or base-256 when the high bit of
// the first byte is set. Negative numbers are refused.
func tarNumber(b []byte) (int64, bool) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		if b[0]&0x40 != 0 {
			return 0, false
		}
		var x uint64
		for i, c := range b {
			if i == 0 {
				c &= 0x7f
			}
			if x>>56 > 0 {
				return 0, false
			}
			x = x<<8 | uint64(c)
		}
		if x>>63 > 0 {
			return 0, false
		}
		return int64(x), true
	}
	return tarOctal(b)
}

// tarOctal parses octal text padded with spaces and NULs on either side, as archive/tar
// does (it stops at an inner NUL too).
func tarOctal(b []byte) (int64, bool) {
	b = cstring(bytes.Trim(b, " \x00"))
	if len(b) == 0 {
		return 0, true
	}
	var x uint64
	for _, c := range b {
		if c < '0' || c > '7' || x>>61 > 0 {
			return 0, false
		}
		x = x<<3 | uint64(c-'0')
	}
	if x>>63 > 0 {
		return 0, false
	}
	return int64(x), true
}

// cstring is b up to its first NUL.
func cstring(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// grow returns b resized to n, reusing its array when it is big enough.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
