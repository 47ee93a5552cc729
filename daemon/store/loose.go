package store

import (
	"bytes"
	"net/netip"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/amwi/amwi/daemon/traffic"
)

// Loose pages. A file cut short (a copy interrupted, a card that lost its last blocks) has
// meta pages that point at a root past its end: no tree reaches the leaf pages still in the
// part that remains, and repair would fall back to the newest backup, losing every account
// made since, though the pages holding them are there. So repair reads those pages too.
//
// bbolt copies a leaf page on every change and leaves the old copy where it was until the
// page is reused, and nothing on a leaf page says how old it is: the loose pages hold live
// records and stale ones (an old password hash, an account deleted since) alike. Hence
// loose records come last and only fill keys no tree and no backup supplied, in buckets the
// file's own tree did not read whole; pages the freelist lists as free are not read; a key
// met with differing values is left out; and the report names every account brought back
// this way, for the admin to check.

// looseBuckets are the buckets a loose page's records are recognised as, by their shape.
// Sessions are not among them (repair drops them all), nor the one record of "meta".
var looseBuckets = [][]byte{bucketUsers, bucketRuns, bucketTrafficHours, bucketTrafficDays,
	bucketTrafficClients, bucketTrafficPackages}

// fits says whether k → v has the shape of a record of bucket name, strictly enough that
// no record the store writes fits two of looseBuckets: badRecord, and what tells apart the
// buckets it does not.
func fits(name, k, v []byte) bool {
	if badRecord([][]byte{name}, k, v) != "" {
		return false
	}
	switch string(name) {
	case string(bucketRuns):
		return k[0] == 0 // a run id is a small number; a user name starts with a letter
	case string(bucketTrafficClients):
		return isClientKey(k[4:])
	case string(bucketTrafficPackages):
		// An hour's key (8 bytes, from 1970 on) fits too, but its "name" starts with NUL.
		return isText(k[4:]) && (!isClientKey(k[4:]) || string(k[4:]) == traffic.Other)
	}
	return true
}

// isText says whether name is UTF-8 without control characters.
func isText(name []byte) bool {
	return utf8.Valid(name) && !bytes.ContainsFunc(name, unicode.IsControl)
}

// isClientKey says whether name is what the traffic recorder keys a client by.
func isClientKey(name []byte) bool {
	_, err := netip.ParseAddr(string(name))
	return err == nil || string(name) == traffic.Other || string(name) == traffic.Unknown
}

// looseSet is what the loose pages hold: bucket → key → value, nil where the pages
// disagree.
type looseSet map[string]map[string][]byte

func (s looseSet) add(name, k, v []byte) {
	m := s[string(name)]
	if m == nil {
		m = map[string][]byte{}
		s[string(name)] = m
	}
	if old, ok := m[string(k)]; !ok {
		m[string(k)] = bytes.Clone(v)
	} else if old != nil && !bytes.Equal(old, v) {
		m[string(k)] = nil
	}
}

// looseRecords returns the records of the buckets want accepts found on the leaf pages of
// s: a page's records when every one of them fits the same bucket, and those of the known
// buckets inlined in a page. A page that does not parse whole, or whose records fit no
// bucket or several, is passed over. What is returned is held in memory: about the size
// of those buckets, which the store keeps bounded.
func (s *pageScan) looseRecords(want func(name string) bool) looseSet {
	out := looseSet{}
	for _, id := range s.leaves {
		p := s.page(id)
		if p == nil {
			continue
		}
		recs, ok := leafRecords(p)
		if !ok {
			continue
		}
		if len(recs) > 0 && recs[0].bucket {
			// A page of bucket headers: the buckets small enough to live inline in it.
			for _, r := range recs {
				if in, ok := inlineRecords(r); ok && slices.ContainsFunc(looseBuckets, func(b []byte) bool { return bytes.Equal(b, r.k) }) &&
					want(string(r.k)) && allFit(r.k, in) {
					for _, ir := range in {
						out.add(r.k, ir.k, ir.v)
					}
				}
			}
			continue
		}
		var name []byte
		for _, b := range looseBuckets {
			if allFit(b, recs) {
				if name != nil {
					name = nil // fits two: whose it is cannot be told
					break
				}
				name = b
			}
		}
		if name != nil && want(string(name)) {
			for _, r := range recs {
				out.add(name, r.k, r.v)
			}
		}
	}
	return out
}

// allFit says whether recs, none of them a bucket, all fit bucket name.
func allFit(name []byte, recs []leafRecord) bool {
	for _, r := range recs {
		if r.bucket || !fits(name, r.k, r.v) {
			return false
		}
	}
	return len(recs) > 0
}

type leafRecord struct {
	bucket bool
	k, v   []byte
}

// leafRecords returns the elements of the leaf page p, all inside it, keys in order, all
// values or all buckets; false when they are not.
func leafRecords(p []byte) ([]leafRecord, bool) {
	n, ok := elements(p)
	if !ok || n == 0 {
		return nil, false
	}
	out := make([]leafRecord, 0, n)
	var prev []byte
	for i := 0; i < n; i++ {
		off := pageHeaderSize + i*elementSize
		flags, pos, ksize, vsize := ne.Uint32(p[off:]), ne.Uint32(p[off+4:]), ne.Uint32(p[off+8:]), ne.Uint32(p[off+12:])
		k, ok := span(p, off, pos, ksize)
		if !ok || pos+ksize < pos || flags&^flagBucket != 0 || !inOrder(prev, k, nil, nil, i == 0) {
			return nil, false
		}
		v, ok := span(p, off, pos+ksize, vsize)
		if !ok {
			return nil, false
		}
		r := leafRecord{bucket: flags == flagBucket, k: k, v: v}
		if i > 0 && r.bucket != out[0].bucket {
			return nil, false
		}
		prev = k
		out = append(out, r)
	}
	return out, true
}

// inlineRecords returns the records of the bucket r when they are inline in its value.
func inlineRecords(r leafRecord) ([]leafRecord, bool) {
	if len(r.v) < bucketHeaderSize+pageHeaderSize || ne.Uint64(r.v) != 0 {
		return nil, false
	}
	in := r.v[bucketHeaderSize:]
	if ne.Uint16(in[8:]) != flagLeaf || ne.Uint32(in[12:]) != 0 {
		return nil, false
	}
	return leafRecords(in)
}
