package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// Device tokens. A browser that logs in to an account with the right password gets one
// to keep (the web side puts it in a cookie); its later attempts on that account are held
// only to their own limit (Limits.PerDevice), so whatever strangers do to the account's
// limits, the owner's own browser still gets in. This is OWASP's "device cookie" defence
// against lockout.
//
// A token is a random nonce and an HMAC of it keyed with the account's password hash: no
// state is kept, a token works for one account only, survives restarts, and every token
// of an account ends when its password changes (a new hash). The hash never leaves the
// server, so a token cannot be made without it.

const deviceNonceBytes = 16

// newDeviceToken returns a fresh device token for u (a user with its hash).
func newDeviceToken(u User) (string, error) {
	nonce := make([]byte, deviceNonceBytes)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("read random device token: %w", err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(nonce) + "." + enc.EncodeToString(deviceMAC(u, nonce)), nil
}

// deviceNonce returns the nonce of token when it is a device token of u.
func deviceNonce(u User, token string) (string, bool) {
	if u.Hash == "" || len(token) > 64 {
		return "", false
	}
	n, m, ok := strings.Cut(token, ".")
	if !ok {
		return "", false
	}
	enc := base64.RawURLEncoding
	nonce, err1 := enc.DecodeString(n)
	mac, err2 := enc.DecodeString(m)
	if err1 != nil || err2 != nil || len(nonce) != deviceNonceBytes || !hmac.Equal(mac, deviceMAC(u, nonce)) {
		return "", false
	}
	// The canonical form: base64 lets a few strings decode to the same bytes, and each
	// must not get a budget of its own.
	return enc.EncodeToString(nonce), true
}

func deviceMAC(u User, nonce []byte) []byte {
	h := hmac.New(sha256.New, []byte(u.Hash))
	h.Write([]byte("amwi device token v1\x00" + u.Name + "\x00"))
	h.Write(nonce)
	return h.Sum(nil)[:16]
}
