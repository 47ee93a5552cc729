package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amwi/amwi/daemon/auth"
	"github.com/amwi/amwi/internal/units"
)

// RepairOptions says where repair starts from.
type RepairOptions struct {
	// Source is the file to salvage: "" is the state dir's database, whose unreadable
	// parts are filled from the daily backups, and which is replaced by the newest good
	// backup when nothing of it is readable.
	Source string
	Now    time.Time
}

// RepairReport says what a repair did.
type RepairReport struct {
	Path   string // the new database
	Source string // the file it was read from
	// From says which of the source's roots was used, e.g. "meta page 1 (transaction 812)".
	From string
	// Kept counts the records written, per top-level bucket (those filled in included).
	Kept map[string]uint64
	// Dropped lists records that did not decode (or bbolt would not take).
	Dropped  []string
	DroppedN int
	// Sessions is how many login sessions were dropped: everyone signs in again, so that
	// a session deleted (logged out) in a transaction lost to the damage cannot return.
	Sessions uint64
	// Unread lists what of the source could not be read.
	Unread  []string
	UnreadN int
	// Filled says what was taken from an older copy (the file's previous transaction, a
	// daily backup) for what could not be read, one line per bucket and copy.
	Filled []string
	// Incomplete names the buckets that stay short of records: nothing older had them.
	Incomplete []string
	// Loose counts, per bucket, the records taken from leaf pages no tree reaches any more
	// (a file cut short; see loose.go): only for keys no other copy had, and of unknown
	// age. LooseUsers names the accounts among them: one deleted before the damage may be
	// back, or have an old password.
	Loose      map[string]uint64
	LooseUsers []string
	// LooseFrom is the file those pages were read from: the damaged database (where it is
	// kept after the repair), not the backup a repair that fell back started from.
	LooseFrom string
	// UnknownAgeUsers names the accounts read from the primary root when it is of unknown
	// age (no meta page led anywhere: a root found by scanning the pages, or one whose meta
	// page's checksum fails). A stale top-level page still in the file holds what an old
	// transaction held, and wins over every backup: an account deleted since, or re-made
	// with another password or role, may be back as it was then.
	UnknownAgeUsers []string
	// Admins lists the administrators among LooseUsers and UnknownAgeUsers: an old copy
	// may make an administrator of an account that no longer is one.
	Admins []string
	// DamagedUsers names the accounts whose record in the source's tree was damaged (a
	// value running past its page, a key out of order or naming another user): each is
	// lost, not restored from an older copy (the previous transaction, a backup, a loose
	// page, a root of unknown age), which may hold what was since deleted, demoted or
	// given a new password; only a copy that is the damaged record itself is used.
	// DamagedLeftOut says which older copies were left out, per account.
	DamagedUsers   []string
	DamagedLeftOut []string
	// LooseLeftOut lists the keys found on loose pages with differing values (an old and
	// a new password hash) and in no other copy: left out, as nothing tells which is newer.
	LooseLeftOut  []string
	LooseLeftOutN int
	// Old is where the database that was replaced is kept ("" when there was none).
	Old string
	// FellBack: the database had nothing readable, so the newest good backup was used.
	FellBack bool
	// Notes say what else may be lost, e.g. the last transaction.
	Notes []string
}

// copyBatch bounds the records written per transaction: a salvage of a big file must not
// hold it all in memory on a 512 MB board.
const copyBatch = 5000

// Repair writes what is readable of the state dir's database (or of o.Source) into a new
// database that replaces it; the file it replaces is kept beside it as
// amwi.db.before-repair-TIME. Nothing is deleted. The state dir must not be in use.
//
// What of the file cannot be read is filled, bucket by bucket, from older copies, the
// most trusted first: the file's previous transaction, the daily backups (newest first),
// then roots whose meta page is damaged or that a scan of the pages found. A filled bucket
// gets only the records it lacks: what was read from the file, newer, always wins.
func Repair(dir string, o RepairOptions) (*RepairReport, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	path := filepath.Join(dir, FileName)
	// Hold the state dir's lock throughout, so no daemon starts halfway and no other
	// repair runs, with or without a database to lock.
	dl, err := lockDir(dir, 0)
	if errors.Is(err, ErrLocked) {
		return nil, fmt.Errorf("repair %s: %w: stop `amwi serve` (systemctl stop amwi), or let the other repair finish, first", path, ErrLocked)
	} else if err != nil {
		return nil, fmt.Errorf("repair: lock state dir: %w", err)
	}
	defer dl.Close()
	// And the database's own, which older versions of amwi take alone.
	cur, err := openFile(path, os.O_RDONLY)
	var nf *NotFileError
	switch {
	case errors.As(err, &nf):
		return nil, err
	case errors.Is(err, fs.ErrNotExist):
		cur = nil
		if o.Source == "" {
			return nil, fmt.Errorf("repair: there is no %s; to restore a backup, use --from-backup", path)
		}
	case err != nil:
		return nil, fmt.Errorf("repair %s: %w", path, err)
	default:
		defer cur.Close()
		if err := lockFile(cur, true, 0); errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("repair %s: %w: stop `amwi serve` (systemctl stop amwi) first", path, ErrLocked)
		} else if err != nil {
			return nil, fmt.Errorf("repair %s: lock: %w", path, err)
		}
	}
	removeRepairLeftovers(dir)

	src, srcPath := cur, path
	if o.Source != "" {
		f, err := openFile(o.Source, os.O_RDONLY)
		if err != nil {
			return nil, fmt.Errorf("repair: %w", err)
		}
		defer f.Close()
		src, srcPath = f, o.Source
	}
	// The good backups, for the state dir's own database only: a file named with --from
	// is taken as it is.
	var backups []*os.File
	if o.Source == "" {
		for _, b := range Backups(dir) {
			if rep, err := CheckFile(b, time.Second); err != nil || !rep.OK() {
				continue
			}
			f, err := openFile(b, os.O_RDONLY)
			if err != nil {
				continue
			}
			defer f.Close()
			backups = append(backups, f)
		}
	}
	damaged := srcPath // the file whose loose pages may be read, whatever the repair starts from
	plan, err := planSalvage(src, srcPath)
	if err != nil {
		return nil, fmt.Errorf("repair: read %s: %w", srcPath, err)
	}
	fellBack := false
	if plan == nil {
		// The file's tree reaches nothing (cut short): its loose pages fill what the
		// backup lacks.
		loose := lazyScan(src, sizeOf(src))
		for i, b := range backups {
			if plan, err = planSalvage(b, b.Name()); err == nil && plan != nil {
				src, srcPath, fellBack = b, b.Name(), true
				backups = backups[i+1:]
				plan.loose, plan.looseAll = loose, true
				break
			}
		}
	} else {
		plan.loose = plan.pages
	}
	if plan == nil {
		return nil, fmt.Errorf("repair: nothing of %s is readable as a bbolt database, and there is no good backup to start from", srcPath)
	}
	// The older copies to fill from, in the order they are trusted.
	more := func() []source {
		out := plan.older
		for _, b := range backups {
			bf, err := readMetas(b, sizeOf(b))
			if err == nil {
				m := bf.newest()
				out = append(out, source{f: bf, m: m, from: fmt.Sprintf("the backup %s (transaction %d)", b.Name(), m.txid)})
			}
		}
		return append(append(out, plan.doubtful...), plan.scan()...)
	}

	tmp, err := os.CreateTemp(dir, repairTemp)
	if err != nil {
		return nil, fmt.Errorf("repair: %w", err)
	}
	tmp.Close()
	done := false
	defer func() {
		if !done {
			os.Remove(tmp.Name())
		}
	}()
	rep, err := salvage(plan, more, tmp.Name())
	if err != nil {
		return nil, fmt.Errorf("repair: write %s: %w", tmp.Name(), err)
	}
	rep.Source, rep.FellBack = srcPath, fellBack
	if len(rep.Loose) > 0 {
		rep.LooseFrom = damaged
	}
	rep.Notes = append(plan.notes, rep.Notes...)
	if chk, err := CheckFile(tmp.Name(), time.Second); err != nil {
		return nil, fmt.Errorf("repair: check the new database: %w; nothing was replaced", err)
	} else if !chk.OK() {
		return nil, fmt.Errorf("repair: the new database fails its check (%s); nothing was replaced", chk.Problems[0])
	}

	// Root repairs what the service's user opens: the new file gets the old one's owner
	// (the state dir's when there was none), or the daemon could not open it.
	ref := dir
	if cur != nil {
		ref = path
	}
	if err := sameOwner(tmp.Name(), ref); err != nil {
		return nil, fmt.Errorf("repair: %w; nothing was replaced", err)
	}
	if cur != nil {
		// A second repair within the second (repair, then --from-backup) gets a name of
		// its own: nothing kept is ever overwritten.
		base := path + ".before-repair-" + o.Now.Format("20060102-150405")
		rep.Old = base
		for i := 2; ; i++ {
			err := keepAside(path, rep.Old)
			if err == nil {
				break
			}
			if !errors.Is(err, fs.ErrExist) || i > 100 {
				return nil, fmt.Errorf("repair: keep %s: %w; nothing was replaced", path, err)
			}
			rep.Old = fmt.Sprintf("%s-%d", base, i)
		}
		if rep.LooseFrom == path {
			rep.LooseFrom = rep.Old
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("repair: %w", err)
	}
	done = true
	rep.Path = path
	if err := syncDir(dir); err != nil {
		return rep, fmt.Errorf("repair: %w", err)
	}
	return rep, nil
}

// repairTemp is the name of the file repair writes before renaming it into place, as
// os.CreateTemp takes it (* becomes digits).
const repairTemp = FileName + ".repair-*"

// isRepairTemp says whether the file name is one os.CreateTemp made from repairTemp.
func isRepairTemp(name string) bool {
	rest, ok := strings.CutPrefix(name, strings.TrimSuffix(repairTemp, "*"))
	return ok && rest != "" && strings.Trim(rest, "0123456789") == ""
}

// removeRepairLeftovers removes what a repair cut short (killed, a power cut) left in the
// state dir dir: its new database, as big as the old one, on what may be a small SD card.
// The caller holds the state dir's lock: no repair is running. It returns what it removed.
func removeRepairLeftovers(dir string) []string {
	des, _ := os.ReadDir(dir)
	var out []string
	for _, de := range des {
		if de.Type().IsRegular() && isRepairTemp(de.Name()) {
			if p := filepath.Join(dir, de.Name()); os.Remove(p) == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// RemoveRepairLeftovers removes what a repair cut short left in the state dir dir, unless
// a process holds the state dir: a repair running, or the store open (which removed them
// as it opened). It returns what it removed.
func RemoveRepairLeftovers(dir string) ([]string, error) {
	dl, err := lockDir(dir, 0)
	if errors.Is(err, ErrLocked) || errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock state dir: %w", err)
	}
	defer dl.Close()
	return removeRepairLeftovers(dir), nil
}

// sameOwner gives the file at path the owner and group of ref, when running as root.
func sameOwner(path, ref string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(ref)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return os.Chown(path, int(st.Uid), int(st.Gid))
}

func sizeOf(f *os.File) int64 {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

// keepAside gives the file at path a second name, old, durably; a copy where the
// filesystem has no hard links.
func keepAside(path, old string) error {
	err := os.Link(path, old)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(old, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(old)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(old)
		return err
	}
	return out.Close()
}

// source is a tree repair can copy from: the root of one transaction in a file.
type source struct {
	f    *boltFile
	m    metaPage
	from string // for the report, e.g. "meta page 1 (transaction 812)"
}

// salvagePlan is where repair reads a file from: the primary root, and the file's other
// roots to fill from, split by trust.
type salvagePlan struct {
	primary source
	// older: the other meta page, one transaction older; whole, since bbolt frees its pages
	// only after a later transaction.
	older []source
	// doubtful: meta pages whose checksum fails; scan: roots found by scanning the pages,
	// whose pages a later transaction may have reused. After the backups.
	doubtful []source
	scan     func() []source
	// pages is the scan of the file's pages, made once when first asked for.
	pages func() *pageScan
	// loose is the scan of the damaged file whose loose pages (see loose.go) fill, last,
	// the buckets its tree did not read whole; all of them with looseAll, when nothing of
	// its tree was read (the primary is a backup). nil: none.
	loose    func() *pageScan
	looseAll bool
	notes    []string
	// newestLost: the primary is not the newest transaction, which is unreadable; a bucket
	// it created is missing from the primary (see salvage).
	newestLost bool
	// unknownAge: the primary is a doubtful or scanned root, of unknown age.
	unknownAge bool
}

// planSalvage picks the root to copy from: the newest meta page bbolt would use when its
// tree reaches any record, else the other one; when neither does, whichever reaches the
// most records of the meta pages whose checksum fails but whose fields make sense and the
// leaf pages that look like the top level of this store (they hold the "meta" bucket).
// nil: nothing readable. name is the file's name, for the report.
func planSalvage(r *os.File, name string) (*salvagePlan, error) {
	fi, err := r.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size == 0 {
		return nil, nil
	}
	p := &salvagePlan{}
	var good []source
	f, ferr := readMetas(r, size)
	if ferr == nil {
		for _, m := range []metaPage{f.newest(), f.other()} {
			if m.ok() {
				good = append(good, source{f: f, m: m, from: fmt.Sprintf("meta page %d (transaction %d)", m.slot, m.txid)})
			}
		}
	}
	// Meta pages with a bad checksum, at any page size bbolt may have used.
	buf := make([]byte, pageHeaderSize+metaSize)
	for slot, off := range []int64{0, -1} {
		for ps := uint64(512); ps <= 1<<20; ps <<= 1 {
			at := off
			if at < 0 {
				at = int64(ps)
			}
			if at+int64(len(buf)) > size {
				break
			}
			if _, err := r.ReadAt(buf, at); err != nil {
				break
			}
			m := parseMeta(buf, slot)
			if !m.ok() && m.plausible && (slot == 0 || m.pageSize == ps) {
				p.doubtful = append(p.doubtful, source{f: &boltFile{r: r, size: size, pageSize: m.pageSize}, m: m,
					from: fmt.Sprintf("meta page %d of %s (transaction %d, its checksum fails)", slot, name, m.txid)})
			}
			if slot == 0 {
				break
			}
		}
	}
	p.pages = lazyScan(r, size)
	p.scan = func() []source { return scanRoots(p.pages(), name) }
	reach := func(s source) uint64 {
		w := newWalker(s.f, s.m)
		w.walk()
		n := uint64(0)
		for _, c := range w.res.records() {
			n += c
		}
		return n
	}
	primary := -1
	for i, s := range good {
		if reach(s) > 0 {
			primary = i
			break
		}
	}
	if primary >= 0 {
		p.primary = good[primary]
		p.older = append(good[:primary:primary], good[primary+1:]...)
		if primary > 0 {
			p.newestLost = true
			p.notes = append(p.notes, fmt.Sprintf("the newest transaction (%d) reaches no record; the one before it was used: the last write before the damage is lost", good[0].m.txid))
		}
	} else {
		// No meta page leads anywhere: the best of the doubtful roots and the scanned ones.
		cands := append(append([]source(nil), p.doubtful...), p.scan()...)
		best, bestN := -1, uint64(0)
		for i, c := range cands {
			if n := reach(c); n > bestN {
				best, bestN = i, n
			}
		}
		if best < 0 {
			return nil, nil
		}
		p.primary = cands[best]
		// The others are still worth filling from, after the backups.
		p.doubtful = slices.Delete(cands, best, best+1)
		p.scan = func() []source { return nil }
		p.newestLost, p.unknownAge = true, true
		p.notes = append(p.notes, "no meta page leads to a readable tree: what the newest transactions wrote may be lost")
	}
	if ferr == nil {
		for _, m := range f.metas {
			if !m.ok() {
				p.notes = append(p.notes, fmt.Sprintf("meta page %d was damaged (%s): if it held the newest transaction, the last write before the damage is lost", m.slot, m.problem))
			}
		}
	}
	return p, nil
}

// scanRoots returns the top-level pages scan found as roots to read from. For a file
// whose meta pages are both gone.
func scanRoots(scan *pageScan, name string) []source {
	if scan == nil {
		return nil
	}
	var out []source
	for _, id := range scan.tops {
		out = append(out, source{f: scan.f, m: metaPage{pageSize: scan.f.pageSize, root: id, freelist: noFreelist, hwm: scan.pages},
			from: fmt.Sprintf("top-level page %d of %s, found by scanning (of unknown age)", id, name)})
	}
	return out
}

// pageScan is what a look at every page of a file found: the leaf pages, the top level of
// this store (pages holding a bucket named "meta") apart. nil: no page size fits.
type pageScan struct {
	f     *boltFile
	pages uint64   // whole pages in the file
	tops  []uint64 // at most 8
	// leaves are the other leaf pages, but those the newest meta page's freelist lists as
	// free (stale copies, see looseRecords); free counts those.
	leaves []uint64
	free   int
}

// scanPages reads the header of every page at each page size bbolt may have used, and
// takes the first size at which most pages carry their own number.
func scanPages(r *os.File, size int64) *pageScan {
	hdr := make([]byte, pageHeaderSize)
	for _, ps := range []uint64{4096, 16384, 65536, 8192, 1024, 2048, 32768} {
		pages := uint64(size) / ps
		if pages < 3 {
			continue
		}
		s := &pageScan{f: &boltFile{r: r, size: size, pageSize: ps}, pages: pages}
		matched := uint64(0)
		for id := uint64(2); id < pages; id++ {
			if _, err := r.ReadAt(hdr, int64(id*ps)); err != nil || ne.Uint64(hdr) != id {
				continue
			}
			matched++
			if ne.Uint16(hdr[8:]) != flagLeaf {
				continue
			}
			p := s.page(id)
			if p == nil {
				continue
			}
			if len(s.tops) < 8 && holdsMeta(p) {
				s.tops = append(s.tops, id)
			} else {
				s.leaves = append(s.leaves, id)
			}
		}
		if matched*2 < pages-2 {
			continue // not this page size: most pages do not carry their own number
		}
		s.dropFree()
		return s
	}
	return nil
}

// holdsMeta says whether the leaf page p holds a bucket named "meta".
func holdsMeta(p []byte) bool {
	n, ok := elements(p)
	for i := 0; ok && i < n; i++ {
		off := pageHeaderSize + i*elementSize
		k, ok := span(p, off, ne.Uint32(p[off+4:]), ne.Uint32(p[off+8:]))
		if ok && ne.Uint32(p[off:]) == flagBucket && bytes.Equal(k, bucketMeta) {
			return true
		}
	}
	return false
}

// page reads page id with its overflow pages; nil when they run past the end of the file.
func (s *pageScan) page(id uint64) []byte {
	ps := s.f.pageSize
	hdr := make([]byte, pageHeaderSize)
	if _, err := s.f.r.ReadAt(hdr, int64(id*ps)); err != nil || ne.Uint64(hdr) != id {
		return nil
	}
	overflow := uint64(ne.Uint32(hdr[12:]))
	if overflow >= s.pages-id {
		return nil
	}
	p := make([]byte, (overflow+1)*ps)
	if _, err := s.f.r.ReadAt(p, int64(id*ps)); err != nil {
		return nil
	}
	return p
}

// dropFree takes the pages the freelist lists as free out of s.leaves, when the newest
// meta page bbolt would use names a freelist page inside the file. (amwi keeps none since
// it syncs no freelist; files of older versions do.)
func (s *pageScan) dropFree() {
	f, err := readMetas(s.f.r, s.f.size)
	if err != nil || f.pageSize != s.f.pageSize {
		return
	}
	id := f.newest().freelist
	if id == noFreelist || id >= s.pages {
		return
	}
	p := s.page(id)
	if p == nil || ne.Uint16(p[8:]) != flagFreelist {
		return
	}
	start, count, problem := freeList(p)
	if problem != "" {
		return
	}
	free := map[uint64]bool{}
	for i := uint64(0); i < count; i++ {
		free[ne.Uint64(p[start+i*8:])] = true
	}
	n := len(s.leaves)
	s.leaves = slices.DeleteFunc(s.leaves, func(id uint64) bool { return free[id] })
	s.free = n - len(s.leaves)
}

// lazyScan returns a function that scans the pages of r the first time it is called.
func lazyScan(r *os.File, size int64) func() *pageScan {
	var s *pageScan
	done := false
	return func() *pageScan {
		if !done {
			s, done = scanPages(r, size), true
		}
		return s
	}
}

// salvage copies what the tree of primary holds into a new database at dst, then fills
// what of it could not be read from the sources more returns, in order (see Repair).
func salvage(plan *salvagePlan, more func() []source, dst string) (*RepairReport, error) {
	primary := plan.primary
	db, err := bolt.Open(dst, 0o600, &bolt.Options{NoFreelistSync: true, Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	c := &copier{db: db}
	rep := &RepairReport{From: primary.from, Kept: map[string]uint64{}, Loose: map[string]uint64{}}
	var dropped problems
	var maxRun uint64
	// keep is the walkers' onValue; added, when set (filling in from fillFrom), hears each
	// record written.
	var added func(top string, k []byte)
	fillFrom := ""
	lastAdmin := false // the account keep wrote last is an administrator
	hurt := damagedUsers{older: map[string][]string{}}
	keep := func(path [][]byte, k, v []byte) {
		top := string(path[0])
		if len(path) == 1 && top == string(bucketSessions) {
			if added == nil {
				rep.Sessions++
			}
			return
		}
		users := len(path) == 1 && top == string(bucketUsers)
		if why := badRecord(path, k, v); why != "" {
			dropped.add("%s %s: %s", quotePath(path), quoteKey(k), why)
			if users && added == nil {
				hurt.add(userNames(k, v), v)
			}
			return
		}
		if users && added != nil && hurt.leaveOut(string(k), v, fillFrom) {
			return
		}
		ok, err := c.put(path, k, v, added != nil)
		if err != nil {
			dropped.add("%s %s: %v", quotePath(path), quoteKey(k), err)
			return
		}
		if !ok {
			return // filling in: the file's newer record stays
		}
		if len(path) == 1 && top == string(bucketRuns) && len(k) == 8 {
			// Run ids come from the bucket's sequence: never below a kept run's id, or a
			// new run would overwrite it.
			maxRun = max(maxRun, binary.BigEndian.Uint64(k))
		}
		rep.Kept[top]++
		if top == string(bucketUsers) && len(path) == 1 {
			var u auth.User
			lastAdmin = json.Unmarshal(v, &u) == nil && u.Admin
		}
		if added != nil {
			added(top, k)
		} else if plan.unknownAge && top == string(bucketUsers) && len(path) == 1 {
			rep.UnknownAgeUsers = append(rep.UnknownAgeUsers, string(k))
			if lastAdmin {
				rep.Admins = append(rep.Admins, string(k))
			}
		}
	}
	w := newWalker(primary.f, primary.m)
	w.onBucket = func(path [][]byte, seq uint64) { c.bucket(path, seq) }
	w.onValue = keep
	w.onDamaged = func(path [][]byte, k, v []byte, outOfOrder bool) {
		if len(path) != 1 || string(path[0]) != string(bucketUsers) {
			return
		}
		if outOfOrder && badRecord(path, k, v) == "" {
			// Its key and its value name the same account: the key is whole, and the
			// damage is in the one before it (or in a branch page's bounds). This copy is
			// newer than any other.
			keep(path, k, v)
			return
		}
		hurt.add(userNames(k, v), v)
	}
	err = guard(func() error { w.walk(); return nil })
	res := w.res

	// What to fill: the buckets read in part, and, when the top level itself was damaged,
	// any bucket the file may have lost whole.
	need := map[string]bool{}
	for name := range res.damaged {
		need[name] = true
	}
	have := func(name string) bool { _, ok := res.counts[name]; return ok }
	// An older root than the newest lacks the buckets made since: the accounts bucket of a
	// young database, made with the first account, is in the backup but not in the
	// transaction before it.
	anyMissing := res.topDamaged() || plan.newestLost
	delete(need, string(bucketSessions))
	// The buckets the file's tree did not read whole, for its loose pages.
	short, anyShort := map[string]bool{}, false
	for _, b := range looseBuckets {
		name := string(b)
		short[name] = plan.looseAll || need[name] || (anyMissing && !have(name))
		anyShort = anyShort || short[name]
	}
	if err == nil && (len(need) > 0 || anyMissing) {
		for _, s := range more() {
			if len(need) == 0 && !anyMissing {
				break
			}
			fw := newWalker(s.f, s.m)
			fw.only = func(name string) bool {
				return name != string(bucketSessions) && (need[name] || (anyMissing && !have(name)))
			}
			fw.onBucket = func(path [][]byte, seq uint64) { c.bucket(path, seq) }
			fw.onValue = keep
			got := map[string]uint64{}
			users := []string{}
			fillFrom = s.from
			added = func(top string, k []byte) {
				got[top]++
				if top == string(bucketUsers) && len(users) < 20 {
					users = append(users, string(k))
				}
			}
			err = guard(func() error { fw.walk(); return nil })
			added = nil
			if err != nil {
				break
			}
			for _, name := range slices.Sorted(maps.Keys(got)) {
				line := fmt.Sprintf("%s: %s from %s", quoteKey([]byte(name)), units.Plural(int(got[name]), "record"), s.from)
				if name == string(bucketUsers) {
					line += fmt.Sprintf(" (%s: an account deleted since that copy would be back; check the list)", strings.Join(users, ", "))
				}
				rep.Filled = append(rep.Filled, line)
			}
			for name := range fw.res.counts {
				if fw.res.damaged[name] == 0 {
					delete(need, name) // whole there: nothing older adds to it
					res.counts[name] = fw.res.counts[name]
				}
			}
			if !fw.res.topDamaged() && fw.res.n == 0 {
				anyMissing = false // its top level lists every bucket of its time
			}
		}
	}
	if err == nil && plan.loose != nil && anyShort {
		if scan := plan.loose(); scan != nil {
			fillFrom = "loose pages"
			added = func(top string, k []byte) {
				rep.Loose[top]++
				if top == string(bucketUsers) {
					rep.LooseUsers = append(rep.LooseUsers, string(k))
					if lastAdmin {
						rep.Admins = append(rep.Admins, string(k))
					}
				}
			}
			var leftOut problems
			set := scan.looseRecords(func(name string) bool { return short[name] })
			for _, name := range slices.Sorted(maps.Keys(set)) {
				path := [][]byte{[]byte(name)}
				for _, k := range slices.Sorted(maps.Keys(set[name])) {
					if v := set[name][k]; v != nil {
						keep(path, []byte(k), v)
					} else if !c.has(path, []byte(k)) {
						leftOut.add("%s %s", quoteKey(path[0]), quoteKey([]byte(k)))
					}
				}
			}
			added = nil
			rep.LooseLeftOut, rep.LooseLeftOutN = leftOut.list, leftOut.n
			if scan.free > 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s the freelist lists as free (old copies) were not read for loose records", units.Plural(scan.free, "leaf page")))
			}
		}
	}
	if err == nil && maxRun > 0 {
		if b := c.bucket([][]byte{bucketRuns}); b != nil && b.Sequence() < maxRun {
			b.SetSequence(maxRun)
		}
	}
	if err == nil && len(hurt.recs) > 0 {
		rep.DamagedUsers, rep.DamagedLeftOut = hurt.report(func(name string) bool { return c.has([][]byte{bucketUsers}, []byte(name)) })
	}
	if err == nil {
		err = c.err
	}
	if err == nil && c.tx != nil {
		err = c.tx.Commit()
		c.tx = nil
	}
	if c.tx != nil {
		c.tx.Rollback()
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	for name := range res.counts {
		if _, ok := rep.Kept[name]; !ok && name != string(bucketSessions) {
			rep.Kept[name] = 0
		}
	}
	for _, name := range slices.Sorted(maps.Keys(need)) {
		rep.Incomplete = append(rep.Incomplete, name)
	}
	if anyMissing {
		rep.Notes = append(rep.Notes, "the top level of the newest transaction could not be read, and no other copy lists its buckets: whole buckets may be missing")
	}
	rep.Unread, rep.UnreadN = res.list, res.n
	rep.Dropped, rep.DroppedN = dropped.list, dropped.n
	return rep, nil
}

// damagedUsers are the accounts whose record in the primary tree was damaged. The tree
// is the newest copy there is: an older one of such an account (the previous transaction,
// a backup, a loose page, a root of unknown age) may be what was since deleted, or made
// again with another password or role (an administrator demoted), so none is used unless
// it is the very record damaged (its value is what of the damaged one can be read), and
// the account is reported lost. A damaged record may carry two names (its key and its
// value's "name" differ: one of them is damaged); both are left out.
type damagedUsers struct {
	recs  []damagedUser
	older map[string][]string // account → the older copies of it left out
}

type damagedUser struct {
	names []string
	v     []byte // what of its value could be read
}

func (d *damagedUsers) add(names []string, v []byte) {
	if len(names) > 0 {
		d.recs = append(d.recs, damagedUser{names, bytes.Clone(v)})
	}
}

// leaveOut says whether the older copy name → v is to be left out, noting from as a copy
// of it left out: name is one of the damaged accounts, and v is not the damaged record
// (the same value, or the start of one that ran past its page).
func (d *damagedUsers) leaveOut(name string, v []byte, from string) bool {
	for _, r := range d.recs {
		if slices.Contains(r.names, name) && (len(v) == 0 || !bytes.HasPrefix(r.v, v)) {
			if !slices.Contains(d.older[name], from) {
				d.older[name] = append(d.older[name], from)
			}
			return true
		}
	}
	return false
}

// report returns the accounts lost, one entry per damaged record ("a or b" when its two
// names differ and no older copy tells which is the account's), but those kept says the
// new database holds (read whole from the tree), and the older copies left out.
func (d *damagedUsers) report(kept func(name string) bool) (lost, leftOut []string) {
	for _, rec := range d.recs {
		r := slices.DeleteFunc(slices.Clone(rec.names), kept)
		if known := slices.DeleteFunc(slices.Clone(r), func(n string) bool { return d.older[n] == nil }); len(known) > 0 {
			r = known
		}
		if len(r) > 0 && !slices.Contains(lost, strings.Join(r, " or ")) {
			lost = append(lost, strings.Join(r, " or "))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.older)) {
		leftOut = append(leftOut, fmt.Sprintf("%s from %s", name, strings.Join(d.older[name], ", ")))
	}
	return lost, leftOut
}

// copier writes records into the new database, copyBatch per transaction. err is set by
// what stops the copy (the disk is full); a record bbolt refuses is the caller's to drop.
type copier struct {
	db   *bolt.DB
	tx   *bolt.Tx
	n    int
	err  error
	path [][]byte
	b    *bolt.Bucket
}

func (c *copier) begin() bool {
	if c.err != nil {
		return false
	}
	if c.tx != nil && c.n >= copyBatch {
		c.err = c.tx.Commit()
		c.tx, c.b, c.path = nil, nil, nil
		if c.err != nil {
			return false
		}
	}
	if c.tx == nil {
		c.n = 0
		c.tx, c.err = c.db.Begin(true)
	}
	return c.err == nil
}

// bucket returns the bucket at path in the current transaction, creating it (with seq,
// when given) as needed.
func (c *copier) bucket(path [][]byte, seq ...uint64) *bolt.Bucket {
	if !c.begin() {
		return nil
	}
	if len(seq) == 0 && c.b != nil && samePath(path, c.path) {
		return c.b
	}
	b, err := c.tx.CreateBucketIfNotExists(path[0])
	for i := 1; err == nil && i < len(path); i++ {
		b, err = b.CreateBucketIfNotExists(path[i])
	}
	if err != nil {
		return nil
	}
	if len(seq) > 0 && seq[0] > b.Sequence() {
		b.SetSequence(seq[0])
	}
	c.path, c.b = clonePath(path), b
	return b
}

// put writes k → v in the bucket at path; with fill, only when k is not there yet. ok says
// it was written.
func (c *copier) put(path [][]byte, k, v []byte, fill bool) (ok bool, err error) {
	b := c.bucket(path)
	if c.err != nil {
		return false, nil
	}
	if b == nil {
		return false, errors.New("its bucket cannot be made")
	}
	if fill && b.Get(k) != nil {
		return false, nil
	}
	c.n++
	// bbolt keeps the slices until the commit; the walker's are reused.
	if err := b.Put(bytes.Clone(k), bytes.Clone(v)); err != nil {
		return false, err
	}
	return true, nil
}

// has says whether the bucket at path holds k.
func (c *copier) has(path [][]byte, k []byte) bool {
	b := c.bucket(path)
	return b != nil && b.Get(k) != nil
}

func samePath(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func clonePath(p [][]byte) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = bytes.Clone(p[i])
	}
	return out
}
