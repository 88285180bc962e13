package keys

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authql/authql/internal/testclock"
)

const (
	testIssuer   = "https://authql.test"
	testAudience = "authql-test"
)

// testKey and otherKey are 32-byte HS256 keys.
var (
	testKey  = []byte("0123456789abcdef0123456789abcdef")
	otherKey = []byte("fedcba9876543210fedcba9876543210")
)

func newTestSigner(tb testing.TB, key []byte) (*Signer, *testclock.Clock) {
	tb.Helper()
	c := testclock.New(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	s, err := NewSigner(key, testIssuer, testAudience, c.Now)
	if err != nil {
		tb.Fatalf("NewSigner: %v", err)
	}
	return s, c
}

// validClaims are the claims Issue would produce at now: each forgery test
// changes one thing in them (or in the header) and nothing else.
func validClaims(now time.Time) *Claims {
	return &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    testIssuer,
			Audience:  jwt.ClaimStrings{testAudience},
			Subject:   "user-1",
			ExpiresAt: jwt.NewNumericDate(now.Add(15 * time.Minute)),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ID:        "jti-1",
		},
		SessionID: "sess-1",
		Roles:     []string{"user"},
	}
}

// signToken signs claims with method and key under the access token header
// of s (typ at+jwt, kid of s), with header's entries set on top; a nil value
// deletes the entry.
func signToken(tb testing.TB, s *Signer, method jwt.SigningMethod, key any, header map[string]any, claims jwt.Claims) string {
	tb.Helper()
	h := map[string]any{"kid": s.KeyID()}
	maps.Copy(h, header)
	return signHeader(tb, method, key, h, claims)
}

// signHeader signs claims with method and key under an access token header
// (typ at+jwt) with header's entries set on top; a nil value deletes the
// entry.
func signHeader(tb testing.TB, method jwt.SigningMethod, key any, header map[string]any, claims jwt.Claims) string {
	tb.Helper()
	t := jwt.NewWithClaims(method, claims)
	t.Header["typ"] = accessTokenType
	for k, v := range header {
		if v == nil {
			delete(t.Header, k)
		} else {
			t.Header[k] = v
		}
	}
	signed, err := t.SignedString(key)
	if err != nil {
		tb.Fatalf("SignedString: %v", err)
	}
	return signed
}

// segment is the base64url JSON of v, as in a JWT.
func segment(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func mustVerify(tb testing.TB, s *Signer, token string) *Claims {
	tb.Helper()
	c, err := s.Verify(context.Background(), token)
	if err != nil {
		tb.Fatalf("Verify: %v", err)
	}
	return c
}

// checkInvalid fails the test unless Verify rejects token with an error
// wrapping ErrTokenInvalid.
func checkInvalid(tb testing.TB, s *Signer, token string) {
	tb.Helper()
	c, err := s.Verify(context.Background(), token)
	if !errors.Is(err, ErrTokenInvalid) {
		tb.Fatalf("Verify(%q): err = %v, want ErrTokenInvalid", token, err)
	}
	if c != nil {
		tb.Errorf("Verify(%q) returned claims with its error", token)
	}
}

func TestSignerIssueVerify(t *testing.T) {
	s, clk := newTestSigner(t, testKey)
	now := clk.Now()
	roles := []string{"admin", "user"}
	token, issued, err := s.Issue("user-1", "sess-1", roles, 15*time.Minute)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	c := mustVerify(t, s, token)

	t.Run("Claims", func(t *testing.T) {
		if c.Subject != "user-1" {
			t.Errorf("sub = %q, want user-1", c.Subject)
		}
		if c.SessionID != "sess-1" {
			t.Errorf("sid = %q, want sess-1", c.SessionID)
		}
		if c.ID == "" || c.ID != issued.ID {
			t.Errorf("jti = %q, want %q (as issued, non-empty)", c.ID, issued.ID)
		}
		if !slices.Equal(c.Roles, roles) {
			t.Errorf("roles = %q, want %q", c.Roles, roles)
		}
		if c.Issuer != testIssuer {
			t.Errorf("iss = %q, want %q", c.Issuer, testIssuer)
		}
		if !slices.Equal(c.Audience, jwt.ClaimStrings{testAudience}) {
			t.Errorf("aud = %q, want [%q]", c.Audience, testAudience)
		}
	})
	t.Run("Times", func(t *testing.T) {
		if got, want := c.IssuedAt.Time, now; !got.Equal(want) {
			t.Errorf("iat = %v, want %v", got, want)
		}
		if got, want := c.NotBefore.Time, now; !got.Equal(want) {
			t.Errorf("nbf = %v, want %v", got, want)
		}
		if got, want := c.ExpiresAt.Time, now.Add(15*time.Minute); !got.Equal(want) {
			t.Errorf("exp = %v, want %v", got, want)
		}
	})
	t.Run("Header", func(t *testing.T) {
		parsed, _, err := jwt.NewParser().ParseUnverified(token, &Claims{})
		if err != nil {
			t.Fatal(err)
		}
		if got := parsed.Header["alg"]; got != "HS256" {
			t.Errorf("alg = %v, want HS256", got)
		}
		if got := parsed.Header["typ"]; got != "at+jwt" {
			t.Errorf("typ = %v, want at+jwt", got)
		}
		if got := parsed.Header["kid"]; got != s.KeyID() || s.KeyID() == "" {
			t.Errorf("kid = %v, want KeyID() = %q", got, s.KeyID())
		}
	})
	t.Run("UniqueJTI", func(t *testing.T) {
		_, again, err := s.Issue("user-1", "sess-1", roles, 15*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if again.ID == issued.ID {
			t.Errorf("two tokens share the jti %q", issued.ID)
		}
	})
	t.Run("KidDoesNotRevealKey", func(t *testing.T) {
		if strings.Contains(s.KeyID(), string(testKey)) || strings.Contains(s.KeyID(), base64.RawURLEncoding.EncodeToString(testKey)) {
			t.Errorf("kid %q contains the key", s.KeyID())
		}
	})
}

func TestNewSigner(t *testing.T) {
	now := func() time.Time { return time.Unix(0, 0) }
	for _, tc := range []struct {
		name    string
		key     []byte
		wantErr bool
	}{
		{"NilKey", nil, true},
		{"EmptyKey", []byte{}, true},
		{"ShortKey31", bytes.Repeat([]byte{'k'}, 31), true},
		{"Key32", bytes.Repeat([]byte{'k'}, 32), false},
		{"Key64", bytes.Repeat([]byte{'k'}, 64), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSigner(tc.key, testIssuer, testAudience, now)
			if (err != nil) != tc.wantErr {
				t.Fatalf("NewSigner(%d-byte key): err = %v, want error %v", len(tc.key), err, tc.wantErr)
			}
			if tc.wantErr && s != nil {
				t.Errorf("NewSigner returned a Signer with its error")
			}
		})
	}
	t.Run("KeyIDPerKey", func(t *testing.T) {
		a, _ := newTestSigner(t, testKey)
		b, _ := newTestSigner(t, testKey)
		c, _ := newTestSigner(t, otherKey)
		if a.KeyID() != b.KeyID() {
			t.Errorf("one key, two kids: %q, %q", a.KeyID(), b.KeyID())
		}
		if a.KeyID() == c.KeyID() {
			t.Errorf("two keys, one kid: %q", a.KeyID())
		}
	})
}

func TestSignerVerifyRejects(t *testing.T) {
	s, clk := newTestSigner(t, testKey)
	now := clk.Now()
	other, _ := newTestSigner(t, otherKey)
	hs256 := jwt.SigningMethodHS256

	// The control: the helpers' baseline token is accepted, so each
	// rejection below is due to its one change.
	t.Run("ControlAccepted", func(t *testing.T) {
		c := mustVerify(t, s, signToken(t, s, hs256, testKey, nil, validClaims(now)))
		if c.Subject != "user-1" || c.SessionID != "sess-1" || c.ID != "jti-1" {
			t.Fatalf("claims = %+v", c)
		}
		header := map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": s.KeyID()}
		mustVerify(t, s, hmacToken(t, header, validClaims(now)))
	})
	t.Run("TypCaseInsensitiveAccepted", func(t *testing.T) {
		// RFC 9068 allows the media type with its "application/" prefix.
		for _, typ := range []string{"AT+JWT", "application/at+jwt"} {
			mustVerify(t, s, signToken(t, s, hs256, testKey, map[string]any{"typ": typ}, validClaims(now)))
		}
	})

	t.Run("AlgNoneHandBuilt", func(t *testing.T) {
		for _, alg := range []string{"none", "None", "NONE"} {
			header := map[string]any{"alg": alg, "typ": "at+jwt", "kid": s.KeyID()}
			checkInvalid(t, s, segment(t, header)+"."+segment(t, validClaims(now))+".")
		}
	})
	t.Run("AlgNoneLibrary", func(t *testing.T) {
		checkInvalid(t, s, signToken(t, s, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil, validClaims(now)))
	})
	t.Run("AlgRS256WithHMACSignature", func(t *testing.T) {
		// Algorithm confusion: an HMAC made with the key under another alg.
		header := map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": s.KeyID()}
		checkInvalid(t, s, hmacToken(t, header, validClaims(now)))
	})
	t.Run("OtherKey", func(t *testing.T) {
		// Our kid, so that only the signature is wrong.
		checkInvalid(t, s, signToken(t, s, hs256, otherKey, nil, validClaims(now)))
	})
	t.Run("HS384", func(t *testing.T) {
		checkInvalid(t, s, signToken(t, s, jwt.SigningMethodHS384, testKey, nil, validClaims(now)))
	})
	t.Run("HS512", func(t *testing.T) {
		checkInvalid(t, s, signToken(t, s, jwt.SigningMethodHS512, testKey, nil, validClaims(now)))
	})
	t.Run("EmptySignature", func(t *testing.T) {
		token := signToken(t, s, hs256, testKey, nil, validClaims(now))
		checkInvalid(t, s, token[:strings.LastIndex(token, ".")+1])
	})
	t.Run("ClaimsTamperedAfterSigning", func(t *testing.T) {
		token, _, err := s.Issue("user-1", "sess-1", []string{"user"}, 15*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(token, ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var claims map[string]any
		if err := json.Unmarshal(payload, &claims); err != nil {
			t.Fatal(err)
		}
		claims["roles"] = []string{"admin"}
		parts[1] = segment(t, claims)
		forged := strings.Join(parts, ".")

		// The forgery carries admin and only the signature gives it away.
		var got Claims
		if _, _, err := jwt.NewParser().ParseUnverified(forged, &got); err != nil || !slices.Equal(got.Roles, []string{"admin"}) {
			t.Fatalf("forged claims = %+v, %v", got, err)
		}
		checkInvalid(t, s, forged)
	})
	t.Run("TypMissing", func(t *testing.T) {
		checkInvalid(t, s, signToken(t, s, hs256, testKey, map[string]any{"typ": nil}, validClaims(now)))
	})
	t.Run("TypJWT", func(t *testing.T) {
		checkInvalid(t, s, signToken(t, s, hs256, testKey, map[string]any{"typ": "JWT"}, validClaims(now)))
	})
	t.Run("TypRefresh", func(t *testing.T) {
		checkInvalid(t, s, signToken(t, s, hs256, testKey, map[string]any{"typ": "rt+jwt"}, validClaims(now)))
	})
	t.Run("TypNotString", func(t *testing.T) {
		checkInvalid(t, s, signToken(t, s, hs256, testKey, map[string]any{"typ": []string{"at+jwt"}}, validClaims(now)))
	})
	t.Run("KidMissing", func(t *testing.T) {
		checkInvalid(t, s, signToken(t, s, hs256, testKey, map[string]any{"kid": nil}, validClaims(now)))
	})
	t.Run("KidOfOtherSigner", func(t *testing.T) {
		checkInvalid(t, s, signToken(t, s, hs256, testKey, map[string]any{"kid": other.KeyID()}, validClaims(now)))
	})
	t.Run("TokenOfOtherSigner", func(t *testing.T) {
		token, _, err := other.Issue("user-1", "sess-1", nil, 15*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		checkInvalid(t, s, token)
	})
	// Each case changes one claim of a valid token, signed with the right key.
	claimForgeries := map[string]func(c *Claims){
		"WrongIssuer":          func(c *Claims) { c.Issuer = "https://evil.test" },
		"MissingIssuer":        func(c *Claims) { c.Issuer = "" },
		"WrongAudience":        func(c *Claims) { c.Audience = jwt.ClaimStrings{"another-service"} },
		"MissingAudience":      func(c *Claims) { c.Audience = nil },
		"MissingExp":           func(c *Claims) { c.ExpiresAt = nil },
		"NotBefore60sInFuture": func(c *Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(60 * time.Second)) },
		"IssuedAt60sInFuture":  func(c *Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(60 * time.Second)) },
		"MissingSid":           func(c *Claims) { c.SessionID = "" },
		"MissingSub":           func(c *Claims) { c.Subject = "" },
		"MissingJti":           func(c *Claims) { c.ID = "" },
	}
	for name, mutate := range claimForgeries {
		t.Run(name, func(t *testing.T) {
			c := validClaims(now)
			mutate(c)
			checkInvalid(t, s, signToken(t, s, hs256, testKey, nil, c))
		})
	}
	t.Run("RefreshTokenAsAccessToken", func(t *testing.T) {
		checkInvalid(t, s, refreshTokenLike())
	})
	t.Run("Garbage", func(t *testing.T) {
		random := make([]byte, 64)
		rand.Read(random)
		for _, g := range []string{"", "a.b.c", "...", ".", "a.b", "a.b.c.d", string(random), "Bearer x", "\x00"} {
			checkInvalid(t, s, g)
		}
	})
}

func TestSignerVerifyTimes(t *testing.T) {
	const ttl = 5 * time.Minute

	t.Run("ValidUntilExpiry", func(t *testing.T) {
		s, clk := newTestSigner(t, testKey)
		token, _, err := s.Issue("user-1", "sess-1", nil, ttl)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(ttl - time.Second)
		mustVerify(t, s, token)
	})
	t.Run("ExpiredBeyondSkew", func(t *testing.T) {
		s, clk := newTestSigner(t, testKey)
		token, _, err := s.Issue("user-1", "sess-1", nil, ttl)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(ttl + MaxClockSkew + time.Second)
		c, err := s.Verify(context.Background(), token)
		if !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("Verify 31s after expiry: err = %v, want ErrTokenExpired", err)
		}
		if c != nil {
			t.Errorf("Verify returned claims with its error")
		}
	})
	t.Run("ExpiredWithinSkewAccepted", func(t *testing.T) {
		s, clk := newTestSigner(t, testKey)
		token, _, err := s.Issue("user-1", "sess-1", nil, ttl)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(ttl + 20*time.Second)
		mustVerify(t, s, token)
	})
	t.Run("NotBeforeWithinSkewAccepted", func(t *testing.T) {
		s, clk := newTestSigner(t, testKey)
		c := validClaims(clk.Now())
		c.NotBefore = jwt.NewNumericDate(clk.Now().Add(20 * time.Second))
		c.IssuedAt = c.NotBefore
		mustVerify(t, s, signToken(t, s, jwt.SigningMethodHS256, testKey, nil, c))
	})
	t.Run("ClockAppliesToIssue", func(t *testing.T) {
		s, clk := newTestSigner(t, testKey)
		clk.Advance(time.Hour + 500*time.Millisecond)
		_, c, err := s.Issue("user-1", "sess-1", nil, ttl)
		if err != nil {
			t.Fatal(err)
		}
		want := time.Date(2025, 6, 1, 13, 0, 0, 0, time.UTC)
		if !c.IssuedAt.Time.Equal(want) {
			t.Errorf("iat = %v, want %v (injected clock, whole seconds)", c.IssuedAt.Time, want)
		}
	})
}

// hmacToken builds a token by hand, whatever its header says: the header and
// claims as JSON segments, signed with HMAC-SHA256 under testKey.
func hmacToken(t *testing.T, header map[string]any, claims any) string {
	t.Helper()
	unsigned := segment(t, header) + "." + segment(t, claims)
	mac := hmac.New(sha256.New, testKey)
	mac.Write([]byte(unsigned))
	return unsigned + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// refreshTokenLike is a string shaped as auth's refresh tokens are: 32
// random bytes in unpadded base64url.
func refreshTokenLike() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
