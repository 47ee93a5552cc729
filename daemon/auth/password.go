package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters for new hashes. Existing hashes carry their own
// parameters in their PHC string, so changing these never locks anybody out; Login rehashes a
// password with the current parameters when it next sees it.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over the memory
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams are OWASP's minimum for argon2id (m=19 MiB, t=2, p=1): about 20 MiB and a
// few tens of milliseconds per login on a Raspberry Pi, so a 512 MB board survives a handful
// of parallel logins, while an offline attacker still pays a real memory-hard KDF per guess.
func DefaultParams() Params {
	return Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// withDefaults fills the zero fields from DefaultParams.
func (p Params) withDefaults() Params {
	d := DefaultParams()
	if p.Memory == 0 {
		p.Memory = d.Memory
	}
	if p.Time == 0 {
		p.Time = d.Time
	}
	if p.Threads == 0 {
		p.Threads = d.Threads
	}
	if p.SaltLen == 0 {
		p.SaltLen = d.SaltLen
	}
	if p.KeyLen == 0 {
		p.KeyLen = d.KeyLen
	}
	return p
}

// Bounds a PHC string must respect. They keep a corrupt or hostile hash from making
// VerifyPassword allocate gigabytes or spin for minutes, and are far above any sane setting.
const (
	maxMemory  = 1 << 21 // KiB = 2 GiB
	maxTime    = 64
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 128
)

func (p Params) check() error {
	switch {
	case p.Threads < 1:
		return errors.New("argon2id threads (p) must be at least 1")
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return fmt.Errorf("argon2id memory (m) must be between %d and %d KiB", 8*uint32(p.Threads), maxMemory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("argon2id time (t) must be between 1 and %d", maxTime)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("argon2id salt must be %d to %d bytes", minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("argon2id key must be %d to %d bytes", minKeyLen, maxKeyLen)
	}
	return nil
}

// phc is a parsed "$argon2id$v=19$m=…,t=…,p=…$salt$key" string.
type phc struct {
	Params
	salt, key []byte
}

// b64 is PHC's base64: standard alphabet, no padding.
var b64 = base64.RawStdEncoding.Strict()

func (h phc) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.Memory, h.Time, h.Threads, b64.EncodeToString(h.salt), b64.EncodeToString(h.key))
}

// HashPassword hashes password with argon2id and a fresh random salt, returning a PHC
// string. Zero fields of p take their DefaultParams value.
func HashPassword(p Params, password string) (string, error) {
	p = p.withDefaults()
	if err := p.check(); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: read random salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return phc{Params: p, salt: salt, key: key}.String(), nil
}

// VerifyPassword reports whether password matches hash, a PHC argon2id string, using the
// parameters written in hash. A malformed hash is an error, never a panic or a match.
func VerifyPassword(hash, password string) (bool, error) {
	h, err := parsePHC(hash)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(password), h.salt, h.Time, h.Memory, h.Threads, h.KeyLen)
	return subtle.ConstantTimeCompare(key, h.key) == 1, nil
}

// errBadHash prefixes parse errors. They describe the defect, never the hash's content.
var errBadHash = errors.New("malformed password hash")

func parsePHC(s string) (phc, error) {
	bad := func(format string, a ...any) (phc, error) {
		return phc{}, fmt.Errorf("%w: "+format+" (want $argon2id$v=19$m=…,t=…,p=…$salt$hash)", append([]any{errBadHash}, a...)...)
	}
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, key
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" {
		return bad("want 5 fields separated by '$'")
	}
	if f[1] != "argon2id" {
		return bad("algorithm is not argon2id")
	}
	if v, ok := strings.CutPrefix(f[2], "v="); !ok || v != strconv.Itoa(argon2.Version) {
		return bad("version is not v=%d", argon2.Version)
	}
	var h phc
	kv := strings.Split(f[3], ",")
	if len(kv) != 3 {
		return bad("want parameters m, t and p")
	}
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(kv[i], name+"=")
		if !ok {
			return bad("parameter %d is not %s", i+1, name)
		}
		bits := 32
		if name == "p" {
			bits = 8
		}
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil {
			return bad("parameter %s is not a number that fits", name)
		}
		switch name {
		case "m":
			h.Memory = uint32(n)
		case "t":
			h.Time = uint32(n)
		case "p":
			h.Threads = uint8(n)
		}
	}
	var err error
	if h.salt, err = b64.DecodeString(f[4]); err != nil {
		return bad("salt is not unpadded base64")
	}
	if h.key, err = b64.DecodeString(f[5]); err != nil {
		return bad("hash is not unpadded base64")
	}
	h.SaltLen, h.KeyLen = uint32(len(h.salt)), uint32(len(h.key))
	if err := h.check(); err != nil {
		return bad("%v", err)
	}
	return h, nil
}
