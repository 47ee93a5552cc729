package web

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkServeSmallFile is one kept-alive client fetching a 150 KB file from the front
// loop again and again, as pacman fetches a database: what a small download costs amwi in
// CPU and allocations, with the client's share in the same process.
func BenchmarkServeSmallFile(b *testing.B) {
	root := b.TempDir()
	dir := filepath.Join(root, "core", "os", "x86_64")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "core.db"), bytes.Repeat([]byte("amwi"), 37_500), 0o644); err != nil {
		b.Fatal(err)
	}
	mr, err := os.OpenRoot(root)
	if err != nil {
		b.Fatal(err)
	}
	defer mr.Close()
	h := NewHandler(Options{MirrorRoot: mr, SendTimeout: time.Minute, Log: quiet(), Version: "bench"})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := NewServer(h, ServerOptions{Log: quiet()})
	go s.Serve(l)
	defer s.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte(fmt.Sprintf("GET %score/os/x86_64/core.db HTTP/1.1\r\nHost: %s\r\nUser-Agent: pacman/7.0.0\r\nAccept: */*\r\n\r\n", MirrorPrefix, l.Addr()))
	br := bufio.NewReaderSize(c, 64<<10)
	b.SetBytes(150_000)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK || n != 150_000 {
			b.Fatalf("status %d, %d bytes, %v (Content-Length %d)", resp.StatusCode, n, err, resp.ContentLength)
		}
	}
}
