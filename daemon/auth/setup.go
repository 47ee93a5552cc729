package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
)

// The first admin. While no account exists, whoever registers first through the web
// becomes the administrator, and on a shared LAN that need not be the box's owner. So the
// web registration takes a one-time setup code: the daemon makes one while there is no
// account, prints it in its log and keeps it in a file only root and the amwi user can
// read (see daemon), and gives it to the Service with SetSetupCode. The command line
// (`amwi user add`, Register) needs no code: whoever runs it can open the database anyway.

// setupAlphabet has 32 symbols that are hard to confuse (no 0/O, no 1/I); setupChars of
// them make 60 bits: at the per-address limit of wrong attempts (40 an hour), even a
// million addresses would need over a million years on average to hit the code. So wrong
// codes are limited per address only, with no budget of their own that a stranger could
// spend to keep the owner, on a clean address, from registering.
const (
	setupAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	setupChars    = 12
	setupGroup    = 4
)

// NewSetupCode returns a fresh random setup code in its canonical form, like
// "K7QM-2XPD-9RWA".
func NewSetupCode() (string, error) {
	b := make([]byte, setupChars)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random setup code: %w", err)
	}
	for i := range b {
		b[i] = setupAlphabet[int(b[i])%len(setupAlphabet)] // 256 is a multiple of 32: no bias
	}
	code, _ := ParseSetupCode(string(b))
	return code, nil
}

// ParseSetupCode returns code in its canonical form (upper case, in dash-separated groups),
// and whether it is a setup code at all. People type codes as they like: case, spaces and
// dashes do not matter.
func ParseSetupCode(code string) (string, bool) {
	if len(code) > 4*setupChars {
		return "", false
	}
	var sb strings.Builder
	n := 0
	for _, r := range strings.ToUpper(code) {
		switch {
		case r == '-' || r == ' ' || r == '\t' || r == '\n' || r == '\r':
			continue
		case r > 127 || !strings.ContainsRune(setupAlphabet, r):
			return "", false
		}
		if n > 0 && n%setupGroup == 0 {
			sb.WriteByte('-')
		}
		sb.WriteRune(r)
		n++
	}
	if n != setupChars {
		return "", false
	}
	return sb.String(), true
}

// SetSetupCode sets the code the web registration of the first admin must present
// (RegisterWithCode); "" refuses every code. The daemon calls it while no account exists.
func (s *Service) SetSetupCode(code string) {
	s.init()
	c, _ := ParseSetupCode(code)
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	s.setupCode = c
}

// setupCodeMatches reports whether code is the setup code, in constant time: both sides
// are hashed first, so that neither the length nor the content of the right code shows in
// the time a comparison takes.
func (s *Service) setupCodeMatches(code string) bool {
	s.setupMu.Lock()
	want := s.setupCode
	s.setupMu.Unlock()
	got, ok := ParseSetupCode(code)
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1 && ok && want != ""
}

// RegisterWithCode creates the first user, an admin, for a client on the web, which must
// present the setup code. A missing or wrong code is ErrBadSetupCode and counts as a
// failure of c's address (Limits.PerClient, shared with logins); a refused attempt is a
// *RateLimitError. Once any user exists it is ErrRegistrationClosed.
func (s *Service) RegisterWithCode(c Client, code, name, password string) (User, error) {
	s.init()
	if open, err := s.NeedsSetup(); err != nil {
		return User{}, err
	} else if !open {
		return User{}, ErrRegistrationClosed
	}
	// Name and password first: a typo there should not cost the owner an attempt, and the
	// answer says nothing about the code.
	if err := ValidateName(name); err != nil {
		return User{}, fmt.Errorf("register: %w", err)
	}
	if err := ValidatePassword(password); err != nil {
		return User{}, fmt.Errorf("register: %w", err)
	}
	tk, rl := s.throttle.admitClient(clientKey(c.Addr), s.now())
	if rl != nil {
		s.Log.Warn("registration rate limited", "client", c.Addr, "retry_after", rl.RetryAfter)
		return User{}, rl
	}
	if !s.setupCodeMatches(code) {
		tk.done(true, s.now())
		s.Log.Warn("registration refused: missing or wrong setup code", "client", c.Addr)
		return User{}, ErrBadSetupCode
	}
	tk.done(false, s.now())
	return s.register(name, password)
}
