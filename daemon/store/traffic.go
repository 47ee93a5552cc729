package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"

	"github.com/amwi/amwi/daemon/traffic"
)

// Traffic statistics, one bucket per kind. Keys start with the hour or day as a big-endian
// number with the sign bit flipped, so byte order is time order: a range is one cursor
// seek and a walk, and pruning walks from the first key. Values are two uvarints, bytes
// then requests (typically 4–8 bytes).
//
//	traffic_hours     hour(8)                 → count
//	traffic_days      day(4)                  → count
//	traffic_clients   day(4) address          → count
//	traffic_packages  day(4) package name     → count
//	traffic_repos     day(4) repository       → count
//
// traffic_repos is not among the buckets repair recognises on loose pages (looseBuckets):
// its records have the very shape of traffic_packages' ("core" could be a package), and
// what it would bring back is a few statistics.
var (
	bucketTrafficHours    = []byte("traffic_hours")
	bucketTrafficDays     = []byte("traffic_days")
	bucketTrafficClients  = []byte("traffic_clients")
	bucketTrafficPackages = []byte("traffic_packages")
	bucketTrafficRepos    = []byte("traffic_repos")
)

var _ traffic.Store = (*Store)(nil)

func hourKey(h traffic.Hour) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(h)^1<<63)
}

func dayKey(d traffic.Day, name string) []byte {
	k := make([]byte, 4, 4+len(name))
	binary.BigEndian.PutUint32(k, uint32(d)^1<<31)
	return append(k, name...)
}

func keyDay(k []byte) traffic.Day { return traffic.Day(int32(binary.BigEndian.Uint32(k) ^ 1<<31)) }

func keyHour(k []byte) traffic.Hour {
	return traffic.Hour(int64(binary.BigEndian.Uint64(k) ^ 1<<63))
}

func encodeCount(c traffic.Count) []byte {
	b := binary.AppendUvarint(make([]byte, 0, 8), uint64(max(c.Bytes, 0)))
	return binary.AppendUvarint(b, uint64(max(c.Requests, 0)))
}

func decodeCount(v []byte) (traffic.Count, bool) {
	b, n := binary.Uvarint(v)
	if n <= 0 {
		return traffic.Count{}, false
	}
	r, m := binary.Uvarint(v[n:])
	// A count past int64 is no count AMWI wrote (encodeCount clamps): damage that still
	// decodes, skipped rather than read as a negative total.
	if m <= 0 || n+m != len(v) || b > math.MaxInt64 || r > math.MaxInt64 {
		return traffic.Count{}, false
	}
	return traffic.Count{Bytes: int64(b), Requests: int64(r)}, true
}

// addCount adds c to the count at k. A value that does not decode is replaced: one bad
// record must not stop all accounting by failing every batch from then on.
func addCount(b *bolt.Bucket, k []byte, c traffic.Count) error {
	old, _ := decodeCount(b.Get(k))
	return b.Put(k, encodeCount(old.Add(c)))
}

// AddTraffic adds a batch of traffic counts in one transaction.
func (s *Store) AddTraffic(batch traffic.Batch) error {
	err := s.update(func(tx *bolt.Tx) error {
		bs, err := trafficBuckets(tx)
		if err != nil {
			return err
		}
		for h, c := range batch.Hours {
			if err := addCount(bs[0], hourKey(h), c); err != nil {
				return err
			}
		}
		for d, c := range batch.Days {
			if err := addCount(bs[1], dayKey(d, ""), c); err != nil {
				return err
			}
		}
		for k, c := range batch.Clients {
			if err := addCount(bs[2], dayKey(k.Day, k.Key), c); err != nil {
				return err
			}
		}
		for k, c := range batch.Packages {
			if err := addCount(bs[3], dayKey(k.Day, k.Key), c); err != nil {
				return err
			}
		}
		for k, c := range batch.Repos {
			if err := addCount(bs[4], dayKey(k.Day, k.Key), c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %s: add traffic: %w", s.path, err)
	}
	return nil
}

func trafficBuckets(tx *bolt.Tx) ([5]*bolt.Bucket, error) {
	var bs [5]*bolt.Bucket
	for i, name := range [][]byte{bucketTrafficHours, bucketTrafficDays, bucketTrafficClients, bucketTrafficPackages, bucketTrafficRepos} {
		b, err := tx.CreateBucketIfNotExists(name)
		if err != nil {
			return bs, err
		}
		bs[i] = b
	}
	return bs, nil
}

// walk calls fn for every key in bucket name from from (inclusive) while key < to.
func (s *Store) walk(name, from, to []byte, fn func(k []byte, c traffic.Count)) error {
	return s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(from); k != nil && bytes.Compare(k, to) < 0; k, v = c.Next() {
			if n, ok := decodeCount(v); ok {
				fn(k, n)
			} else {
				s.skipped.Add(1)
			}
		}
		return nil
	})
}

// TrafficHours returns the hourly counts from from to to, inclusive.
func (s *Store) TrafficHours(from, to traffic.Hour) (map[traffic.Hour]traffic.Count, error) {
	m := map[traffic.Hour]traffic.Count{}
	if to < from {
		return m, nil
	}
	err := s.walk(bucketTrafficHours, hourKey(from), hourKey(to+1), func(k []byte, c traffic.Count) {
		if len(k) == 8 {
			m[keyHour(k)] = c
		}
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: read hourly traffic: %w", s.path, err)
	}
	return m, nil
}

// TrafficDays returns the daily totals from from to to, inclusive.
func (s *Store) TrafficDays(from, to traffic.Day) (map[traffic.Day]traffic.Count, error) {
	m := map[traffic.Day]traffic.Count{}
	if to < from {
		return m, nil
	}
	err := s.walk(bucketTrafficDays, dayKey(from, ""), dayKey(to+1, ""), func(k []byte, c traffic.Count) {
		if len(k) == 4 {
			m[keyDay(k)] = c
		}
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: read daily traffic: %w", s.path, err)
	}
	return m, nil
}

// trafficKinds are the buckets of traffic.Kind and what their records are per.
var trafficKinds = map[traffic.Kind]struct {
	bucket []byte
	per    string
}{
	traffic.Clients:  {bucketTrafficClients, "client"},
	traffic.Packages: {bucketTrafficPackages, "package"},
	traffic.Repos:    {bucketTrafficRepos, "repository"},
}

// WalkTraffic calls fn with each per-name count of kind from from to to, inclusive, day
// by day; name is valid only during the call.
func (s *Store) WalkTraffic(kind traffic.Kind, from, to traffic.Day, fn func(name []byte, c traffic.Count)) error {
	k, ok := trafficKinds[kind]
	if !ok {
		return fmt.Errorf("store %s: no traffic kind %d", s.path, kind)
	}
	if to < from {
		return nil
	}
	err := s.walk(k.bucket, dayKey(from, ""), dayKey(to+1, ""), func(key []byte, c traffic.Count) {
		if len(key) > 4 {
			fn(key[4:], c)
		}
	})
	if err != nil {
		return fmt.Errorf("store %s: read traffic per %s: %w", s.path, k.per, err)
	}
	return nil
}

// TrafficPackagesLastDay gives, per package, the last day from from to to (inclusive) it
// was downloaded on.
func (s *Store) TrafficPackagesLastDay(from, to traffic.Day) (map[string]traffic.Day, error) {
	m := map[string]traffic.Day{}
	if to < from {
		return m, nil
	}
	err := s.walk(bucketTrafficPackages, dayKey(from, ""), dayKey(to+1, ""), func(k []byte, c traffic.Count) {
		if len(k) > 4 {
			m[string(k[4:])] = keyDay(k) // keys run by day: the last one seen is the latest
		}
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: read the days packages were downloaded: %w", s.path, err)
	}
	return m, nil
}

// PruneTraffic drops hourly counts before hoursBefore and daily ones (totals, clients,
// packages, repositories) before daysBefore. It looks first in a read transaction, so the usual case,
// nothing to drop, writes nothing to the disk.
func (s *Store) PruneTraffic(hoursBefore traffic.Hour, daysBefore traffic.Day) error {
	limits := [5][]byte{hourKey(hoursBefore), dayKey(daysBefore, ""), dayKey(daysBefore, ""), dayKey(daysBefore, ""), dayKey(daysBefore, "")}
	names := [5][]byte{bucketTrafficHours, bucketTrafficDays, bucketTrafficClients, bucketTrafficPackages, bucketTrafficRepos}
	found := false
	err := s.view(func(tx *bolt.Tx) error {
		for i, name := range names {
			if b := tx.Bucket(name); b != nil {
				if k, _ := b.Cursor().First(); k != nil && bytes.Compare(k, limits[i]) < 0 {
					found = true
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %s: prune traffic: %w", s.path, err)
	}
	if !found {
		return nil
	}
	err = s.update(func(tx *bolt.Tx) error {
		for i, name := range names {
			b := tx.Bucket(name)
			if b == nil {
				continue
			}
			// Deleting under a moving cursor can skip keys, so collect first.
			var old [][]byte
			c := b.Cursor()
			for k, _ := c.First(); k != nil && bytes.Compare(k, limits[i]) < 0; k, _ = c.Next() {
				old = append(old, append([]byte(nil), k...))
			}
			for _, k := range old {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %s: prune traffic: %w", s.path, err)
	}
	return nil
}
