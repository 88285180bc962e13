package httpapi_test

// Login with a second factor over HTTP (issue 13): MFA_REQUIRED and its
// challenge, verifyMfa with TOTP and recovery codes, the claims of the
// session it starts, and the per-account bound on wrong answers whatever
// the client address. On SQLite and (with TEST_DATABASE_URL) PostgreSQL.

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

const verifyMfaDoc = `mutation($c: ID!, $p: MfaProof!) { verifyMfa(challengeId: $c, proof: $p) { ` + authtest.PayloadFields + ` } }`

// factor is a confirmed TOTP factor and recovery codes given to a user.
type factor struct {
	secret string   // base32, as an authenticator app holds it
	codes  []string // XXXX-XXXX-XXXX-XXXX
}

// giveFactor gives the user a confirmed TOTP factor and ten recovery
// codes, written directly in the database (test servers have no
// AUTH_ENCRYPTION_KEY, so the seed is stored in base32 as it is).
func giveFactor(t *testing.T, ts *authtest.Server, userID string) factor {
	t.Helper()
	seed := make([]byte, 20)
	rand.Read(seed)
	f := factor{secret: base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed)}
	now := ts.Clock.Now()
	row := &models.MfaFactor{ID: uuid.NewString(), UserID: userID, Type: models.FactorTOTP, Label: "phone", Secret: f.secret, CreatedAt: now, ConfirmedAt: &now}
	if err := ts.DB.Create(row).Error; err != nil {
		t.Fatal(err)
	}
	h, err := auth.NewHasher(authtest.CheapArgon2)
	if err != nil {
		t.Fatal(err)
	}
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	for range 10 {
		b := make([]byte, 16)
		rand.Read(b)
		var canon strings.Builder
		for _, c := range b {
			canon.WriteByte(alphabet[c&31])
		}
		c := canon.String()
		f.codes = append(f.codes, c[:4]+"-"+c[4:8]+"-"+c[8:12]+"-"+c[12:])
		hash, err := h.Hash(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.DB.Create(&models.RecoveryCode{ID: uuid.NewString(), UserID: userID, Hash: hash, CreatedAt: now}).Error; err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// code is the factor's TOTP code at the server's clock.
func (f factor) code(t *testing.T, ts *authtest.Server) string {
	t.Helper()
	c, err := auth.TOTPCodeAt(f.secret, ts.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mfaChallenge logs email in with headers and returns the MFA_REQUIRED
// error's extensions.
func mfaChallenge(t *testing.T, ts *authtest.Server, headers map[string]string, email string) map[string]any {
	t.Helper()
	r := authtest.PostGraphQL(t, ts.URL, headers, `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }`, authtest.Creds(email))
	if r.Code(t) != models.MfaRequired {
		t.Fatalf("login: %+v, want MFA_REQUIRED", r.Errors)
	}
	if r.Get("login") != nil {
		t.Errorf("login with a second factor returned %v", r.Get("login"))
	}
	return r.Errors[0].Extensions
}

func TestMfaLoginOverHTTP(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, authtest.NewClock())
		user := ts.Register(t, "mfa@example.com", "password1")
		f := giveFactor(t, ts, user.UserID)

		if code := ts.Login(t, "mfa@example.com", "wrong password").Code(t); code != models.Unauthenticated {
			t.Errorf("wrong password: %s, want UNAUTHENTICATED as before", code)
		}
		ext := mfaChallenge(t, ts, nil, "mfa@example.com")
		if fmt.Sprint(ext["methods"]) != "[TOTP RECOVERY_CODE]" || ext["expiresAt"] != ts.Clock.Now().Add(5*time.Minute).Format(time.RFC3339) {
			t.Errorf("MFA_REQUIRED extensions %v", ext)
		}
		r := ts.Do(t, "", verifyMfaDoc, map[string]any{"c": ext["challengeId"], "p": map[string]any{"totpCode": f.code(t, ts)}}).OK(t)
		tok := authtest.TokensOf(r, "verifyMfa")
		claims := authtest.Claims(t, tok.Access)
		if claims["acr"] != "aal2" || fmt.Sprint(claims["amr"]) != "[pwd otp mfa]" || claims["auth_time"] != float64(ts.Clock.Now().Unix()) {
			t.Errorf("claims acr %v amr %v auth_time %v, want aal2 [pwd otp mfa] now", claims["acr"], claims["amr"], claims["auth_time"])
		}
		ts.Me(t, tok.Access).OK(t)

		// The same code on a new challenge: spent.
		ext = mfaChallenge(t, ts, nil, "mfa@example.com")
		r = ts.Do(t, "", verifyMfaDoc, map[string]any{"c": ext["challengeId"], "p": map[string]any{"totpCode": f.code(t, ts)}})
		if r.Code(t) != models.BadUserInput || r.Errors[0].Message != models.ErrMfaSpent.Message {
			t.Errorf("the code again: %+v, want %q", r.Errors, models.ErrMfaSpent.Message)
		}
		// A recovery code, typed in lower case with spaces, on the same
		// challenge (one wrong answer so far): once.
		typed := strings.ToLower(strings.ReplaceAll(f.codes[0], "-", " "))
		r = ts.Do(t, "", verifyMfaDoc, map[string]any{"c": ext["challengeId"], "p": map[string]any{"recoveryCode": typed}}).OK(t)
		if amr := authtest.Claims(t, r.Str("verifyMfa", "accessToken"))["amr"]; fmt.Sprint(amr) != "[pwd rc mfa]" {
			t.Errorf("amr %v, want [pwd rc mfa]", amr)
		}
		ext = mfaChallenge(t, ts, nil, "mfa@example.com")
		r = ts.Do(t, "", verifyMfaDoc, map[string]any{"c": ext["challengeId"], "p": map[string]any{"recoveryCode": f.codes[0]}})
		if r.Code(t) != models.BadUserInput {
			t.Errorf("a used recovery code: %+v", r.Errors)
		}
		// Two proofs at once: BAD_USER_INPUT.
		r = ts.Do(t, "", verifyMfaDoc, map[string]any{"c": ext["challengeId"], "p": map[string]any{"recoveryCode": f.codes[1], "totpCode": "123456"}})
		if r.Code(t) != models.BadUserInput || !strings.Contains(r.Errors[0].Message, "exactly one") {
			t.Errorf("two proofs: %+v", r.Errors)
		}
	})
}

// TestMfaAccountLimitAcrossAddresses: ten wrong answers per account in a
// quarter hour, spread over challenges and over client addresses (each
// request from another X-Forwarded-For through a trusted proxy), and the
// right code is RATE_LIMITED with retryAfter.
func TestMfaAccountLimitAcrossAddresses(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, authtest.NewClock(),
			authtest.WithLimits(auth.Limits{MfaAccount: auth.DefaultLimits.MfaAccount}),
			func(c *authtest.Config) {
				c.Auth.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
			})
		user := ts.Register(t, "guessed@example.com", "password1")
		f := giveFactor(t, ts, user.UserID)
		var challenge any
		for i := range 10 {
			h := map[string]string{"X-Forwarded-For": fmt.Sprintf("198.51.100.%d", i+1)}
			if i%5 == 0 {
				challenge = mfaChallenge(t, ts, h, "guessed@example.com")["challengeId"]
			}
			r := authtest.PostGraphQL(t, ts.URL, h, verifyMfaDoc, map[string]any{"c": challenge, "p": map[string]any{"totpCode": "000000"}})
			if r.Code(t) != models.BadUserInput {
				t.Fatalf("wrong answer %d: %+v", i+1, r.Errors)
			}
		}
		h := map[string]string{"X-Forwarded-For": "203.0.113.50"}
		challenge = mfaChallenge(t, ts, h, "guessed@example.com")["challengeId"]
		r := authtest.PostGraphQL(t, ts.URL, h, verifyMfaDoc, map[string]any{"c": challenge, "p": map[string]any{"totpCode": f.code(t, ts)}})
		if r.Code(t) != models.RateLimited || r.Errors[0].Extensions["retryAfter"] == nil {
			t.Errorf("the right code after 10 wrong: %+v, want RATE_LIMITED with retryAfter", r.Errors)
		}
	})
}
