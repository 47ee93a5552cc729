package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// DefaultTTL is how long an unused session lives.
const DefaultTTL = 7 * 24 * time.Hour

// Service is the accounts logic. Set its fields, then use it from any goroutine; do not
// change the fields after the first call. Only Store is required.
type Service struct {
	Store Store
	Now   func() time.Time // default time.Now; also drives the rate limiters
	Log   *slog.Logger     // default: discard
	// TTL is a session's lifetime, default DefaultTTL. It slides: Check renews a session used
	// in the second half of its life, so a dashboard in daily use stays logged in.
	TTL    time.Duration
	Params Params // argon2id cost for new hashes; zero fields take DefaultParams
	Limits Limits // limits on failed logins; zero fields take the defaults
	// MaxHashing bounds concurrent argon2 computations, default 2. Each takes Params.Memory
	// (19 MiB by default): a burst of logins must not run a 512 MB Pi out of memory.
	MaxHashing int
	// OnFirstAdmin, if set, is called once the first account exists (made through the web
	// or the command line): the daemon removes the setup code's file then.
	OnFirstAdmin func()

	once      sync.Once
	throttle  *throttle
	hashing   chan struct{} // semaphore of MaxHashing slots
	dummyOnce sync.Once
	dummy     string // hash to verify against for unknown users, to take the same time

	setupMu   sync.Mutex
	setupCode string // canonical; "" refuses web registration (see SetSetupCode)

	// mu serializes read-modify-write of users (Create, password changes, Delete). The
	// store's flock makes this process its only writer, so a mutex is enough.
	mu sync.Mutex
}

func (s *Service) init() {
	s.once.Do(func() {
		if s.Now == nil {
			s.Now = time.Now
		}
		if s.Log == nil {
			s.Log = slog.New(slog.DiscardHandler)
		}
		if s.TTL <= 0 {
			s.TTL = DefaultTTL
		}
		s.Params = s.Params.withDefaults()
		s.Limits = s.Limits.withDefaults()
		s.throttle = newThrottle(s.Limits)
		if s.MaxHashing <= 0 {
			s.MaxHashing = 2
		}
		s.hashing = make(chan struct{}, s.MaxHashing)
	})
}

func (s *Service) hash(password string) (string, error) {
	s.hashing <- struct{}{}
	defer func() { <-s.hashing }()
	return HashPassword(s.Params, password)
}

func (s *Service) verify(hash, password string) (bool, error) {
	s.hashing <- struct{}{}
	defer func() { <-s.hashing }()
	return VerifyPassword(hash, password)
}

// now strips the monotonic reading: times go to the store and come back without it.
func (s *Service) now() time.Time { return s.Now().Round(0) }

// NeedsSetup reports whether there are no users yet, so the first visitor may Register.
func (s *Service) NeedsSetup() (bool, error) {
	s.init()
	n, err := s.Store.CountUsers()
	if err != nil {
		return false, fmt.Errorf("check for users: %w", err)
	}
	return n == 0, nil
}

// Register creates the first user, an admin, without a setup code: for the command line,
// whose user can open the database anyway (the web uses RegisterWithCode). Once any user
// exists it returns ErrRegistrationClosed; of concurrent calls on an empty store exactly
// one succeeds.
func (s *Service) Register(name, password string) (User, error) {
	s.init()
	if open, err := s.NeedsSetup(); err != nil {
		return User{}, err
	} else if !open {
		return User{}, ErrRegistrationClosed
	}
	return s.register(name, password)
}

// register creates the first user; the caller checked that there was none a moment ago.
func (s *Service) register(name, password string) (User, error) {
	u, err := s.newUser(name, password, true)
	if err != nil {
		return User{}, fmt.Errorf("register: %w", err)
	}
	created, err := s.Store.CreateFirstUser(u)
	if err != nil {
		return User{}, fmt.Errorf("register %q: %w", name, err)
	}
	if !created {
		return User{}, ErrRegistrationClosed
	}
	s.Log.Info("registered first admin", "user", name)
	s.SetSetupCode("") // one-time: spent
	if s.OnFirstAdmin != nil {
		s.OnFirstAdmin()
	}
	return public(u), nil
}

// Create adds a user. The caller checks that an admin asks.
func (s *Service) Create(name, password string, admin bool) (User, error) {
	s.init()
	if err := ValidateName(name); err != nil {
		return User{}, err
	}
	// Fail before spending a hash on a name that is taken; checked again below.
	if _, ok, err := s.Store.GetUser(name); err != nil {
		return User{}, fmt.Errorf("create user %q: %w", name, err)
	} else if ok {
		return User{}, fmt.Errorf("create user %q: %w", name, ErrExists)
	}
	u, err := s.newUser(name, password, admin)
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok, err := s.Store.GetUser(name); err != nil {
		return User{}, fmt.Errorf("create user %q: %w", name, err)
	} else if ok {
		return User{}, fmt.Errorf("create user %q: %w", name, ErrExists)
	}
	if err := s.Store.PutUser(u); err != nil {
		return User{}, fmt.Errorf("create user %q: %w", name, err)
	}
	s.Log.Info("created user", "user", name, "admin", admin)
	return public(u), nil
}

func (s *Service) newUser(name, password string, admin bool) (User, error) {
	if err := ValidateName(name); err != nil {
		return User{}, err
	}
	if err := ValidatePassword(password); err != nil {
		return User{}, err
	}
	hash, err := s.hash(password)
	if err != nil {
		return User{}, err
	}
	now := s.now()
	return User{Name: name, Hash: hash, Admin: admin, Created: now, PasswordChanged: now}, nil
}

// Client is who attempts a login: the address, and the device token the browser kept
// from an earlier login (Session.Device; "" when it has none).
type Client struct {
	Addr   netip.Addr
	Device string
}

// Login is LoginFrom a client without a device token.
func (s *Service) Login(client netip.Addr, name, password string) (Session, error) {
	return s.LoginFrom(Client{Addr: client}, name, password)
}

// LoginFrom checks a name and password from c and starts a session, whose Device is a new
// device token for the browser to keep. Failures are limited (see Limits): a refused
// attempt is a *RateLimitError (errors.Is ErrRateLimited), checked before any password
// work. An unknown user and a wrong password are both ErrBadCredentials, after the same
// hashing work, so that responses do not tell which names exist.
//
// The name is trimmed and lowercased first: phone keyboards like to capitalise it.
func (s *Service) LoginFrom(c Client, name, password string) (Session, error) {
	s.init()
	name = strings.ToLower(strings.TrimSpace(name))
	account := name
	if ValidateName(name) != nil {
		// No such account can exist; one shared bucket keeps junk names from filling the map.
		account = ""
	}
	var u User
	var ok, looked bool
	device := ""
	if account != "" && c.Device != "" {
		var err error
		if u, ok, err = s.Store.GetUser(account); err != nil {
			return Session{}, fmt.Errorf("login: %w", err)
		}
		looked = true
		if ok {
			device, _ = deviceNonce(u, c.Device)
		}
	}
	tk, rl := s.throttle.admit(clientKey(c.Addr), account, device, s.now())
	if rl != nil {
		s.Log.Warn("login rate limited", "client", c.Addr, "retry_after", rl.RetryAfter, "account_limit", rl.Account)
		return Session{}, rl
	}
	failed := false
	defer func() { tk.done(failed, s.now()) }()

	if account != "" && !looked {
		var err error
		if u, ok, err = s.Store.GetUser(account); err != nil {
			return Session{}, fmt.Errorf("login: %w", err)
		}
	}
	if !ok || len(password) > MaxPasswordBytes {
		s.spendDummyHash(password)
		failed = true
		// The name is not logged: people type passwords into the name field.
		s.Log.Info("login failed: unknown user or overlong password", "client", c.Addr)
		return Session{}, ErrBadCredentials
	}
	match, err := s.verify(u.Hash, password)
	if err != nil {
		return Session{}, fmt.Errorf("login %q: stored password of the user is unreadable, an admin must set a new one: %w", u.Name, err)
	}
	if !match {
		failed = true
		s.Log.Info("login failed: wrong password", "user", u.Name, "client", c.Addr, "device", device != "")
		return Session{}, ErrBadCredentials
	}
	if nu, ok := s.upgradeHash(u, password); ok {
		u = nu
	}

	sess, err := s.newSession(u, s.now())
	if err != nil {
		return Session{}, fmt.Errorf("login %q: %w", u.Name, err)
	}
	s.Log.Info("logged in", "user", u.Name, "client", c.Addr)
	return sess, nil
}

// spendDummyHash does the work of verifying a password, for a user that does not exist.
func (s *Service) spendDummyHash(password string) {
	if len(password) > MaxPasswordBytes {
		password = password[:MaxPasswordBytes]
	}
	s.dummyOnce.Do(func() {
		// Same parameters as new hashes, so that it takes as long as a real user's.
		s.dummy, _ = s.hash("amwi dummy password")
	})
	s.verify(s.dummy, password) //nolint:errcheck // only the time it takes matters
}

// upgradeHash rehashes a just-verified password when its hash was made with other
// parameters than the current ones, so raising Params reaches existing accounts. Failures
// only get logged: the login itself succeeded.
//
// It returns the user as stored now, and whether it rehashed: device tokens are keyed with
// the hash, so the new session's must be made with the new one.
func (s *Service) upgradeHash(u User, password string) (User, bool) {
	h, err := parsePHC(u.Hash)
	if err != nil || h.Params == s.Params {
		return u, false
	}
	hash, err := s.hash(password)
	if err != nil {
		s.Log.Warn("rehash password with current parameters", "user", u.Name, "err", err)
		return u, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok, err := s.Store.GetUser(u.Name)
	if err != nil || !ok || cur.Hash != u.Hash {
		return u, false // changed or deleted meanwhile: leave it alone
	}
	cur.Hash = hash
	if err := s.Store.PutUser(cur); err != nil {
		s.Log.Warn("rehash password with current parameters", "user", u.Name, "err", err)
		return u, false
	}
	s.Log.Info("rehashed password with current parameters", "user", u.Name)
	return cur, true
}

func (s *Service) newSession(u User, now time.Time) (Session, error) {
	id, err := token()
	if err != nil {
		return Session{}, err
	}
	csrf, err := token()
	if err != nil {
		return Session{}, err
	}
	// Created is never before the password change, which Check would take for a session
	// of the old password: a wall clock stepped back (a Pi has no RTC) must not lock out.
	created := now
	if created.Before(u.PasswordChanged) {
		created = u.PasswordChanged
	}
	sess := Session{ID: id, User: u.Name, CSRF: csrf, Created: created, Expires: now.Add(s.TTL)}
	if err := s.Store.PutSession(sess); err != nil {
		return Session{}, err
	}
	// Not stored: the browser keeps it, and it is checked against the hash.
	if sess.Device, err = newDeviceToken(u); err != nil {
		sess.Device = "" // the login stands; the browser only misses its own limit
	}
	return sess, nil
}

// Check returns the session with id and its user, renewing the session if it is past half
// its life. Unknown, expired, and orphaned sessions, and sessions older than the user's
// last password change, are ErrNotFound (and deleted).
func (s *Service) Check(id string) (Session, User, error) {
	s.init()
	if id == "" || len(id) > 128 {
		return Session{}, User{}, ErrNotFound
	}
	sess, ok, err := s.Store.GetSession(id)
	if err != nil {
		return Session{}, User{}, fmt.Errorf("check session: %w", err)
	}
	if !ok {
		return Session{}, User{}, ErrNotFound
	}
	now := s.now()
	drop := func(why string) (Session, User, error) {
		if err := s.Store.DeleteSession(id); err != nil {
			return Session{}, User{}, fmt.Errorf("drop %s session: %w", why, err)
		}
		return Session{}, User{}, ErrNotFound
	}
	if !now.Before(sess.Expires) {
		return drop("expired")
	}
	u, ok, err := s.Store.GetUser(sess.User)
	if err != nil {
		return Session{}, User{}, fmt.Errorf("check session: %w", err)
	}
	if !ok {
		return drop("orphaned")
	}
	// Password changes delete the user's sessions too; this also covers a crash between
	// the two writes and a login racing with the change.
	if sess.Created.Before(u.PasswordChanged) {
		return drop("pre-password-change")
	}
	if sess.Expires.Sub(now) < s.TTL/2 {
		sess.Expires = now.Add(s.TTL)
		if err := s.Store.PutSession(sess); err != nil {
			return Session{}, User{}, fmt.Errorf("renew session: %w", err)
		}
	}
	return sess, public(u), nil
}

// Logout ends a session; an unknown id is not an error.
func (s *Service) Logout(id string) error {
	s.init()
	if id == "" {
		return nil
	}
	if err := s.Store.DeleteSession(id); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// ChangePassword sets a user's new password after checking the old one, ends all of the
// user's sessions, and starts a new one for c (with a new device token: the old ones ended
// with the old password). A wrong old password is ErrBadCredentials and counts as a
// failed login of the account from c.
func (s *Service) ChangePassword(c Client, name, old, new string) (Session, error) {
	s.init()
	u, ok, err := s.Store.GetUser(name)
	if err != nil {
		return Session{}, fmt.Errorf("change password of %q: %w", name, err)
	}
	if !ok {
		return Session{}, fmt.Errorf("change password of %q: user %w", name, ErrNotFound)
	}
	device, _ := deviceNonce(u, c.Device)
	tk, rl := s.throttle.admit(clientKey(c.Addr), name, device, s.now())
	if rl != nil {
		return Session{}, rl
	}
	failed := false
	defer func() { tk.done(failed, s.now()) }()
	if len(old) > MaxPasswordBytes { // no such password can be set: fail without hashing it
		failed = true
		return Session{}, fmt.Errorf("change password of %q: the current password is wrong: %w", name, ErrBadCredentials)
	}
	match, err := s.verify(u.Hash, old)
	if err != nil {
		return Session{}, fmt.Errorf("change password of %q: stored password is unreadable, an admin must set a new one: %w", name, err)
	}
	if !match {
		failed = true
		s.Log.Info("password change refused: wrong old password", "user", name, "client", c.Addr)
		return Session{}, fmt.Errorf("change password of %q: the current password is wrong: %w", name, ErrBadCredentials)
	}
	if err := s.setPassword(name, new, u.Hash); err != nil {
		return Session{}, fmt.Errorf("change password of %q: %w", name, err)
	}
	s.Log.Info("password changed", "user", name)
	u, ok, err = s.Store.GetUser(name)
	if err != nil || !ok {
		return Session{}, fmt.Errorf("change password of %q: changed, but log in again: %w", name, errOrNotFound(err, ok))
	}
	sess, err := s.newSession(u, s.now())
	if err != nil {
		return Session{}, fmt.Errorf("change password of %q: changed, but log in again: %w", name, err)
	}
	return sess, nil
}

// errOrNotFound is err, or ErrNotFound when there was no error but nothing found.
func errOrNotFound(err error, found bool) error {
	if err == nil && !found {
		return ErrNotFound
	}
	return err
}

// SetPassword sets a user's password without the old one (an admin's reset) and ends the
// user's sessions.
func (s *Service) SetPassword(name, new string) error {
	s.init()
	if err := s.setPassword(name, new, ""); err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	s.Log.Info("password set", "user", name)
	return nil
}

// setPassword stores a hash of password for name and deletes the user's sessions. If
// oldHash is set, it refuses when the hash changed since the caller verified it.
func (s *Service) setPassword(name, password, oldHash string) error {
	if err := ValidatePassword(password); err != nil {
		return err
	}
	hash, err := s.hash(password)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok, err := s.Store.GetUser(name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("user %w", ErrNotFound)
	}
	if oldHash != "" && u.Hash != oldHash {
		return errors.New("the password was changed meanwhile: log in again and retry")
	}
	u.Hash = hash
	u.PasswordChanged = s.now()
	if err := s.Store.PutUser(u); err != nil {
		return err
	}
	return s.Store.DeleteUserSessions(name)
}

// Delete removes a user and the user's sessions. It refuses to remove the last admin
// (ErrLastAdmin), so that someone can always manage accounts.
func (s *Service) Delete(name string) error {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok, err := s.Store.GetUser(name)
	if err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("delete user %q: %w", name, ErrNotFound)
	}
	if u.Admin {
		all, err := s.Store.ListUsers()
		if err != nil {
			return fmt.Errorf("delete user %q: %w", name, err)
		}
		admins := 0
		for _, o := range all {
			if o.Admin {
				admins++
			}
		}
		if admins <= 1 {
			return fmt.Errorf("delete user %q: %w", name, ErrLastAdmin)
		}
	}
	if err := s.Store.DeleteUser(name); err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	s.Log.Info("deleted user", "user", name)
	return nil
}

// Users lists all users by name, without their password hashes.
func (s *Service) Users() ([]User, error) {
	s.init()
	us, err := s.Store.ListUsers()
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	for i := range us {
		us[i] = public(us[i])
	}
	return us, nil
}

// Prune deletes expired sessions; the daemon calls it now and then (Check also drops an
// expired session it meets). It returns how many it deleted.
func (s *Service) Prune() (int, error) {
	s.init()
	n, err := s.Store.PruneSessions(s.now())
	if err != nil {
		return n, fmt.Errorf("prune sessions: %w", err)
	}
	return n, nil
}

// public strips the hash from a user handed out of this package, so that it cannot end up
// in a template or a JSON response by accident.
func public(u User) User {
	u.Hash = ""
	return u
}
