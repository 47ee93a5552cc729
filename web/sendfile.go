package web

import (
	"io"
	"math/bits"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawSendLimit is how long one sendfile(2) may run as a raw system call before the rest of
// the download goes through Go's ordinary one (see sendFile). A variable for tests.
var rawSendLimit = time.Millisecond

// sendFile sends n bytes of the file descriptor in, from *off on, to the socket out with
// sendfile(2), moves *off on by what went and returns that. It waits for the socket
// through the runtime's poller, so the write deadline (send_timeout) applies.
//
// The calls are raw (syscall.RawSyscall6). Go's ordinary path lets its monitor thread
// (sysmon) take the processor away from a call that lasts more than 20 µs — a 256 KiB
// sendfile does — and every such handoff wakes a thread: on 16 connections that cost 215
// ms of CPU per GiB against 165 ms raw (nginx: about the same 165; measured with make
// bench's method). A raw call cannot be handed off, so it must not block for long. A
// download whose first range is not in memory (see firstOnDisk, and hotFiles) goes the
// ordinary way from the start; and when a later raw call took more than rawSendLimit
// and its thread slept in it (see voluntarySwitches: it waited for the disk, the pages
// come from an SD card), disk.slow is set and every later call of the download uses the
// ordinary path, which lets the rest of the daemon run meanwhile.
//
// A slow call that did not sleep was slow for another reason (the machine was busy, a
// virtual CPU was descheduled) and the download stays raw: on the 2-core VM that make
// bench runs on, 1 ms stalls are common. Earlier rules guessed instead: one slow call,
// then four, sent a download the ordinary way for good, and long downloads here nearly
// always went that way; with sysmon woken at each of their calls, amwi made
// 1,900-3,500 context switches per GB at 1 connection against nginx's 120-580 (perf
// stat; 740-830 with this rule, and 625-690 against 640 at 16 connections).
//
// The thread is locked for a run of calls, so that the counts compared are one
// thread's; a run that the runtime stops (the GC's stack scan, or 10 ms without a
// pause) sleeps too, and if a slow call follows in the same run, that download goes the
// ordinary way: rare, and the safe side.
//
// Nothing here may use the ordinary system call path while the download is raw, not
// even for a non-blocking call: entering it wakes sysmon from its deep sleep, which then
// polls every 20 µs for a millisecond.
//
// Each call asks for at most sendfileMax bytes, and every part that went is reported to
// progress when there is one (see sendProgress).
func sendFile(out syscall.Conn, in int, off *int64, n int64, disk *diskState, progress *sendProgress) (int64, error) {
	orc, err := out.SyscallConn()
	if err != nil {
		return 0, err
	}
	infd := uintptr(in)
	switch {
	case disk.slow || n == 0:
	case disk.hot:
		disk.slow = !inMemory(in, *off)
	default:
		disk.slow = firstOnDisk(in, *off, n)
	}
	// A download that fits in one call is not counted: if its call is slow, nothing
	// tells a wait for the disk from a preemption, and what is left (a socket that took
	// only a part) goes the ordinary way, as if it had slept. That is the safe side, and
	// a system call less for every small file.
	count := n > sendfileMax
	var sent int64
	var serr error
	werr := orc.Write(func(outfd uintptr) bool {
		slept0 := int64(-1)
		if !disk.slow && count {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			slept0 = voluntarySwitches()
		}
		for sent < n {
			var r uintptr
			var e syscall.Errno
			ask := uintptr(min(n-sent, sendfileMax))
			if disk.slow {
				r, _, e = syscall.Syscall6(sysSendfile, outfd, infd, uintptr(unsafe.Pointer(off)), ask, 0, 0)
			} else {
				t := time.Now()
				r, _, e = syscall.RawSyscall6(sysSendfile, outfd, infd, uintptr(unsafe.Pointer(off)), ask, 0, 0)
				if time.Since(t) > rawSendLimit {
					disk.stalls++
					disk.slow = slept0 < 0 || voluntarySwitches() != slept0
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
	// hot: the caller knows the file was just sent whole from memory (hotFiles), and
	// only the first page of the first range is probed, not both ends.
	hot bool
}

// hotFiles remembers for a second the small files (up to one call, hotMax) that a
// download has just sent whole with raw calls only; the next whole download of one
// probes only the file's first page (firstOnDisk probes both ends). A system call costs
// 1.2 µs on its own on make bench's VM (getpid): for 150 KB at 64 connections, the last
// page's probe and the getrusage sendFile no longer reads for one call's worth were
// 5-7% of amwi's CPU per request (81.6 against 85.7 µs, say; nginx 38-42).
//
// Why the first page still: a file can be evicted within its second (memory pressure on
// a small board, a backup tool's FADV_DONTNEED, drop_caches), and a raw call that then
// reads from the disk holds its processor for as long as the disk takes, which behind
// other reads was 44 ms to over 1 s in an attack session (one processor, a 20 MB/s disk
// with other readers); with no probe at all, a hot file evicted whole did exactly that.
// Why one page is enough for a small file just read whole: the page cache evicts in the
// order pages were last used, and the file's were used from its head to its tail, so if
// its first page is still there the rest is too, unless something dropped a part of it
// (a backup tool's FADV_DONTNEED over a range; the two-ended probe has the same gap
// between its ends), and then the raw call reads at most the file's few pages.
//
// Only small files and whole downloads: a second attack session, evicting all but the
// head of 16 MiB files, or their second half under 256 KiB Ranges, saw raw calls wait
// 60-320 ms for the disk when this applied to files up to 16 MiB and to Ranges (the
// last page's probe caught the Ranges before). Past one call the probes are a trifle of
// a download's cost anyway: 3 µs against the 240 µs of CPU a 1 MiB file takes here.
//
// A small direct-mapped table: a popular file keeps its slot, two that share one take
// turns, and a file nobody fetches for a second is probed again. nil remembers nothing.
type hotFiles struct {
	mu    sync.Mutex
	slots [64]hotSlot
}

// fileID is a file as the kernel knows it: a file renamed over by a sync is another.
type fileID struct{ dev, ino uint64 }

type hotSlot struct {
	id    fileID
	until time.Time
}

// hotFor is how long a file sent whole counts as in memory. A variable for tests.
var hotFor = time.Second

// hotMax is the largest file hotFiles remembers: one sendfile call's worth (core.db,
// multilib.db, small packages and every signature).
const hotMax = sendfileMax

// slot is id's place in the table, by inode number alone: the mirror is one file system
// (dev still tells a file of another apart), and a sync's files get numbers in sequence.
func (h *hotFiles) slot(id fileID) *hotSlot {
	return &h.slots[id.ino%uint64(len(h.slots))]
}

// has reports whether id was sent whole within hotFor.
func (h *hotFiles) has(id fileID) bool {
	if h == nil {
		return false
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.slot(id)
	return s.id == id && now.Before(s.until)
}

// sent records a download of id that went whole (hot) or met the disk (!hot).
func (h *hotFiles) sent(id fileID, hot bool) {
	if h == nil {
		return
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	switch s := h.slot(id); {
	case hot:
		*s = hotSlot{id, now.Add(hotFor)}
	case s.id == id:
		*s = hotSlot{}
	}
}

// firstOnDisk reports whether the first sendfile call of n bytes from off would read from
// the disk: whether the first or the last page of its range is not in memory (inMemory).
// The slept rule cannot guard that call: a cold download, or a short Range request
// (which is nothing but a first call), would hold its processor for a whole read before
// anything could tell. Attack sessions measured it with one processor on a 20 MB/s disk,
// clients making random 256 KiB Range requests on cold files: GET /healthz waited 190 ms
// (p50) and up to 300 ms, 4-5 ms with every call ordinary; with the last page alone
// probed, p50 0.9 ms but still 3% of answers 100-300 ms late, each behind a range whose
// tail an earlier request had brought in while its head was on disk. A hole between the
// two ends can still hold it for one read; both ends cost two raw system calls a request
// (one for a file hotFiles remembers).
func firstOnDisk(fd int, off, n int64) bool {
	last := off + min(n, sendfileMax) - 1
	return !inMemory(fd, off) || (last/pageSize != off/pageSize && !inMemory(fd, last))
}

// pageSize is the page cache's granularity for firstOnDisk (4 KiB on the targets; a larger
// page only means probing the same page twice).
const pageSize = 4096

// inMemory reports whether the page of file descriptor fd at off is in the page cache: a
// one-byte preadv2(2) with RWF_NOWAIT reads it only then, and answers EAGAIN rather than
// wait for the disk (also for a page that is being read). A file system that cannot tell
// (EOPNOTSUPP: tmpfs, some FUSE and network file systems; ENOSYS: qemu-user) counts as
// not in memory, the safe side. Raw, as voluntarySwitches. It starts reading a page that
// is on disk, which is where the download goes next.
func inMemory(fd int, off int64) bool {
	var b [1]byte
	iov := unix.Iovec{Base: &b[0]}
	iov.SetLen(1)
	lo, hi := uintptr(off), uintptr(uint64(off)>>(bits.UintSize-1)>>1) // hi is 0 on 64-bit
	_, _, e := syscall.RawSyscall6(unix.SYS_PREADV2, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1, lo, hi, unix.RWF_NOWAIT)
	return e == 0
}

// voluntarySwitches is how many times the calling thread has given up its CPU to wait
// (getrusage(2) RUSAGE_THREAD, ru_nvcsw), which a system call that waits for the disk
// does, and one that is merely preempted does not (that counts in ru_nivcsw). Raw: the
// call never blocks, and the ordinary path would wake sysmon (see sendFile). -1 when the
// kernel cannot tell, which makes every slow call count as one that slept.
func voluntarySwitches() int64 {
	var ru syscall.Rusage
	if _, _, e := syscall.RawSyscall(syscall.SYS_GETRUSAGE, unix.RUSAGE_THREAD, uintptr(unsafe.Pointer(&ru)), 0); e != 0 {
		return -1
	}
	return int64(ru.Nvcsw)
}

// sendfileMax is the most one sendfile(2) call is asked to send. It bounds how long a raw
// call holds its processor: a call that finds its pages on an SD card (20 MB/s) reads at
// most this much before the download goes the ordinary way, about 12 ms on an idle card
// (more behind other reads: an attack session saw 100-500 ms for first calls on a busy
// 20 MB/s disk, which is why firstOnDisk guards those). At nginx's 2 MiB
// (sendfile_max_chunk), with one processor and four cold 256 MiB downloads, a small
// request's p99 went from 0.7 to 1.7 ms and its worst case from 3 to 11 ms on this
// machine's fast disk; the CPU per GiB at 16 connections showed no difference outside
// the noise.
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
