package repodb

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// maxWindow caps the zstd window and the xz dictionary, which a decoder allocates as the
// stream's header asks. repo-add's databases need 8 MiB at most; 64 MiB still admits
// zstd --ultra -21 and xz -9, and refuses the 4 GiB a hostile header may claim.
const maxWindow = 64 << 20

var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicBzip2 = []byte("BZh")
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// decompressor is the decompressed stream of a database, counted against
// Limits.MaxUncompressed.
type decompressor struct {
	r      io.Reader
	format string // "gzip", "zstd", "xz", "bzip2" or "tar"
	left   int64  // bytes still allowed
	max    int64
	err    error         // the first read error, returned again from then on
	zstd   *zstd.Decoder // to Close
	xz     *xzGuard
}

// newDecompressor detects the format of br by its magic bytes.
func newDecompressor(br *bufio.Reader, maxUncompressed int64) (*decompressor, error) {
	head, err := br.Peek(512)
	if len(head) == 0 {
		if err == io.EOF {
			return nil, errors.New("empty file, not a sync database")
		}
		return nil, fmt.Errorf("read: %w", err)
	}
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read: %w", err)
	}
	d := &decompressor{left: maxUncompressed, max: maxUncompressed}
	switch {
	case bytes.HasPrefix(head, magicGzip):
		d.format = "gzip"
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, d.wrap(err)
		}
		d.r = zr
	case bytes.HasPrefix(head, magicBzip2):
		d.format, d.r = "bzip2", bzip2.NewReader(br)
	case bytes.HasPrefix(head, magicZstd):
		d.format = "zstd"
		// One synchronous decoder, no goroutines, lazily grown buffers: a Pi decodes
		// one database at a time and has little memory to spare.
		zr, err := zstd.NewReader(br,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxWindow),
			zstd.WithDecoderMaxMemory(maxWindow))
		if err != nil {
			return nil, d.wrap(err)
		}
		d.r, d.zstd = zr, zr
	case bytes.HasPrefix(head, magicXz):
		d.format = "xz"
		d.xz = &xzGuard{r: br, max: maxWindow}
		zr, err := xz.NewReader(d.xz)
		if err != nil {
			return nil, d.wrap(d.guardErr(err))
		}
		d.r = zr
	case isTar(head):
		d.format, d.r = "tar", br
	default:
		return nil, errors.New("not a sync database (unknown format)")
	}
	return d, nil
}

// isTar recognises a ustar (or GNU) header, or the zero block that is all an empty
// archive holds.
func isTar(head []byte) bool {
	if len(head) < 512 {
		return false
	}
	if string(head[257:262]) == "ustar" {
		return true
	}
	for _, b := range head {
		if b != 0 {
			return false
		}
	}
	return true
}

// Read reads decompressed bytes, failing once more than max were produced.
func (d *decompressor) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if int64(len(p))-1 > d.left {
		p = p[:d.left+1] // one byte more than allowed tells "exactly max" from "more"
	}
	n, err := d.r.Read(p)
	d.left -= int64(n)
	if d.left < 0 {
		d.err = fmt.Errorf("%s data larger than %d bytes uncompressed (Limits.MaxUncompressed): %w", d.format, d.max, ErrLimit)
		return n + int(d.left), d.err
	}
	if err != nil && err != io.EOF {
		err = d.wrap(d.guardErr(err))
		d.err = err
	}
	return n, err
}

// guardErr prefers the xz guard's own error to what the xz reader made of it.
func (d *decompressor) guardErr(err error) error {
	if d.xz != nil && d.xz.err != nil {
		return d.xz.err
	}
	return err
}

// wrap names the format in a decompressor's error unless the error already does.
func (d *decompressor) wrap(err error) error {
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return fmt.Errorf("zstd: window larger than the %d MiB allowed: %w", maxWindow>>20, ErrLimit)
	}
	if d.format == "tar" || strings.HasPrefix(err.Error(), d.format) {
		return err
	}
	return fmt.Errorf("%s: %w", d.format, err)
}

// explain replaces an error that a limit caused, whatever the tar reader made of it, with
// the limit's own message.
func (d *decompressor) explain(err error, name string) error {
	if errors.Is(d.err, ErrLimit) {
		return fmt.Errorf("%s: %w", name, d.err)
	}
	return err
}

func (d *decompressor) close() {
	if d.zstd != nil {
		d.zstd.Close()
	}
}
