package web

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
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
	ts := syscall.Timespec{Nsec: int64(time.Millisecond)}
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
// memory keep the download raw however many there are (a busy machine, not the disk);
// a download whose first call waits for the disk sends the rest the ordinary way at once.
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

	// A cold file, without readahead (FADV_RANDOM): the first call reads from the disk and
	// its thread sleeps until the pages are in.
	for i := 0; i < 3; i++ {
		f, data := evictedFile(t, size, 0)
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
			t.Fatal(err)
		}
		disk, b := send(f, size)
		if !bytes.Equal(b, data) {
			t.Fatalf("a cold file did not arrive whole")
		}
		if !disk.slow || disk.stalls != 1 {
			t.Errorf("cold download %d: %+v; want the ordinary way after its first call (raw calls would hold the daemon while they wait for the disk)", i, disk)
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
