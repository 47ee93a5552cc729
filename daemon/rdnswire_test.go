package daemon

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/daemon/rdns"
)

type countingResolver struct{ calls atomic.Int32 }

func (r *countingResolver) LookupAddr(context.Context, string) ([]string, error) {
	r.calls.Add(1)
	return []string{"desk.lan."}, nil
}

// traffic.reverse_dns = false asks DNS nothing and names nobody; on, names come from the
// cache once looked up.
func TestClientNameFollowsReverseDNSSetting(t *testing.T) {
	res := &countingResolver{}
	cache := &rdns.Cache{Resolver: res}
	defer cache.Close()
	off := config.Default()
	off.Traffic.ReverseDNS = false
	d := &Daemon{live: config.NewLive(off), rdns: cache}
	a := netip.MustParseAddr("192.168.1.40")
	for range 10 {
		if got := d.clientName(a); got != "" {
			t.Fatalf("off: %q", got)
		}
	}
	if n, l := res.calls.Load(), cache.Len(); n != 0 || l != 0 {
		t.Fatalf("off: %d lookups, %d cached; want none", n, l)
	}
	d.live = config.NewLive(config.Default()) // on by default
	got := d.clientName(a)
	for i := 0; got == "" && i < 10000; i++ {
		time.Sleep(time.Millisecond)
		got = d.clientName(a)
	}
	if got != "desk.lan" || res.calls.Load() != 1 {
		t.Errorf("on: %q after %d lookups, want desk.lan after 1", got, res.calls.Load())
	}
}
