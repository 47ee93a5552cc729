package hw

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

func TestParseUptime(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{name: "real", in: "351735.47 1386532.90\n", want: 351735*time.Second + 470*time.Millisecond},
		{name: "just booted", in: "0.00 0.00\n", want: 0},
		{name: "one field", in: "12.5", want: 12500 * time.Millisecond},
		{name: "empty", in: "", wantErr: true},
		{name: "blank", in: " \n", wantErr: true},
		{name: "not a number", in: "abc 1.0\n", wantErr: true},
		{name: "negative", in: "-1.0 0\n", wantErr: true},
		{name: "NaN", in: "NaN 0\n", wantErr: true},
		{name: "overflows a Duration", in: "1e300 0\n", wantErr: true},
		{name: "infinite", in: "+Inf 0\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUptime([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("parseUptime(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseUptime(f *testing.F) {
	for _, s := range []string{"351735.47 1386532.90\n", "0.00 0.00", "", "9223372036.854775807", "1e9"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if d, err := parseUptime(data); err == nil && d < 0 {
			t.Fatalf("parseUptime(%q) = %v, negative", data, d)
		}
	})
}

func TestParseMilliCelsius(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{in: "48312\n", want: 48.312},
		{in: "0\n", want: 0},
		{in: "-5500\n", want: -5.5},
		{in: "100000", want: 100},
		{in: "", wantErr: true},
		{in: "48.3\n", wantErr: true},
		{in: "hot\n", wantErr: true},
		{in: "300000", want: 300},
		{in: "300001", wantErr: true},              // past any board: a driver's garbage
		{in: "4600000000000000000", wantErr: true}, // once drew a chart whose axis never ended
		{in: "-273150", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got, err := parseMilliCelsius([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("parseMilliCelsius(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseMilliCelsius(f *testing.F) {
	for _, s := range []string{"48312\n", "-273150", "", "x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if c, err := parseMilliCelsius(data); err == nil && (math.IsNaN(c) || math.IsInf(c, 0)) {
			t.Fatalf("parseMilliCelsius(%q) = %v", data, c)
		}
	})
}

func TestParseModel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Raspberry Pi 4 Model B Rev 1.4\x00", "Raspberry Pi 4 Model B Rev 1.4"},
		{"Raspberry Pi Zero W Rev 1.1\x00", "Raspberry Pi Zero W Rev 1.1"},
		{"Hardkernel ODROID-HC4\x00", "Hardkernel ODROID-HC4"},
		{"no NUL at all\n", "no NUL at all"},
		{"first\x00second\x00", "first"},
		{"\x00", ""},
		{"", ""},
		{"  tabs\tand\nnewlines  ", "tabs and newlines"},
		{"bad \xff byte\x00", "bad \uFFFD byte"},
	}
	for _, tt := range tests {
		if got := parseModel([]byte(tt.in)); got != tt.want {
			t.Errorf("parseModel(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseModel(f *testing.F) {
	for _, s := range []string{"Raspberry Pi 4 Model B Rev 1.4\x00", "", "\x00\x00", "a\xffb"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := parseModel(data)
		if !utf8.ValidString(got) || strings.TrimSpace(got) != got || strings.IndexFunc(got, unicode.IsControl) >= 0 {
			t.Fatalf("parseModel(%q) = %q: not a clean printable name", data, got)
		}
	})
}

func TestDMIBoard(t *testing.T) {
	tests := []struct {
		name                                       string
		sysVendor, product, boardVendor, boardName string
		want                                       string
	}{
		{name: "vendor and product", sysVendor: "HPE\n", product: "ProLiant MicroServer Gen10 Plus\n",
			want: "HPE ProLiant MicroServer Gen10 Plus"},
		{name: "product already names the vendor", sysVendor: "Synology\n", product: "Synology DS918+\n",
			want: "Synology DS918+"},
		{name: "placeholders fall back to the board (ASRock)",
			sysVendor: "To Be Filled By O.E.M.\n", product: "To Be Filled By O.E.M.\n",
			boardVendor: "ASRock\n", boardName: "J4125-ITX\n", want: "ASRock J4125-ITX"},
		{name: "ASUS defaults", sysVendor: "System manufacturer\n", product: "System Product Name\n",
			boardVendor: "ASUSTeK COMPUTER INC.\n", boardName: "PRIME H310I-PLUS R2.0\n",
			want: "ASUSTeK COMPUTER INC. PRIME H310I-PLUS R2.0"},
		{name: "vendor placeholder only", sysVendor: "Default string\n", product: "N5105 NAS\n", want: "N5105 NAS"},
		{name: "VM", sysVendor: "QEMU\n", product: "Standard PC (Q35 + ICH9, 2009)\n",
			want: "QEMU Standard PC (Q35 + ICH9, 2009)"},
		{name: "nothing", want: ""},
		{name: "vendor alone says too little", sysVendor: "Intel Corporation\n", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dmiBoard(tt.sysVendor, tt.product, tt.boardVendor, tt.boardName); got != tt.want {
				t.Fatalf("dmiBoard() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBusyPercent(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur cpuTimes
		want      float64
	}{
		{name: "a quarter", prev: cpuTimes{busy: 10, total: 100}, cur: cpuTimes{busy: 35, total: 200}, want: 25},
		{name: "idle", prev: cpuTimes{busy: 10, total: 100}, cur: cpuTimes{busy: 10, total: 200}, want: 0},
		{name: "flat out", prev: cpuTimes{busy: 10, total: 100}, cur: cpuTimes{busy: 110, total: 200}, want: 100},
		{name: "since boot", cur: cpuTimes{busy: 1, total: 4}, want: 25},
		{name: "no time passed", prev: cpuTimes{busy: 10, total: 100}, cur: cpuTimes{busy: 10, total: 100}, want: 0},
		{name: "counters went back (reboot)", prev: cpuTimes{busy: 500, total: 1000}, cur: cpuTimes{busy: 5, total: 10}, want: 0},
		{name: "busy went back, total forward", prev: cpuTimes{busy: 50, total: 100}, cur: cpuTimes{busy: 40, total: 200}, want: 0},
		{name: "iowait went back: over 100 clamps", prev: cpuTimes{busy: 0, total: 100}, cur: cpuTimes{busy: 30, total: 120}, want: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := busyPercent(tt.prev, tt.cur); got != tt.want {
				t.Fatalf("busyPercent(%+v, %+v) = %v, want %v", tt.prev, tt.cur, got, tt.want)
			}
		})
	}
}

func TestCPUTimesOf(t *testing.T) {
	// Guest time is already in user: counting it twice would inflate busy and total.
	got := cpuTimesOf(procfs.CPUStat{User: 5, Nice: 1, System: 2, Idle: 10, Iowait: 3, IRQ: 1, SoftIRQ: 1, Steal: 2, Guest: 4, GuestNice: 1})
	if want := (cpuTimes{busy: 12, total: 25}); got != want {
		t.Fatalf("cpuTimesOf() = %+v, want %+v", got, want)
	}
}

func TestRate(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur uint64
		secs      float64
		want      float64
	}{
		{name: "1 MB in 1 s", prev: 5_000_000, cur: 6_000_000, secs: 1, want: 1e6},
		{name: "half a second", prev: 0, cur: 100, secs: 0.5, want: 200},
		{name: "went back (wrap, reboot)", prev: 6_000_000, cur: 5, secs: 1, want: 0},
		{name: "no time", prev: 0, cur: 100, secs: 0, want: 0},
		{name: "clock went back", prev: 0, cur: 100, secs: -1, want: 0},
		{name: "64-bit wrap", prev: math.MaxUint64 - 10, cur: 10, secs: 1, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rate(tt.prev, tt.cur, tt.secs); got != tt.want {
				t.Fatalf("rate(%d, %d, %v) = %v, want %v", tt.prev, tt.cur, tt.secs, got, tt.want)
			}
		})
	}
}

func TestFSOf(t *testing.T) {
	tests := []struct {
		name string
		st   unix.Statfs_t
		want FS
	}{
		{name: "ext4 with root's 5 % reserve",
			st:   unix.Statfs_t{Bsize: 4096, Frsize: 4096, Blocks: 1000, Bfree: 400, Bavail: 350},
			want: FS{Path: "/m", TotalBytes: 4096000, FreeBytes: 350 * 4096, UsedPercent: 600.0 / 950 * 100}},
		{name: "only the reserve left", st: unix.Statfs_t{Bsize: 4096, Frsize: 4096, Blocks: 1000, Bfree: 50, Bavail: 0},
			want: FS{Path: "/m", TotalBytes: 4096000, FreeBytes: 0, UsedPercent: 100}},
		{name: "empty", st: unix.Statfs_t{Bsize: 4096, Frsize: 4096, Blocks: 1000, Bfree: 1000, Bavail: 1000},
			want: FS{Path: "/m", TotalBytes: 4096000, FreeBytes: 4096000, UsedPercent: 0}},
		{name: "no frsize: bsize", st: unix.Statfs_t{Bsize: 512, Blocks: 10, Bfree: 5, Bavail: 5},
			want: FS{Path: "/m", TotalBytes: 5120, FreeBytes: 2560, UsedPercent: 50}},
		{name: "zero blocks (a pseudo filesystem)", st: unix.Statfs_t{Bsize: 4096, Frsize: 4096},
			want: FS{Path: "/m"}},
		{name: "inconsistent counts are clamped", st: unix.Statfs_t{Frsize: 1, Blocks: 10, Bfree: 20, Bavail: 30},
			want: FS{Path: "/m", TotalBytes: 10, FreeBytes: 10, UsedPercent: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fsOf("/m", &tt.st); *got != tt.want {
				t.Fatalf("fsOf() = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestMemoryOf(t *testing.T) {
	kB := func(v uint64) *uint64 { v *= 1024; return &v }
	tests := []struct {
		name    string
		mi      procfs.Meminfo
		want    Memory
		wantErr bool
	}{
		{name: "MemAvailable",
			mi: procfs.Meminfo{MemTotalBytes: kB(1000), MemAvailableBytes: kB(750), MemFreeBytes: kB(100),
				BuffersBytes: kB(1), CachedBytes: kB(2), SwapTotalBytes: kB(50), SwapFreeBytes: kB(40)},
			want: Memory{TotalBytes: 1024000, AvailableBytes: 768000, UsedPercent: 25, SwapTotal: 51200, SwapFree: 40960}},
		{name: "old kernel: free + buffers + cached",
			mi:   procfs.Meminfo{MemTotalBytes: kB(1000), MemFreeBytes: kB(100), BuffersBytes: kB(100), CachedBytes: kB(300)},
			want: Memory{TotalBytes: 1024000, AvailableBytes: 512000, UsedPercent: 50}},
		{name: "estimate above total is capped",
			mi:   procfs.Meminfo{MemTotalBytes: kB(1000), MemFreeBytes: kB(900), CachedBytes: kB(300)},
			want: Memory{TotalBytes: 1024000, AvailableBytes: 1024000, UsedPercent: 0}},
		{name: "no MemTotal", mi: procfs.Meminfo{MemFreeBytes: kB(1)}, wantErr: true},
		{name: "zero MemTotal", mi: procfs.Meminfo{MemTotalBytes: kB(0)}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := memoryOf(tt.mi)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("memoryOf() = %+v, want an error", got)
				}
				return
			}
			if err != nil || *got != tt.want {
				t.Fatalf("memoryOf() = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// fixtureReader reads a fixture tree (testdata/NAME or a copy): statfs is faked and the
// mirror's disk is the one the tree's sysfs gives for major:minor.
func fixtureReader(root string, major, minor uint32, clock *fakeClock) *Reader {
	proc, sys := filepath.Join(root, "proc"), filepath.Join(root, "sys")
	return &Reader{
		ProcRoot: proc, SysRoot: sys, MirrorRoot: "/srv/amwi", Now: clock.Now,
		statfs: func(path string, st *unix.Statfs_t) error {
			*st = unix.Statfs_t{Bsize: 4096, Frsize: 4096, Blocks: 1000, Bfree: 400, Bavail: 350}
			return nil
		},
		findDisk: func() (BlockDevice, error) { return findBlockDevice(proc, sys, major, minor, "/srv/amwi") },
	}
}

// copyFixture copies testdata/NAME, symlinks as symlinks, into a new temporary directory.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	src, dst := filepath.Join("testdata", name), t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, to)
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// replaceIn replaces old, which must occur exactly once, with new in file.
func replaceIn(t *testing.T, file, old, new string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), old); n != 1 {
		t.Fatalf("%s holds %q %d times, want once", file, old, n)
	}
	writeFile(t, file, strings.Replace(string(data), old, new, 1))
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func ptr[T any](v T) *T { return &v }

func TestReaderFixtures(t *testing.T) {
	fsWant := &FS{Path: "/srv/amwi", TotalBytes: 4096000, FreeBytes: 350 * 4096, UsedPercent: 600.0 / 950 * 100}
	tests := []struct {
		fixture      string
		major, minor uint32
		cores        int
		want         Snapshot // CPU checked apart: it is since boot on a first Read
	}{
		{fixture: "rpi4", major: 179, minor: 2, cores: 4, want: Snapshot{
			Memory: &Memory{TotalBytes: 3880504 * 1024, AvailableBytes: 3317356 * 1024,
				UsedPercent: float64(3880504-3317356) / 3880504 * 100, SwapTotal: 102396 * 1024, SwapFree: 102396 * 1024},
			Load:   &Load{Load1: 0.52, Load5: 0.58, Load15: 0.59},
			Uptime: 351735*time.Second + 470*time.Millisecond,
			FS:     fsWant,
			Disk:   &Disk{Name: "mmcblk0"},
			Net: []Iface{
				{Name: "eth0", RxBytes: 3120456789, TxBytes: 987654321},
				{Name: "wlan0", RxBytes: 48213, TxBytes: 20117},
			},
			TempC: ptr(48.312),
			Board: "Raspberry Pi 4 Model B Rev 1.4",
		}},
		{fixture: "nas", major: 8, minor: 1, cores: 4, want: Snapshot{
			// No MemAvailable: MemFree + Buffers + Cached.
			Memory: &Memory{TotalBytes: 7969244 * 1024, AvailableBytes: (412380 + 203344 + 6120448) * 1024,
				UsedPercent: float64(7969244-(412380+203344+6120448)) / 7969244 * 100, SwapTotal: 8388604 * 1024, SwapFree: 8342012 * 1024},
			Load:   &Load{Load1: 1.24, Load5: 0.97, Load15: 0.88},
			Uptime: 1209876*time.Second + 120*time.Millisecond,
			FS:     fsWant,
			Disk:   &Disk{Name: "sda"},
			// Only the interface with a device: docker0, br0, ifb0, a veth and tun0 carry
			// the same traffic again.
			Net: []Iface{
				{Name: "enp2s0", RxBytes: 912334556123, TxBytes: 48812334901},
			},
			TempC: ptr(41.0), // the hotter of acpitz and x86_pkg_temp
			Board: "HPE ProLiant MicroServer Gen10 Plus",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			clock := &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
			got := fixtureReader(filepath.Join("testdata", tt.fixture), tt.major, tt.minor, clock).Read()
			if got.Errors != nil {
				t.Fatalf("Errors = %v, want none", got.Errors)
			}
			if got.CPU == nil || len(got.CPU.PerCore) != tt.cores || !(got.CPU.Total > 0 && got.CPU.Total < 100) {
				t.Errorf("CPU = %+v, want %d cores and a total since boot strictly between 0 and 100", got.CPU, tt.cores)
			}
			if !got.Time.Equal(clock.t) {
				t.Errorf("Time = %v, want the injected clock's %v", got.Time, clock.t)
			}
			got.Time, got.CPU = time.Time{}, nil
			if got.Memory != nil && near(got.Memory.UsedPercent, tt.want.Memory.UsedPercent) {
				got.Memory.UsedPercent = tt.want.Memory.UsedPercent
			}
			if !reflect.DeepEqual(got, tt.want) {
				g, _ := json.MarshalIndent(got, "", "  ")
				w, _ := json.MarshalIndent(tt.want, "", "  ")
				t.Fatalf("Read() =\n%s\nwant\n%s", g, w)
			}
		})
	}
}

func TestReaderDeltas(t *testing.T) {
	root := copyFixture(t, "rpi4")
	proc := filepath.Join(root, "proc")
	clock := &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	r := fixtureReader(root, 179, 2, clock)
	if s := r.Read(); s.Errors != nil {
		t.Fatalf("first Read: Errors = %v", s.Errors)
	}

	// One second later: cpu0 was busy all the time (60 user, 40 system jiffies), cpu1 half
	// idle and half waiting for I/O, which is not busy, cpu2 and cpu3 idle: 25 % in all.
	stat := filepath.Join(proc, "stat")
	replaceIn(t, stat, "cpu  105094 1917 40953 7313821 3671 ", "cpu  105154 1917 40993 7314071 3721 ")
	replaceIn(t, stat, "cpu0 28318 512 10876 1823411 ", "cpu0 28378 512 10916 1823411 ")
	replaceIn(t, stat, "cpu1 25120 430 9987 1830765 856 ", "cpu1 25120 430 9987 1830815 906 ")
	replaceIn(t, stat, "cpu2 26755 498 10230 1828113 ", "cpu2 26755 498 10230 1828213 ")
	replaceIn(t, stat, "cpu3 24901 477 9860 1831532 ", "cpu3 24901 477 9860 1831632 ")
	// eth0 received 1,000,000 bytes and sent 250,000; wlan0 nothing.
	netdev := filepath.Join(proc, "net", "dev")
	replaceIn(t, netdev, "eth0:3120456789 ", "eth0:3121456789 ")
	replaceIn(t, netdev, " 987654321 1543210 ", " 987904321 1543210 ")
	// mmcblk0 read 2000 sectors, wrote 1000 and had I/O in flight for 400 ms.
	diskstats := filepath.Join(proc, "diskstats")
	replaceIn(t, diskstats, "mmcblk0 12517 4361 1009362 46235 5032 6280 221232 88410 0 57600 ",
		"mmcblk0 12617 4361 1011362 46435 5132 6280 222232 88610 0 58000 ")
	clock.Advance(time.Second)

	s := r.Read()
	if s.Errors != nil {
		t.Fatalf("second Read: Errors = %v", s.Errors)
	}
	if !near(s.CPU.Total, 25) || !slices.EqualFunc(s.CPU.PerCore, []float64{100, 0, 0, 0}, near) {
		t.Errorf("CPU = %+v, want 25 %% with cores [100 0 0 0]", *s.CPU)
	}
	wantNet := []Iface{
		{Name: "eth0", RxBps: 1e6, TxBps: 250000, RxBytes: 3121456789, TxBytes: 987904321},
		{Name: "wlan0", RxBytes: 48213, TxBytes: 20117},
	}
	if !reflect.DeepEqual(s.Net, wantNet) {
		t.Errorf("Net = %+v, want %+v", s.Net, wantNet)
	}
	if want := (Disk{Name: "mmcblk0", BusyPercent: 40, ReadBps: 2000 * 512, WriteBps: 1000 * 512}); *s.Disk != want {
		t.Errorf("Disk = %+v, want %+v", *s.Disk, want)
	}

	// Reboot: every counter is back below where it was. Rates are 0, not negative or huge.
	writeFile(t, stat, "cpu  400 0 0 3600 0 0 0 0 0 0\n"+
		"cpu0 100 0 0 900 0 0 0 0 0 0\ncpu1 100 0 0 900 0 0 0 0 0 0\n"+
		"cpu2 100 0 0 900 0 0 0 0 0 0\ncpu3 100 0 0 900 0 0 0 0 0 0\n")
	replaceIn(t, netdev, "eth0:3121456789 ", "eth0:    1000 ")
	replaceIn(t, netdev, " 987904321 1543210 ", "     2000 1543210 ")
	replaceIn(t, diskstats, "mmcblk0 12617 4361 1011362 46435 5132 6280 222232 88610 0 58000 ",
		"mmcblk0 10 0 80 5 2 0 16 1 0 12 ")
	clock.Advance(time.Second)
	s = r.Read()
	if s.Errors != nil {
		t.Fatalf("Read after reboot: Errors = %v", s.Errors)
	}
	if s.CPU.Total != 0 || slices.ContainsFunc(s.CPU.PerCore, func(v float64) bool { return v != 0 }) {
		t.Errorf("CPU after reboot = %+v, want all 0", *s.CPU)
	}
	if s.Net[0].RxBps != 0 || s.Net[0].TxBps != 0 {
		t.Errorf("eth0 after reboot = %+v, want 0 B/s", s.Net[0])
	}
	if want := (Disk{Name: "mmcblk0"}); *s.Disk != want {
		t.Errorf("Disk after reboot = %+v, want %+v", *s.Disk, want)
	}

	// And the next second measures from the new counters.
	replaceIn(t, netdev, "eth0:    1000 ", "eth0:    1500 ")
	clock.Advance(time.Second)
	if s = r.Read(); s.Net[0].RxBps != 500 {
		t.Errorf("eth0 a second after reboot = %+v, want 500 B/s in", s.Net[0])
	}

	// An interface that appears starts at 0 B/s; one that goes away is dropped.
	replaceIn(t, netdev, " wlan0:", "  usb0:")
	clock.Advance(time.Second)
	s = r.Read()
	if got := s.Net; len(got) != 2 || got[1].Name != "usb0" || got[1].RxBps != 0 || got[1].RxBytes != 48213 {
		t.Errorf("Net with usb0 in place of wlan0 = %+v", got)
	}
	if _, ok := r.net["wlan0"]; ok {
		t.Errorf("wlan0 is still remembered after it went away")
	}
}

func TestReaderFailingSources(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}

	t.Run("nothing there", func(t *testing.T) {
		root := t.TempDir()
		r := &Reader{ProcRoot: filepath.Join(root, "proc"), SysRoot: filepath.Join(root, "sys"), Now: clock.Now}
		s := r.Read()
		for _, source := range []string{"cpu", "memory", "load", "uptime", "fs", "disk", "net", "temp"} {
			if s.Errors[source] == "" {
				t.Errorf("Errors[%q] is empty", source)
			}
		}
		if s.CPU != nil || s.Memory != nil || s.Load != nil || s.Uptime != 0 || s.FS != nil || s.Disk != nil ||
			s.Net != nil || s.TempC != nil || s.Board != "" {
			t.Errorf("Read() = %+v, want every source empty", s)
		}
		if !strings.Contains(s.Errors["fs"], "no mirror root") {
			t.Errorf(`Errors["fs"] = %q, want it to say no mirror root is set`, s.Errors["fs"])
		}
		// An unknown board is not an error: containers and some VMs have no name to give.
		if msg, ok := s.Errors["board"]; ok {
			t.Errorf(`Errors["board"] = %q, want none`, msg)
		}
	})

	t.Run("some sources broken, the rest read", func(t *testing.T) {
		root := copyFixture(t, "rpi4")
		proc := filepath.Join(root, "proc")
		if err := os.Remove(filepath.Join(proc, "meminfo")); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(proc, "loadavg"), "garbage\n")
		writeFile(t, filepath.Join(proc, "uptime"), "\n")
		// A truncated line makes procfs index past its fields: a panic, contained.
		replaceIn(t, filepath.Join(proc, "net", "dev"), "  eth0:3120456789 2876543    0  132 ", "  eth0:3120456789\n")
		r := fixtureReader(root, 179, 2, clock)
		r.statfs = func(string, *unix.Statfs_t) error { return unix.EIO }
		s := r.Read()
		for source, want := range map[string]string{
			"memory": "meminfo", "load": "garbage", "uptime": "uptime", "net": "panic", "fs": "statfs /srv/amwi: input/output error",
		} {
			if !strings.Contains(s.Errors[source], want) {
				t.Errorf("Errors[%q] = %q, want it to contain %q", source, s.Errors[source], want)
			}
		}
		if len(s.Errors) != 5 {
			t.Errorf("Errors = %v, want 5 sources failing", s.Errors)
		}
		if s.CPU == nil || s.Disk == nil || s.TempC == nil || s.Board == "" {
			t.Errorf("Read() = %+v, want CPU, disk, temperature and board read anyway", s)
		}
	})

	t.Run("mirror not on a local disk", func(t *testing.T) {
		r := fixtureReader(filepath.Join("testdata", "rpi4"), 0, 45, clock) // the NFS mount in mountinfo
		s := r.Read()
		if s.Disk != nil || s.Errors["disk"] != "not on a local disk" {
			t.Fatalf("Disk = %+v, Errors[disk] = %q; want nil and %q", s.Disk, s.Errors["disk"], "not on a local disk")
		}
		if s.FS == nil {
			t.Errorf("FS = nil: an NFS mirror still has a filesystem to report")
		}
	})

	t.Run("disk lookup is cached, and retried after a minute", func(t *testing.T) {
		calls := 0
		r := fixtureReader(filepath.Join("testdata", "nas"), 0, 0, clock)
		r.findDisk = func() (BlockDevice, error) {
			calls++
			if calls == 1 {
				return BlockDevice{}, fmt.Errorf("find disk: %w: /srv is overlay", ErrNoBlockDevice)
			}
			return BlockDevice{Name: "sda", Major: 8, Minor: 0}, nil
		}
		for range 3 {
			clock.Advance(time.Second)
			if s := r.Read(); s.Disk != nil {
				t.Fatalf("Disk = %+v, want nil while no disk was found", s.Disk)
			}
		}
		if calls != 1 {
			t.Fatalf("FindBlockDevice ran %d times in 3 s, want once", calls)
		}
		clock.Advance(time.Minute)
		if s := r.Read(); s.Disk == nil || s.Disk.Name != "sda" {
			t.Fatalf("Disk a minute later = %+v (%v), want sda", s.Disk, s.Errors)
		}
		if calls != 2 {
			t.Fatalf("FindBlockDevice ran %d times, want twice", calls)
		}
	})

	t.Run("a passing lookup error is retried at once", func(t *testing.T) {
		calls := 0
		r := fixtureReader(filepath.Join("testdata", "nas"), 0, 0, clock)
		r.findDisk = func() (BlockDevice, error) {
			calls++
			if calls == 1 {
				return BlockDevice{}, errors.New("find disk of /srv/amwi: no such file or directory")
			}
			return BlockDevice{Name: "sda", Major: 8, Minor: 0}, nil
		}
		if s := r.Read(); !strings.Contains(s.Errors["disk"], "no such file") {
			t.Fatalf(`Errors["disk"] = %q, want the lookup error`, s.Errors["disk"])
		}
		clock.Advance(time.Second)
		if s := r.Read(); s.Disk == nil {
			t.Fatalf("Disk = nil (%v), want sda once the mirror root exists", s.Errors)
		}
	})

	t.Run("disk unplugged", func(t *testing.T) {
		root := copyFixture(t, "nas")
		r := fixtureReader(root, 8, 1, clock)
		if s := r.Read(); s.Disk == nil {
			t.Fatal(s.Errors)
		}
		writeFile(t, filepath.Join(root, "proc", "diskstats"), diskstatsLine(259, 0, "nvme0n1", 5, 20))
		clock.Advance(time.Second)
		if s := r.Read(); s.Disk != nil || !strings.Contains(s.Errors["disk"], "sda (8:0) is not in diskstats") {
			t.Fatalf("Disk = %+v, Errors[disk] = %q; want nil and the disk named", s.Disk, s.Errors["disk"])
		}
	})

	t.Run("thermal zones", func(t *testing.T) {
		root := copyFixture(t, "nas")
		thermal := filepath.Join(root, "sys", "class", "thermal")
		// A zone that cannot be read (iwlwifi's while the card is down) does not hide the others.
		if err := os.MkdirAll(filepath.Join(thermal, "thermal_zone2"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(thermal, "thermal_zone2", "temp"), "\n")
		r := fixtureReader(root, 8, 1, clock)
		if s := r.Read(); s.TempC == nil || *s.TempC != 41 || s.Errors["temp"] != "" {
			t.Fatalf("TempC = %v, Errors[temp] = %q; want 41 °C from the zones that read", s.TempC, s.Errors["temp"])
		}
		writeFile(t, filepath.Join(thermal, "thermal_zone0", "temp"), "warm\n")
		writeFile(t, filepath.Join(thermal, "thermal_zone1", "temp"), "\n")
		s := r.Read()
		if s.TempC != nil || !strings.Contains(s.Errors["temp"], "thermal_zone1/temp") {
			t.Fatalf("TempC = %v, Errors[temp] = %q; want nil and the files named", s.TempC, s.Errors["temp"])
		}
		// A zone that goes away (module unloaded) is noticed and the rest are found again.
		if err := os.RemoveAll(filepath.Join(thermal, "thermal_zone2")); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(thermal, "thermal_zone0", "temp"), "30500\n")
		r.Read() // notices zone2 is gone
		if s := r.Read(); s.TempC == nil || *s.TempC != 30.5 {
			t.Fatalf("TempC = %v (%v), want 30.5", s.TempC, s.Errors)
		}
	})
}

// TestReaderReal reads this machine: whatever it lacks (thermal zones in a VM, a disk
// under an overlay), CPU, memory, load and the filesystem are always there.
func TestReaderReal(t *testing.T) {
	r := &Reader{ProcRoot: "/proc", SysRoot: "/sys", MirrorRoot: t.TempDir()}
	r.Read()
	time.Sleep(20 * time.Millisecond)
	s := r.Read()
	t.Logf("snapshot: %+v", s)
	if s.CPU == nil || s.Memory == nil || s.Load == nil || s.FS == nil {
		t.Fatalf("Read() = %+v; CPU, Memory, Load and FS must be read (errors: %v)", s, s.Errors)
	}
	if len(s.CPU.PerCore) == 0 || s.CPU.Total < 0 || s.CPU.Total > 100 {
		t.Errorf("CPU = %+v", *s.CPU)
	}
	if s.Memory.TotalBytes == 0 || s.Memory.AvailableBytes > s.Memory.TotalBytes {
		t.Errorf("Memory = %+v", *s.Memory)
	}
	if s.FS.TotalBytes == 0 {
		t.Errorf("FS = %+v", *s.FS)
	}
	for _, source := range []string{"cpu", "memory", "load", "fs"} {
		if msg, ok := s.Errors[source]; ok {
			t.Errorf("Errors[%q] = %q", source, msg)
		}
	}
	if s.Disk == nil && s.Errors["disk"] == "" {
		t.Errorf("no Disk and no error saying why")
	}
	if s.TempC == nil && s.Errors["temp"] == "" {
		t.Errorf("no temperature and no error saying why")
	}
	if s.Uptime <= 0 {
		t.Errorf("Uptime = %v (%v)", s.Uptime, s.Errors["uptime"])
	}
}

// TestSnapshotJSON pins the names the web side serves as they are.
func TestSnapshotJSON(t *testing.T) {
	s := fixtureReader(filepath.Join("testdata", "rpi4"), 179, 2, &fakeClock{t: time.Unix(1.7e9, 0).UTC()}).Read()
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"time", "cpu.total", "cpu.per_core", "memory.total_bytes", "memory.available_bytes", "memory.used_percent",
		"memory.swap_total", "memory.swap_free", "load.load1", "load.load5", "load.load15", "uptime_ns",
		"fs.path", "fs.total_bytes", "fs.free_bytes", "fs.used_percent",
		"disk.name", "disk.busy_percent", "disk.read_bps", "disk.write_bps", "net", "temp_c", "board",
	} {
		var v any = m
		for _, k := range strings.Split(path, ".") {
			v = v.(map[string]any)[k]
		}
		if v == nil {
			t.Errorf("no %s in %s", path, data)
		}
	}
	iface := m["net"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "rx_bps", "tx_bps", "rx_bytes", "tx_bytes"} {
		if _, ok := iface[k]; !ok {
			t.Errorf("no net[0].%s in %s", k, data)
		}
	}
	if _, ok := m["errors"]; ok {
		t.Errorf("errors present with nothing failing: %s", data)
	}
}

// TestPhysicalInterfaces: by default only interfaces with a device are reported (the NAS
// fixture has a bridge, ifb, veth, tun and docker0 beside its one NIC); with
// AllInterfaces, or where no interface has a device (the Pi fixture stands for a
// container's /sys), all but lo are.
func TestPhysicalInterfaces(t *testing.T) {
	names := func(s Snapshot) string {
		var l []string
		for _, i := range s.Net {
			l = append(l, i.Name)
		}
		return strings.Join(l, " ")
	}
	clock := &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	r := fixtureReader(filepath.Join("testdata", "nas"), 8, 1, clock)
	if got := names(r.Read()); got != "enp2s0" {
		t.Errorf("nas: interfaces %q, want only enp2s0", got)
	}
	r = fixtureReader(filepath.Join("testdata", "nas"), 8, 1, clock)
	r.AllInterfaces = true
	if got := names(r.Read()); got != "br0 docker0 enp2s0 ifb0 tun0 vethab12cd" {
		t.Errorf("nas with AllInterfaces: %q", got)
	}
	r = fixtureReader(filepath.Join("testdata", "rpi4"), 179, 2, clock)
	if got := names(r.Read()); got != "eth0 wlan0" {
		t.Errorf("rpi4 (no interface has a device): %q, want every one but lo", got)
	}
}
