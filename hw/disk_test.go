package hw

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func fixture(name string) (procRoot, sysRoot string) {
	return filepath.Join("testdata", name, "proc"), filepath.Join("testdata", name, "sys")
}

func TestFindBlockDevice(t *testing.T) {
	tests := []struct {
		name         string
		fixture      string
		major, minor uint32
		path         string
		want         BlockDevice
		wantErr      error  // checked with errors.Is
		wantErrText  string // and/or a substring of the message
	}{
		{name: "sd card partition maps to its disk", fixture: "rpi4", major: 179, minor: 2, path: "/srv/mirror",
			want: BlockDevice{Name: "mmcblk0", Major: 179, Minor: 0}},
		{name: "boot partition", fixture: "rpi4", major: 179, minor: 1, path: "/boot/firmware/config.txt",
			want: BlockDevice{Name: "mmcblk0", Major: 179, Minor: 0}},
		{name: "whole disk stays itself", fixture: "rpi4", major: 179, minor: 0, path: "/mnt/raw",
			want: BlockDevice{Name: "mmcblk0", Major: 179, Minor: 0}},
		{name: "nfs has no disk", fixture: "rpi4", major: 0, minor: 45, path: "/mnt/nas/arch",
			wantErr: ErrNoBlockDevice, wantErrText: `/mnt/nas is nfs4 from "nas.local:/export/arch"`},
		{name: "tmpfs has no disk", fixture: "rpi4", major: 0, minor: 24, path: "/run/amwi",
			wantErr: ErrNoBlockDevice, wantErrText: "tmpfs"},

		{name: "nvme partition", fixture: "nas", major: 259, minor: 2, path: "/var/lib/amwi",
			want: BlockDevice{Name: "nvme0n1", Major: 259, Minor: 0}},
		{name: "sata partition", fixture: "nas", major: 8, minor: 1, path: "/mnt/sda1",
			want: BlockDevice{Name: "sda", Major: 8, Minor: 0}},
		{name: "whole sata disk", fixture: "nas", major: 8, minor: 16, path: "/mnt/sdb",
			want: BlockDevice{Name: "sdb", Major: 8, Minor: 16}},
		{name: "device mapper is its own disk", fixture: "nas", major: 253, minor: 0, path: "/srv/lvm",
			want: BlockDevice{Name: "dm-0", Major: 253, Minor: 0}},
		{name: "btrfs (major 0) via mountinfo source", fixture: "nas", major: 0, minor: 40, path: "/srv/mirror/pool",
			want: BlockDevice{Name: "sda", Major: 8, Minor: 0}},
		{name: "btrfs subvolume with its own st_dev falls back to the mount point", fixture: "nas", major: 0, minor: 77, path: "/srv/mirror/snapshots/1",
			want: BlockDevice{Name: "sda", Major: 8, Minor: 0}},
		{name: "btrfs on /dev/mapper with an escaped mount point", fixture: "nas", major: 0, minor: 42, path: "/srv/archive old/x",
			want: BlockDevice{Name: "dm-0", Major: 253, Minor: 0}},
		{name: "tmpfs inside the mirror is not the mirror's disk", fixture: "nas", major: 0, minor: 51, path: "/srv/mirror/tmp/x",
			wantErr: ErrNoBlockDevice, wantErrText: "tmpfs"},
		{name: "overlay", fixture: "nas", major: 0, minor: 50, path: "/var/lib/docker/overlay2/3f1c/merged/srv",
			wantErr: ErrNoBlockDevice, wantErrText: "overlay"},
		{name: "nfs", fixture: "nas", major: 0, minor: 43, path: "/mnt/backup",
			wantErr: ErrNoBlockDevice, wantErrText: "192.168.1.5:/volume1/backup"},
		{name: "missing sys entry", fixture: "nas", major: 8, minor: 32, path: "/mnt/sdc",
			wantErrText: "block device 8:32 has no testdata/nas/sys/dev/block/8:32 (is sysfs mounted?)"},
		{name: "mount source missing from sysfs", fixture: "nas", major: 0, minor: 52, path: "/srv/ghost",
			wantErrText: `/dev/sdz1 (btrfs on /srv/ghost): no block device "sdz1" in sysfs`},
		{name: "sysfs missing altogether", fixture: "nosuch", major: 8, minor: 1, path: "/",
			wantErrText: "block device 8:1 has no testdata/nosuch/sys/dev/block/8:1"},
		{name: "mountinfo missing", fixture: "nosuch", major: 0, minor: 40, path: "/",
			wantErrText: "testdata/nosuch/proc/self/mountinfo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc, sys := fixture(tt.fixture)
			got, err := findBlockDevice(proc, sys, tt.major, tt.minor, tt.path)
			if tt.wantErr == nil && tt.wantErrText == "" {
				if err != nil {
					t.Fatalf("findBlockDevice(%d:%d) error: %v", tt.major, tt.minor, err)
				}
				if got != tt.want {
					t.Fatalf("findBlockDevice(%d:%d) = %+v, want %+v", tt.major, tt.minor, got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("findBlockDevice(%d:%d) = %+v, want an error", tt.major, tt.minor, got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q is not %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && errors.Is(err, ErrNoBlockDevice) {
				t.Errorf("error %q claims there is no block device; want a real failure", err)
			}
			if !strings.Contains(err.Error(), tt.wantErrText) {
				t.Errorf("error %q does not contain %q", err, tt.wantErrText)
			}
		})
	}
}

// TestFindBlockDeviceReal runs the stat wrapper on this machine. Test directories often sit
// on overlay or tmpfs (containers, CI), so "no disk" is a fine answer; any other error is not.
func TestFindBlockDeviceReal(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dir, link} {
		dev, err := FindBlockDevice("/proc", "/sys", path)
		switch {
		case errors.Is(err, ErrNoBlockDevice):
			t.Logf("%s: %v", path, err)
		case err != nil:
			t.Fatalf("FindBlockDevice(%s): %v", path, err)
		case dev.Name == "":
			t.Fatalf("FindBlockDevice(%s) = %+v: no name", path, dev)
		default:
			t.Logf("%s is on %s", path, dev)
			// The disk it found must be one DiskBusy can sample.
			if _, err := NewDiskBusy("/proc", dev, nil).Sample(); err != nil {
				t.Errorf("sample %s: %v", dev, err)
			}
		}
	}
	if _, err := FindBlockDevice("/proc", "/sys", filepath.Join(dir, "missing")); err == nil || errors.Is(err, ErrNoBlockDevice) {
		t.Errorf("FindBlockDevice(missing path) error = %v, want a stat error", err)
	}
}

func TestParseMountinfo(t *testing.T) {
	data := "29 1 179:2 / / rw,noatime shared:1 - ext4 /dev/mmcblk0p2 rw\n" +
		"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:3 - ext3 /dev/root rw,errors=continue\n" +
		"40 29 0:40 / /srv/with\\040space\\134x rw - tmpfs my\\011tmp rw\n" +
		"41 29 0:41 / /nofields rw - proc proc rw\n" +
		"\n"
	got, err := parseMountinfo([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := []mount{
		{Major: 179, Minor: 2, MountPoint: "/", FSType: "ext4", Source: "/dev/mmcblk0p2"},
		{Major: 98, Minor: 0, MountPoint: "/mnt2", FSType: "ext3", Source: "/dev/root"},
		{Major: 0, Minor: 40, MountPoint: `/srv/with space\x`, FSType: "tmpfs", Source: "my\ttmp"},
		{Major: 0, Minor: 41, MountPoint: "/nofields", FSType: "proc", Source: "proc"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseMountinfo =\n%+v\nwant\n%+v", got, want)
	}

	for _, bad := range []string{
		"29 1 179:2 / / rw shared:1 ext4 /dev/mmcblk0p2 rw",    // no separator
		"29 1 179:2 / / rw - ext4",                             // no source
		"29 1 179-2 / / rw - ext4 /dev/mmcblk0p2 rw",           // bad device
		"29 1 179:99999999999 / / rw - ext4 /dev/mmcblk0p2 rw", // minor too large
		"29 1 179:2 / - rw ext4 /dev/mmcblk0p2 rw",             // "-" too early
	} {
		if m, err := parseMountinfo([]byte(bad)); err == nil {
			t.Errorf("parseMountinfo(%q) = %+v, want an error", bad, m)
		}
	}
}

func FuzzParseMountinfo(f *testing.F) {
	for _, name := range []string{"rpi4", "nas"} {
		proc, _ := fixture(name)
		data, err := os.ReadFile(filepath.Join(proc, "self", "mountinfo"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`1 2 0:1 / /a\0 rw - x \\ y`))
	f.Fuzz(func(t *testing.T, data []byte) {
		mounts, err := parseMountinfo(data)
		if err != nil && mounts != nil {
			t.Errorf("parseMountinfo returned both mounts and %v", err)
		}
	})
}

func TestParseDevNumber(t *testing.T) {
	for in, want := range map[string][2]uint32{"179:0\n": {179, 0}, "259:12": {259, 12}, " 8:1 \n": {8, 1}} {
		ma, mi, err := parseDevNumber([]byte(in))
		if err != nil || ma != want[0] || mi != want[1] {
			t.Errorf("parseDevNumber(%q) = %d, %d, %v; want %d:%d", in, ma, mi, err, want[0], want[1])
		}
	}
	for _, in := range []string{"", "179", "179:", ":0", "a:b", "-1:0", "1:2:3", "4294967296:0"} {
		if ma, mi, err := parseDevNumber([]byte(in)); err == nil {
			t.Errorf("parseDevNumber(%q) = %d:%d, want an error", in, ma, mi)
		}
	}
}

// fakeClock is a settable clock for DiskBusy.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// diskstatsLine renders one /proc/diskstats line with the given number of fields (14 before
// Linux 4.18, 18 until 5.5, 20 since), io_ticks being the 13th.
func diskstatsLine(major, minor int, name string, ioTicks uint64, fields int) string {
	stats := []uint64{12517, 4361, 1009362, 46235, 5032, 6280, 221232, 88410, 0, ioTicks, 139390, 0, 0, 0, 0, 1248, 4744}
	s := fmt.Sprintf("%4d %7d %s", major, minor, name)
	for _, v := range stats[:fields-3] {
		s += fmt.Sprintf(" %d", v)
	}
	return s + "\n"
}

func TestDiskBusy(t *testing.T) {
	mmc := BlockDevice{Name: "mmcblk0", Major: 179, Minor: 0}
	for _, fields := range []int{14, 18, 20} {
		t.Run(fmt.Sprintf("%d fields", fields), func(t *testing.T) {
			proc := t.TempDir()
			write := func(ticks uint64) {
				t.Helper()
				data := diskstatsLine(7, 0, "loop0", 999999, fields) +
					diskstatsLine(179, 0, "mmcblk0", ticks, fields) +
					diskstatsLine(179, 2, "mmcblk0p2", ticks+7777, fields)
				if err := os.WriteFile(filepath.Join(proc, "diskstats"), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
			d := NewDiskBusy(proc, mmc, clock.Now)

			steps := []struct {
				name    string
				ticks   uint64
				elapsed time.Duration
				want    float64
				wantErr string
			}{
				{name: "first sample primes", ticks: 1000, want: 0},
				{name: "500 ms busy in 1 s", ticks: 1500, elapsed: time.Second, want: 50},
				{name: "idle", ticks: 1500, elapsed: time.Second, want: 0},
				{name: "busy 250 ms in 2 s", ticks: 1750, elapsed: 2 * time.Second, want: 12.5},
				{name: "jiffy rounding above 100% clamps", ticks: 2770, elapsed: time.Second, want: 100},
				{name: "sub-second window", ticks: 2770 + 90, elapsed: 100 * time.Millisecond, want: 90},
				{name: "counter wrap is an error", ticks: 5, elapsed: time.Second,
					wantErr: "io_ticks of mmcblk0 (179:0) went back from 2860 to 5"},
				{name: "after a wrap the next sample measures again", ticks: 105, elapsed: time.Second, want: 10},
				{name: "clock standing still is an error", ticks: 200, elapsed: 0, wantErr: "clock did not advance"},
			}
			for _, s := range steps {
				write(s.ticks)
				clock.Advance(s.elapsed)
				got, err := d.Sample()
				if s.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), s.wantErr) {
						t.Fatalf("%s: Sample() = %v, %v; want error containing %q", s.name, got, err, s.wantErr)
					}
					if !strings.Contains(err.Error(), "diskstats") && !strings.Contains(err.Error(), "clock") {
						t.Errorf("%s: error %q does not name the file", s.name, err)
					}
					continue
				}
				if err != nil || got != s.want {
					t.Fatalf("%s: Sample() = %v, %v; want %v", s.name, got, err, s.want)
				}
			}
		})
	}
}

func TestDiskBusyErrors(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	sda := BlockDevice{Name: "sda", Major: 8, Minor: 0}

	t.Run("device vanishes", func(t *testing.T) {
		proc := t.TempDir()
		file := filepath.Join(proc, "diskstats")
		writeFile(t, file, diskstatsLine(8, 0, "sda", 100, 20)+diskstatsLine(8, 1, "sda1", 100, 20))
		d := NewDiskBusy(proc, sda, clock.Now)
		if _, err := d.Sample(); err != nil {
			t.Fatal(err)
		}
		writeFile(t, file, diskstatsLine(8, 1, "sda1", 100, 20))
		clock.Advance(time.Second)
		_, err := d.Sample()
		if err == nil || !strings.Contains(err.Error(), "disk sda (8:0) is not in "+file) {
			t.Fatalf("Sample() error = %v, want it to name sda and %s", err, file)
		}
		// Plugged back in: the measurement restarts rather than spanning the gap.
		writeFile(t, file, diskstatsLine(8, 0, "sda", 0, 20))
		clock.Advance(time.Second)
		if got, err := d.Sample(); got != 0 || err != nil {
			t.Fatalf("Sample() after replug = %v, %v; want 0 (priming)", got, err)
		}
	})
	t.Run("file missing", func(t *testing.T) {
		proc := t.TempDir()
		_, err := NewDiskBusy(proc, sda, clock.Now).Sample()
		if err == nil || !strings.Contains(err.Error(), filepath.Join(proc, "diskstats")) || !strings.Contains(err.Error(), "sda") {
			t.Fatalf("Sample() error = %v, want it to name the file and the disk", err)
		}
	})
	t.Run("proc root missing", func(t *testing.T) {
		_, err := NewDiskBusy(filepath.Join(t.TempDir(), "nosuch"), sda, clock.Now).Sample()
		if err == nil || !strings.Contains(err.Error(), "nosuch") {
			t.Fatalf("Sample() error = %v, want it to name the missing root", err)
		}
	})
	t.Run("matched by number, not name", func(t *testing.T) {
		proc := t.TempDir()
		writeFile(t, filepath.Join(proc, "diskstats"), diskstatsLine(8, 0, "sdb", 100, 18))
		if _, err := NewDiskBusy(proc, sda, clock.Now).Sample(); err != nil {
			t.Fatalf("Sample() of a renamed disk: %v", err)
		}
		byName := NewDiskBusy(proc, BlockDevice{Name: "sdb"}, clock.Now)
		if _, err := byName.Sample(); err != nil {
			t.Fatalf("Sample() by name only: %v", err)
		}
	})
}

// TestDiskBusyFixtures checks that the fixture trees agree with themselves: the disk
// FindBlockDevice finds is one DiskBusy can read.
func TestDiskBusyFixtures(t *testing.T) {
	for _, tt := range []struct {
		fixture      string
		major, minor uint32
	}{{"rpi4", 179, 2}, {"nas", 8, 1}, {"nas", 259, 1}, {"nas", 0, 42}} {
		proc, sys := fixture(tt.fixture)
		dev, err := findBlockDevice(proc, sys, tt.major, tt.minor, "/")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewDiskBusy(proc, dev, nil).Sample(); err != nil {
			t.Errorf("%s %d:%d → %s: %v", tt.fixture, tt.major, tt.minor, dev, err)
		}
	}
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
