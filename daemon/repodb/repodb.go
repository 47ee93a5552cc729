package repodb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// Limits guard against decompression bombs and absurd entries. A zero (or negative) field
// takes its default.
type Limits struct {
	MaxUncompressed int64 // total bytes read out of the decompressor (default 1 GiB)
	MaxEntry        int64 // bytes of one desc file (default 1 MiB)
	MaxPackages     int   // entries (default 200,000)
}

// Defaults: Arch's extra.db is ~15,000 packages and ~25 MB uncompressed; extra.files,
// whose file lists count towards MaxUncompressed, is a few hundred MB. The largest real
// desc is a few KB.
const (
	DefaultMaxUncompressed = 1 << 30
	DefaultMaxEntry        = 1 << 20
	DefaultMaxPackages     = 200_000
)

func (l Limits) withDefaults() Limits {
	if l.MaxUncompressed <= 0 {
		l.MaxUncompressed = DefaultMaxUncompressed
	}
	if l.MaxEntry <= 0 {
		l.MaxEntry = DefaultMaxEntry
	}
	if l.MaxPackages <= 0 {
		l.MaxPackages = DefaultMaxPackages
	}
	return l
}

// ErrLimit is wrapped by every error that reports a database beyond its Limits (or beyond
// the decompressor's memory cap).
var ErrLimit = errors.New("limit exceeded")

// Read opens path and parses it; the compression (gzip, zstd, xz, bzip2, or none: a plain
// tar) is detected by magic bytes, not by the file name. Errors name path.
func Read(path string, l Limits) ([]Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // "open PATH: …", and errors.Is(err, fs.ErrNotExist) works
	}
	defer f.Close()
	return Parse(f, path, l)
}

// Parse reads a database from r, detecting its compression like Read; name is used in
// error messages (e.g. the file path). Errors look like
//
//	core.db: entry "foo-1.0-1/desc": %CSIZE% "x" is not a number
func Parse(r io.Reader, name string, l Limits) ([]Package, error) {
	l = l.withDefaults()
	d, err := newDecompressor(bufio.NewReaderSize(r, 64<<10), l.MaxUncompressed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer d.close()
	pkgs, err := readTar(d, name, l)
	if err != nil {
		return nil, d.explain(err, name)
	}
	return pkgs, nil
}

// Walk reads a database from r like Parse but hands each package to fn as it is parsed
// instead of collecting them: a caller that keeps a few fields of each (the sync's file
// manifest) never holds the whole database in memory. An error from fn stops the walk and
// is returned as it is.
func Walk(r io.Reader, name string, l Limits, fn func(*Package) error) error {
	l = l.withDefaults()
	d, err := newDecompressor(bufio.NewReaderSize(r, 64<<10), l.MaxUncompressed)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer d.close()
	var fnErr error
	err = walkTar(d, name, l, func(p *Package) error {
		fnErr = fn(p)
		return fnErr
	})
	if fnErr != nil && err == fnErr {
		return fnErr
	}
	if err != nil {
		return d.explain(err, name)
	}
	return nil
}

// readTar collects every package of the tar.
func readTar(d *decompressor, name string, l Limits) ([]Package, error) {
	var pkgs pkgList
	if err := walkTar(d, name, l, func(p *Package) error { pkgs.add(*p); return nil }); err != nil {
		return nil, err
	}
	return pkgs.all(), nil
}

// walkTar streams the tar and parses each NAME-VER-REL/desc member; other members (the
// directories, files in .files databases, anything else) are skipped.
func walkTar(d *decompressor, name string, l Limits, fn func(*Package) error) error {
	tr := newTarReader(d)
	var (
		buf   []byte // reused for every desc
		count int
	)
	for {
		typ, size, err := tr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: read tar (after %d packages): %w", name, count, err)
		}
		if typ != '0' || !isDesc(tr.name) {
			continue
		}
		if count >= l.MaxPackages {
			return fmt.Errorf("%s: more than %d packages (Limits.MaxPackages): %w", name, l.MaxPackages, ErrLimit)
		}
		// Checking the declared size is the MaxEntry+1 cap: the tar reader never yields
		// more than it, so nothing oversized is allocated or read.
		if size > l.MaxEntry {
			return fmt.Errorf("%s: entry %q: %d bytes, larger than %d (Limits.MaxEntry): %w", name, tr.name, size, l.MaxEntry, ErrLimit)
		}
		buf = grow(buf, int(size))
		if err := tr.readAll(buf); err != nil {
			return fmt.Errorf("%s: entry %q: %w", name, tr.name, err)
		}
		p, err := parseDesc(buf)
		if err != nil {
			return fmt.Errorf("%s: entry %q: %w", name, tr.name, err)
		}
		if err := fn(&p); err != nil {
			return err
		}
		count++
	}
	// Read what follows the end of the archive (bsdtar pads to 10 KiB) so that the
	// decompressor reaches its end and checks its checksum: a database cut short in the
	// padding is reported, not half-trusted.
	if _, err := io.Copy(io.Discard, d); err != nil {
		return fmt.Errorf("%s: after the tar end: %w", name, err)
	}
	return nil
}

// pkgList collects packages in chunks and copies them once into a slice of the right
// size: appending to one slice would copy a growing array of 400-byte structs over and
// over (~5x the final size in garbage for extra.db).
type pkgList struct {
	chunks [][]Package
	n      int
}

const pkgChunk = 1024

func (l *pkgList) add(p Package) {
	if len(l.chunks) == 0 || len(l.chunks[len(l.chunks)-1]) == pkgChunk {
		l.chunks = append(l.chunks, make([]Package, 0, pkgChunk))
	}
	last := &l.chunks[len(l.chunks)-1]
	*last = append(*last, p)
	l.n++
}

// all returns the packages; a database with none gives an empty, non-nil slice.
func (l *pkgList) all() []Package {
	if len(l.chunks) == 1 {
		return l.chunks[0][:l.n:l.n]
	}
	out := make([]Package, 0, l.n)
	for _, c := range l.chunks {
		out = append(out, c...)
	}
	return out
}

// isDesc reports whether a member is DIR/desc with DIR one level deep.
func isDesc(name []byte) bool {
	name = bytes.TrimPrefix(name, []byte("./"))
	dir, ok := bytes.CutSuffix(name, []byte("/desc"))
	return ok && len(dir) > 0 && bytes.IndexByte(dir, '/') < 0
}

// noEOF turns the EOF of a short read into ErrUnexpectedEOF: inside an entry it means the
// database was cut.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
