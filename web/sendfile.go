package web

import (
	"io"
	"net"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawSendLimit is how long one sendfile(2) may run as a raw system call before the rest of
// the download goes through Go's ordinary one (see sendFile). A variable for tests.
var rawSendLimit = time.Millisecond

// sendFile sends n bytes of the file descriptor in, from *off on, to the socket out with sendfile(2), moves
// *off on by what went and returns that. It waits for the socket through the runtime's
// poller, so the write deadline (send_timeout) applies.
//
// The calls are raw (syscall.RawSyscall6). Go's ordinary path lets its monitor thread take
// the processor away from a call that lasts more than 20 µs — a 256 KiB sendfile does —
// and every such handoff wakes a thread: on 16 connections that cost 215 ms of CPU per GiB
// against 165 ms raw (nginx: about the same 165; measured with make bench's method). A raw
// call cannot be handed off, so it must not block for long: when one takes more than
// rawSendLimit and the next call would read from the disk too (see onDisk: the pages
// come from an SD card), disk.slow is set and this and every later call of the download
// use the ordinary path, which lets the rest of the daemon run meanwhile.
//
// A slow call whose next range is in memory was slow for another reason (the machine was
// busy, a virtual CPU was descheduled) and the download stays raw. On the 2-core VM that
// make bench runs on, 1 ms stalls are common; when each one sent its download the
// ordinary way for good, the monitor thread, woken at every handoff, took a tenth of
// amwi's CPU at 16 connections (perf record). The probe can be wrong (a large readahead
// window, read_ahead_kb = 8192 here, may have the far end in memory while the pages
// before it are still read), so after maxStalls slow calls the download goes the
// ordinary way whatever it says.
//
// Each call asks for at most sendfileMax bytes, and every part that went is reported to
// progress when there is one (see sendProgress).
func sendFile(out syscall.Conn, in int, off *int64, n int64, disk *diskState, progress *sendProgress) (int64, error) {
	orc, err := out.SyscallConn()
	if err != nil {
		return 0, err
	}
	infd := uintptr(in)
	var sent int64
	var serr error
	werr := orc.Write(func(outfd uintptr) bool {
		for sent < n {
			var r uintptr
			var e syscall.Errno
			ask := uintptr(min(n-sent, sendfileMax))
			if disk.slow {
				r, _, e = syscall.Syscall6(syscall.SYS_SENDFILE, outfd, infd, uintptr(unsafe.Pointer(off)), ask, 0, 0)
			} else {
				t := time.Now()
				r, _, e = syscall.RawSyscall6(syscall.SYS_SENDFILE, outfd, infd, uintptr(unsafe.Pointer(off)), ask, 0, 0)
				if time.Since(t) > rawSendLimit {
					left := n - sent
					if e == 0 {
						left -= int64(r)
					}
					disk.stalls++
					disk.slow = disk.stalls >= maxStalls || onDisk(in, *off, left)
				}
			}
			switch {
			case e == syscall.EAGAIN:
				return false // the socket is full: wait until it takes more
			case e == syscall.EINTR:
				continue
			case e != 0:
				serr = e
				return true
			case r == 0:
				serr = io.ErrUnexpectedEOF // the file is shorter than announced
				return true
			}
			sent += int64(r)
			if progress != nil {
				progress.sent(int64(r))
			}
		}
		return true
	})
	if serr == nil {
		serr = werr
	}
	return sent, serr
}

// diskState is what a download's sendfile calls have learnt of its file (see sendFile).
type diskState struct {
	slow   bool // the rest goes through Go's ordinary system call path
	stalls int  // raw calls that took longer than rawSendLimit
}

// maxStalls is how many raw calls of one download may take longer than rawSendLimit
// before the rest goes the ordinary way, in memory or not: at most four reads of
// sendfileMax from an SD card (about 50 ms in all) hold a processor, while the odd stall
// of a busy machine leaves a download of any size raw.
const maxStalls = 4

// sendfileMax is the most one sendfile(2) call is asked to send. It bounds how long a raw
// call holds its processor: the first call of a download that finds its pages on an SD
// card (20 MB/s) reads at most this much before the download goes the ordinary way,
// about 12 ms. At nginx's 2 MiB (sendfile_max_chunk), with one processor and four cold
// 256 MiB downloads, a small request's p99 went from 0.7 to 1.7 ms and its worst case
// from 3 to 11 ms on this machine's fast disk; the CPU per GiB at 16 connections showed
// no difference outside the noise.
const sendfileMax = 256 << 10

// sendProgress moves a download's write deadline as the download goes: nginx's
// send_timeout, with a floor on the rate. The deadline is set timeout ahead, then again
// each time deadlineChunk (256 KiB) more bytes have gone and at least timeout/8 has passed
// since it was last set. So a client that takes in less than that within a timeout is cut
// (a stalled one after 7/8 to 8/8 of it), while one that keeps reading, however slowly
// above that floor, is not.
//
// Why here and not in 256 KiB deadline chunks around the send (deadlineWriter does that
// for other writers): every chunk came back up through the writers and into a new
// sendfile call, and with 16 connections on loopback that cost a fifth more CPU per GiB
// than one send of the whole file (wrk, 256 MiB file, medians of 3 alternating runs:
// 18.7 CPU ticks per GB in chunks, 15.2 whole, nginx 14.5). Moving the deadline is one
// comparison per sendfile call and one SetWriteDeadline every timeout/8 at most.
type sendProgress struct {
	c       net.Conn
	timeout time.Duration
	// counted gets every part that went (the traffic count, which the live view reads
	// as the download goes); nil when nothing counts.
	counted func(int64)
	at      time.Time // when the deadline was last set
	since   int64     // bytes sent since then
}

// start sets the first deadline.
func (p *sendProgress) start() error {
	p.at, p.since = time.Now(), 0
	return p.c.SetWriteDeadline(p.at.Add(p.timeout))
}

// sent records n bytes gone and moves the deadline when it is due.
func (p *sendProgress) sent(n int64) {
	if p.counted != nil {
		p.counted(n)
	}
	p.since += n
	if p.since < deadlineChunk {
		return
	}
	if now := time.Now(); now.Sub(p.at) >= p.timeout/8 {
		p.c.SetWriteDeadline(now.Add(p.timeout))
		p.at, p.since = now, 0
	}
}

// onDisk reports whether the next sendfile call, of left more bytes from off, would read
// from the disk: whether the last page of the range it asks for (at most sendfileMax) is
// not in memory. The last, not the first: the kernel's readahead keeps the pages just
// past a sequential read in memory or on their way, so the first page is nearly always
// there even while every call waits for an SD card, and looking there left cold
// downloads raw and the daemon held by them (found by an attack session: four raw calls
// of up to 9 ms on a 128 MiB cold file, none switched). Past the readahead window the
// page of a file being read from disk is not in memory; in a file held in memory it is.
func onDisk(fd int, off, left int64) bool {
	if left <= 0 {
		return false
	}
	return !inMemory(fd, off+min(left, sendfileMax)-1)
}

// inMemory reports whether the page of file descriptor fd at off is in the page cache: a
// one-byte preadv2(2) with RWF_NOWAIT reads it only then, and answers EAGAIN rather than
// wait for the disk. It does start reading a page that is on disk (the kernel's readahead
// for it), which is where the download goes next anyway; a disk fast enough to have it in
// memory by the time the kernel looks gets a true, rightly. A file system that cannot
// tell (EOPNOTSUPP) counts as not in memory, and so does any other error.
func inMemory(fd int, off int64) bool {
	var b [1]byte
	_, err := unix.Preadv2(fd, [][]byte{b[:]}, off, unix.RWF_NOWAIT)
	return err == nil
}
