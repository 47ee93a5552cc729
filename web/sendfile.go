package web

import (
	"io"
	"syscall"
	"time"
	"unsafe"
)

// rawSendLimit is how long one sendfile(2) may run as a raw system call before the rest of
// the download goes through Go's ordinary one (see sendFile).
const rawSendLimit = time.Millisecond

// sendFile sends n bytes of the file descriptor in, from *off on, to the socket out with sendfile(2), moves
// *off on by what went and returns that. It waits for the socket through the runtime's
// poller, so the write deadline (send_timeout) applies.
//
// The calls are raw (syscall.RawSyscall6). Go's ordinary path lets its monitor thread take
// the processor away from a call that lasts more than 20 µs — a 256 KiB sendfile does —
// and every such handoff wakes a thread: on 16 connections that cost 215 ms of CPU per GiB
// against 165 ms raw (nginx: about the same 165; measured with make bench's method). A raw
// call cannot be handed off, so it must not block for long: when one takes more than
// rawSendLimit (the file's pages were not in memory and came from an SD card), *slow is
// set and this and every later call of the download use the ordinary path, which lets the
// rest of the daemon run meanwhile.
func sendFile(out syscall.Conn, in int, off *int64, n int64, slow *bool) (int64, error) {
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
			if *slow {
				r, _, e = syscall.Syscall6(syscall.SYS_SENDFILE, outfd, infd, uintptr(unsafe.Pointer(off)), uintptr(n-sent), 0, 0)
			} else {
				t := time.Now()
				r, _, e = syscall.RawSyscall6(syscall.SYS_SENDFILE, outfd, infd, uintptr(unsafe.Pointer(off)), uintptr(n-sent), 0, 0)
				*slow = time.Since(t) > rawSendLimit
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
		}
		return true
	})
	if serr == nil {
		serr = werr
	}
	return sent, serr
}
