// Package storetest damages real bbolt files the way SD cards and power cuts do, for the
// tests of the store's refusal and repair (unit and end-to-end). It finds pages through
// bbolt's public API (tx.Page), never through the store's own reader of the format, so
// that the two cannot share a mistake.
package storetest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amwi/amwi/daemon/auth"
	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/daemon/traffic"
)

// Page is one page of a database file, as bbolt describes it.
type Page struct {
	ID       int
	Type     string // "meta", "freelist", "branch", "leaf", "free"
	Count    int    // elements
	Overflow int
}

// Pages lists the pages of the (healthy) database at path and its page size.
func Pages(t testing.TB, path string) ([]Page, int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("storetest: open %s: %v", path, err)
	}
	defer db.Close()
	var out []Page
	err = db.View(func(tx *bolt.Tx) error {
		for id := 0; ; id++ {
			p, err := tx.Page(id)
			if err != nil {
				return err
			}
			if p == nil {
				return nil
			}
			out = append(out, Page{ID: p.ID, Type: p.Type, Count: p.Count, Overflow: p.OverflowCount})
			id += p.OverflowCount
		}
	})
	if err != nil {
		t.Fatalf("storetest: pages of %s: %v", path, err)
	}
	return out, db.Info().PageSize
}

// Find returns the first page of type typ with at least minCount elements.
func Find(t testing.TB, path, typ string, minCount int) (Page, int) {
	t.Helper()
	pages, ps := Pages(t, path)
	for _, p := range pages {
		if p.Type == typ && p.Count >= minCount {
			return p, ps
		}
	}
	t.Fatalf("storetest: %s has no %s page with %d elements (pages: %v)", path, typ, minCount, pages)
	return Page{}, 0
}

// BucketRoot returns the root page of the top-level bucket name (0: inline in its
// parent's page), as bbolt sees it.
func BucketRoot(t testing.TB, path, name string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("storetest: open %s: %v", path, err)
	}
	defer db.Close()
	root := -1
	db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(name)); b != nil {
			root = int(b.Root())
		}
		return nil
	})
	if root < 0 {
		t.Fatalf("storetest: %s has no bucket %q", path, name)
	}
	return root
}

// TopLevelKey returns the file offset of the name of the top-level bucket name in the
// newest transaction's top-level page, read as bbolt lays it out (see the offsets below).
func TopLevelKey(t testing.TB, path, name string) int64 {
	t.Helper()
	b, root, ps := newestRoot(t, path)
	el := elementOf(b, root*ps, name)
	if el < 0 {
		t.Fatalf("storetest: no bucket %q in the top-level page %d of %s", name, root, path)
	}
	return int64(el + int(binary.NativeEndian.Uint32(b[el+4:])))
}

// LeafElement returns the file offset of the leaf element (flags, pos, key size, value
// size) of key in the top-level bucket bucket, in the newest transaction; the bucket must
// have pages of its own (not be inline in the top-level page).
func LeafElement(t testing.TB, path, bucket, key string) int64 {
	t.Helper()
	ne := binary.NativeEndian
	b, root, ps := newestRoot(t, path)
	el := elementOf(b, root*ps, bucket)
	if el < 0 {
		t.Fatalf("storetest: no bucket %q in %s", bucket, path)
	}
	id := int(ne.Uint64(b[el+int(ne.Uint32(b[el+4:]))+len(bucket):]))
	if id == 0 {
		t.Fatalf("storetest: bucket %q of %s is inline", bucket, path)
	}
	for {
		page := b[id*ps:]
		if ne.Uint16(page[HeaderFlags:])&0x01 == 0 {
			break
		}
		// A branch page: the last child whose first key is not after key.
		child := ne.Uint64(page[Elements+BranchChild:])
		for i := 1; i < int(ne.Uint16(page[HeaderCount:])); i++ {
			e := page[Elements+i*16:]
			if string(e[ne.Uint32(e):][:ne.Uint32(e[4:])]) > key {
				break
			}
			child = ne.Uint64(e[BranchChild:])
		}
		id = int(child)
	}
	el = elementOf(b, id*ps, key)
	if el < 0 {
		t.Fatalf("storetest: no key %q in bucket %q of %s", key, bucket, path)
	}
	return int64(el)
}

// newestRoot reads the file at path and returns it with the newest transaction's root
// page and the page size.
func newestRoot(t testing.TB, path string) (b []byte, root, ps int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, ps = Pages(t, path)
	ne := binary.NativeEndian
	meta := 0
	if ne.Uint64(b[ps+MetaTxID:]) > ne.Uint64(b[MetaTxID:]) {
		meta = ps
	}
	return b, int(ne.Uint64(b[meta+MetaRoot:])), ps
}

// elementOf returns the offset in b of the leaf element of key in the page at off, or -1.
func elementOf(b []byte, off int, key string) int {
	ne := binary.NativeEndian
	page := b[off:]
	for i := 0; i < int(ne.Uint16(page[HeaderCount:])); i++ {
		el := Elements + i*16
		pos, ksize := int(ne.Uint32(page[el+4:])), int(ne.Uint32(page[el+8:]))
		if string(page[el+pos:el+pos+ksize]) == key {
			return off + el
		}
	}
	return -1
}

// WithFreelist rewrites the database at path as an older amwi left it (bbolt's
// default options): with a freelist page, listing the pages that deleting some hourly
// counters freed. It returns that page.
func WithFreelist(t testing.TB, path string) Page {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("traffic_hours"))
		if b == nil {
			return fmt.Errorf("no hourly counters to delete")
		}
		c := b.Cursor()
		var ks [][]byte
		for k, _ := c.First(); k != nil && len(ks) < 300; k, _ = c.Next() {
			ks = append(ks, append([]byte(nil), k...))
		}
		for _, k := range ks {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	fl, _ := Find(t, path, "freelist", 2)
	return fl
}

// Flip XORs the byte at off in the file with mask.
func Flip(t testing.TB, path string, off int64, mask byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("storetest: read %s at %d: %v", path, off, err)
	}
	b[0] ^= mask
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// Zero overwrites n bytes at off with zeros, as a card returning an erased block does.
func Zero(t testing.TB, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, n), off); err != nil {
		t.Fatal(err)
	}
}

// Truncate cuts the file to size bytes.
func Truncate(t testing.TB, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// Copy copies the file src to dst.
func Copy(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Offsets within a page (bbolt's layout): the header is id (8), flags (2), count (2),
// overflow (4); elements of 16 bytes follow; a branch element is pos (4), key size (4),
// child page (8); a leaf element flags (4), pos (4), key size (4), value size (4); the
// meta (on pages 0 and 1) follows the header: magic, version, page size, flags, root
// bucket (16), freelist page, page count, txid, checksum.
const (
	HeaderFlags     = 8
	HeaderCount     = 10
	Elements        = 16
	BranchChild     = 8 // within a branch element
	LeafFlags       = 0 // within a leaf element
	LeafKeyPos      = 4
	LeafValueSize   = 12
	MetaRoot        = 16 + 16
	MetaFreelist    = 16 + 32
	MetaPageCount   = 16 + 40
	MetaTxID        = 16 + 48
	FreelistEntries = 16
)

// Filled says what Fill put in a database.
type Filled struct {
	Users     []string // the first is the admin
	Passwords map[string]string
	Runs      int
	Days      int
}

// Fill writes a realistic state database into the state dir dir through the store itself:
// three accounts with real password hashes and two sessions, runs sync runs (JSON as the
// sync engine writes them, ~1 KB each), and days days of traffic with packages packages a
// day — enough for branch pages in the bigger buckets. now dates it all.
func Fill(t testing.TB, dir string, runs, days, packages int, now time.Time) Filled {
	t.Helper()
	st, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	defer st.Close()
	f := Filled{Users: []string{"alice", "bob", "carol"}, Passwords: map[string]string{}, Runs: runs, Days: days}
	a := &auth.Service{Store: st}
	for i, name := range f.Users {
		pw := name + "-password-1"
		f.Passwords[name] = pw
		var err error
		if i == 0 {
			_, err = a.Register(name, pw)
		} else {
			_, err = a.Create(name, pw, false)
		}
		if err != nil {
			t.Fatalf("storetest: %v", err)
		}
	}
	for _, name := range f.Users[:2] {
		if _, err := a.Login(netip.MustParseAddr("192.168.1.20"), name, f.Passwords[name]); err != nil {
			t.Fatalf("storetest: %v", err)
		}
	}
	for i := 0; i < runs; i++ {
		id, err := st.NextRunID()
		if err != nil {
			t.Fatal(err)
		}
		start := now.Add(-time.Duration(runs-i) * 6 * time.Hour)
		rec, _ := json.Marshal(map[string]any{
			"id": id, "trigger": "schedule", "force": false, "upstream": "rsync://mirror.example/archlinux/",
			"start": start, "end": start.Add(90 * time.Second), "result": "ok", "exit_code": 0,
			"stats":          map[string]any{"files_transferred": 42 + i, "bytes_received": 123456789},
			"paused_seconds": 0, "stderr_tail": []string{strings.Repeat("rsync said something long enough to take room ", 12)},
		})
		if err := st.PutRun(id, rec, 500); err != nil {
			t.Fatal(err)
		}
	}
	today := traffic.DayOf(now)
	for d := 0; d < days; d++ {
		if err := st.AddTraffic(DayTraffic(today-traffic.Day(days-1-d), 12, packages)); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// DayTraffic is a day's batch of traffic counts: the day, its 24 hours, clients clients
// and packages packages.
func DayTraffic(day traffic.Day, clients, packages int) traffic.Batch {
	b := traffic.Batch{Days: map[traffic.Day]traffic.Count{day: {Bytes: 1 << 30, Requests: 900}},
		Hours: map[traffic.Hour]traffic.Count{}, Clients: map[traffic.DayKey]traffic.Count{}, Packages: map[traffic.DayKey]traffic.Count{}}
	for h := 0; h < 24; h++ {
		b.Hours[traffic.Hour(int64(day)*24+int64(h))] = traffic.Count{Bytes: 1 << 25, Requests: 40}
	}
	for c := 0; c < clients; c++ {
		b.Clients[traffic.DayKey{Day: day, Key: fmt.Sprintf("192.168.1.%d", 10+c)}] = traffic.Count{Bytes: 1 << 26, Requests: 70}
	}
	for p := 0; p < packages; p++ {
		b.Packages[traffic.DayKey{Day: day, Key: fmt.Sprintf("package-%04d", p)}] = traffic.Count{Bytes: int64(1000 + p), Requests: 1}
	}
	return b
}

// SumTraffic sums kind's per-name counts over the days, as a ranking of few names sees
// them.
func SumTraffic(s *store.Store, kind traffic.Kind, from, to traffic.Day) (map[string]traffic.Count, error) {
	m := map[string]traffic.Count{}
	err := s.WalkTraffic(kind, from, to, func(name []byte, c traffic.Count) {
		m[string(name)] = m[string(name)].Add(c)
	})
	return m, err
}
