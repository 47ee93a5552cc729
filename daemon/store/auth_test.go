package store

import (
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amwi/amwi/daemon/auth"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestUsers(t *testing.T) {
	s := openTemp(t)
	// A fresh store has no buckets yet: reads see nothing, deletes of nothing are fine.
	if n, err := s.CountUsers(); err != nil || n != 0 {
		t.Fatalf("CountUsers = %d, %v; want 0", n, err)
	}
	if _, ok, err := s.GetUser("admin"); ok || err != nil {
		t.Fatalf("GetUser on an empty store = %v, %v", ok, err)
	}
	if us, err := s.ListUsers(); len(us) != 0 || err != nil {
		t.Fatalf("ListUsers on an empty store = %v, %v", us, err)
	}

	admin := auth.User{Name: "admin", Hash: "$argon2id$x", Admin: true, Created: t0, PasswordChanged: t0}
	for _, tt := range []struct {
		name        string
		user        auth.User
		wantCreated bool
	}{
		{"first user", admin, true},
		{"second is refused", auth.User{Name: "mallory"}, false},
		{"also the same name", auth.User{Name: "admin", Hash: "other"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			created, err := s.CreateFirstUser(tt.user)
			if err != nil || created != tt.wantCreated {
				t.Fatalf("CreateFirstUser = %v, %v; want %v", created, err, tt.wantCreated)
			}
		})
	}
	got, ok, err := s.GetUser("admin")
	if err != nil || !ok || got != admin {
		t.Fatalf("GetUser = %+v, %v, %v; want %+v", got, ok, err, admin)
	}
	for _, name := range []string{"carol", "bob"} {
		if err := s.PutUser(auth.User{Name: name, Created: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutUser(auth.User{}); err == nil {
		t.Error("PutUser with no name succeeded")
	}
	us, err := s.ListUsers()
	if err != nil || len(us) != 3 || us[0].Name != "admin" || us[1].Name != "bob" || us[2].Name != "carol" {
		t.Fatalf("ListUsers = %+v, %v; want admin, bob, carol", us, err)
	}
	if n, err := s.CountUsers(); err != nil || n != 3 {
		t.Fatalf("CountUsers = %d, %v; want 3", n, err)
	}
	if err := s.DeleteUser("ghost"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("DeleteUser of an unknown user = %v, want ErrNotFound", err)
	}
}

func TestSessions(t *testing.T) {
	s := openTemp(t)
	if err := s.DeleteSession("nothing"); err != nil {
		t.Fatalf("DeleteSession on an empty store: %v", err)
	}
	if n, err := s.PruneSessions(t0); err != nil || n != 0 {
		t.Fatalf("PruneSessions on an empty store = %d, %v", n, err)
	}
	for _, name := range []string{"alice", "bob"} {
		if err := s.PutUser(auth.User{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	sessions := []auth.Session{
		{ID: "a1", User: "alice", CSRF: "c", Created: t0, Expires: t0.Add(time.Hour)},
		{ID: "a2", User: "alice", Created: t0, Expires: t0.Add(2 * time.Hour)},
		{ID: "b1", User: "bob", Created: t0, Expires: t0.Add(time.Hour)},
		{ID: "b2", User: "bob", Created: t0, Expires: t0.Add(3 * time.Hour)},
		{ID: "b3", User: "bob", Created: t0, Expires: t0.Add(3 * time.Hour)},
	}
	for _, sess := range sessions {
		if err := s.PutSession(sess); err != nil {
			t.Fatal(err)
		}
	}
	// A record that does not decode is no one's session: pruning drops it.
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Put([]byte("junk"), []byte("{")) })

	if got, ok, err := s.GetSession("a1"); err != nil || !ok || got != sessions[0] {
		t.Fatalf("GetSession = %+v, %v, %v", got, ok, err)
	}
	for _, tt := range []struct {
		name string
		op   func() error
		gone []string
		kept []string
	}{
		{"delete one", func() error { return s.DeleteSession("a1") }, []string{"a1"}, []string{"a2", "b1"}},
		{"prune at expiry", func() error {
			n, err := s.PruneSessions(t0.Add(time.Hour))
			if err == nil && n != 1 {
				t.Errorf("pruned %d, want 1 (b1)", n)
			}
			return err
		}, []string{"b1", "junk"}, []string{"a2", "b2", "b3"}},
		{"delete a user's sessions", func() error { return s.DeleteUserSessions("alice") }, []string{"a2"}, []string{"b2", "b3"}},
		{"delete a user", func() error { return s.DeleteUser("bob") }, []string{"b2", "b3"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); err != nil {
				t.Fatal(err)
			}
			for _, id := range tt.gone {
				if _, ok, _ := s.GetSession(id); ok {
					t.Errorf("session %s still there", id)
				}
			}
			for _, id := range tt.kept {
				if _, ok, err := s.GetSession(id); !ok || err != nil {
					t.Errorf("session %s gone: %v", id, err)
				}
			}
		})
	}
	if _, ok, _ := s.GetUser("bob"); ok {
		t.Error("DeleteUser left the user")
	}
	if _, ok, _ := s.GetUser("alice"); !ok {
		t.Error("DeleteUserSessions deleted the user")
	}
}

func TestAuthSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	u := auth.User{Name: "admin", Hash: "h", Admin: true, Created: t0, PasswordChanged: t0}
	sess := auth.Session{ID: "id", User: "admin", CSRF: "c", Created: t0, Expires: t0.Add(time.Hour)}
	if _, err := s.CreateFirstUser(u); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSession(sess); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dir, time.Second); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, _, err := s.GetUser("admin"); err != nil || got != u {
		t.Errorf("user after reopen = %+v, %v", got, err)
	}
	if got, _, err := s.GetSession("id"); err != nil || got != sess {
		t.Errorf("session after reopen = %+v, %v", got, err)
	}
}
