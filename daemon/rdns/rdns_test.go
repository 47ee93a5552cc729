package rdns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeResolver answers from a function, counting calls.
type fakeResolver struct {
	calls atomic.Int32
	fn    func(ctx context.Context, addr string) ([]string, error)
}

func (f *fakeResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	f.calls.Add(1)
	return f.fn(ctx, addr)
}

var _ Resolver = (*fakeResolver)(nil)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// settle waits until no lookup runs (the test's resolvers answer at once or are released).
func settle(t *testing.T, c *Cache) {
	t.Helper()
	for range 100000 {
		c.mu.Lock()
		n := c.inFlight
		c.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
	t.Fatal("lookups still running after 10s")
}

func TestNameTTLs(t *testing.T) {
	clk := &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	fail := atomic.Bool{}
	res := &fakeResolver{fn: func(_ context.Context, addr string) ([]string, error) {
		if fail.Load() {
			return nil, errors.New("no such host")
		}
		return []string{"laptop-" + strings.ReplaceAll(addr, ".", "-") + ".lan."}, nil
	}}
	c := &Cache{Resolver: res, Now: clk.Now, PositiveTTL: time.Hour, NegativeTTL: 5 * time.Minute}
	defer c.Close()
	a := netip.MustParseAddr("192.168.1.23")

	if got := c.Name(a); got != "" {
		t.Fatalf("first call = %q: it must not wait for the lookup", got)
	}
	settle(t, c)
	const want = "laptop-192-168-1-23.lan"
	if got := c.Name(a); got != want {
		t.Fatalf("after the lookup: %q, want %q", got, want)
	}
	// An IPv4-mapped address is the same client.
	if got := c.Name(netip.MustParseAddr("::ffff:192.168.1.23")); got != want {
		t.Errorf("mapped address: %q", got)
	}
	if n := res.calls.Load(); n != 1 {
		t.Errorf("%d lookups for one address within its TTL, want 1", n)
	}

	// Past the positive TTL the old name is still shown while it is looked up again; the
	// renewal fails, and the failure is kept for the negative TTL.
	clk.Add(time.Hour + time.Second)
	fail.Store(true)
	if got := c.Name(a); got != want {
		t.Errorf("expired, renewing: %q, want the old name", got)
	}
	settle(t, c)
	if got := c.Name(a); got != "" {
		t.Errorf("after a failed renewal: %q, want none", got)
	}
	clk.Add(4 * time.Minute)
	c.Name(a)
	settle(t, c)
	if n := res.calls.Load(); n != 2 {
		t.Errorf("%d lookups within the negative TTL, want 2", n)
	}
	clk.Add(2 * time.Minute)
	fail.Store(false)
	c.Name(a)
	settle(t, c)
	if got, n := c.Name(a), res.calls.Load(); got != want || n != 3 {
		t.Errorf("after the negative TTL: %q after %d lookups, want %q after 3", got, n, want)
	}
}

// A flood of addresses: never more than MaxEntries kept, never more than MaxInFlight
// lookups at once, and Name never waits, even with every lookup hanging.
func TestBounds(t *testing.T) {
	release := make(chan struct{})
	var running, most atomic.Int32
	res := &fakeResolver{fn: func(ctx context.Context, addr string) ([]string, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-release:
			return []string{"h" + strings.ReplaceAll(addr, ".", "-") + ".lan"}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}
	c := &Cache{Resolver: res, MaxEntries: 8, MaxInFlight: 3, Timeout: time.Minute}
	defer c.Close()
	for i := range 1000 {
		if got := c.Name(netip.AddrFrom4([4]byte{10, 0, byte(i / 250), byte(i % 250)})); got != "" {
			t.Fatalf("name %q before any lookup finished", got)
		}
	}
	c.mu.Lock()
	inFlight := c.inFlight
	c.mu.Unlock()
	if inFlight != 3 {
		t.Errorf("%d lookups started while 3 may run, want 3", inFlight)
	}
	close(release)
	settle(t, c)
	if n := res.calls.Load(); n != 3 {
		t.Errorf("%d lookups for 1000 addresses met while 3 were busy, want 3", n)
	}
	for i := range 1000 {
		c.Name(netip.AddrFrom4([4]byte{10, 1, byte(i / 250), byte(i % 250)}))
		settle(t, c)
	}
	if n := c.Len(); n > 8 {
		t.Errorf("%d addresses cached, at most 8 allowed", n)
	}
	if m := most.Load(); m > 3 {
		t.Errorf("%d lookups ran at once, at most 3 allowed", m)
	}
	// The newest is kept (the eviction drops the entry closest to expiry).
	if got := c.Name(netip.AddrFrom4([4]byte{10, 1, 3, 249})); got != "h10-1-3-249.lan" {
		t.Errorf("newest address: %q", got)
	}
}

// A resolver that never answers is cut at Timeout, and the address counts as nameless.
func TestTimeoutAndClose(t *testing.T) {
	res := &fakeResolver{fn: func(ctx context.Context, addr string) ([]string, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	c := &Cache{Resolver: res, Timeout: 20 * time.Millisecond}
	a := netip.MustParseAddr("fd00::1")
	c.Name(a)
	settle(t, c)
	if got := c.Name(a); got != "" || res.calls.Load() != 1 {
		t.Errorf("after a timeout: %q after %d lookups, want none after 1 (negative TTL)", got, res.calls.Load())
	}
	// Close cancels a hanging lookup and waits for it; no lookup starts after it.
	c2 := &Cache{Resolver: res, Timeout: time.Hour}
	c2.Name(a)
	c2.Close()
	c2.Name(netip.MustParseAddr("fd00::2"))
	if n := res.calls.Load(); n != 2 {
		t.Errorf("%d lookups, want 2 (none after Close)", n)
	}
}

// What a DNS server answers is not trusted: a name that is not a host name is not kept.
func TestHostileNames(t *testing.T) {
	for _, tt := range []struct {
		names []string
		want  string
	}{
		{[]string{"<script>alert(1)</script>.lan."}, ""},
		{[]string{strings.Repeat("a", 64) + ".lan"}, ""},
		{[]string{strings.Repeat("abcdefg.", 40) + "lan"}, ""},
		{[]string{"bad name.lan", "good.lan."}, "good.lan"},
		{[]string{"."}, ""},
		{nil, ""},
	} {
		res := &fakeResolver{fn: func(context.Context, string) ([]string, error) { return tt.names, nil }}
		c := &Cache{Resolver: res}
		a := netip.MustParseAddr("192.168.7.7")
		c.Name(a)
		settle(t, c)
		if got := c.Name(a); got != tt.want {
			t.Errorf("%q: %q, want %q", tt.names, got, tt.want)
		}
		c.Close()
	}
}

// The real net.Resolver (pure Go) against a DNS server on loopback that answers PTR
// questions from a table, as a LAN's router does.
func TestRealResolverLocalDNS(t *testing.T) {
	names := map[string]string{"23.1.168.192.in-addr.arpa.": "nas.home.lan."}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var questions atomic.Int32
	go servePTR(pc, names, &questions)
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
	c := &Cache{Resolver: res}
	defer c.Close()
	known, unknown := netip.MustParseAddr("192.168.1.23"), netip.MustParseAddr("192.168.1.99")
	c.Name(known)
	c.Name(unknown)
	settle(t, c)
	if got := c.Name(known); got != "nas.home.lan" {
		t.Errorf("PTR answered: %q, want nas.home.lan", got)
	}
	if got := c.Name(unknown); got != "" {
		t.Errorf("NXDOMAIN: %q, want none", got)
	}
	if questions.Load() == 0 {
		t.Error("the local DNS server was never asked")
	}
}

// servePTR answers DNS queries on pc: a PTR record from names, NXDOMAIN otherwise.
func servePTR(pc net.PacketConn, names map[string]string, questions *atomic.Int32) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		q := buf[:n]
		if len(q) < 12 {
			continue
		}
		questions.Add(1)
		// The question: labels up to a zero byte, then type and class.
		i, qname := 12, ""
		for i < len(q) && q[i] != 0 {
			l := int(q[i])
			if i+1+l > len(q) {
				break
			}
			qname += string(q[i+1:i+1+l]) + "."
			i += 1 + l
		}
		end := i + 5
		if end > len(q) {
			continue
		}
		qtype := binary.BigEndian.Uint16(q[i+1:])
		resp := append([]byte(nil), q[:end]...)
		resp[2] = 0x84 | q[2]&0x01 // response, authoritative, RD copied
		resp[3] = 0x80             // RA, rcode 0
		binary.BigEndian.PutUint16(resp[6:], 0)
		binary.BigEndian.PutUint16(resp[8:], 0)
		binary.BigEndian.PutUint16(resp[10:], 0)
		name, ok := names[strings.ToLower(qname)]
		switch {
		case !ok:
			resp[3] |= 3 // NXDOMAIN
		case qtype == 12:
			binary.BigEndian.PutUint16(resp[6:], 1)
			rdata := encodeName(name)
			resp = append(resp, 0xc0, 12) // the question's name
			resp = binary.BigEndian.AppendUint16(resp, 12)
			resp = binary.BigEndian.AppendUint16(resp, 1)
			resp = binary.BigEndian.AppendUint32(resp, 60)
			resp = binary.BigEndian.AppendUint16(resp, uint16(len(rdata)))
			resp = append(resp, rdata...)
		}
		pc.WriteTo(resp, from)
	}
}

func encodeName(name string) []byte {
	var b []byte
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func ExampleCache() {
	c := &Cache{Resolver: &fakeResolver{fn: func(context.Context, string) ([]string, error) { return []string{"pi.lan."}, nil }}}
	defer c.Close()
	a := netip.MustParseAddr("192.168.1.2")
	fmt.Printf("%q\n", c.Name(a)) // not known yet: the caller shows the address
	c.wg.Wait()
	fmt.Printf("%q\n", c.Name(a))
	// Output:
	// ""
	// "pi.lan"
}
