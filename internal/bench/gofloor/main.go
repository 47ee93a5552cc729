// Command gofloor is the least a Go program can do to serve a file over HTTP/1.1: one
// goroutine per connection, http.ReadRequest, a fixed head, TCP_CORK and sendfile(2) of
// the whole file, keep-alive. No routing, no Range, no accounting, no security headers.
//
// It is a reference point for scripts/bench.sh, not a server: set beside nginx, it shows
// how much of amwi's distance to nginx is Go's runtime (syscalls through the scheduler,
// sysmon handing a P over during a long sendfile) rather than amwi's own code.
//
//	gofloor -listen 127.0.0.1:PORT -root DIR
//
// serves DIR/PATH for GET /PATH (plain names only).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	root := flag.String("root", ".", "directory to serve")
	flag.Parse()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(1)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "gofloor:", err)
			os.Exit(1)
		}
		go serve(c.(*net.TCPConn), *root)
	}
}

func serve(c *net.TCPConn, root string) {
	defer c.Close()
	br := bufio.NewReader(c)
	rc, _ := c.SyscallConn()
	cork := func(v int) {
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v) })
	}
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		name := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(req.URL.Path, "/")))
		if strings.Contains(req.URL.Path, "..") {
			return
		}
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
			continue
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			f.Close()
			return
		}
		cork(1)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", fi.Size())
		_, err = c.ReadFrom(f)
		cork(0)
		f.Close()
		if err != nil {
			return
		}
	}
}
