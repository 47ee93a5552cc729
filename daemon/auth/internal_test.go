package auth

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// FuzzParsePHC: the parser never panics, and what it accepts survives a round trip and
// stays within the bounds that keep VerifyPassword cheap enough to run.
func FuzzParsePHC(f *testing.F) {
	good, err := HashPassword(Params{Memory: 64, Time: 1, Threads: 1}, "fuzz password")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		good, "", "$argon2id$v=19$m=64,t=1,p=1$$", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$argon2id$v=19$m=08,t=01,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parsePHC(s)
		if err != nil {
			return
		}
		if h.check() != nil {
			t.Fatalf("parsePHC(%q) accepted out-of-bounds %+v", s, h.Params)
		}
		again, err := parsePHC(h.String())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", h.String(), err)
		}
		if again.String() != h.String() {
			t.Fatalf("round trip changed %q to %q", h.String(), again.String())
		}
		if h.Memory <= 256 && h.Time <= 2 {
			if _, err := VerifyPassword(s, "fuzz password"); err != nil {
				t.Fatalf("VerifyPassword of a parsed hash: %v", err)
			}
		}
	})
}

func TestLimitersBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiters(Rate{Burst: 2, Every: 10 * time.Second}, 4)
	// Drain "victim": it must outlive idle keys under pressure.
	l.take("victim", now)
	l.take("victim", now)
	for i := range 1000 {
		now = now.Add(time.Millisecond)
		if ok, _ := l.take(fmt.Sprint("junk", i), now); !ok {
			t.Fatalf("first attempt for a new key refused")
		}
		if n := l.len(); n > 4 {
			t.Fatalf("%d keys tracked, bound is 4", n)
		}
	}
	// Only 1 s passed: the victim is still drained, so the fresher junk went instead.
	if ok, wait := l.take("victim", now); ok || wait != 9*time.Second {
		t.Errorf("victim: ok %v, wait %s; want refused for 9s (its bucket must survive the junk)", ok, wait)
	}
}

func TestLimitersEvictIdleFirst(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiters(Rate{Burst: 1, Every: time.Second}, 3)
	l.take("idle", now.Add(-time.Hour))
	l.take("old-busy", now) // drained at 0s, full again at 1s
	l.take("busy", now)
	// At 0.5 s "idle" is full (forgettable); the others are not.
	now = now.Add(500 * time.Millisecond)
	l.take("new", now)
	if _, ok := l.items["idle"]; ok {
		t.Error("a full bucket was kept while the map was at its bound")
	}
	for _, k := range []string{"old-busy", "busy", "new"} {
		if _, ok := l.items[k]; !ok {
			t.Errorf("%s was evicted though a full bucket could go", k)
		}
	}
}

func TestClientKey(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
	} {
		if got := clientKey(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("clientKey(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
	if got := clientKey(netip.Addr{}); got == "" {
		t.Error("the zero address has an empty key")
	}
}
