package web

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
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

// TestSendFile: the raw loop and the ordinary one send exactly the range asked for, move
// the offset on, leave the file's own offset alone, and say when the file is short.
func TestSendFile(t *testing.T) {
	data := make([]byte, 5<<20+123)
	rand.Read(data)
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, data, 0o644)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, slow := range []bool{false, true} {
		out, in := tcpPair(t)
		got := make(chan []byte)
		go func() { b, _ := io.ReadAll(in); got <- b }()
		off := int64(1000)
		s := slow
		n, err := sendFile(out, int(f.Fd()), &off, 4<<20, &s)
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
	var slow bool
	if n, err := sendFile(out, int(f.Fd()), &off, 100, &slow); n != 10 || !errors.Is(err, io.ErrUnexpectedEOF) {
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
	var slow bool
	n, err := sendFile(out, int(f.Fd()), &off, int64(len(data)), &slow)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= int64(len(data)) || off != n {
		t.Errorf("stalled reader: sent %d of %d, offset %d, %v; want cut by the deadline", n, len(data), off, err)
	}
}
