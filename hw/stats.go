package hw

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/blockdevice"
	"golang.org/x/sys/unix"
)

// Snapshot is the machine at one moment. A nil field means that source could not be read;
// Errors says why (source name → message), so the dashboard shows what it could read.
//
// Snapshots handed out by a Reader or a Sampler share their slices and maps with the
// Sampler's history: treat them as read-only.
type Snapshot struct {
	Time   time.Time     `json:"time"`
	CPU    *CPU          `json:"cpu"`
	Memory *Memory       `json:"memory"`
	Load   *Load         `json:"load"`
	Uptime time.Duration `json:"uptime_ns"` // 0 when unknown (Errors["uptime"])
	FS     *FS           `json:"fs"`
	Disk   *Disk         `json:"disk"`
	Net    []Iface       `json:"net"`    // the counted interfaces (see Reader.AllInterfaces), by name; nil when unreadable
	TempC  *float64      `json:"temp_c"` // the hottest thermal zone
	Board  string        `json:"board"`  // "Raspberry Pi 4 Model B Rev 1.4", "HPE ProLiant …"; "" when unknown
	// Errors names the sources that failed: "cpu", "memory", "load", "uptime", "fs",
	// "disk", "net", "temp", "board". Nil when everything was read.
	Errors map[string]string `json:"errors,omitempty"`
}

// CPU is the share of time the processors were busy since the previous Read (since boot
// for the first one): everything but idle and iowait.
type CPU struct {
	Total   float64   `json:"total"`    // 0–100, all cores together
	PerCore []float64 `json:"per_core"` // 0–100, indexed by CPU number; an offline core shows 0
}

// Memory is /proc/meminfo in bytes.
type Memory struct {
	TotalBytes     uint64  `json:"total_bytes"`
	AvailableBytes uint64  `json:"available_bytes"` // MemAvailable, or MemFree+Buffers+Cached on kernels before 3.14
	UsedPercent    float64 `json:"used_percent"`    // of TotalBytes not available
	SwapTotal      uint64  `json:"swap_total"`      // bytes
	SwapFree       uint64  `json:"swap_free"`       // bytes
}

// Load is the load average over 1, 5 and 15 minutes.
type Load struct {
	Load1  float64 `json:"load1"`
	Load5  float64 `json:"load5"`
	Load15 float64 `json:"load15"`
}

// FS is the filesystem holding the mirror.
type FS struct {
	Path        string  `json:"path"`
	TotalBytes  uint64  `json:"total_bytes"`
	FreeBytes   uint64  `json:"free_bytes"`   // available to the daemon (f_bavail): root's reserve excluded
	UsedPercent float64 `json:"used_percent"` // as df(1) computes it
}

// Disk is the block device holding the mirror, since the previous Read.
type Disk struct {
	Name        string  `json:"name"`
	BusyPercent float64 `json:"busy_percent"` // share of wall time with I/O in flight, 0–100
	ReadBps     float64 `json:"read_bps"`     // bytes per second
	WriteBps    float64 `json:"write_bps"`
}

// Iface is one network interface: rates since the previous Read and totals since boot
// (or since the interface appeared).
type Iface struct {
	Name    string  `json:"name"`
	RxBps   float64 `json:"rx_bps"` // bytes per second
	TxBps   float64 `json:"tx_bps"`
	RxBytes uint64  `json:"rx_bytes"`
	TxBytes uint64  `json:"tx_bytes"`
}

// NetRate is the counted interfaces' receive and send rates added up, in bytes per second:
// the one network figure the dashboard's pulse, its history and its charts show.
func (s Snapshot) NetRate() (rx, tx float64) {
	for _, i := range s.Net {
		rx, tx = rx+i.RxBps, tx+i.TxBps
	}
	return rx, tx
}

// diskRecheck is how often Reader looks again for the mirror's disk: a USB disk may be
// mounted over the mirror root after the daemon started, or be swapped.
const diskRecheck = time.Minute

// Reader reads one Snapshot; rates and percentages are deltas from its previous Read.
// It is not safe for concurrent use: one Sampler owns it.
type Reader struct {
	ProcRoot, SysRoot string // "/proc", "/sys" when empty; fixture trees in tests
	MirrorRoot        string // path whose filesystem and disk are reported
	Now               func() time.Time
	// AllInterfaces reports every network interface but lo. By default only physical
	// ones are (those with SYS/class/net/NAME/device): virtual ones (bridges, veth, ifb,
	// tun, docker0) carry the same bytes again, so a sum over all of them counts a
	// download two or three times and makes "in" and "out" read alike. Where no interface
	// has a device (a container), all but lo are reported.
	AllInterfaces bool

	// Seams for tests; nil means the real thing.
	statfs   func(path string, st *unix.Statfs_t) error // unix.Statfs
	findDisk func() (BlockDevice, error)                // FindBlockDevice of MirrorRoot

	proc   *procfs.FS
	blocks *blockdevice.FS

	cpu     []cpuTimes // the previous reading: [0] all cores, [1+n] core n
	cpuNext []cpuTimes // the buffer for the next one

	net      map[string]ifaceCounters
	netTime  time.Time
	physical map[string]bool // interface name → has a device, looked up once per name

	disk     BlockDevice
	diskErr  error
	diskAt   time.Time // when disk was looked up; zero forces a lookup
	diskPrev diskCounters
	diskTime time.Time // of diskPrev; zero when there is none

	zones []string // thermal zone temp files, found once

	boardRead bool
	board     string
	boardErr  error
}

type cpuTimes struct{ busy, total float64 }

type ifaceCounters struct{ rx, tx uint64 }

type diskCounters struct{ readSectors, writeSectors, ioTicks uint64 }

// Read reads every source. A failing source leaves its field nil (or zero) and an entry in
// Errors; it never stops the others.
func (r *Reader) Read() Snapshot {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	s := Snapshot{Time: now()}
	s.try("cpu", func() (err error) { s.CPU, err = r.readCPU(); return })
	s.try("memory", func() (err error) { s.Memory, err = r.readMemory(); return })
	s.try("load", func() (err error) { s.Load, err = r.readLoad(); return })
	s.try("uptime", func() (err error) { s.Uptime, err = r.readUptime(); return })
	s.try("fs", func() (err error) { s.FS, err = r.readFS(); return })
	s.try("disk", func() (err error) { s.Disk, err = r.readDisk(s.Time); return })
	s.try("net", func() (err error) { s.Net, err = r.readNet(s.Time); return })
	s.try("temp", func() (err error) { s.TempC, err = r.readTemp(); return })
	s.try("board", func() (err error) { s.Board, err = r.readBoard(); return })
	return s
}

// try runs one source. It recovers a panic too: the parsers of procfs index fields without
// checking their count, and a truncated line must cost one tile, not the dashboard.
func (s *Snapshot) try(source string, read func() error) {
	defer func() {
		if p := recover(); p != nil {
			s.fail(source, fmt.Errorf("panic: %v", p))
		}
	}()
	if err := read(); err != nil {
		s.fail(source, err)
	}
}

func (s *Snapshot) fail(source string, err error) {
	if s.Errors == nil {
		s.Errors = make(map[string]string)
	}
	s.Errors[source] = err.Error()
}

func (r *Reader) procFS() (*procfs.FS, error) {
	if r.proc == nil {
		procRoot, _ := roots(r.ProcRoot, r.SysRoot)
		fsys, err := procfs.NewFS(procRoot)
		if err != nil {
			return nil, err // tried again on the next Read
		}
		r.proc = &fsys
	}
	return r.proc, nil
}

func (r *Reader) readCPU() (*CPU, error) {
	p, err := r.procFS()
	if err != nil {
		return nil, err
	}
	st, err := p.Stat()
	if err != nil {
		return nil, err
	}
	if len(st.CPU) == 0 {
		return nil, errors.New("no per-CPU lines in stat")
	}
	cores := 0
	for id := range st.CPU {
		if id < 0 || id > 1<<16 {
			return nil, fmt.Errorf("stat: implausible CPU number %d", id)
		}
		cores = max(cores, int(id)+1)
	}
	// Two buffers take turns holding the previous and the current reading.
	cur := r.cpuNext
	if cap(cur) < 1+cores {
		cur = make([]cpuTimes, 1+cores)
	}
	cur = cur[:1+cores]
	clear(cur)
	cur[0] = cpuTimesOf(st.CPUTotal)
	for id, c := range st.CPU {
		cur[1+id] = cpuTimesOf(c)
	}
	prev := func(i int) cpuTimes { // zero, that is boot, for the first Read or a new core
		if i < len(r.cpu) {
			return r.cpu[i]
		}
		return cpuTimes{}
	}
	c := &CPU{Total: busyPercent(prev(0), cur[0]), PerCore: make([]float64, cores)}
	for i := range c.PerCore {
		c.PerCore[i] = busyPercent(prev(1+i), cur[1+i])
	}
	r.cpu, r.cpuNext = cur, r.cpu
	return c, nil
}

// cpuTimesOf sums a /proc/stat cpu line. Guest time is left out: the kernel already counts
// it in user and nice.
func cpuTimesOf(c procfs.CPUStat) cpuTimes {
	total := c.User + c.Nice + c.System + c.Idle + c.Iowait + c.IRQ + c.SoftIRQ + c.Steal
	return cpuTimes{busy: total - c.Idle - c.Iowait, total: total}
}

// busyPercent is the busy share between two readings of one CPU line, 0–100. Counters
// that went back (a core taken offline and back, the kernel's iowait accounting, which
// may decrease) give 0 rather than nonsense.
func busyPercent(prev, cur cpuTimes) float64 {
	total, busy := cur.total-prev.total, cur.busy-prev.busy
	if !(total > 0) || !(busy >= 0) {
		return 0
	}
	return min(busy/total*100, 100)
}

func (r *Reader) readMemory() (*Memory, error) {
	p, err := r.procFS()
	if err != nil {
		return nil, err
	}
	mi, err := p.Meminfo()
	if err != nil {
		return nil, err
	}
	return memoryOf(mi)
}

// memoryOf turns parsed meminfo into Memory.
func memoryOf(mi procfs.Meminfo) (*Memory, error) {
	val := func(p *uint64) uint64 {
		if p == nil {
			return 0
		}
		return *p
	}
	if val(mi.MemTotalBytes) == 0 {
		return nil, errors.New("meminfo has no MemTotal")
	}
	m := &Memory{
		TotalBytes: *mi.MemTotalBytes,
		SwapTotal:  val(mi.SwapTotalBytes),
		SwapFree:   val(mi.SwapFreeBytes),
	}
	if mi.MemAvailableBytes != nil {
		m.AvailableBytes = *mi.MemAvailableBytes
	} else {
		// Kernels before 3.14 have no MemAvailable; free plus page cache is the estimate
		// free(1) used then. It is high (not all cache can be dropped), never low.
		m.AvailableBytes = val(mi.MemFreeBytes) + val(mi.BuffersBytes) + val(mi.CachedBytes)
	}
	m.AvailableBytes = min(m.AvailableBytes, m.TotalBytes)
	m.UsedPercent = float64(m.TotalBytes-m.AvailableBytes) / float64(m.TotalBytes) * 100
	return m, nil
}

func (r *Reader) readLoad() (*Load, error) {
	p, err := r.procFS()
	if err != nil {
		return nil, err
	}
	l, err := p.LoadAvg()
	if err != nil {
		return nil, err
	}
	return &Load{Load1: l.Load1, Load5: l.Load5, Load15: l.Load15}, nil
}

func (r *Reader) readUptime() (time.Duration, error) {
	procRoot, _ := roots(r.ProcRoot, r.SysRoot)
	file := filepath.Join(procRoot, "uptime")
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	d, err := parseUptime(data)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", file, err)
	}
	return d, nil
}

// parseUptime parses /proc/uptime: seconds since boot, then idle seconds summed over
// all CPUs ("350735.47 1386532.90\n").
func parseUptime(data []byte) (time.Duration, error) {
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0, errors.New("empty")
	}
	secs, err := strconv.ParseFloat(f[0], 64)
	if err != nil || math.IsNaN(secs) || secs < 0 || secs > float64(math.MaxInt64/int64(time.Second)) {
		return 0, fmt.Errorf("%q is not a number of seconds", f[0])
	}
	return time.Duration(secs * float64(time.Second)), nil
}

func (r *Reader) readFS() (*FS, error) {
	if r.MirrorRoot == "" {
		return nil, errors.New("no mirror root set")
	}
	statfs := r.statfs
	if statfs == nil {
		statfs = unix.Statfs
	}
	var st unix.Statfs_t
	if err := statfs(r.MirrorRoot, &st); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", r.MirrorRoot, err)
	}
	return fsOf(r.MirrorRoot, &st), nil
}

// FreeBytes is what a user may still write on the filesystem holding path (df's
// "Available"): the one statfs(2) reading that the dashboard and the sync's space checks
// share.
func FreeBytes(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return fsOf(path, &st).FreeBytes, nil
}

// fsOf turns statfs(2) into FS. Block counts are in f_frsize units (f_bsize on kernels
// that leave it 0). UsedPercent is df's: used over what a user could ever have, so a disk
// whose free space is all root's reserve shows 100 %.
func fsOf(path string, st *unix.Statfs_t) *FS {
	unit := uint64(st.Frsize)
	if unit == 0 {
		unit = uint64(st.Bsize)
	}
	blocks, free, avail := uint64(st.Blocks), uint64(st.Bfree), uint64(st.Bavail)
	free = min(free, blocks)
	avail = min(avail, free)
	f := &FS{Path: path, TotalBytes: blocks * unit, FreeBytes: avail * unit}
	if used := blocks - free; used+avail > 0 {
		f.UsedPercent = float64(used) / float64(used+avail) * 100
	}
	return f
}

func (r *Reader) readDisk(now time.Time) (*Disk, error) {
	if r.MirrorRoot == "" {
		return nil, errors.New("no mirror root set")
	}
	if r.diskAt.IsZero() || now.Sub(r.diskAt) >= diskRecheck || now.Before(r.diskAt) {
		find := r.findDisk
		if find == nil {
			find = func() (BlockDevice, error) { return FindBlockDevice(r.ProcRoot, r.SysRoot, r.MirrorRoot) }
		}
		dev, err := find()
		if err != nil || dev != r.disk {
			r.diskTime = time.Time{} // another disk: its counters are not comparable
		}
		r.disk, r.diskErr, r.diskAt = dev, err, now
		if err != nil && !errors.Is(err, ErrNoBlockDevice) {
			r.diskAt = time.Time{} // a passing problem (mirror root not there yet): look again next time
		}
	}
	if errors.Is(r.diskErr, ErrNoBlockDevice) {
		return nil, errors.New("not on a local disk")
	}
	if r.diskErr != nil {
		return nil, r.diskErr
	}

	if r.blocks == nil {
		procRoot, _ := roots(r.ProcRoot, r.SysRoot)
		// As in NewDiskBusy: diskstats never touches sysfs.
		fsys, err := blockdevice.NewFS(procRoot, procRoot)
		if err != nil {
			return nil, err
		}
		r.blocks = &fsys
	}
	stats, err := r.blocks.ProcDiskstats()
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(stats, func(s blockdevice.Diskstats) bool { return sameDisk(r.disk, s.Info) })
	if i < 0 {
		r.diskAt, r.diskTime = time.Time{}, time.Time{}
		return nil, fmt.Errorf("disk %s is not in diskstats (unplugged?)", r.disk)
	}
	cur := diskCounters{stats[i].ReadSectors, stats[i].WriteSectors, stats[i].IOsTotalTicks}
	prev, prevTime := r.diskPrev, r.diskTime
	r.diskPrev, r.diskTime = cur, now
	d := &Disk{Name: r.disk.Name}
	if prevTime.IsZero() {
		return d, nil
	}
	secs := now.Sub(prevTime).Seconds()
	d.ReadBps = rate(prev.readSectors, cur.readSectors, secs) * procfs.SectorSize
	d.WriteBps = rate(prev.writeSectors, cur.writeSectors, secs) * procfs.SectorSize
	// io_ticks is in milliseconds and advances in jiffies: clamp the rounding above 100 %.
	d.BusyPercent = min(rate(prev.ioTicks, cur.ioTicks, secs)/1000*100, 100)
	return d, nil
}

// sameDisk matches by device number, which the kernel keeps unique, and by name only for
// a BlockDevice without one (as DiskBusy does).
func sameDisk(d BlockDevice, info blockdevice.Info) bool {
	if d.Major == 0 && d.Minor == 0 {
		return info.DeviceName == d.Name
	}
	return info.MajorNumber == d.Major && info.MinorNumber == d.Minor
}

// rate is the per-second change of a counter; 0 when it went back (reboot, wrap, a device
// replaced) or no time passed.
func rate(prev, cur uint64, secs float64) float64 {
	if cur < prev || !(secs > 0) {
		return 0
	}
	return float64(cur-prev) / secs
}

func (r *Reader) readNet(now time.Time) ([]Iface, error) {
	p, err := r.procFS()
	if err != nil {
		return nil, err
	}
	nd, err := p.NetDev()
	if err != nil {
		return nil, err
	}
	var secs float64
	if !r.netTime.IsZero() {
		secs = now.Sub(r.netTime).Seconds()
	}
	if r.net == nil {
		r.net = make(map[string]ifaceCounters, len(nd))
	}
	ifaces := make([]Iface, 0, len(nd))
	physicalOnly := !r.AllInterfaces && r.anyPhysical(nd)
	for name, l := range nd {
		if name == "lo" || physicalOnly && !r.physical[name] {
			continue
		}
		i := Iface{Name: name, RxBytes: l.RxBytes, TxBytes: l.TxBytes}
		if prev, ok := r.net[name]; ok { // a new interface starts at 0 B/s
			i.RxBps = rate(prev.rx, l.RxBytes, secs)
			i.TxBps = rate(prev.tx, l.TxBytes, secs)
		}
		ifaces = append(ifaces, i)
	}
	// Reuse the map: forget interfaces that went away, update the rest.
	for name := range r.net {
		if _, ok := nd[name]; !ok {
			delete(r.net, name)
		}
	}
	for name := range r.physical {
		if _, ok := nd[name]; !ok {
			delete(r.physical, name)
		}
	}
	for name, l := range nd {
		r.net[name] = ifaceCounters{l.RxBytes, l.TxBytes}
	}
	r.netTime = now
	slices.SortFunc(ifaces, func(a, b Iface) int { return strings.Compare(a.Name, b.Name) })
	return ifaces, nil
}

// anyPhysical looks up (once per name) which interfaces are physical, and reports whether
// any is.
func (r *Reader) anyPhysical(nd procfs.NetDev) bool {
	_, sysRoot := roots(r.ProcRoot, r.SysRoot)
	if r.physical == nil {
		r.physical = make(map[string]bool, len(nd))
	}
	any := false
	for name := range nd {
		phys, ok := r.physical[name]
		if !ok {
			_, err := os.Stat(filepath.Join(sysRoot, "class", "net", name, "device"))
			phys = err == nil
			r.physical[name] = phys
		}
		any = any || phys
	}
	return any
}

func (r *Reader) readTemp() (*float64, error) {
	_, sysRoot := roots(r.ProcRoot, r.SysRoot)
	if r.zones == nil {
		dir := filepath.Join(sysRoot, "class", "thermal")
		files, err := filepath.Glob(filepath.Join(dir, "thermal_zone*", "temp"))
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("no thermal zone in %s", dir)
		}
		r.zones = files
	}
	var hottest *float64
	var errs []error
	for _, file := range r.zones {
		c, err := readMilliCelsius(file)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				r.zones = nil // a zone went away (module unloaded): list them again next time
			}
			errs = append(errs, err)
			continue
		}
		if hottest == nil || c > *hottest {
			hottest = &c
		}
	}
	if hottest == nil {
		// Some zones fail to read by design (a Wi-Fi card's zone while it is down gives
		// ENODATA), so errors matter only when no zone could be read.
		return nil, errors.Join(errs...)
	}
	return hottest, nil
}

func readMilliCelsius(file string) (float64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	c, err := parseMilliCelsius(data)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", file, err)
	}
	return c, nil
}

// parseMilliCelsius parses a thermal zone's temp file: millidegrees Celsius ("48312\n").
func parseMilliCelsius(data []byte) (float64, error) {
	s := strings.TrimSpace(string(data))
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not millidegrees Celsius", s)
	}
	// A driver's error code or garbage, not a temperature: no board runs below -100 °C or
	// above 300 °C, and a chart scaled to 10^15 °C says nothing.
	if v < -100_000 || v > 300_000 {
		return 0, fmt.Errorf("%q millidegrees Celsius is no temperature", s)
	}
	return float64(v) / 1000, nil
}

// readBoard runs once: the model does not change while the daemon runs.
func (r *Reader) readBoard() (string, error) {
	if !r.boardRead {
		r.board, r.boardErr = readBoard(r.ProcRoot, r.SysRoot)
		r.boardRead = true
	}
	return r.board, r.boardErr
}

// readBoard names the machine: the device tree's model on boards that have one (the
// Raspberry Pis and other SBCs), else the DMI names x86 firmware gives. A machine with
// neither (a container without /sys/class/dmi) is "" without an error.
func readBoard(procRoot, sysRoot string) (string, error) {
	procRoot, sysRoot = roots(procRoot, sysRoot)
	data, err := os.ReadFile(filepath.Join(procRoot, "device-tree", "model"))
	switch {
	case err == nil:
		if m := parseModel(data); m != "" {
			return m, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	dmi := filepath.Join(sysRoot, "class", "dmi", "id")
	var names [4]string
	for i, f := range []string{"sys_vendor", "product_name", "board_vendor", "board_name"} {
		data, err := os.ReadFile(filepath.Join(dmi, f))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		names[i] = string(data)
	}
	return dmiBoard(names[0], names[1], names[2], names[3]), nil
}

// parseModel parses a device tree "model" property: a NUL-terminated string.
func parseModel(data []byte) string {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i]
	}
	return cleanName(string(data))
}

// dmiBoard names an x86 machine from DMI: "vendor product", from the system's names or,
// when the firmware left those as placeholders (as on many boards sold on their own), the
// mainboard's.
func dmiBoard(sysVendor, productName, boardVendor, boardName string) string {
	join := func(vendor, product string) string {
		vendor, product = cleanDMI(vendor), cleanDMI(product)
		switch {
		case product == "":
			return ""
		case vendor == "" || strings.HasPrefix(strings.ToLower(product), strings.ToLower(vendor)):
			return product
		}
		return vendor + " " + product
	}
	if s := join(sysVendor, productName); s != "" {
		return s
	}
	return join(boardVendor, boardName)
}

// dmiPlaceholders are what firmware writes when the maker filled nothing in.
var dmiPlaceholders = []string{
	"to be filled by o.e.m.", "system manufacturer", "system product name", "default string",
	"not specified", "not applicable", "none", "unknown", "o.e.m.", "oem", "type1productconfigid",
}

func cleanDMI(s string) string {
	s = cleanName(s)
	if slices.Contains(dmiPlaceholders, strings.ToLower(s)) {
		return ""
	}
	return s
}

// cleanName trims a name read from firmware and keeps it printable.
func cleanName(s string) string {
	s = strings.ToValidUTF8(s, string(utf8.RuneError))
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) { // control characters, odd spaces
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}
