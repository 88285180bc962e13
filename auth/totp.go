package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"time"
)

// TOTP as RFC 6238 defines it with the parameters every authenticator app
// understands: HMAC-SHA-1, 6 digits, 30-second steps from the Unix epoch.
const (
	totpPeriod = 30
	totpDigits = 6
	// totpSeedBytes is the seed's size: 160 bits, the length of SHA-1's
	// output, which RFC 4226 §4 recommends (R6) and 800-63B requires at
	// the least (112 bits).
	totpSeedBytes = 20
	// totpDrift is how many steps either side of now a code is accepted
	// for: one, for clocks a little off and codes typed near a step's end
	// (RFC 6238 §5.2 recommends at most one).
	totpDrift = 1
)

// totpEncoding is the base32 of otpauth URIs and of seeds typed by hand:
// RFC 4648 without padding.
var totpEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newTotpSeed returns a new seed from the CSPRNG.
func newTotpSeed() []byte {
	b := make([]byte, totpSeedBytes)
	rand.Read(b) // never fails (crypto/rand)
	return b
}

// hotp is RFC 4226's HOTP value of the counter, with digits digits.
func hotp(seed []byte, counter uint64, digits int) string {
	mac := hmac.New(sha1.New, seed)
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	// Dynamic truncation (RFC 4226 §5.3).
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, bin%mod)
}

// totpStep is the time step of t.
func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// totpCode is the 6-digit code of the step.
func totpCode(seed []byte, step int64) string { return hotp(seed, uint64(step), totpDigits) }

// totpMatch returns the step whose code code is, among the steps within
// totpDrift of now and after lastStep, and whether there is one. Steps at
// or before lastStep are never accepted: a code is accepted once (RFC 6238
// §5.2), and so is any code older than the last one accepted. Every
// candidate is compared in constant time.
func totpMatch(seed []byte, code string, now time.Time, lastStep int64) (int64, bool) {
	if len(code) != totpDigits {
		return 0, false
	}
	cur := totpStep(now)
	var found int64
	for step := cur - totpDrift; step <= cur+totpDrift; step++ {
		if step <= lastStep {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(totpCode(seed, step)), []byte(code)) == 1 && found == 0 {
			found = step
		}
	}
	return found, found != 0
}

// totpURI is the otpauth URI of a seed (the Key URI Format of Google
// Authenticator, which every app reads): the label "issuer:account", and
// the parameters spelled out even where they are the defaults, for apps
// that do not assume them.
func totpURI(issuer, account string, seed []byte) string {
	q := url.Values{}
	q.Set("secret", totpEncoding.EncodeToString(seed))
	q.Set("issuer", issuer)
	q.Set("algorithm", "SHA1")
	q.Set("digits", fmt.Sprint(totpDigits))
	q.Set("period", fmt.Sprint(totpPeriod))
	label := url.PathEscape(issuer) + ":" + url.PathEscape(account)
	return "otpauth://totp/" + label + "?" + q.Encode()
}

// TOTPCodeAt is the code an authenticator app shows at t for a seed in
// base32 (TotpEnrollment.secret): for tests and tools that stand in for
// the app.
func TOTPCodeAt(secret string, t time.Time) (string, error) {
	seed, err := totpEncoding.DecodeString(secret)
	if err != nil {
		return "", err
	}
	return totpCode(seed, totpStep(t)), nil
}
