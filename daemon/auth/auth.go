package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"
)

// User is an account.
type User struct {
	Name            string    `json:"name"`
	Hash            string    `json:"hash"` // PHC argon2id string; empty in what Service hands out
	Admin           bool      `json:"admin"`
	Created         time.Time `json:"created"`
	PasswordChanged time.Time `json:"password_changed"`
}

// Session is a logged-in browser.
type Session struct {
	ID      string    `json:"id"`   // 32 random bytes, base64url: the cookie value
	User    string    `json:"user"` // User.Name
	CSRF    string    `json:"csrf"` // 32 random bytes, base64url: goes into forms, checked on every state-changing request
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Device is a new device token for the browser to keep (set by a login, never stored):
	// handed back with later logins, it gives them a limit of their own (Client.Device).
	Device string `json:"-"`
}

// ValidCSRF reports, in constant time, whether token is this session's CSRF token.
func (s Session) ValidCSRF(token string) bool {
	return s.CSRF != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) == 1
}

// Store is what auth needs from persistence; daemon/store implements it with bbolt.
type Store interface {
	CountUsers() (int, error)
	GetUser(name string) (User, bool, error)
	PutUser(u User) error
	// CreateFirstUser stores u only if there are no users yet, atomically.
	CreateFirstUser(u User) (created bool, err error)
	// DeleteUser deletes the user and all of its sessions; an error wrapping ErrNotFound if
	// there is no such user.
	DeleteUser(name string) error
	ListUsers() ([]User, error) // sorted by name
	PutSession(s Session) error
	GetSession(id string) (Session, bool, error)
	DeleteSession(id string) error // no error if there is no such session
	DeleteUserSessions(name string) error
	PruneSessions(now time.Time) (int, error) // deletes sessions expired at now, returns how many
}

// Errors callers tell apart with errors.Is. The errors returned wrap them with the details.
var (
	ErrExists             = errors.New("user already exists: pick another name")
	ErrNotFound           = errors.New("not found")
	ErrBadCredentials     = errors.New("wrong user name or password")
	ErrRateLimited        = errors.New("too many login attempts")
	ErrWeakPassword       = errors.New("password not accepted")
	ErrBadName            = errors.New("invalid user name")
	ErrRegistrationClosed = errors.New("registration is closed because an admin exists: ask an admin to create your account")
	ErrBadSetupCode       = errors.New("missing or wrong setup code: the daemon prints it in its log while no account exists")
	ErrLastAdmin          = errors.New("cannot delete the last admin: create another admin first")
)

// RateLimitError is a refused login; errors.Is(err, ErrRateLimited) holds.
type RateLimitError struct {
	RetryAfter time.Duration // how long until the next attempt is allowed
	Account    bool          // the account's limit (else the client address's)
}

func (e *RateLimitError) Error() string {
	who := "from this address"
	if e.Account {
		who = "for this account"
	}
	return fmt.Sprintf("%s %s: try again in %s", ErrRateLimited, who, e.RetryAfter)
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)

// ValidateName checks a user name against the naming rule (that of Linux user names).
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w %q: use 1 to 32 characters of lowercase letters, digits, '_', '.' and '-', starting with a letter or '_'", ErrBadName, name)
	}
	return nil
}

// Password length limits. The upper bound keeps hashing cost independent of what a client
// sends; passphrases fit easily.
const (
	MinPasswordChars = 10
	MaxPasswordBytes = 1024
)

// ValidatePassword checks a new password against the policy.
func ValidatePassword(password string) error {
	if utf8.RuneCountInString(password) < MinPasswordChars {
		return fmt.Errorf("%w: use at least %d characters; a few words make a good one", ErrWeakPassword, MinPasswordChars)
	}
	if len(password) > MaxPasswordBytes {
		return fmt.Errorf("%w: use at most %d bytes", ErrWeakPassword, MaxPasswordBytes)
	}
	return nil
}

// token returns 32 random bytes in base64url, for session ids and CSRF tokens.
func token() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
