package web

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tcpPair is a connected pair of TCP sockets on loopback.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return s.(*net.TCPConn), c.(*net.TCPConn)
}

// randomFile writes size random bytes to a file in t.TempDir and returns it, open for
// reading, and its bytes.
func randomFile(t *testing.T, size int) (*os.File, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, data
}

// TestSendFile: the raw loop and the ordinary one send exactly the range asked for, move
// the offset on, leave the file's own offset alone, and say when the file is short.
func TestSendFile(t *testing.T) {
	f, data := randomFile(t, 5<<20+123)
	for _, slow := range []bool{false, true} {
		out, in := tcpPair(t)
		got := make(chan []byte)
		go func() { b, _ := io.ReadAll(in); got <- b }()
		off := int64(1000)
		n, err := sendFile(out, int(f.Fd()), &off, 4<<20, &diskState{slow: slow}, nil)
		out.Close()
		b := <-got
		if err != nil || n != 4<<20 || off != 1000+4<<20 || !bytes.Equal(b, data[1000:1000+4<<20]) {
			t.Errorf("slow=%v: sent %d (%v), offset %d, %d bytes arrived", slow, n, err, off, len(b))
		}
		if pos, _ := f.Seek(0, io.SeekCurrent); pos != 0 {
			t.Errorf("slow=%v: the file's own offset moved to %d", slow, pos)
		}
	}
	// Asked for more than the file holds (it shrank after the Stat).
	out, in := tcpPair(t)
	go io.Copy(io.Discard, in)
	off := int64(len(data) - 10)
	if n, err := sendFile(out, int(f.Fd()), &off, 100, &diskState{}, nil); n != 10 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("past the end: sent %d, %v; want 10 and io.ErrUnexpectedEOF", n, err)
	}
}

// TestSendFileDeadline: a client that reads nothing is cut by the write deadline, with
// what went before counted.
func TestSendFileDeadline(t *testing.T) {
	data := make([]byte, 32<<20)
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, data, 0o644)
	f, _ := os.Open(p)
	defer f.Close()
	out, in := tcpPair(t)
	in.SetReadBuffer(4 << 10)
	out.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	var off int64
	n, err := sendFile(out, int(f.Fd()), &off, int64(len(data)), &diskState{}, nil)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= int64(len(data)) || off != n {
		t.Errorf("stalled reader: sent %d of %d, offset %d, %v; want cut by the deadline", n, len(data), off, err)
	}
}

// TestSendFileBeyond4GiB: offsets past 2 and 4 GiB reach the right bytes. On 32-bit
// ARM plain SYS_SENDFILE takes a 32-bit offset and fails or wraps there; e2e
// TestARMSendFile runs this test there under qemu.
func TestSendFileBeyond4GiB(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "huge"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	marks := map[int64]string{0: "first bytes, 0 ", 3 << 30: "at three GiB...", 4<<30 + 4096: "past four GiB.."}
	for off, m := range marks {
		if _, err := f.WriteAt([]byte(m), off); err != nil {
			t.Fatal(err)
		}
	}
	for off, want := range marks {
		for _, slow := range []bool{false, true} {
			out, in := tcpPair(t)
			pos := off
			n, err := sendFile(out, int(f.Fd()), &pos, int64(len(want)), &diskState{slow: slow}, nil)
			out.Close()
			got, _ := io.ReadAll(in)
			if err != nil || n != int64(len(want)) || pos != off+n || string(got) != want {
				t.Errorf("sendFile at %d (ordinary way %v): %d bytes, offset now %d, %v, %q; want %q", off, slow, n, pos, err, got, want)
			}
		}
	}
}

// evictedFile writes size random bytes to a file on disk (/var/tmp: t.TempDir may be a
// tmpfs, whose pages never leave memory), syncs it and asks the kernel to drop its pages
// from the page cache from evictFrom on. It returns the file, open, and its bytes.
func evictedFile(t *testing.T, size int, evictFrom int64) (*os.File, []byte) {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "amwi-inmemory-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := make([]byte, size)
	rand.Read(data)
	f, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), evictFrom, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	return f, data
}

// resident is the oracle for inMemory: mincore(2) over a mapping of the page at off.
func resident(t *testing.T, f *os.File, off int64) bool {
	t.Helper()
	page := int64(os.Getpagesize())
	m, err := unix.Mmap(int(f.Fd()), off/page*page, int(page), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	var vec [1]byte
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal("mincore:", e)
	}
	return vec[0]&1 == 1
}

// TestInMemory: a page in the page cache is in memory; a page on disk is not, unless the
// read that RWF_NOWAIT starts for it (it does start one) is done by the time it looks, and
// then the page really is in memory. Where the file system cannot answer RWF_NOWAIT,
// every page counts as not in memory (the safe side: such downloads go the ordinary way
// after a slow call, as before).
func TestInMemory(t *testing.T) {
	const size, step = 8 << 20, 256 << 10
	f, _ := evictedFile(t, size, size/2)
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil { // no readahead
		t.Fatal(err)
	}
	var b [1]byte
	_, probe := unix.Preadv2(int(f.Fd()), [][]byte{b[:]}, 0, unix.RWF_NOWAIT)
	supported := probe == nil || errors.Is(probe, unix.EAGAIN) // not EOPNOTSUPP (tmpfs) or ENOSYS (qemu-user)
	onDisk := 0
	for off := int64(0); off < size; off += step {
		before := resident(t, f, off)
		got := inMemory(int(f.Fd()), off)
		switch {
		case !supported && got:
			t.Errorf("inMemory at %d = true where RWF_NOWAIT is not supported", off)
		case supported && before && !got:
			t.Errorf("inMemory at %d = false for a page mincore finds in memory", off)
		case got && !resident(t, f, off):
			t.Errorf("inMemory at %d = true, yet mincore finds the page on disk", off)
		case !got && !before:
			onDisk++
		}
	}
	if supported && onDisk == 0 {
		t.Fatalf("no page of the evicted half was reported on disk (posix_fadvise evicted nothing, or the disk answered every read at once), so that answer was never checked")
	}
}

// TestVoluntarySwitches: the count moves when the thread sleeps in a system call, as a
// sendfile waiting for the disk does. (That it stays put while the thread only runs is
// TestSendFileStaysRawInMemory's first case.)
func TestVoluntarySwitches(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := voluntarySwitches()
	if before < 0 {
		t.Fatal("getrusage(RUSAGE_THREAD) failed")
	}
	ts := syscall.NsecToTimespec(int64(time.Millisecond))
	for { // the runtime's preemption signal may cut the sleep short
		_, _, e := syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), uintptr(unsafe.Pointer(&ts)), 0)
		if e == 0 {
			break
		}
		if e != syscall.EINTR {
			t.Fatal("nanosleep:", e)
		}
	}
	if after := voluntarySwitches(); after <= before {
		t.Errorf("voluntary switches %d after a 1 ms sleep, %d before; want more", after, before)
	}
}

// TestSendFileStaysRawInMemory: raw sendfile calls that take long while the file is in
// memory keep the download raw however many there are (a busy machine, not the disk); a
// download whose first range is on disk at either end goes the ordinary way from the
// start, and one that reaches pages on disk later from its first call that sleeps.
func TestSendFileStaysRawInMemory(t *testing.T) {
	defer func(l time.Duration) { rawSendLimit = l }(rawSendLimit)
	rawSendLimit = -1 // every raw call counts as slow
	// A run of raw calls that the runtime stops (the GC's stack scan, or 10 ms without a
	// pause) sleeps too, and its download goes the ordinary way: rare in use and the safe
	// side, but here it must not happen: no GC, and a small buffer that fills often, so
	// each run is short.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	const size = 8 << 20
	send := func(f *os.File, n int64) (diskState, []byte) {
		out, in := tcpPair(t)
		out.SetWriteBuffer(64 << 10)
		got := make(chan []byte)
		go func() {
			b := bytes.NewBuffer(make([]byte, 0, n))
			b.ReadFrom(in)
			got <- b.Bytes()
		}()
		var disk diskState
		var off int64
		runtime.Gosched() // a fresh time slice: the file's setup may have used 10 ms of this one
		_, err := sendFile(out, int(f.Fd()), &off, n, &disk, nil)
		out.Close()
		if err != nil {
			t.Fatal(err)
		}
		return disk, <-got
	}

	f, data := evictedFile(t, size, size) // all in memory
	if disk, b := send(f, size); disk.slow || disk.stalls < size/sendfileMax || !bytes.Equal(b, data) {
		t.Errorf("slow calls over pages in memory, the whole file: %+v, %d bytes, right=%v; want every call counted slow and the download raw to the end", disk, len(b), bytes.Equal(b, data))
	}

	// A cold file: the first call's range is on disk (inMemory), so no call is raw.
	f, data = evictedFile(t, size, 0)
	if disk, b := send(f, size); !disk.slow || disk.stalls != 0 || !bytes.Equal(b, data) {
		t.Errorf("cold download: %+v, right=%v; want the ordinary way from its first call (a raw one would hold the daemon while it waits for the disk)", disk, bytes.Equal(b, data))
	}

	// Only the tail of the first call's range in memory (an earlier Range request brought
	// it in), its head on disk: still no raw call.
	//
	// This case and the next have up to three tries (ordinary): about one run in thirty
	// (on the parent commit too), the page the probe asks about is in memory by the time
	// it looks although mincore said it was not just before. The probe starts a read of
	// that page (RWF_NOWAIT does), and this VM's disk can finish it before the probe
	// returns. A probe that is not made fails every try.
	ordinary := func(what string, try func() diskState) {
		t.Helper()
		for i := 1; ; i++ {
			disk := try()
			if disk.slow && disk.stalls == 0 {
				return
			}
			if i == 3 {
				t.Errorf("%s: %+v after %d tries; want the ordinary way from its first call", what, disk, i)
				return
			}
			t.Logf("%s, try %d: the probed page came into memory during its probe: %+v", what, i, disk)
		}
	}
	ordinary("download with the head of its first range on disk", func() diskState {
		f, data := evictedFile(t, size, 0)
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
			t.Fatal(err)
		}
		if _, err := f.ReadAt(make([]byte, 4096), sendfileMax-4096); err != nil {
			t.Fatal(err)
		}
		if !resident(t, f, sendfileMax-1) || resident(t, f, 0) {
			t.Fatalf("the first range's tail is not in memory or its head is: the case is not the one looked at")
		}
		disk, b := send(f, size)
		if !bytes.Equal(b, data) {
			t.Fatalf("download with the head of its first range on disk: the bytes differ")
		}
		return disk
	})

	// A file the caller says was just sent whole (hotFiles): only the first page of the
	// first range is probed. Evicted whole, that still finds it on disk: no raw call.
	// With only its first page in memory, the first call is raw (the last page goes
	// unasked); it sleeps, which sends the rest the ordinary way.
	hotSend := func(f *os.File) diskState {
		out, in := tcpPair(t)
		go func() { io.Copy(io.Discard, in) }()
		disk := diskState{hot: true}
		var off int64
		runtime.Gosched()
		if _, err := sendFile(out, int(f.Fd()), &off, size, &disk, nil); err != nil {
			t.Fatal(err)
		}
		return disk
	}
	ordinary("hot file evicted whole", func() diskState {
		f, _ := evictedFile(t, size, 0)
		return hotSend(f)
	})
	f, _ = evictedFile(t, size, 0)
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if !resident(t, f, 0) || resident(t, f, sendfileMax-1) {
		t.Fatalf("the first page is not in memory or the first range's last is: the case is not the one looked at")
	}
	if disk := hotSend(f); !disk.slow || disk.stalls < 1 {
		t.Errorf("hot file with its first page in memory: %+v; want a raw first call that slept, then the ordinary way", disk)
	}

	// The first half in memory, the second on disk without readahead (FADV_RANDOM): the
	// download starts raw, and the first call into the second half sleeps until its pages
	// are in, which sends the rest the ordinary way.
	for i := 0; i < 3; i++ {
		f, data := evictedFile(t, size, size/2)
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
			t.Fatal(err)
		}
		disk, b := send(f, size)
		if !bytes.Equal(b, data) {
			t.Fatalf("a half-cold file did not arrive whole")
		}
		if !disk.slow || disk.stalls < 1 {
			t.Errorf("half-cold download %d: %+v; want raw calls first, then the ordinary way after the first call that slept", i, disk)
		}
	}
}

// TestSendProgress: with the deadline moving as the file goes (sendProgress), a client
// that keeps reading slowly gets the whole file although it takes several timeouts, the
// count moves while it reads, and a client that stops reading is cut about one timeout
// later, with what went counted.
func TestSendProgress(t *testing.T) {
	const size, timeout = 2 << 20, time.Second
	f, data := randomFile(t, size)
	pair := func() (*net.TCPConn, *net.TCPConn) {
		out, in := tcpPair(t)
		out.SetWriteBuffer(32 << 10) // little in flight: the reader's pace is the send's
		in.SetReadBuffer(16 << 10)
		return out, in
	}
	type result struct {
		n   int64
		err error
	}
	send := func(out *net.TCPConn, counted *atomic.Int64) chan result {
		pr := &sendProgress{c: out, timeout: timeout, counted: func(n int64) { counted.Add(n) }}
		if err := pr.start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan result, 1)
		go func() {
			var off int64
			n, err := sendFile(out, int(f.Fd()), &off, size, &diskState{}, pr)
			out.Close() // the reader sees the end at once, cut or not
			done <- result{n, err}
		}()
		return done
	}

	t.Run("slow", func(t *testing.T) {
		out, in := pair()
		var counted atomic.Int64
		start := time.Now()
		done := send(out, &counted)
		var got []byte
		buf := make([]byte, 64<<10)
		var midway int64 = -1
		for len(got) < size {
			n, err := io.ReadFull(in, buf[:min(len(buf), size-len(got))])
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatalf("cut after %d bytes and %s: %v", len(got), time.Since(start), err)
			}
			if midway < 0 && len(got) >= size/2 {
				midway = counted.Load()
			}
			time.Sleep(100 * time.Millisecond) // 640 KB/s: 256 KiB in 0.4 s
		}
		r := <-done
		if r.err != nil || r.n != size || !bytes.Equal(got, data) {
			t.Fatalf("sent %d, %v; %d bytes arrived, same=%v", r.n, r.err, len(got), bytes.Equal(got, data))
		}
		if took := time.Since(start); took < 2*timeout {
			t.Fatalf("the download took %s, not the several timeouts the test is about", took)
		}
		if midway <= 0 || midway >= size {
			t.Errorf("halfway through the count was %d; want it moving with the download", midway)
		}
		if c := counted.Load(); c != size {
			t.Errorf("counted %d, sent %d", c, size)
		}
	})

	t.Run("stalled", func(t *testing.T) {
		out, in := pair()
		var counted atomic.Int64
		done := send(out, &counted)
		if _, err := io.ReadFull(in, make([]byte, 300<<10)); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		select {
		case r := <-done:
			if !errors.Is(r.err, os.ErrDeadlineExceeded) || r.n >= size {
				t.Fatalf("sent %d, %v; want cut by the deadline", r.n, r.err)
			}
			if waited := time.Since(stopped); waited > 3*timeout {
				t.Errorf("cut %s after the client stopped; want about one timeout (%s)", waited, timeout)
			}
			if c := counted.Load(); c != r.n {
				t.Errorf("counted %d, sent %d", c, r.n)
			}
		case <-time.After(10 * timeout):
			t.Fatal("a client that stopped reading was never cut")
		}
	})
}

// dropPages asks the kernel to drop f's pages from off on from the page cache, from each
// CPU in turn (FADV_DONTNEED drains only its own CPU's batch of pages on their way to
// the LRU lists, and a page in another's cannot be dropped) until the one at off is gone,
// for up to 2 s (the socket may still hold the pages a little after its reader has
// them). It fails t if that page stays.
func dropPages(t *testing.T, f *os.File, off int64) {
	t.Helper()
	// The socket buffers that carried the pages hold them until they are freed, which
	// for loopback is deferred to the CPU that made them, the next time it handles
	// network input: a byte through loopback from each CPU has each free its own.
	a, b := tcpPair(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &all)
	for i := 0; i < 100 && resident(t, f, off); i++ {
		for cpu := 0; cpu < runtime.NumCPU(); cpu++ {
			if !all.IsSet(cpu) {
				continue
			}
			var one unix.CPUSet
			one.Set(cpu)
			if err := unix.SchedSetaffinity(0, &one); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Write([]byte{0}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Read(make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			if err := unix.Fadvise(int(f.Fd()), off, 0, unix.FADV_DONTNEED); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resident(t, f, off) {
		t.Fatalf("%s at %d is still in memory after FADV_DONTNEED: the case is not the one looked at", f.Name(), off)
	}
}

// TestHotFiles: a file counts as in memory for hotFor after a download sent it whole, and
// no longer once one met the disk; two files that share a slot take turns.
func TestHotFiles(t *testing.T) {
	defer func(d time.Duration) { hotFor = d }(hotFor)
	hotFor = 50 * time.Millisecond
	var h hotFiles
	a, b := fileID{dev: 2049, ino: 12}, fileID{dev: 2049, ino: 12 + 64} // the same slot
	if h.has(a) {
		t.Fatal("a file never sent is hot")
	}
	h.sent(a, true)
	other := fileID{dev: 2050, ino: a.ino} // the same inode number on another file system
	if !h.has(a) || h.has(b) || h.has(other) {
		t.Errorf("after a whole download of a: a hot %v, b hot %v, a's number on another device hot %v; want a only", h.has(a), h.has(b), h.has(other))
	}
	h.sent(b, false) // b met the disk: a keeps its slot
	if !h.has(a) {
		t.Error("a download of another file that met the disk forgot a")
	}
	h.sent(b, true)
	if h.has(a) || !h.has(b) {
		t.Errorf("b sent whole into a's slot: a hot %v, b hot %v; want b only", h.has(a), h.has(b))
	}
	h.sent(b, false)
	if h.has(b) {
		t.Error("b met the disk and is still hot")
	}
	h.sent(a, true)
	time.Sleep(2 * hotFor)
	if h.has(a) {
		t.Errorf("a still hot %v after it was sent", 2*hotFor)
	}
	var none *hotFiles
	none.sent(a, true)
	if none.has(a) {
		t.Error("a nil hotFiles remembers")
	}
}

// TestMirrorRemembersHotFiles: through the front loop, a file sent whole is remembered,
// a Range of one is not, nor a file past hotMax; the next whole download of a remembered
// file probes its first page only (it stays raw on a file whose other pages were evicted,
// which the last page's probe would have sent the ordinary way), a Range of it probes
// both ends as ever, a remembered file evicted whole goes the ordinary way and is
// forgotten, and so is one whose raw call was slow.
func TestMirrorRemembersHotFiles(t *testing.T) {
	defer func(l, d time.Duration) { rawSendLimit, hotFor = l, d }(rawSendLimit, hotFor)
	hotFor = time.Hour                                // nothing is forgotten for its age here
	dir, err := os.MkdirTemp("/var/tmp", "amwi-hot-") // on disk: t.TempDir may be a tmpfs
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := make([]byte, 150_000)
	rand.Read(data)
	for _, name := range []string{"core.db", "extra.db"} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		// Page by page: one write of it all makes large folios, and a part of a folio
		// cannot be dropped (dropPages from its second page on, below).
		for i := 0; i < len(data) && err == nil; i += pageSize {
			_, err = f.Write(data[i:min(i+pageSize, len(data))])
		}
		if err == nil {
			err = f.Sync() // dirty pages cannot be dropped
		}
		if f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "big.iso"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "big.iso"), hotMax+1); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	m := NewMirror(root, MirrorPrefix, time.Minute, quiet())
	// The client has all the bytes before the server is done with the request: each GET
	// waits for the handler to return.
	served := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.ServeHTTP(w, r)
		served <- struct{}{}
	})
	s := startServer(t, h, ServerOptions{Log: quiet()}, nil)
	done := func() {
		t.Helper()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatal("the handler did not return")
		}
	}
	get := func(name, rng string) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL+MirrorPrefix+name, nil)
		want, code := data, http.StatusOK
		if rng != "" {
			var last int
			fmt.Sscanf(rng, "bytes=0-%d", &last)
			req.Header.Set("Range", rng)
			want, code = data[:last+1], http.StatusPartialContent
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != code || !bytes.Equal(b, want) {
			t.Fatalf("GET %s %s: %d, %d bytes; want %d and the file's bytes", name, rng, resp.StatusCode, len(b), code)
		}
		done()
	}
	file := func(name string) (*os.File, fileID) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		return f, fileID{uint64(st.Dev), uint64(st.Ino)}
	}
	core, coreID := file("core.db")
	_, extraID := file("extra.db")
	_, bigID := file("big.iso")

	rawSendLimit = time.Hour // no call counts as slow
	get("extra.db", "bytes=0-99")
	get("core.db", "")
	resp, err := http.Get(s.URL + MirrorPrefix + "big.iso")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := io.Copy(io.Discard, resp.Body); n != hotMax+1 {
		t.Fatalf("big.iso: %d bytes; want %d", n, hotMax+1)
	}
	resp.Body.Close()
	done()
	if !m.files.hot.has(coreID) || m.files.hot.has(extraID) || m.files.hot.has(bigID) {
		t.Fatalf("core.db sent whole hot %v, extra.db sent in part hot %v, big.iso (past hotMax) hot %v; want core.db only",
			m.files.hot.has(coreID), m.files.hot.has(extraID), m.files.hot.has(bigID))
	}

	// A Range of a remembered file has both ends of its first range probed: with all
	// but the first page evicted, it goes the ordinary way, and the file is forgotten.
	// forgets evicts core.db from off on, fetches it (rng: "" for all of it) and reports
	// whether the mirror forgot it. Three tries: the probe starts reading the page it
	// asks about, and this VM's disk can finish that before the probe returns.
	forgets := func(off int64, rng string) bool {
		for try := 0; try < 3; try++ {
			dropPages(t, core, off)
			get("core.db", rng)
			if !m.files.hot.has(coreID) {
				return true
			}
		}
		return false
	}
	if !forgets(pageSize, "bytes=0-100000") {
		t.Error("a Range of a remembered file with its tail evicted: still remembered, so its download was raw")
	}
	get("core.db", "") // remembered again

	// All but its first page evicted while remembered: only the first page is probed,
	// and the download is raw (the last page's probe would have sent it the ordinary way,
	// forgetting it).
	dropPages(t, core, pageSize)
	if !resident(t, core, 0) {
		t.Fatal("core.db's first page left memory too: the case is not the one looked at")
	}
	get("core.db", "")
	if !m.files.hot.has(coreID) {
		t.Error("a remembered file had both ends probed: its download went the ordinary way")
	}

	// Evicted whole while remembered (memory pressure, a backup tool's FADV_DONTNEED):
	// the first page's probe finds it on disk, the download goes the ordinary way from
	// its start, not holding the daemon while it reads, and the file is forgotten.
	if !forgets(0, "") {
		t.Error("a remembered file evicted whole: still remembered, so its download was raw")
	}
	get("core.db", "") // remembered again

	// A slow raw call: the download goes the ordinary way and the file is forgotten.
	rawSendLimit = -1
	get("core.db", "")
	if m.files.hot.has(coreID) {
		t.Error("core.db still remembered after a slow raw call")
	}
}
