package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"

	"github.com/authql/authql/auth/keys"
)

// MaxClockSkew is how far token times may disagree with this clock: the
// leeway keys.Signer gives them, which revocations and the token cache
// allow for too.
const MaxClockSkew = keys.MaxClockSkew

// refreshTokenBytes is the entropy of a refresh token: 256 bits.
const refreshTokenBytes = 32

// newRefreshToken returns a new opaque refresh token and the hash under
// which it is stored.
func newRefreshToken() (token, hash string) {
	b := make([]byte, refreshTokenBytes)
	rand.Read(b) // never fails (crypto/rand)
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, hashRefreshToken(token)
}

// hashRefreshToken returns the stored form of a refresh token. A plain
// SHA-256 suffices (no salt, no slow hash): the token has 256 bits of
// entropy, so it cannot be guessed from its hash.
func hashRefreshToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// wellFormedRefreshToken reports whether s could be a refresh token, so that
// garbage is refused without a database query.
func wellFormedRefreshToken(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == refreshTokenBytes
}
