package auth

import (
	"encoding/base64"
	"regexp"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestRefreshToken(t *testing.T) {
	t.Run("Format", func(t *testing.T) {
		token, hash := newRefreshToken()
		if len(token) != 43 {
			t.Errorf("len(token) = %d, want 43", len(token))
		}
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			t.Fatalf("token %q is not unpadded base64url: %v", token, err)
		}
		if len(b) != 32 {
			t.Errorf("token carries %d bytes, want 32", len(b))
		}
		if hash != hashRefreshToken(token) {
			t.Errorf("returned hash %q, want hashRefreshToken(token) = %q", hash, hashRefreshToken(token))
		}
	})
	t.Run("HashIs64Hex", func(t *testing.T) {
		token, _ := newRefreshToken()
		if h := hashRefreshToken(token); !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(h) {
			t.Errorf("hashRefreshToken = %q, want 64 lower-case hex digits", h)
		}
	})
	t.Run("HashDeterministic", func(t *testing.T) {
		token, _ := newRefreshToken()
		if a, b := hashRefreshToken(token), hashRefreshToken(token); a != b {
			t.Errorf("two hashes of one token: %q, %q", a, b)
		}
		// SHA-256("abc"), FIPS 180-2 appendix B.1.
		if got, want := hashRefreshToken("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
			t.Errorf(`hashRefreshToken("abc") = %q, want %q`, got, want)
		}
	})
	t.Run("TokensDiffer", func(t *testing.T) {
		a, ha := newRefreshToken()
		b, hb := newRefreshToken()
		if a == b || ha == hb {
			t.Errorf("two refresh tokens are equal: %q", a)
		}
	})
	t.Run("WellFormed", func(t *testing.T) {
		for range 20 {
			if token, _ := newRefreshToken(); !wellFormedRefreshToken(token) {
				t.Fatalf("wellFormedRefreshToken(%q) = false for a new token", token)
			}
		}
	})
	t.Run("NotWellFormed", func(t *testing.T) {
		token, _ := newRefreshToken()
		// An access token's shape: refresh tokens are never JWTs.
		at := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": "https://authql.test", "aud": "authql-test", "sub": "user-1", "sid": "sess-1",
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(),
		})
		at.Header["typ"], at.Header["kid"] = "at+jwt", "0123456789abcdef"
		jwtToken, err := at.SignedString([]byte("0123456789abcdef0123456789abcdef"))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ name, s string }{
			{"Empty", ""},
			{"Short", token[:42]},
			{"TooLong", token + "A"},
			{"31Bytes", base64.RawURLEncoding.EncodeToString(make([]byte, 31))},
			{"33Bytes", base64.RawURLEncoding.EncodeToString(make([]byte, 33))},
			{"StdAlphabet", "+" + token[1:]},
			{"Slash", "/" + token[1:]},
			{"Padded", base64.URLEncoding.EncodeToString(make([]byte, 32))},
			{"Space", " " + token[1:]},
			{"JWT", jwtToken},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if wellFormedRefreshToken(tc.s) {
					t.Errorf("wellFormedRefreshToken(%q) = true", tc.s)
				}
			})
		}
	})
}
