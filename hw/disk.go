package hw

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs/blockdevice"
	"golang.org/x/sys/unix"
)

// BlockDevice is the whole disk under a path (partitions map to their disk).
type BlockDevice struct {
	Name         string // e.g. "sda", "mmcblk0", "nvme0n1"
	Major, Minor uint32 // of the whole disk
}

func (d BlockDevice) String() string { return fmt.Sprintf("%s (%d:%d)", d.Name, d.Major, d.Minor) }

// ErrNoBlockDevice means the path lives on NFS, tmpfs, overlay, ZFS, …: there is no local
// disk to watch. Callers should run without disk throttling, not fail.
var ErrNoBlockDevice = errors.New("no local block device under this path")

// FindBlockDevice finds the whole disk holding path, reading procRoot/self/mountinfo and
// sysRoot/dev/block (empty roots mean /proc and /sys).
func FindBlockDevice(procRoot, sysRoot, path string) (BlockDevice, error) {
	// Resolve symlinks so that the mountinfo fallback in findBlockDevice compares the real
	// location against mount points.
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return BlockDevice{}, fmt.Errorf("find disk of %s: %w", path, err)
	}
	if real, err = filepath.Abs(real); err != nil {
		return BlockDevice{}, fmt.Errorf("find disk of %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(real, &st); err != nil {
		return BlockDevice{}, fmt.Errorf("find disk of %s: stat: %w", path, err)
	}
	dev := uint64(st.Dev) // uint32 on some GOARCHes
	d, err := findBlockDevice(procRoot, sysRoot, unix.Major(dev), unix.Minor(dev), real)
	if err != nil {
		return BlockDevice{}, fmt.Errorf("find disk of %s: %w", path, err)
	}
	return d, nil
}

// findBlockDevice is FindBlockDevice after the stat: major:minor is the path's st_dev and
// path its absolute, symlink-free form. It reads only under procRoot and sysRoot.
func findBlockDevice(procRoot, sysRoot string, major, minor uint32, path string) (BlockDevice, error) {
	procRoot, sysRoot = roots(procRoot, sysRoot)
	if major == 0 {
		// An anonymous device: st_dev names no disk. Filesystems that span devices (btrfs)
		// and those with no device at all (tmpfs, nfs, overlay) both land here; the mount's
		// source tells them apart.
		m, err := findMount(procRoot, major, minor, path)
		if err != nil {
			return BlockDevice{}, err
		}
		if !strings.HasPrefix(m.Source, "/dev/") {
			return BlockDevice{}, fmt.Errorf("%w: %s is %s from %q", ErrNoBlockDevice, m.MountPoint, m.FSType, m.Source)
		}
		if major, minor, err = sysDevNumber(sysRoot, m.Source); err != nil {
			return BlockDevice{}, fmt.Errorf("%s (%s on %s): %w", m.Source, m.FSType, m.MountPoint, err)
		}
	}
	return wholeDisk(sysRoot, major, minor)
}

func roots(procRoot, sysRoot string) (string, string) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	if sysRoot == "" {
		sysRoot = "/sys"
	}
	return procRoot, sysRoot
}

// findMount returns the mount whose device is major:minor or, failing that, the innermost
// mount holding path. The fallback is for btrfs: files in a subvolume report the
// subvolume's own anonymous st_dev, while mountinfo shows the filesystem's.
func findMount(procRoot string, major, minor uint32, path string) (mount, error) {
	file := filepath.Join(procRoot, "self", "mountinfo")
	data, err := os.ReadFile(file)
	if err != nil {
		return mount{}, fmt.Errorf("device %d:%d: %w", major, minor, err)
	}
	mounts, err := parseMountinfo(data)
	if err != nil {
		return mount{}, fmt.Errorf("parse %s: %w", file, err)
	}
	best := -1
	for i, m := range mounts {
		if m.Major == major && m.Minor == minor {
			best = i // a later mount of the same device hides an earlier one: keep the last
		}
	}
	if best < 0 && path != "" {
		for i, m := range mounts {
			if under(path, m.MountPoint) && (best < 0 || len(m.MountPoint) >= len(mounts[best].MountPoint)) {
				best = i
			}
		}
	}
	if best < 0 {
		return mount{}, fmt.Errorf("%w: device %d:%d is not mounted according to %s", ErrNoBlockDevice, major, minor, file)
	}
	return mounts[best], nil
}

// under reports whether path is mountPoint or inside it.
func under(path, mountPoint string) bool {
	if mountPoint == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == mountPoint || strings.HasPrefix(path, mountPoint+"/")
}

// sysDevNumber returns the major:minor of the /dev node source, as sysfs knows it.
func sysDevNumber(sysRoot, source string) (uint32, uint32, error) {
	name := strings.TrimPrefix(source, "/dev/")
	var dir string
	if mapped, ok := strings.CutPrefix(name, "mapper/"); ok {
		// /dev/mapper/NAME (LVM, LUKS) is a symlink to /dev/dm-N; sysfs has the NAME in
		// block/dm-N/dm/name.
		var err error
		if dir, err = dmDir(sysRoot, mapped); err != nil {
			return 0, 0, err
		}
	} else {
		// sysfs spells a '/' in a device name as '!' (cciss/c0d0 is cciss!c0d0).
		dir = filepath.Join(sysRoot, "class", "block", strings.ReplaceAll(name, "/", "!"))
	}
	file := filepath.Join(dir, "dev")
	data, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, 0, fmt.Errorf("no block device %q in sysfs: %w", name, err)
		}
		return 0, 0, err
	}
	major, minor, err := parseDevNumber(data)
	if err != nil {
		return 0, 0, fmt.Errorf("parse %s: %w", file, err)
	}
	return major, minor, nil
}

func dmDir(sysRoot, name string) (string, error) {
	names, err := filepath.Glob(filepath.Join(sysRoot, "block", "dm-*", "dm", "name"))
	if err != nil {
		return "", err
	}
	for _, file := range names {
		data, err := os.ReadFile(file)
		if err == nil && string(bytes.TrimSpace(data)) == name {
			return filepath.Dir(filepath.Dir(file)), nil
		}
	}
	return "", fmt.Errorf("no device-mapper device named %q under %s", name, filepath.Join(sysRoot, "block"))
}

// wholeDisk maps a block device number to its disk: a partition's sysfs directory sits
// inside its disk's and holds a "partition" file.
func wholeDisk(sysRoot string, major, minor uint32) (BlockDevice, error) {
	link := filepath.Join(sysRoot, "dev", "block", fmt.Sprintf("%d:%d", major, minor))
	dir, err := filepath.EvalSymlinks(link)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return BlockDevice{}, fmt.Errorf("block device %d:%d has no %s (is sysfs mounted?): %w", major, minor, link, err)
		}
		return BlockDevice{}, fmt.Errorf("block device %d:%d: %w", major, minor, err)
	}
	_, err = os.Stat(filepath.Join(dir, "partition"))
	switch {
	case err == nil:
		dir = filepath.Dir(dir)
		file := filepath.Join(dir, "dev")
		data, err := os.ReadFile(file)
		if err != nil {
			return BlockDevice{}, fmt.Errorf("disk of partition %d:%d: %w", major, minor, err)
		}
		if major, minor, err = parseDevNumber(data); err != nil {
			return BlockDevice{}, fmt.Errorf("parse %s: %w", file, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return BlockDevice{}, fmt.Errorf("block device %d:%d: %w", major, minor, err)
	}
	// diskstats names the disk as the kernel does, with '/' where sysfs has '!'.
	name := strings.ReplaceAll(filepath.Base(dir), "!", "/")
	return BlockDevice{Name: name, Major: major, Minor: minor}, nil
}

// parseDevNumber parses a sysfs "dev" file: "179:0\n".
func parseDevNumber(data []byte) (major, minor uint32, err error) {
	s := strings.TrimSpace(string(data))
	maj, min, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not MAJOR:MINOR", s)
	}
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%q is not MAJOR:MINOR", s)
	}
	return uint32(ma), uint32(mi), nil
}

// mount is the part of a /proc/PID/mountinfo line that FindBlockDevice needs.
type mount struct {
	Major, Minor uint32
	MountPoint   string
	FSType       string
	Source       string
}

// parseMountinfo parses /proc/PID/mountinfo (see proc(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//	(1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
//
// Field 7 repeats zero or more times until the "-".
func parseMountinfo(data []byte) ([]mount, error) {
	var mounts []mount
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		sep := -1
		for j := 6; j < len(f); j++ {
			if f[j] == "-" {
				sep = j
				break
			}
		}
		if sep < 0 || len(f) < sep+3 {
			return nil, fmt.Errorf("line %d: want ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - FSTYPE SOURCE ..., got %q", i+1, line)
		}
		major, minor, err := parseDevNumber([]byte(f[2]))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		mounts = append(mounts, mount{
			Major:      major,
			Minor:      minor,
			MountPoint: unescapeOctal(f[4]),
			FSType:     f[sep+1],
			Source:     unescapeOctal(f[sep+2]),
		})
	}
	return mounts, nil
}

// unescapeOctal undoes the kernel's escaping of space, tab, newline and backslash as \ooo
// in mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }

// DiskBusy samples how busy a disk is from procRoot/diskstats (io_ticks: milliseconds
// spent doing I/O). It is not safe for concurrent use: each caller that samples on its
// own schedule needs its own DiskBusy.
type DiskBusy struct {
	file string
	dev  BlockDevice
	now  func() time.Time

	fs    blockdevice.FS
	fsErr error

	primed    bool
	lastTicks uint64
	lastTime  time.Time
}

// NewDiskBusy returns a sampler for dev. An empty procRoot means /proc; a nil now means
// time.Now. Problems with procRoot show up as errors from Sample.
func NewDiskBusy(procRoot string, dev BlockDevice, now func() time.Time) *DiskBusy {
	procRoot, _ = roots(procRoot, "")
	if now == nil {
		now = time.Now
	}
	// Diskstats never touches sysfs, so procRoot doubles as the sys root: that keeps the
	// sampler working where /sys is not mounted.
	fsys, err := blockdevice.NewFS(procRoot, procRoot)
	return &DiskBusy{
		file:  filepath.Join(procRoot, "diskstats"),
		dev:   dev,
		now:   now,
		fs:    fsys,
		fsErr: err,
	}
}

// Sample returns the busy percentage (0–100) since the previous call, from the change of
// io_ticks over the change of wall time. The first call primes and returns 0, and so does
// the call after an error, which restarts the measurement.
func (d *DiskBusy) Sample() (float64, error) {
	ticks, err := d.ioTicks()
	if err != nil {
		d.primed = false
		return 0, err
	}
	now := d.now()
	lastTicks, lastTime, primed := d.lastTicks, d.lastTime, d.primed
	d.lastTicks, d.lastTime, d.primed = ticks, now, true
	if !primed {
		return 0, nil
	}
	elapsed := now.Sub(lastTime)
	if elapsed <= 0 {
		return 0, fmt.Errorf("disk %s: clock did not advance between samples (%v)", d.dev, elapsed)
	}
	if ticks < lastTicks {
		// io_ticks is an unsigned int in the kernel: it wraps after 49.7 days of I/O, and
		// restarts when the device is replaced under the same number.
		return 0, fmt.Errorf("%s: io_ticks of %s went back from %d to %d (counter wrapped or device replaced)",
			d.file, d.dev, lastTicks, ticks)
	}
	busy := float64(ticks-lastTicks) / (float64(elapsed) / float64(time.Millisecond)) * 100
	// io_ticks advances in jiffies, so a short window can show a little over 100%.
	return min(max(busy, 0), 100), nil
}

func (d *DiskBusy) ioTicks() (uint64, error) {
	if d.fsErr != nil {
		return 0, fmt.Errorf("read %s for disk %s: %w", d.file, d.dev, d.fsErr)
	}
	stats, err := d.fs.ProcDiskstats()
	if err != nil {
		return 0, fmt.Errorf("read %s for disk %s: %w", d.file, d.dev, err)
	}
	for _, s := range stats {
		if d.matches(s.Info) {
			return s.IOsTotalTicks, nil
		}
	}
	return 0, fmt.Errorf("disk %s is not in %s (unplugged?)", d.dev, d.file)
}

// matches compares device numbers, which the kernel keeps unique; the name is only a
// fallback for a BlockDevice built by hand without them.
func (d *DiskBusy) matches(info blockdevice.Info) bool {
	if d.dev.Major == 0 && d.dev.Minor == 0 {
		return info.DeviceName == d.dev.Name
	}
	return info.MajorNumber == d.dev.Major && info.MinorNumber == d.dev.Minor
}
