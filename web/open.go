package web

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// beneath opens files below a directory with one openat2(2) call. RESOLVE_BENEATH makes the
// kernel refuse what os.Root refuses (absolute symlinks, anything that climbs out of the
// directory) while os.Root walks the path itself: for core/os/x86_64/core.db that is four
// openat and four close calls and a fcntl, a fifth of a small file's serving time. Kernels
// before 5.6, and sandboxes that hide openat2, get os.Root.
type beneath struct {
	root *os.Root
	dir  *os.File // the root directory, kept open for its descriptor
	fd   int
	off  atomic.Bool // openat2 is not there: os.Root only
}

func newBeneath(root *os.Root) *beneath {
	b := &beneath{root: root, fd: -1}
	if root == nil {
		return b
	}
	if d, err := root.Open("."); err == nil {
		b.dir, b.fd = d, int(d.Fd())
	}
	return b
}

// openFlags: O_NONBLOCK because opening a FIFO for reading waits for a writer; one left
// in the mirror (by hand, or a stray tool) would hold each request for it, with its
// connection and an OS thread, for ever (nginx opens with O_NONBLOCK too). A regular
// file or a directory reads the same with it; the caller serves regular files only.
const openFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK

// Open opens name (a clean relative path) for reading.
func (b *beneath) Open(name string) (*os.File, error) {
	if b.fd >= 0 && !b.off.Load() {
		how := &unix.OpenHow{Flags: openFlags, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS}
		fd, err := unix.Openat2(b.fd, name, how)
		for err == unix.EINTR {
			fd, err = unix.Openat2(b.fd, name, how)
		}
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), name), nil
		case errors.Is(err, unix.ENOSYS):
			b.off.Store(true)
		case errors.Is(err, unix.EXDEV):
			// The path or a link in it leaves the directory.
			return nil, &fs.PathError{Op: "openat2", Path: name, Err: errEscapes}
		default:
			return nil, &fs.PathError{Op: "openat2", Path: name, Err: err}
		}
	}
	return b.root.OpenFile(name, openFlags&^unix.O_CLOEXEC, 0)
}

var errEscapes = errors.New("path escapes from parent")

// sizedFile is a file whose size is known (from the Stat the mirror did anyway): the
// Seek(0, End) and Seek(0, Start) ServeContent makes to learn it cost no system call. The
// real file offset follows only when the file is read (file).
type sizedFile struct {
	f    *os.File
	size int64
	pos  int64 // where the reader stands
	real int64 // the file's offset
}

func (s *sizedFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += s.pos
	case io.SeekEnd:
		offset += s.size
	default:
		return 0, errors.New("seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	s.pos = offset
	return offset, nil
}

// file returns the file with its offset where the reader stands.
func (s *sizedFile) file() (*os.File, error) {
	if s.pos != s.real {
		if _, err := s.f.Seek(s.pos, io.SeekStart); err != nil {
			return nil, err
		}
		s.real = s.pos
	}
	return s.f, nil
}

func (s *sizedFile) Read(p []byte) (int, error) {
	f, err := s.file()
	if err != nil {
		return 0, err
	}
	n, err := f.Read(p)
	s.pos += int64(n)
	s.real = s.pos
	return n, err
}

// sendTo sends the next n bytes of s through rf (a connection or net/http's response,
// whose ReadFrom does sendfile(2) for an *os.File) and moves the reader on by what went.
func (s *sizedFile) sendTo(rf io.ReaderFrom, n int64) (int64, error) {
	f, err := s.file()
	if err != nil {
		return 0, err
	}
	sent, err := rf.ReadFrom(&io.LimitedReader{R: f, N: n})
	s.pos += sent
	s.real = s.pos
	return sent, err
}

// asSized is a length-limited sizedFile, the way io.CopyN hands ServeContent's body on.
func asSized(src io.Reader) (*sizedFile, *io.LimitedReader, bool) {
	lr, ok := src.(*io.LimitedReader)
	if !ok {
		return nil, nil, false
	}
	s, ok := lr.R.(*sizedFile)
	return s, lr, ok
}
