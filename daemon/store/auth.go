package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amwi/amwi/daemon/auth"
)

// Accounts live in two buckets: users (name → JSON auth.User) and sessions (id → JSON
// auth.Session). Buckets are created on first write; reads treat a missing one as empty.
var (
	bucketUsers    = []byte("users")
	bucketSessions = []byte("sessions")
)

var _ auth.Store = (*Store)(nil)

// CountUsers returns how many users there are.
func (s *Store) CountUsers() (int, error) {
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketUsers); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store %s: count users: %w", s.path, err)
	}
	return n, nil
}

// GetUser returns the user called name, if there is one.
func (s *Store) GetUser(name string) (auth.User, bool, error) {
	var u auth.User
	var ok bool
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		if b == nil || name == "" {
			return nil
		}
		v := b.Get([]byte(name))
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &u)
	})
	if err != nil {
		return auth.User{}, false, fmt.Errorf("store %s: read user %q: %w", s.path, name, err)
	}
	return u, ok, nil
}

// PutUser stores u, replacing the user of the same name.
func (s *Store) PutUser(u auth.User) error {
	err := s.update(func(tx *bolt.Tx) error { return putJSON(tx, bucketUsers, u.Name, u) })
	if err != nil {
		return fmt.Errorf("store %s: save user %q: %w", s.path, u.Name, err)
	}
	return nil
}

// CreateFirstUser stores u if there are no users, in one transaction so that of two
// concurrent first registrations only one gets through.
func (s *Store) CreateFirstUser(u auth.User) (bool, error) {
	created := false
	err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketUsers)
		if err != nil {
			return err
		}
		if k, _ := b.Cursor().First(); k != nil {
			return nil
		}
		created = true
		return putJSON(tx, bucketUsers, u.Name, u)
	})
	if err != nil {
		return false, fmt.Errorf("store %s: create first user %q: %w", s.path, u.Name, err)
	}
	return created, nil
}

// DeleteUser deletes the user called name and the user's sessions in one transaction.
func (s *Store) DeleteUser(name string) error {
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		if b == nil || name == "" || b.Get([]byte(name)) == nil {
			return fmt.Errorf("user %w", auth.ErrNotFound)
		}
		if err := b.Delete([]byte(name)); err != nil {
			return err
		}
		return deleteSessions(tx, func(sess auth.Session) bool { return sess.User == name })
	})
	if err != nil {
		return fmt.Errorf("store %s: delete user %q: %w", s.path, name, err)
	}
	return nil
}

// ListUsers returns all users, sorted by name.
func (s *Store) ListUsers() ([]auth.User, error) {
	var out []auth.User
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			// One damaged record must not hide every account: skip it (Skipped counts
			// it, the health check shows it, `amwi db check` names it).
			var u auth.User
			if json.Unmarshal(v, &u) != nil {
				s.skipped.Add(1)
				return nil
			}
			out = append(out, u)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: list users: %w", s.path, err)
	}
	return out, nil
}

// Session ids are secrets: the errors below never include them.

// PutSession stores sess, replacing the session of the same id.
func (s *Store) PutSession(sess auth.Session) error {
	err := s.update(func(tx *bolt.Tx) error { return putJSON(tx, bucketSessions, sess.ID, sess) })
	if err != nil {
		return fmt.Errorf("store %s: save session of %q: %w", s.path, sess.User, err)
	}
	return nil
}

// GetSession returns the session with id, if there is one, expired or not.
func (s *Store) GetSession(id string) (auth.Session, bool, error) {
	var sess auth.Session
	var ok bool
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if b == nil || id == "" {
			return nil
		}
		v := b.Get([]byte(id))
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &sess)
	})
	if err != nil {
		return auth.Session{}, false, fmt.Errorf("store %s: read session: %w", s.path, err)
	}
	return sess, ok, nil
}

// DeleteSession deletes the session with id; there being none is not an error.
func (s *Store) DeleteSession(id string) error {
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if b == nil || id == "" {
			return nil
		}
		return b.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("store %s: delete session: %w", s.path, err)
	}
	return nil
}

// DeleteUserSessions deletes all sessions of the user called name.
func (s *Store) DeleteUserSessions(name string) error {
	err := s.update(func(tx *bolt.Tx) error {
		return deleteSessions(tx, func(sess auth.Session) bool { return sess.User == name })
	})
	if err != nil {
		return fmt.Errorf("store %s: delete sessions of %q: %w", s.path, name, err)
	}
	return nil
}

// PruneSessions deletes the sessions expired at now and returns how many it deleted.
func (s *Store) PruneSessions(now time.Time) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		return deleteSessions(tx, func(sess auth.Session) bool {
			if !now.Before(sess.Expires) {
				n++
				return true
			}
			return false
		})
	})
	if err != nil {
		return 0, fmt.Errorf("store %s: prune sessions: %w", s.path, err)
	}
	return n, nil
}

// deleteSessions deletes the sessions that match, and any record that does not decode:
// no one could use it anyway. A scan is fine: a home mirror has a handful of sessions.
func deleteSessions(tx *bolt.Tx, match func(auth.Session) bool) error {
	b := tx.Bucket(bucketSessions)
	if b == nil {
		return nil
	}
	// Deleting under a moving cursor can skip keys, so collect first.
	var drop [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var sess auth.Session
		if json.Unmarshal(v, &sess) != nil || match(sess) {
			drop = append(drop, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func putJSON(tx *bolt.Tx, bucket []byte, key string, v any) error {
	if key == "" {
		return errors.New("empty key")
	}
	b, err := tx.CreateBucketIfNotExists(bucket)
	if err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}
