package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"strconv"
)

// bbolt's file format (go.etcd.io/bbolt/internal/common), read here with plain reads into
// bounds-checked slices, never through bbolt's mmap. bbolt trusts its file: a page number
// past the end of a truncated file is a SIGBUS, a page with the wrong type or id is a panic
// (in goroutines of its own where Open rebuilds the freelist or Check runs, so no recover
// of ours can catch it). This reader checks every page bbolt would touch first, and the
// store hands a file to bbolt only when it passed; repair walks a damaged file with it.
//
// Layout, every integer in the machine's byte order:
//
//	page     id u64, flags u16, count u16, overflow u32; then count elements of 16 bytes
//	branch   element: pos u32, ksize u32, child page u64; key at element+pos
//	leaf     element: flags u32, pos u32, ksize u32, vsize u32; key, then value, at element+pos
//	bucket   a leaf value: root page u64, sequence u64; root 0: a leaf page follows inline
//	meta     on pages 0 and 1 after the header: magic, version, page size, flags (u32 each),
//	         root bucket (16), freelist page, high-water mark, txid, FNV-64a of the above
//	freelist count page ids (count 0xFFFF: the first u64 is the real count)
const (
	pageHeaderSize   = 16
	elementSize      = 16
	metaSize         = 64
	bucketHeaderSize = 16

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagMeta     = 0x04
	flagFreelist = 0x10
	flagBucket   = 0x01 // on a leaf element: its value is a bucket

	boltMagic   = 0xED0CDAED
	boltVersion = 2
	noFreelist  = ^uint64(0)

	// maxDepth bounds the recursion through branch pages and nested buckets: a tree of
	// 4 KiB pages holding this store's records is a handful of levels deep.
	maxDepth = 64
	// maxProblems is how many problems a report lists; the rest are only counted.
	maxProblems = 50
)

var ne = binary.NativeEndian

// metaPage is one of the two meta pages.
type metaPage struct {
	slot     int
	pageSize uint64
	root     uint64 // the root bucket's page
	freelist uint64 // noFreelist: not kept in the file, rebuilt at open
	hwm      uint64 // pages below this are in use or free; the file must hold them all
	txid     uint64
	problem  string // why bbolt would not use this meta page; "" when it would
	// plausible: the fields make sense, whether or not the checksum holds (repair may try
	// a meta page with a flipped bit in a field it does not need).
	plausible bool
}

// sane says whether m's fields make sense: a page size bbolt can have used, the root and
// the freelist inside the pages.
func sane(m metaPage) bool {
	return m.pageSize >= 512 && m.pageSize <= 1<<20 && m.pageSize&(m.pageSize-1) == 0 &&
		m.hwm >= 3 && m.hwm < 1<<40 && m.root >= 2 && m.root < m.hwm &&
		(m.freelist == noFreelist || (m.freelist >= 2 && m.freelist < m.hwm))
}

func (m metaPage) ok() bool { return m.problem == "" }

// parseMeta reads the meta page of slot (0 or 1) from b, the page's first bytes.
func parseMeta(b []byte, slot int) metaPage {
	m := metaPage{slot: slot}
	if len(b) < pageHeaderSize+metaSize {
		m.problem = "cut short"
		return m
	}
	h := b[pageHeaderSize : pageHeaderSize+metaSize]
	magic, version := ne.Uint32(h[0:]), ne.Uint32(h[4:])
	m.pageSize = uint64(ne.Uint32(h[8:]))
	m.root = ne.Uint64(h[16:])
	m.freelist = ne.Uint64(h[32:])
	m.hwm = ne.Uint64(h[40:])
	m.txid = ne.Uint64(h[48:])
	sum := fnv.New64a()
	sum.Write(h[:56])
	if magic == boltMagic && version == boltVersion {
		m.plausible = sane(m)
	}
	switch {
	case magic != boltMagic:
		m.problem = fmt.Sprintf("not a bbolt meta page (magic %08x)", magic)
	case version != boltVersion:
		m.problem = fmt.Sprintf("format version %d, not %d", version, boltVersion)
	case ne.Uint64(h[56:]) != sum.Sum64():
		m.problem = "checksum mismatch"
	// The checksum holds: bbolt wrote these fields, and bbolt would use them. Check them
	// anyway, as bbolt does not before it follows them.
	case !m.plausible:
		m.problem = fmt.Sprintf("page size %d, root page %d, freelist page %d, %d pages", m.pageSize, m.root, m.freelist, m.hwm)
	// The page header is outside the checksum, but bbolt's check asserts it.
	case ne.Uint64(b[0:]) != uint64(slot) || ne.Uint16(b[8:]) != flagMeta:
		m.problem = fmt.Sprintf("page header damaged (id %d, flags %#x)", ne.Uint64(b[0:]), ne.Uint16(b[8:]))
	}
	return m
}

// problems collects what is wrong, keeping the first maxProblems.
type problems struct {
	list []string
	n    int
}

func (p *problems) add(format string, args ...any) {
	p.n++
	if len(p.list) < maxProblems {
		p.list = append(p.list, fmt.Sprintf(format, args...))
	}
}

// boltFile is a bbolt file being read.
type boltFile struct {
	r        io.ReaderAt
	size     int64
	pageSize uint64
	metas    [2]metaPage
}

// readMetas reads both meta pages. It fails only when neither is usable: the file is
// empty, not a bbolt file, or both are damaged.
func readMetas(r io.ReaderAt, size int64) (*boltFile, error) {
	f := &boltFile{r: r, size: size}
	if size == 0 {
		return nil, fmt.Errorf("the file is empty (0 bytes)")
	}
	buf := make([]byte, 4096)
	n, err := r.ReadAt(buf, 0)
	if n < pageHeaderSize+metaSize {
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("read meta page 0: %w", err)
		}
		return nil, fmt.Errorf("the file is %d bytes, too short for a database", size)
	}
	f.metas[0] = parseMeta(buf[:n], 0)
	// The second meta page is one page in; its size comes from the first, or, when that is
	// damaged, from trying the sizes bbolt may have used (as bbolt does).
	sizes := []uint64{f.metas[0].pageSize}
	if !f.metas[0].ok() {
		sizes = nil
		for ps := uint64(512); ps <= 1<<20; ps <<= 1 {
			sizes = append(sizes, ps)
		}
	}
	f.metas[1] = metaPage{slot: 1, problem: "beyond the end of the file"}
	if len(sizes) > 1 && size > 512 {
		f.metas[1].problem = "not found at any page size"
	}
	for _, ps := range sizes {
		if int64(ps) >= size {
			break
		}
		n, err := r.ReadAt(buf, int64(ps))
		if n < pageHeaderSize+metaSize {
			if err != nil && err != io.EOF {
				f.metas[1].problem = "read: " + err.Error()
			}
			continue
		}
		m := parseMeta(buf[:n], 1)
		if m.ok() && m.pageSize != ps {
			m.problem = fmt.Sprintf("page size %d at offset %d", m.pageSize, ps)
		}
		if m.ok() || len(sizes) == 1 {
			f.metas[1] = m
		}
		if m.ok() {
			break
		}
	}
	switch {
	case f.metas[0].ok():
		f.pageSize = f.metas[0].pageSize
	case f.metas[1].ok():
		f.pageSize = f.metas[1].pageSize
	default:
		return nil, fmt.Errorf("both meta pages are unusable (page 0: %s; page 1: %s): not a bbolt database, or its first pages are damaged", f.metas[0].problem, f.metas[1].problem)
	}
	if f.metas[0].ok() && f.metas[1].ok() && f.metas[0].pageSize != f.metas[1].pageSize {
		return nil, fmt.Errorf("the meta pages disagree on the page size (%d, %d)", f.metas[0].pageSize, f.metas[1].pageSize)
	}
	return f, nil
}

// newest is the meta page bbolt would use: the valid one with the higher txid.
func (f *boltFile) newest() metaPage {
	a, b := f.metas[0], f.metas[1]
	if !a.ok() || (b.ok() && b.txid > a.txid) {
		return b
	}
	return a
}

// other is the meta page bbolt would fall back to.
func (f *boltFile) other() metaPage { return f.metas[1-f.newest().slot] }

// walkResult is what a walk of the tree found.
type walkResult struct {
	problems
	pages  uint64             // pages reached
	counts map[string]*uint64 // top-level bucket → key/value pairs in it and its sub-buckets
	// damaged counts, per top-level bucket, the problems met inside it: a bucket listed
	// here was read only in part. Problems not counted here are the top level's own (the
	// root pages): then whole buckets may be missing from counts.
	damaged map[string]int
}

// topDamaged says whether the top level itself had problems: buckets may be missing.
func (r walkResult) topDamaged() bool {
	n := 0
	for _, d := range r.damaged {
		n += d
	}
	return r.n > n
}

// records is counts by value.
func (r walkResult) records() map[string]uint64 {
	out := make(map[string]uint64, len(r.counts))
	for k, n := range r.counts {
		out[k] = *n
	}
	return out
}

// walker follows a tree from a meta page, reading each page once.
type walker struct {
	f    *boltFile
	m    metaPage
	seen []uint64 // bitset of pages reached
	// end is where the pages stop: the meta page's count, or the file's end (its last
	// page, partial or not) when that comes first.
	end  uint64
	bufs [][]byte // one page buffer per depth
	res  walkResult
	top  *uint64 // the record count of the top-level bucket being walked
	// onBucket and onValue, when set, see every bucket (with its sequence) and every
	// key/value pair, path naming the bucket; the slices are valid during the call only.
	onBucket func(path [][]byte, seq uint64)
	onValue  func(path [][]byte, k, v []byte)
	// onDamaged, when set, sees each leaf element passed over as damaged (inside a bucket),
	// with what of its key and value lies inside the page (cut, or nil, where they run
	// past it); outOfOrder: only its key's place in the page is wrong.
	onDamaged func(path [][]byte, k, v []byte, outOfOrder bool)
	// only, when set, says which top-level buckets to walk; the others are passed over.
	only func(name string) bool
}

func newWalker(f *boltFile, m metaPage) *walker {
	// Nothing is sized by the meta page's count alone: repair walks meta pages whose
	// checksum fails, where a flipped bit may claim 2^39 pages (a 64 GiB bitset, and an
	// out-of-memory crash no recover catches). No page past the file's end can be read.
	end := m.hwm
	if f.pageSize > 0 {
		end = min(end, max(uint64(f.size)/f.pageSize, 2)+1)
	}
	w := &walker{f: f, m: m, end: end, seen: make([]uint64, (end+63)/64), res: walkResult{counts: map[string]*uint64{}, damaged: map[string]int{}}}
	w.mark(0)
	w.mark(1)
	return w
}

func (w *walker) mark(id uint64) bool {
	if w.seen[id/64]&(1<<(id%64)) != 0 {
		return false
	}
	w.seen[id/64] |= 1 << (id % 64)
	return true
}

func (w *walker) marked(id uint64) bool { return w.seen[id/64]&(1<<(id%64)) != 0 }

// page reads page id (with its overflow pages) into the buffer of depth, checking its
// header; nil when it cannot be used.
func (w *walker) page(id uint64, depth int, want uint16, from string) []byte {
	ps := w.f.pageSize
	if id < 2 || id >= w.m.hwm {
		w.res.add("%s: points to page %d, outside the database's pages 2..%d", from, id, w.m.hwm-1)
		return nil
	}
	for len(w.bufs) <= depth {
		w.bufs = append(w.bufs, make([]byte, ps))
	}
	// One read for the usual page without overflow.
	hdr := w.bufs[depth][:ps]
	got, rerr := w.f.r.ReadAt(hdr, int64(id*ps))
	if got < pageHeaderSize {
		w.res.add("page %d: read: %v", id, rerr)
		return nil
	}
	gotID, flags, overflow := ne.Uint64(hdr[0:]), ne.Uint16(hdr[8:]), uint64(ne.Uint32(hdr[12:]))
	switch {
	case gotID != id:
		w.res.add("page %d (%s): header says page %d", id, from, gotID)
		return nil
	case flags != want && !(want == flagBranch|flagLeaf && (flags == flagBranch || flags == flagLeaf)):
		w.res.add("page %d (%s): type %s, expected %s", id, from, pageType(flags), pageType(want))
		return nil
	case overflow >= w.m.hwm-id:
		w.res.add("page %d (%s): its %d overflow pages run past the database's %d pages", id, from, overflow, w.m.hwm)
		return nil
	case id >= w.end || overflow >= w.end-id:
		w.res.add("page %d (%s): its %d overflow pages run past the end of the file", id, from, overflow)
		return nil
	}
	for i := id; i <= id+overflow; i++ {
		if !w.mark(i) {
			w.res.add("page %d (%s): already in use elsewhere (page %d)", id, from, i)
			return nil
		}
	}
	w.res.pages += overflow + 1
	if overflow == 0 {
		if got < len(hdr) {
			w.res.add("page %d: read: %v", id, rerr)
			return nil
		}
		return hdr
	}
	n := (overflow + 1) * ps
	if uint64(cap(w.bufs[depth])) < n {
		w.bufs[depth] = make([]byte, n)
	}
	b := w.bufs[depth][:n]
	if _, err := w.f.r.ReadAt(b, int64(id*ps)); err != nil {
		w.res.add("page %d: read: %v", id, err)
		return nil
	}
	return b
}

// knownBuckets are the top-level buckets of this store. A new one must differ from each of
// these in more than one byte (see damagedName; a test checks).
var knownBuckets = [][]byte{bucketMeta, bucketUsers, bucketSessions, bucketRuns,
	bucketTrafficHours, bucketTrafficDays, bucketTrafficClients, bucketTrafficPackages,
	bucketTrafficRepos}

func isKnownBucket(name string) bool {
	for _, k := range knownBuckets {
		if string(k) == name {
			return true
		}
	}
	return false
}

// damagedName returns the known top-level bucket whose name differs from name in exactly
// one byte ("" when none does). A bit flipped in a bucket's name in the top-level page
// leaves the page valid and, often, the keys in order: bbolt's check passes, and the
// bucket is simply gone under its name. For "users" that is every account, and amwi
// would start as on its first day, asking for a first administrator.
func damagedName(name []byte) string {
	for _, k := range knownBuckets {
		if len(k) != len(name) || bytes.Equal(k, name) {
			continue
		}
		diff := 0
		for i := range k {
			if k[i] != name[i] {
				diff++
			}
		}
		if diff == 1 {
			return string(k)
		}
	}
	return ""
}

func pageType(flags uint16) string {
	switch flags {
	case flagBranch:
		return "branch"
	case flagLeaf:
		return "leaf"
	case flagBranch | flagLeaf:
		return "branch or leaf"
	case flagMeta:
		return "meta"
	case flagFreelist:
		return "freelist"
	}
	return fmt.Sprintf("unknown (%#x)", flags)
}

// elements returns the count elements of page p, or false when they do not fit in it.
func elements(p []byte) (int, bool) {
	n := int(ne.Uint16(p[10:]))
	return n, uint64(pageHeaderSize)+uint64(n)*elementSize <= uint64(len(p))
}

// span returns p[off+pos : off+pos+n], or false when that is not inside p.
func span(p []byte, off int, pos, n uint32) ([]byte, bool) {
	start := uint64(off) + uint64(pos)
	end := start + uint64(n)
	if end > uint64(len(p)) {
		return nil, false
	}
	return p[start:end], true
}

// walk checks the whole tree of w.m: every page, element, key order, nested bucket.
func (w *walker) walk() {
	w.tree(nil, w.m.root, nil, nil, 0, "root bucket")
}

// tree walks the bucket tree rooted at page id; its keys must be in [lo, hi).
func (w *walker) tree(path [][]byte, id uint64, lo, hi []byte, depth int, from string) {
	if depth > maxDepth {
		w.res.add("page %d (%s): nested more than %d levels deep", id, from, maxDepth)
		return
	}
	p := w.page(id, depth, flagBranch|flagLeaf, from)
	if p == nil {
		return
	}
	if ne.Uint16(p[8:]) == flagLeaf {
		w.leaf(path, p, id, lo, hi, depth)
		return
	}
	n, ok := elements(p)
	if !ok || n == 0 {
		w.res.add("page %d: branch page with %d elements", id, n)
		return
	}
	var prev []byte
	for i := 0; i < n; i++ {
		off := pageHeaderSize + i*elementSize
		pos, ksize, child := ne.Uint32(p[off:]), ne.Uint32(p[off+4:]), ne.Uint64(p[off+8:])
		key, ok := span(p, off, pos, ksize)
		if !ok {
			w.res.add("page %d: branch element %d: key outside the page", id, i)
		} else if !inOrder(prev, key, lo, hi, i == 0) {
			w.res.add("page %d: branch element %d: key %s out of order", id, i, quoteKey(key))
			key = nil
		}
		// The child's keys lie between this key and the next one.
		childHi := hi
		if i+1 < n {
			noff := pageHeaderSize + (i+1)*elementSize
			if k, ok := span(p, noff, ne.Uint32(p[noff:]), ne.Uint32(p[noff+4:])); ok {
				childHi = k
			}
		}
		childLo := lo
		if key != nil {
			childLo, prev = key, key
		}
		w.tree(path, child, childLo, childHi, depth+1, fmt.Sprintf("branch page %d element %d", id, i))
	}
}

// inOrder says whether key follows prev (strictly) and lies in [lo, hi).
func inOrder(prev, key, lo, hi []byte, first bool) bool {
	if !first && prev != nil && bytes.Compare(prev, key) >= 0 {
		return false
	}
	if lo != nil && bytes.Compare(key, lo) < 0 {
		return false
	}
	return hi == nil || bytes.Compare(key, hi) < 0
}

// leaf walks a leaf page (id 0: inline in its bucket's value).
func (w *walker) leaf(path [][]byte, p []byte, id uint64, lo, hi []byte, depth int) {
	where := fmt.Sprintf("page %d", id)
	if id == 0 {
		where = "inline bucket " + quotePath(path)
	}
	n, ok := elements(p)
	if !ok {
		w.res.add("%s: %d elements do not fit in the page", where, n)
		return
	}
	var prev []byte
	for i := 0; i < n; i++ {
		off := pageHeaderSize + i*elementSize
		flags, pos, ksize, vsize := ne.Uint32(p[off:]), ne.Uint32(p[off+4:]), ne.Uint32(p[off+8:]), ne.Uint32(p[off+12:])
		key, ok := span(p, off, pos, ksize)
		if !ok {
			w.res.add("%s: element %d: key outside the page", where, i)
			w.damaged(path, p, off, pos, ksize, vsize, false)
			continue
		}
		val, ok := span(p, off, pos+ksize, vsize)
		if !ok || pos+ksize < pos {
			w.res.add("%s: element %d: value outside the page", where, i)
			w.damaged(path, p, off, pos, ksize, vsize, false)
			continue
		}
		if !inOrder(prev, key, lo, hi, i == 0) {
			// This key or the one before is damaged: this one is passed over, not copied
			// under a wrong name.
			w.res.add("%s: element %d: key %s out of order", where, i, quoteKey(key))
			w.damaged(path, p, off, pos, ksize, vsize, flags == 0)
			continue
		}
		prev = key
		if flags&^flagBucket != 0 {
			w.res.add("%s: element %d: unknown flags %#x", where, i, flags)
			w.damaged(path, p, off, pos, ksize, vsize, false)
			continue
		}
		if flags&flagBucket == 0 {
			if len(path) == 0 {
				w.res.add("%s: key %s at the top level is not a bucket", where, quoteKey(key))
				continue
			}
			*w.top++
			if w.onValue != nil {
				w.onValue(path, key, val)
			}
			continue
		}
		w.bucket(append(path[:len(path):len(path)], key), val, depth, where)
	}
}

// damaged hands the leaf element at off of page p, passed over as damaged, to onDamaged:
// what of its key and value lies inside the page. outOfOrder: only its key's place is
// wrong, its flags say it is a value.
func (w *walker) damaged(path [][]byte, p []byte, off int, pos, ksize, vsize uint32, outOfOrder bool) {
	if w.onDamaged == nil || len(path) == 0 {
		return
	}
	clip := func(start, n uint64) []byte {
		start += uint64(off)
		if start >= uint64(len(p)) {
			return nil
		}
		return p[start:min(start+n, uint64(len(p)))]
	}
	w.onDamaged(path, clip(uint64(pos), uint64(ksize)), clip(uint64(pos)+uint64(ksize), uint64(vsize)), outOfOrder)
}

// bucket walks the bucket whose header (and inline page) is v.
func (w *walker) bucket(path [][]byte, v []byte, depth int, where string) {
	if len(v) < bucketHeaderSize {
		w.res.add("%s: bucket %s: header cut short", where, quotePath(path))
		return
	}
	if len(path) == 1 {
		name := string(path[0])
		damagedAs := ""
		if k := damagedName(path[0]); k != "" {
			damagedAs, name = name, k
			path[0] = []byte(k) // a fresh slice of the caller's: the key is not changed
		}
		if w.only != nil && !w.only(name) {
			return
		}
		n := new(uint64)
		if old, ok := w.res.counts[name]; ok {
			n = old // the same name twice: damage, reported as out of order
		}
		w.res.counts[name] = n
		w.top = n
		before := w.res.n
		defer func() {
			// Damage inside a bucket amwi does not know (a name damaged beyond
			// recognition, with its header) is the top level's: the bucket it was may be
			// missing, and repair then fills whole buckets from older copies.
			if d := w.res.n - before; d > 0 && isKnownBucket(name) {
				w.res.damaged[name] += d
			}
		}()
		if damagedAs != "" {
			w.res.add("%s: top-level bucket %s is %q with a damaged name", where, quoteKey([]byte(damagedAs)), name)
		}
	}
	if w.onBucket != nil {
		w.onBucket(path, ne.Uint64(v[8:]))
	}
	root := ne.Uint64(v)
	if root != 0 {
		w.tree(path, root, nil, nil, depth+1, "bucket "+quotePath(path))
		return
	}
	in := v[bucketHeaderSize:]
	if len(in) < pageHeaderSize || ne.Uint16(in[8:]) != flagLeaf || ne.Uint32(in[12:]) != 0 {
		w.res.add("%s: inline bucket %s: not a leaf page", where, quotePath(path))
		return
	}
	if depth > maxDepth {
		w.res.add("%s: bucket %s nested more than %d levels deep", where, quotePath(path), maxDepth)
		return
	}
	w.leaf(path, in, 0, nil, nil, depth+1)
}

// freelist checks the freelist page, if the file keeps one, against what the walk reached:
// a page both in use and free would be overwritten by the next write.
func (w *walker) freelist() {
	if w.m.freelist == noFreelist {
		return
	}
	// Pages below damage the walk met are unreached, not lost: saying so adds nothing.
	walkOK := w.res.n == 0
	p := w.page(w.m.freelist, 0, flagFreelist, "freelist")
	if p == nil {
		return
	}
	start, count, problem := freeList(p)
	if problem != "" {
		w.res.add("freelist page %d: %s", w.m.freelist, problem)
		return
	}
	free := make([]uint64, len(w.seen))
	for i := uint64(0); i < count; i++ {
		id := ne.Uint64(p[start+i*8:])
		switch {
		case id < 2 || id >= w.m.hwm:
			w.res.add("freelist page %d: free page %d outside the database's pages 2..%d", w.m.freelist, id, w.m.hwm-1)
		case free[id/64]&(1<<(id%64)) != 0:
			w.res.add("freelist page %d: page %d listed twice", w.m.freelist, id)
		case w.marked(id):
			w.res.add("freelist page %d: page %d is in use and also listed as free", w.m.freelist, id)
		default:
			free[id/64] |= 1 << (id % 64)
		}
	}
	var lost []uint64
	for id := uint64(2); id < w.m.hwm; id++ {
		if !w.marked(id) && free[id/64]&(1<<(id%64)) == 0 {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 && walkOK {
		w.res.add("%d pages are neither in use nor free (%s)", len(lost), idList(lost))
	}
}

// freeList returns where the page ids listed in the freelist page p start and how many
// there are; problem says why they cannot be read ("" when they can).
func freeList(p []byte) (start, count uint64, problem string) {
	start, count = uint64(pageHeaderSize), uint64(ne.Uint16(p[10:]))
	if count == 0xFFFF {
		if len(p) < pageHeaderSize+8 {
			return 0, 0, "cut short"
		}
		count, start = ne.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if count > uint64(len(p)) || start+count*8 > uint64(len(p)) {
		return 0, 0, fmt.Sprintf("%d free pages do not fit in it", count)
	}
	return start, count, ""
}

func idList(ids []uint64) string {
	var b []byte
	for i, id := range ids {
		if i == 5 {
			b = append(b, ", …"...)
			break
		}
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendUint(b, id, 10)
	}
	return string(b)
}

// quoteKey shows a key for a message: printable keys quoted, others in hex, both short.
func quoteKey(k []byte) string {
	if len(k) > 40 {
		return quoteKey(k[:40]) + "…"
	}
	for _, c := range k {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("%x", k)
		}
	}
	return strconv.Quote(string(k))
}

func quotePath(path [][]byte) string {
	var b []byte
	for i, k := range path {
		if i > 0 {
			b = append(b, '/')
		}
		b = append(b, quoteKey(k)...)
	}
	return string(b)
}

// checkFormat reads the whole file r of size bytes as bbolt would use it: both meta pages,
// the file long enough for the newest one, its tree and its freelist. It returns what it
// found wrong (nothing: bbolt can open and read every page without a fault) and what the
// tree holds. setup, when set, may add callbacks to the walker.
func checkFormat(r io.ReaderAt, size int64, setup func(*walker)) (*boltFile, walkResult, error) {
	f, err := readMetas(r, size)
	if err != nil {
		return nil, walkResult{}, err
	}
	m := f.newest()
	w := newWalker(f, m)
	if setup != nil {
		setup(w)
	}
	for _, mm := range f.metas {
		if !mm.ok() {
			w.res.add("meta page %d is damaged (%s)", mm.slot, mm.problem)
		}
	}
	if need := m.hwm * f.pageSize; m.hwm > uint64(size)/f.pageSize {
		w.res.add("the file is cut short: %d bytes, but its %d pages need %d", size, m.hwm, need)
		// Walking on would only list every page past the end.
		return f, w.res, nil
	}
	w.walk()
	w.freelist()
	return f, w.res, nil
}
