package auth

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
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

// fail spends one failure of key's bucket at now, as a done ticket does.
func (bs *buckets) fail(key string, now time.Time) {
	bs.get(key, now).lim.ReserveN(now, 1)
}

func TestBucketsBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	bs := newBuckets(Rate{Burst: 2, Every: 10 * time.Second}, 4, 0)
	// Drain "victim": it must outlive idle keys under pressure.
	bs.fail("victim", now)
	bs.fail("victim", now)
	for i := range 1000 {
		now = now.Add(time.Millisecond)
		if w := bs.get(fmt.Sprint("junk", i), now).wait(now); w != 0 {
			t.Fatalf("a new key must wait %s", w)
		}
		bs.fail(fmt.Sprint("junk", i), now)
		if n := bs.len(); n > 4 {
			t.Fatalf("%d keys tracked, bound is 4", n)
		}
	}
	// Only 1 s passed: the victim is still drained, so the fresher junk went instead.
	if wait := bs.get("victim", now).wait(now); wait != 9*time.Second {
		t.Errorf("victim: wait %s; want 9s (its bucket must survive the junk)", wait)
	}
}

func TestBucketsEvictIdleFirst(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	bs := newBuckets(Rate{Burst: 1, Every: time.Second}, 3, time.Hour)
	bs.get("idle", now.Add(-2*time.Hour))
	bs.fail("failed-long-ago", now.Add(-2*time.Hour))
	bs.get("failed-long-ago", now).lastFail = now.Add(-2 * time.Hour)
	bs.fail("refilled-but-failed-recently", now.Add(-time.Minute))
	bs.get("refilled-but-failed-recently", now).lastFail = now.Add(-time.Minute)
	// At now, every bucket is full; only the first two are forgettable: the third is
	// full, but its address failed within the hour and must keep that mark.
	bs.get("new", now)
	for _, k := range []string{"idle", "failed-long-ago"} {
		if _, ok := bs.items[k]; ok {
			t.Errorf("%s was kept while the map was at its bound", k)
		}
	}
	for _, k := range []string{"refilled-but-failed-recently", "new"} {
		if _, ok := bs.items[k]; !ok {
			t.Errorf("%s was evicted though forgettable buckets could go", k)
		}
	}
	// A bucket with an attempt in flight is never evicted.
	bs = newBuckets(Rate{Burst: 1, Every: time.Second}, 2, 0)
	bs.get("busy", now).inflight = 1
	for i := range 10 {
		bs.get(fmt.Sprint("k", i), now)
	}
	if _, ok := bs.items["busy"]; !ok {
		t.Error("a bucket with an attempt in flight was evicted")
	}
}

// TestThrottleInFlight: parallel attempts cannot all squeeze through a budget with one
// failure left: an admitted attempt holds its place until done.
func TestThrottleInFlight(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := newThrottle(Limits{PerClient: Rate{Burst: 2, Every: time.Minute}}.withDefaults())
	a, rl := th.admit("192.0.2.1", "admin", "", now)
	if rl != nil {
		t.Fatal(rl)
	}
	if _, rl := th.admit("192.0.2.1", "admin", "", now); rl != nil {
		t.Fatal(rl)
	}
	if _, rl := th.admit("192.0.2.1", "admin", "", now); rl == nil || rl.Account {
		t.Fatalf("third attempt in flight: %v, want the client's limit", rl)
	}
	a.done(false, now) // a success gives its place back
	a.done(true, now)  // and only the first done counts
	if _, rl := th.admit("192.0.2.1", "admin", "", now); rl != nil {
		t.Fatalf("after a success: %v", rl)
	}
}

func TestClientKey(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"},
		{"2001:db8:1:2::6", "2001:db8:1:2::6"},
		{"fe80::1%eth0", "fe80::1"},
		{"::1", "::1"},
	} {
		if got := clientKey(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("clientKey(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
	if got := clientKey(netip.Addr{}); got == "" {
		t.Error("the zero address has an empty key")
	}
}

// TestDeviceToken: a token is good for its account and hash only, in one spelling.
func TestDeviceToken(t *testing.T) {
	p := Params{Memory: 64, Time: 1, Threads: 1}
	h1, _ := HashPassword(p, "first password")
	h2, _ := HashPassword(p, "second password")
	u := User{Name: "admin", Hash: h1}
	tok, err := newDeviceToken(u)
	if err != nil {
		t.Fatal(err)
	}
	n, ok := deviceNonce(u, tok)
	if !ok || n == "" {
		t.Fatalf("own token refused")
	}
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	for name, bad := range map[string]struct {
		u   User
		tok string
	}{
		"other account":    {User{Name: "bob", Hash: h1}, tok},
		"password changed": {User{Name: "admin", Hash: h2}, tok},
		"no hash":          {User{Name: "admin"}, tok},
		"empty":            {u, ""},
		"no mac":           {u, strings.Split(tok, ".")[0]},
		"mac changed":      {u, flip(tok, len(tok)-3)},
		"nonce changed":    {u, flip(tok, 3)},
		"long":             {u, tok + strings.Repeat("A", 64)},
	} {
		if _, ok := deviceNonce(bad.u, bad.tok); ok {
			t.Errorf("%s: accepted", name)
		}
	}
	// Two spellings of one nonce are one device (one budget).
	first, mac, _ := strings.Cut(tok, ".")
	last := first[len(first)-1]
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		if c == last {
			continue
		}
		if n2, ok := deviceNonce(u, first[:len(first)-1]+string(c)+"."+mac); ok && n2 != n {
			t.Errorf("variant %c of the nonce is a device of its own", c)
		}
	}
}

// TestREADMEStatesTheLimits: the README's table of login limits and its guess cap are the
// defaults in force, read from the README itself so that neither can change alone.
func TestREADMEStatesTheLimits(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	l := Limits{}.withDefaults()
	row := regexp.MustCompile(`(?m)^\| (one [^|]+) \| (\d+) at once, then 1 per (\d+) minutes[^|]* \| (\d+) \|$`)
	rows := row.FindAllStringSubmatch(readme, -1)
	want := []struct {
		who string
		r   Rate
	}{
		{"one address", l.PerClient},
		{"one account, from any address", l.PerAccount},
		{"one account, once that is spent", l.Fresh},
		{"one account, from a browser", l.PerDevice},
	}
	if len(rows) != len(want) {
		t.Fatalf("README has %d rows of login limits, want %d:\n%q", len(rows), len(want), rows)
	}
	for i, w := range want {
		m := rows[i]
		burst, _ := strconv.Atoi(m[2])
		mins, _ := strconv.Atoi(m[3])
		hour, _ := strconv.Atoi(m[4])
		if !strings.HasPrefix(m[1], w.who) || burst != w.r.Burst || time.Duration(mins)*time.Minute != w.r.Every || hour != w.r.perHour() {
			t.Errorf("README row %q: %d at once, 1 per %d min, %d an hour; the code: %q %d at once, 1 per %s, %d an hour",
				m[1], burst, mins, hour, w.who, w.r.Burst, w.r.Every, w.r.perHour())
		}
	}
	if !strings.Contains(readme, "no failure in the last hour") || l.Clean != time.Hour {
		t.Errorf("README says a clean address had no failure in the last hour; Clean is %s", l.Clean)
	}
	m := regexp.MustCompile(`at most \*\*(\d+) guesses\s+an hour\*\* \((\d+) an hour after the first\)`).FindStringSubmatch(readme)
	if m == nil {
		t.Fatal("README does not state the guess cap as **N guesses an hour** (M an hour after the first)")
	}
	first, _ := strconv.Atoi(m[1])
	later, _ := strconv.Atoi(m[2])
	if first != l.GuessesPerHour() {
		t.Errorf("README: %d guesses an hour; GuessesPerHour: %d", first, l.GuessesPerHour())
	}
	if refill := int(time.Hour/l.PerAccount.Every + time.Hour/l.Fresh.Every); later != refill {
		t.Errorf("README: %d an hour after the first; the account's budgets refill %d an hour", later, refill)
	}
	if first > 60 {
		t.Errorf("%d guesses an hour at one account: the issue's bound is 60", first)
	}
}
