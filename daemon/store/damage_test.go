package store_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/daemon/store/storetest"
	"github.com/amwi/amwi/daemon/traffic"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// The template database, filled once: 40 runs (a branch page in sync_runs), 30 days of
// 150 packages (a wide branch page in traffic_packages).
var (
	tmplOnce sync.Once
	tmplDir  string
	tmpl     storetest.Filled
)

func template(t *testing.T) string {
	t.Helper()
	tmplOnce.Do(func() {
		dir, err := os.MkdirTemp("", "amwi-store-template-")
		if err != nil {
			t.Fatal(err)
		}
		tmplDir = dir
		tmpl = storetest.Fill(t, dir, 40, 30, 150, now)
	})
	return filepath.Join(tmplDir, store.FileName)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tmplDir != "" {
		os.RemoveAll(tmplDir)
	}
	os.Exit(code)
}

// fresh copies the template into a new state dir and returns the dir and the file.
func fresh(t *testing.T) (string, string) {
	t.Helper()
	src := template(t)
	dir := filepath.Join(t.TempDir(), "state")
	os.MkdirAll(dir, 0o750)
	path := filepath.Join(dir, store.FileName)
	storetest.Copy(t, src, path)
	return dir, path
}

func metaField(t *testing.T, path string, slot, pageSize, off int) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return binary.NativeEndian.Uint64(b[slot*pageSize+off:])
}

// damages are the ways a card or a power cut leaves the file, each with what the refusal
// must say.
const (
	nothing = iota
	lastTx
	pagesLost
)

var damages = []struct {
	name   string
	damage func(t *testing.T, path string)
	want   string
	// lost is what repair from the file itself may lose: nothing, the last transaction
	// (lastTx: a tree one transaction old is intact), or pages (pagesLost).
	lost int
}{
	{"zero length", func(t *testing.T, p string) { storetest.Truncate(t, p, 0) }, "the file is empty", pagesLost},
	{"truncated to 16 KiB", func(t *testing.T, p string) { storetest.Truncate(t, p, 16<<10) }, "cut short", pagesLost},
	{"last page gone", func(t *testing.T, p string) {
		pages, ps := storetest.Pages(t, p)
		storetest.Truncate(t, p, int64((len(pages)-1)*ps))
	}, "cut short", pagesLost},
	{"meta 0 flipped", func(t *testing.T, p string) { storetest.Flip(t, p, storetest.MetaRoot, 0x04) }, "meta page 0 is damaged (checksum mismatch)", lastTx},
	{"meta 1 flipped", func(t *testing.T, p string) {
		_, ps := storetest.Pages(t, p)
		storetest.Flip(t, p, int64(ps+storetest.MetaTxID), 0x80)
	}, "meta page 1 is damaged (checksum mismatch)", lastTx},
	{"both metas flipped", func(t *testing.T, p string) {
		_, ps := storetest.Pages(t, p)
		storetest.Flip(t, p, storetest.MetaTxID+1, 0x10)
		storetest.Flip(t, p, int64(ps+storetest.MetaTxID+1), 0x10)
	}, "both meta pages are unusable", lastTx},
	{"meta page header", func(t *testing.T, p string) { storetest.Flip(t, p, storetest.HeaderFlags, 0x01) }, "meta page 0 is damaged (page header damaged", lastTx},
	{"freelist entry flipped", func(t *testing.T, p string) {
		fl := storetest.WithFreelist(t, p)
		_, ps := storetest.Pages(t, p)
		storetest.Flip(t, p, int64(fl.ID*ps+storetest.FreelistEntries+1), 0x01)
	}, "freelist page", nothing},
	{"freelist count flipped", func(t *testing.T, p string) {
		fl := storetest.WithFreelist(t, p)
		_, ps := storetest.Pages(t, p)
		storetest.Flip(t, p, int64(fl.ID*ps+storetest.HeaderCount), 0x01)
	}, "freelist page", nothing},
	{"branch page type flipped", func(t *testing.T, p string) {
		br, ps := storetest.Find(t, p, "branch", 30)
		storetest.Flip(t, p, int64(br.ID*ps+storetest.HeaderFlags), 0x03)
	}, "out of order", lastTx},
	{"branch child flipped", func(t *testing.T, p string) {
		br, ps := storetest.Find(t, p, "branch", 30)
		storetest.Flip(t, p, int64(br.ID*ps+storetest.Elements+16+storetest.BranchChild+3), 0x01)
	}, "outside the database's pages", lastTx},
	{"branch child to a page in use", func(t *testing.T, p string) {
		br, ps := storetest.Find(t, p, "branch", 30)
		storetest.Flip(t, p, int64(br.ID*ps+storetest.Elements+16+storetest.BranchChild), 0x01)
	}, "page", lastTx},
	{"branch key position flipped", func(t *testing.T, p string) {
		br, ps := storetest.Find(t, p, "branch", 30)
		storetest.Flip(t, p, int64(br.ID*ps+storetest.Elements+16+1), 0x40)
	}, "branch element 1", lastTx},
	// A bit flipped in a bucket's name that keeps the keys in order: bbolt's check passes,
	// and the accounts were simply gone, so amwi started as on its first day.
	{"accounts' name flipped, keys in order", func(t *testing.T, p string) {
		storetest.Flip(t, p, storetest.TopLevelKey(t, p, "users")+2, 0x02) // usgrs
	}, `top-level bucket "usgrs" is "users" with a damaged name`, nothing},
	{"sync history's name flipped", func(t *testing.T, p string) {
		storetest.Flip(t, p, storetest.TopLevelKey(t, p, "sync_runs")+7, 0x01) // sync_ruos
	}, `"sync_runs" with a damaged name`, nothing},
	{"leaf value taken for a bucket", func(t *testing.T, p string) {
		br, ps := storetest.Find(t, p, "branch", 30)
		b, _ := os.ReadFile(p)
		child := binary.NativeEndian.Uint64(b[br.ID*ps+storetest.Elements+storetest.BranchChild:])
		storetest.Flip(t, p, int64(int(child)*ps+storetest.Elements+storetest.LeafFlags), 0x01)
	}, "bucket", pagesLost},
}

// TestDamagedRefused: every kind of damage is refused at open with the file named and the
// way out, and the file is left exactly as it was (never replaced by an empty one).
func TestDamagedRefused(t *testing.T) {
	for _, tt := range damages {
		t.Run(tt.name, func(t *testing.T) {
			dir, path := fresh(t)
			tt.damage(t, path)
			before, _ := os.ReadFile(path)
			s, err := store.Open(dir, time.Second)
			if err == nil {
				s.Close()
				t.Fatal("a damaged database opened")
			}
			msg := err.Error()
			if !errors.Is(err, store.ErrDamaged) || !strings.Contains(msg, path) || !strings.Contains(msg, tt.want) ||
				!strings.Contains(msg, "amwi db repair") || !strings.Contains(msg, "amwi db check") {
				t.Fatalf("refusal:\n%s\nwant ErrDamaged naming %s, saying %q and what to run", msg, path, tt.want)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Fatalf("the refused file changed (%d → %d bytes)", len(before), len(after))
			}
			rep, err := store.CheckFile(path, time.Second)
			if err != nil || rep.OK() {
				t.Fatalf("CheckFile: %v, %+v: want problems", err, rep)
			}
		})
	}
}

// TestDailyBackup: one a day, two kept, each a checked copy; a copy of a database damaged
// under the running store is refused and the older backups stay.
func TestDailyBackup(t *testing.T) {
	dir, path := fresh(t)
	br, ps := storetest.Find(t, path, "branch", 30)
	s, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var made []string
	for i, day := range []time.Time{now, now.Add(time.Hour), now.Add(24 * time.Hour), now.Add(48 * time.Hour)} {
		p, rep, err := s.DailyBackup(day)
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if p != "" {
				t.Fatalf("a second backup the same day: %s", p)
			}
			continue
		}
		if p == "" || !rep.OK() || rep.Records["users"] != 3 {
			t.Fatalf("backup %d: %q %+v", i, p, rep)
		}
		made = append(made, p)
	}
	if got := store.Backups(dir); len(got) != 2 || got[0] != made[2] || got[1] != made[1] {
		t.Fatalf("backups kept: %v, want the newest two of %v", got, made)
	}
	if fi, _ := os.Stat(made[2]); fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v: it holds password hashes", fi.Mode())
	}
	// A card flips a bit under the running daemon: the next backup finds it.
	storetest.Flip(t, path, int64(br.ID*ps+storetest.HeaderFlags), 0x03)
	p, _, err := s.DailyBackup(now.Add(72 * time.Hour))
	if err == nil || p != "" || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("backup of a damaged database: %q %v", p, err)
	}
	if got := store.Backups(dir); len(got) != 2 || got[0] != made[2] {
		t.Fatalf("a failed backup changed the backups: %v", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, store.BackupDir, ".*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestBackupDatedAhead: a backup named after a wrong clock (2099) is neither what repair
// starts from nor one of the two kept; the next backups do not remove it either (if the
// clock is what is wrong now, it is the real one).
func TestBackupDatedAhead(t *testing.T) {
	dir, _ := fresh(t)
	s, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, _, err := s.DailyBackup(now)
	if err != nil || first == "" {
		t.Fatalf("backup: %q %v", first, err)
	}
	ahead := filepath.Join(dir, store.BackupDir, "amwi-2099-01-01.db")
	b, _ := os.ReadFile(first)
	if err := os.WriteFile(ahead, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var made []string
	for _, day := range []time.Time{now.Add(24 * time.Hour), now.Add(48 * time.Hour)} {
		p, _, err := s.DailyBackup(day)
		if err != nil || p == "" {
			t.Fatalf("backup of %v: %q %v", day, p, err)
		}
		made = append(made, p)
	}
	got := store.BackupsAt(dir, now.Add(48*time.Hour))
	if want := []string{made[1], made[0], ahead}; !slices.Equal(got, want) {
		t.Fatalf("backups: %v, want %v (the two newest real ones first, the one dated ahead last and kept)", got, want)
	}
	if got := store.Backups(dir); got[0] != made[1] {
		t.Errorf("Backups (what repair starts from): %v, want %s first", got, made[1])
	}
}

// TestCutShortUnderTheDaemon: the file cut short while open (a SIGBUS for bbolt's mmap)
// makes every operation an error naming the file; nothing crashes.
func TestCutShortUnderTheDaemon(t *testing.T) {
	dir, path := fresh(t)
	s, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Truncate(t, path, 8<<10)
	var broken []error
	s.OnBroken = func(err error) { broken = append(broken, err) }
	_, err = storetest.SumTraffic(s, traffic.Packages, traffic.DayOf(now)-100, traffic.DayOf(now))
	if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, store.ErrDamaged) {
		t.Fatalf("read of a file cut short: %v", err)
	}
	t.Log(err)
	if _, err := s.ListUsers(); err == nil {
		t.Fatal("the store went on after the fault")
	}
	if err := s.Check(); err == nil {
		t.Fatal("the health check does not see it")
	}
	if len(broken) != 1 {
		t.Fatalf("OnBroken heard %d times", len(broken))
	}
	done := make(chan error)
	go func() { done <- s.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs")
	}
}

// TestEveryFlipRefusedOrHarmless flips, one at a time, every byte of the header and the
// first elements of the top-level page, of a wide branch page and of a leaf page: each
// time the store either refuses the file or opens it and reads and writes without
// crashing.
func TestEveryFlipRefusedOrHarmless(t *testing.T) {
	if testing.Short() {
		t.Skip("flips hundreds of bytes")
	}
	src := template(t)
	_, ps := storetest.Pages(t, src)
	root := int(metaField(t, src, 1, ps, storetest.MetaRoot))
	br, _ := storetest.Find(t, src, "branch", 30)
	b, _ := os.ReadFile(src)
	leaf := int(binary.NativeEndian.Uint64(b[br.ID*ps+storetest.Elements+storetest.BranchChild:]))
	refused, opened := 0, 0
	for _, pg := range []struct {
		id    int
		count int
	}{{root, 0}, {br.ID, br.Count}, {leaf, 0}} {
		// The header, the first 8 elements and the start of the keys they point to.
		n := int(binary.NativeEndian.Uint16(b[pg.id*ps+storetest.HeaderCount:]))
		end := min(16+min(n, 8)*16+16, ps)
		for off := 0; off < end; off++ {
			dir := filepath.Join(t.TempDir(), "state")
			os.MkdirAll(dir, 0o750)
			path := filepath.Join(dir, store.FileName)
			storetest.Copy(t, src, path)
			storetest.Flip(t, path, int64(pg.id*ps+off), 0xFF)
			s, err := store.Open(dir, time.Second)
			if err != nil {
				if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), path) {
					t.Fatalf("page %d byte %d: %v", pg.id, off, err)
				}
				refused++
				continue
			}
			opened++
			s.ListUsers()
			s.Runs(100)
			storetest.SumTraffic(s, traffic.Packages, traffic.DayOf(now)-100, traffic.DayOf(now))
			s.AddTraffic(traffic.Batch{Days: map[traffic.Day]traffic.Count{traffic.DayOf(now): {Bytes: 1, Requests: 1}}})
			s.PruneTraffic(traffic.HourOf(now), traffic.DayOf(now)-10)
			s.Close()
		}
	}
	t.Logf("%d flips refused, %d opened", refused, opened)
}

// BenchmarkOpen measures what the checks cost at open on a realistic database: 500 sync
// runs, 400 days of traffic with 300 packages a day (the retention's worth). Compare
// BenchmarkOpenBare, bbolt's open alone.
func BenchmarkOpen(b *testing.B) {
	dir := bigStore(b)
	for b.Loop() {
		s, err := store.Open(dir, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

func BenchmarkOpenBare(b *testing.B) {
	dir := bigStore(b)
	for b.Loop() {
		db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
}

func BenchmarkCheckFile(b *testing.B) {
	dir := bigStore(b)
	for b.Loop() {
		if rep, err := store.CheckFile(filepath.Join(dir, store.FileName), time.Second); err != nil || !rep.Clean() {
			b.Fatal(err, rep)
		}
	}
}

var (
	bigOnce sync.Once
	bigDir  string
)

func bigStore(b *testing.B) string {
	bigOnce.Do(func() {
		bigDir = filepath.Join(os.TempDir(), "amwi-store-bench")
		if _, err := os.Stat(filepath.Join(bigDir, store.FileName)); err != nil {
			os.RemoveAll(bigDir)
			storetest.Fill(b, bigDir, 500, 400, 300, now)
		}
	})
	fi, _ := os.Stat(filepath.Join(bigDir, store.FileName))
	b.ReportMetric(float64(fi.Size())/(1<<20), "MB")
	return bigDir
}

// TestNotAFile: a directory or a named pipe where the database should be is refused at
// once, naming it and what to do; nothing blocks on the pipe (a reader of a FIFO waits for
// a writer that never comes) and nothing is created in its place.
func TestNotAFile(t *testing.T) {
	for _, kind := range []string{"directory", "named pipe"} {
		t.Run(kind, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			os.MkdirAll(dir, 0o750)
			path := filepath.Join(dir, store.FileName)
			var err error
			if kind == "directory" {
				err = os.Mkdir(path, 0o700)
			} else {
				err = syscall.Mkfifo(path, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, err := store.Open(dir, time.Second)
				var nf *store.NotFileError
				if !errors.As(err, &nf) || !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "a "+kind) || !strings.Contains(err.Error(), "move it away") {
					t.Errorf("Open: %v, want a refusal naming %s as a %s and what to do", err, path, kind)
				}
				if _, err := store.CheckFile(path, time.Second); !errors.As(err, &nf) {
					t.Errorf("CheckFile: %v, want NotFileError", err)
				}
				if _, err := store.Repair(dir, store.RepairOptions{}); !errors.As(err, &nf) {
					t.Errorf("Repair: %v, want NotFileError", err)
				}
				if _, err := store.Repair(dir, store.RepairOptions{Source: path}); !errors.As(err, &nf) {
					t.Errorf("Repair --from it: %v, want NotFileError", err)
				}
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("blocked on the database path")
			}
			if fi, err := os.Lstat(path); err != nil || fi.Mode().IsRegular() {
				t.Errorf("the path was changed: %v %v", fi, err)
			}
		})
	}
}
