package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/authql/authql/models"
)

// Recovery codes are look-up secrets (800-63B §5.1.2): ten per batch, each
// 16 symbols of Crockford's base32, 80 bits, shown once as XXXX-XXXX-XXXX-XXXX
// and stored only as an argon2id hash.
const (
	recoveryCodeCount   = 10
	recoveryCodeSymbols = 16
)

// recoveryAlphabet is Crockford's base32: no I, L, O or U, so a code read
// off paper cannot be mistyped as another (see normalizeRecoveryCode).
const recoveryAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// newRecoveryCodes returns a batch of new codes, formatted for display.
func newRecoveryCodes() []string {
	codes := make([]string, recoveryCodeCount)
	for i := range codes {
		b := make([]byte, recoveryCodeSymbols)
		rand.Read(b) // never fails (crypto/rand)
		var sb strings.Builder
		for j, c := range b {
			if j > 0 && j%4 == 0 {
				sb.WriteByte('-')
			}
			sb.WriteByte(recoveryAlphabet[c&31]) // 256 is a multiple of 32: no bias
		}
		codes[i] = sb.String()
	}
	return codes
}

// normalizeRecoveryCode returns a code as typed in its canonical form (16
// symbols, no separators), and false when it cannot be a code: case,
// spaces and hyphens do not matter, and the letters Crockford's alphabet
// leaves out read as the digits they look like (O as 0; I and L as 1).
func normalizeRecoveryCode(typed string) (string, bool) {
	if len(typed) > 64 {
		return "", false
	}
	var sb strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch {
		case r == ' ' || r == '-' || r == '\t':
			continue
		case r == 'O':
			r = '0'
		case r == 'I' || r == 'L':
			r = '1'
		}
		if !strings.ContainsRune(recoveryAlphabet, r) {
			return "", false
		}
		sb.WriteRune(r)
	}
	if sb.Len() != recoveryCodeSymbols {
		return "", false
	}
	return sb.String(), true
}

// hashRecoveryCodes returns the stored forms of a batch of codes (as
// newRecoveryCodes formats them): argon2id at the password hash's cost,
// all under one new salt. A shared salt costs nothing here: salts defeat
// tables precomputed for common passwords, and each code is 80 random bits;
// it lets matchRecoveryCode check a code with one hash instead of ten.
// Run it on a worker of the hash pool.
func (h *Hasher) hashRecoveryCodes(codes []string) []string {
	salt := make([]byte, saltLen)
	rand.Read(salt) // never fails (crypto/rand)
	out := make([]string, len(codes))
	for i, c := range codes {
		canon, _ := normalizeRecoveryCode(c)
		out[i] = h.argon2idWithSalt(canon, salt)
	}
	return out
}

// argon2idWithSalt is Hash with a given salt.
func (h *Hasher) argon2idWithSalt(secret string, salt []byte) string {
	p := h.params
	key := argon2.IDKey([]byte(secret), salt, p.Time, p.Memory, p.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// matchRecoveryCode returns the id of the unused code among stored (one
// batch) that canon (normalizeRecoveryCode's form) is, or "". It hashes
// once per distinct salt and parameters (once for a batch), and compares
// with every code in constant time. Run it on a worker of the hash pool.
func matchRecoveryCode(stored []models.RecoveryCode, canon string) string {
	var match string
	keys := map[string][]byte{} // salt and parameters -> hash of canon
	for _, rc := range stored {
		if rc.UsedAt != nil {
			continue
		}
		p, salt, key, err := parseArgon2id(rc.Hash)
		if err != nil {
			continue
		}
		id := fmt.Sprintf("%v/%x", p, salt)
		got, ok := keys[id]
		if !ok {
			got = argon2.IDKey([]byte(canon), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
			keys[id] = got
		}
		if subtle.ConstantTimeCompare(got, key) == 1 && match == "" {
			match = rc.ID
		}
	}
	return match
}
