package web

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"sync/atomic"
	"time"

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
	hot  hotFiles    // the files just sent whole from memory (see sendFile)
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

// OpenSized opens name and reads its metadata. With openat2 the file stays a bare
// descriptor: an *os.File would cost a fcntl and, the descriptor being non-blocking, a
// failed epoll registration per request, a twentieth of a small file's serving time.
func (b *beneath) OpenSized(name string) (*sizedFile, fs.FileInfo, error) {
	fd, err := b.openat2(name)
	if err != nil {
		return nil, nil, err
	}
	if fd < 0 {
		f, err := b.root.OpenFile(name, openFlags&^unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		return &sizedFile{f: f, fd: -1, size: fi.Size(), name: name}, fi, nil
	}
	var st unix.Stat_t
	for err = unix.Fstat(fd, &st); err == unix.EINTR; err = unix.Fstat(fd, &st) {
	}
	if err != nil {
		unix.Close(fd)
		return nil, nil, &fs.PathError{Op: "fstat", Path: name, Err: err}
	}
	fi := &statInfo{name: path.Base(name), size: st.Size, mode: statMode(st.Mode), mtime: time.Unix(st.Mtim.Unix())}
	return &sizedFile{fd: fd, size: st.Size, name: name, id: fileID{uint64(st.Dev), uint64(st.Ino)}, hot: &b.hot}, fi, nil
}

// openat2 opens name with one openat2(2) call; -1 and no error when openat2 is not there
// or keeps losing a race with renames (OpenSized then walks with os.Root).
func (b *beneath) openat2(name string) (int, error) {
	if b.fd >= 0 && !b.off.Load() {
		how := &unix.OpenHow{Flags: openFlags, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS}
		fd, err := unix.Openat2(b.fd, name, how)
		// EAGAIN: the path took a ".." (every package link does: ../../../pool/…) while
		// something on the system renamed a file, and the kernel cannot vouch that the
		// ".." stayed beneath. A sync renames thousands: retried, then left to os.Root's
		// walk, rather than a 500 for a pacman downloading during a sync.
		for tries := 0; err == unix.EINTR || err == unix.EAGAIN && tries < 8; tries++ {
			fd, err = unix.Openat2(b.fd, name, how)
		}
		switch {
		case err == nil:
			return fd, nil
		case err == unix.EAGAIN:
			return -1, nil
		case errors.Is(err, unix.ENOSYS):
			b.off.Store(true)
		case errors.Is(err, unix.EXDEV):
			// The path or a link in it leaves the directory.
			return -1, &fs.PathError{Op: "openat2", Path: name, Err: errEscapes}
		default:
			return -1, &fs.PathError{Op: "openat2", Path: name, Err: err}
		}
	}
	return -1, nil
}

// statInfo is fs.FileInfo from an fstat(2).
type statInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.size }
func (s *statInfo) Mode() fs.FileMode  { return s.mode }
func (s *statInfo) ModTime() time.Time { return s.mtime }
func (s *statInfo) IsDir() bool        { return s.mode.IsDir() }
func (s *statInfo) Sys() any           { return nil }

// statMode is the file type of st_mode as an fs.FileMode (permissions left out: the
// mirror serves what it can open).
func statMode(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	default:
		return fs.ModeDevice
	}
}

var errEscapes = errors.New("path escapes from parent")

// sizedFile is a file whose size is known (from the Stat the mirror did anyway): the
// Seek(0, End) and Seek(0, Start) ServeContent makes to learn it cost no system call. The
// real file offset follows only when the file is read (file).
type sizedFile struct {
	fd   int      // the bare descriptor from OpenSized, -1 when f was opened instead
	f    *os.File // made from fd only when net/http must send it
	name string
	size int64
	pos  int64 // where the reader stands
	real int64 // the file's offset
	// id and hot are for sendFile's probes (hotFiles); hot is nil when f was opened
	// instead.
	id  fileID
	hot *hotFiles
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
	if s.f == nil {
		s.f = os.NewFile(uintptr(s.fd), s.name)
	}
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

// Close closes the file.
func (s *sizedFile) Close() error {
	if s.f != nil {
		return s.f.Close()
	}
	return unix.Close(s.fd)
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
