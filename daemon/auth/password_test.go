package auth_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/amwi/amwi/daemon/auth"
)

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$`)

func TestHashPassword(t *testing.T) {
	a, err := auth.HashPassword(testParams, adminPass)
	if err != nil {
		t.Fatal(err)
	}
	b, err := auth.HashPassword(testParams, adminPass)
	if err != nil {
		t.Fatal(err)
	}
	if !phcRE.MatchString(a) {
		t.Errorf("hash %q is not an argon2id PHC string", a)
	}
	if a == b {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	for _, tt := range []struct {
		name, hash, password string
		want                 bool
	}{
		{"right", a, adminPass, true},
		{"right, second hash", b, adminPass, true},
		{"wrong", a, adminPass + " ", false},
		{"empty", a, "", false},
		{"prefix", a, adminPass[:5], false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := auth.VerifyPassword(tt.hash, tt.password)
			if err != nil || ok != tt.want {
				t.Fatalf("VerifyPassword = %v, %v; want %v", ok, err, tt.want)
			}
		})
	}
}

// TestDefaultParams hashes once with the real parameters: OWASP's argon2id minimum.
func TestDefaultParams(t *testing.T) {
	h, err := auth.HashPassword(auth.Params{}, adminPass)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("zero Params hash %q, want the defaults m=19456,t=2,p=1", h[:40])
	}
	if ok, err := auth.VerifyPassword(h, adminPass); !ok || err != nil {
		t.Errorf("VerifyPassword = %v, %v", ok, err)
	}
	if p := auth.DefaultParams(); p.SaltLen < 16 || p.KeyLen < 32 {
		t.Errorf("default salt %d bytes, key %d bytes: want at least 16 and 32", p.SaltLen, p.KeyLen)
	}
}

func TestHashPasswordRefusesBadParams(t *testing.T) {
	for _, p := range []auth.Params{
		{Memory: 4, Time: 1, Threads: 1},
		{Memory: 64, Time: 1000, Threads: 1},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 4},
	} {
		if h, err := auth.HashPassword(p, adminPass); err == nil {
			t.Errorf("HashPassword(%+v) = %q, want an error", p, h)
		}
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	good, err := auth.HashPassword(testParams, adminPass)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(good, "$") // "", argon2id, v=19, m=…, salt, key
	join := func(fields ...string) string { return strings.Join(fields, "$") }
	for _, tt := range []struct{ name, hash string }{
		{"empty", ""},
		{"just dollars", "$$$$$"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", join("", "argon2i", f[2], f[3], f[4], f[5])},
		{"argon2d", join("", "argon2d", f[2], f[3], f[4], f[5])},
		{"version 16", join("", f[1], "v=16", f[3], f[4], f[5])},
		{"no version", join("", f[1], f[3], f[4], f[5])},
		{"missing p", join("", f[1], f[2], "m=64,t=1", f[4], f[5])},
		{"params out of order", join("", f[1], f[2], "t=1,m=64,p=1", f[4], f[5])},
		{"extra param", join("", f[1], f[2], "m=64,t=1,p=1,data=x", f[4], f[5])},
		{"m zero", join("", f[1], f[2], "m=0,t=1,p=1", f[4], f[5])},
		{"m huge", join("", f[1], f[2], "m=4294967295,t=1,p=1", f[4], f[5])},
		{"m overflows", join("", f[1], f[2], "m=99999999999999999999,t=1,p=1", f[4], f[5])},
		{"m negative", join("", f[1], f[2], "m=-64,t=1,p=1", f[4], f[5])},
		{"t zero", join("", f[1], f[2], "m=64,t=0,p=1", f[4], f[5])},
		{"t huge", join("", f[1], f[2], "m=64,t=100000,p=1", f[4], f[5])},
		{"p zero", join("", f[1], f[2], "m=64,t=1,p=0", f[4], f[5])},
		{"p over 255", join("", f[1], f[2], "m=64,t=1,p=256", f[4], f[5])},
		{"padded salt", join("", f[1], f[2], f[3], f[4]+"==", f[5])},
		{"salt not base64", join("", f[1], f[2], f[3], "!!!!!!!!!!!!", f[5])},
		{"salt too short", join("", f[1], f[2], f[3], "AAAA", f[5])},
		{"empty key", join("", f[1], f[2], f[3], f[4], "")},
		{"key too short", join("", f[1], f[2], f[3], f[4], "AAAAAAAA")},
		{"extra field", good + "$x"},
		{"junk before", "x" + good},
		{"truncated", good[:len(good)-30]}, // key < 16 bytes
	} {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := auth.VerifyPassword(tt.hash, adminPass)
			if err == nil || ok {
				t.Fatalf("VerifyPassword = %v, %v; want false and an error", ok, err)
			}
			if len(f[4]) > 8 && strings.Contains(err.Error(), f[4]) {
				t.Errorf("error %q repeats the salt", err)
			}
		})
	}
}
