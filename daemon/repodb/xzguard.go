package repodb

import (
	"fmt"
	"io"
)

// xzGuard passes an xz file through unchanged while following its structure far enough
// to read the LZMA2 dictionary size of every block: ulikunitz/xz allocates whatever a
// block header asks for, up to 4 GiB, and has no option to refuse. It follows the
// container (streams, blocks, index, padding; see the .xz file format spec) and the LZMA2
// chunk headers, whose sizes are explicit, without decompressing anything. Anything it
// cannot follow is an error: the decoder would reject it too.
type xzGuard struct {
	r   io.Reader
	max int64 // largest dictionary allowed
	err error

	st    xzState
	hdr   []byte // header bytes collected for st
	need  int    // collect until len(hdr) == need
	skip  int64  // bytes to pass without looking, before st
	check int64  // size of a block's check field, from the stream flags

	blockData int64  // compressed bytes of the current block so far
	indexLen  int64  // bytes of the current index so far
	vli       uint64 // the index varint being read
	vliShift  uint
	records   uint64 // index varints still to read after the record count
	first     bool   // the varint being read is the record count
}

type xzState uint8

const (
	xzStreamHeader  xzState = iota // collect 12 bytes
	xzBlockStart                   // collect 1 byte: 0 starts the index, else a header size
	xzBlockHeader                  // collect the block header
	xzChunkStart                   // collect 1 byte: an LZMA2 control byte
	xzChunkHeader                  // collect the rest of a chunk header
	xzIndex                        // byte by byte: varints
	xzStreamPadding                // byte by byte: zeros, or the next stream's magic
)

func (g *xzGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	if ferr := g.feed(p[:n]); ferr != nil {
		g.err = ferr
		return 0, ferr
	}
	if err == io.EOF && (g.st != xzStreamPadding || g.skip > 0) {
		// The decoder reports truncation too; saying it here keeps the message plain.
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (g *xzGuard) fail(format string, args ...any) error {
	return fmt.Errorf("xz: "+format, args...)
}

func (g *xzGuard) feed(p []byte) error {
	if g.need == 0 && g.st == xzStreamHeader {
		g.need = 12
	}
	for len(p) > 0 {
		if g.skip > 0 {
			k := min(g.skip, int64(len(p)))
			g.skip -= k
			p = p[k:]
			continue
		}
		switch g.st {
		case xzIndex:
			if err := g.indexByte(p[0]); err != nil {
				return err
			}
			p = p[1:]
			continue
		case xzStreamPadding:
			switch p[0] {
			case 0:
				p = p[1:]
			case magicXz[0]:
				g.st, g.need = xzStreamHeader, 12 // the byte is collected below
			default:
				return g.fail("data after the end of the stream")
			}
			continue
		}
		k := min(g.need-len(g.hdr), len(p))
		g.hdr = append(g.hdr, p[:k]...)
		p = p[k:]
		if len(g.hdr) < g.need {
			continue
		}
		if err := g.header(); err != nil {
			return err
		}
	}
	return nil
}

// header handles a complete g.hdr for g.st and sets up what comes next.
func (g *xzGuard) header() error {
	h := g.hdr
	g.hdr = g.hdr[:0]
	switch g.st {
	case xzStreamHeader:
		if string(h[:6]) != string(magicXz) {
			return g.fail("bad stream header")
		}
		g.check = checkSize(h[7] & 0x0f)
		g.st, g.need = xzBlockStart, 1
	case xzBlockStart:
		if h[0] == 0 {
			g.st, g.indexLen, g.first, g.vli, g.vliShift = xzIndex, 1, true, 0, 0
			return nil
		}
		g.hdr = append(g.hdr, h[0]) // the size byte is part of the header
		g.st, g.need = xzBlockHeader, (int(h[0])+1)*4
	case xzBlockHeader:
		if err := g.blockHeader(h); err != nil {
			return err
		}
		g.st, g.need, g.blockData = xzChunkStart, 1, 0
	case xzChunkStart:
		c := h[0]
		g.blockData++
		switch {
		case c == 0: // end of the LZMA2 data: block padding, then the check
			g.skip = (4-g.blockData%4)%4 + g.check
			g.st, g.need = xzBlockStart, 1
		case c == 1 || c == 2: // uncompressed chunk: 2 bytes of size
			g.hdr = append(g.hdr, c)
			g.st, g.need = xzChunkHeader, 3
		case c >= 0x80: // LZMA chunk: 2+2 bytes of sizes, and properties from 0xc0 on
			g.hdr = append(g.hdr, c)
			g.st, g.need = xzChunkHeader, 5
			if c >= 0xc0 {
				g.need = 6
			}
		default:
			return g.fail("invalid LZMA2 chunk")
		}
	case xzChunkHeader:
		var size int64
		if h[0] < 0x80 {
			size = int64(h[1])<<8 | int64(h[2]) + 1
		} else {
			size = int64(h[3])<<8 | int64(h[4]) + 1
		}
		g.blockData += int64(len(h)-1) + size
		g.skip = size
		g.st, g.need = xzChunkStart, 1
	}
	return nil
}

// blockHeader checks the LZMA2 dictionary size in a block header.
func (g *xzGuard) blockHeader(h []byte) error {
	bad := g.fail("bad block header")
	end := len(h) - 4 // the CRC32
	if end < 2 {
		return bad
	}
	flags := h[1]
	pos := 2
	vli := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && pos < end; i++ {
			b := h[pos]
			pos++
			v |= uint64(b&0x7f) << (7 * i)
			if b&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	for _, bit := range []byte{0x40, 0x80} { // compressed and uncompressed size
		if flags&bit == 0 {
			continue
		}
		if _, ok := vli(); !ok {
			return bad
		}
	}
	for range int(flags&3) + 1 {
		id, ok1 := vli()
		n, ok2 := vli()
		if !ok1 || !ok2 || n > uint64(end-pos) {
			return bad
		}
		props := h[pos : pos+int(n)]
		pos += int(n)
		if id != 0x21 { // not LZMA2: the decoder refuses it
			continue
		}
		if len(props) != 1 || props[0] > 40 {
			return g.fail("bad LZMA2 properties")
		}
		dict := int64(0xffffffff)
		if b := props[0]; b < 40 {
			dict = int64(2|b&1) << (b/2 + 11)
		}
		if dict > g.max {
			return fmt.Errorf("xz: dictionary of %d MiB, more than the %d MiB allowed: %w", dict>>20, g.max>>20, ErrLimit)
		}
	}
	return nil
}

// indexByte follows the index: a record count, two varints per record, padding to four
// bytes, a CRC32, then the stream footer.
func (g *xzGuard) indexByte(b byte) error {
	g.indexLen++
	if g.vliShift > 63 {
		return g.fail("bad index")
	}
	g.vli |= uint64(b&0x7f) << g.vliShift
	g.vliShift += 7
	if b&0x80 != 0 {
		return nil
	}
	v := g.vli
	g.vli, g.vliShift = 0, 0
	if g.first {
		if v > 1<<40 {
			return g.fail("bad index")
		}
		g.first, g.records = false, 2*v
	} else {
		g.records--
	}
	if g.records == 0 {
		g.skip = (4-g.indexLen%4)%4 + 4 + 12 // padding, CRC32, stream footer
		g.st = xzStreamPadding
	}
	return nil
}

// checkSize is the size of a block's check field for a check type (.xz spec 2.1.1.2).
func checkSize(t byte) int64 {
	if t == 0 {
		return 0
	}
	return 4 << ((t - 1) / 3)
}
