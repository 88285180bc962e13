package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzBearerToken checks the Authorization header parser on arbitrary
// headers: it never panics, it accepts exactly the headers of the form
// "Bearer <token>" (scheme case-insensitive, one space, then a token that is
// not blank), and what it returns is that token, trimmed.
func FuzzBearerToken(f *testing.F) {
	for _, h := range []string{
		"Bearer abc.def.ghi", "bearer abc", "BEARER abc", "bEaReR abc",
		"Bearer  abc  ", "Bearer", "Bearer ", "Bearer   ", "Bearer\tabc", "Bearer\u00a0abc",
		"Bearerabc", " Bearer abc", "Basic dXNlcjpwYXNz", "Bearer a b c", "Bearer \x00",
		"Bearer \u2028abc\u2028", "Bear abc", "Bearer\u0130 abc", "", "Bearer Bearer abc",
	} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		token, ok := bearerToken(h)

		// The oracle, written independently of the parser.
		const scheme = "Bearer "
		wantOK := len(h) > len(scheme) && strings.EqualFold(h[:len(scheme)], scheme) &&
			strings.TrimSpace(h[len(scheme):]) != ""
		if ok != wantOK {
			t.Fatalf("bearerToken(%q) ok = %v, want %v", h, ok, wantOK)
		}
		if !ok {
			if token != "" {
				t.Errorf("bearerToken(%q) refused but returned %q", h, token)
			}
			return
		}
		if token == "" || token != strings.TrimSpace(token) {
			t.Errorf("bearerToken(%q) = %q: empty or not trimmed", h, token)
		}
		if want := strings.TrimSpace(h[len(scheme):]); token != want {
			t.Errorf("bearerToken(%q) = %q, want %q", h, token, want)
		}
	})
}

// FuzzVerify feeds the access token parser arbitrary strings, starting from
// tokens the signer issued and forgeries of them. Whatever the input, Verify
// must not panic, must fail with ErrTokenInvalid or ErrTokenExpired, and
// must accept only what the signer itself produces: an HS256 signature by
// its key over exactly the token's bytes, every segment spelled the one
// canonical way. The oracle checks that independently of Verify, because
// each fuzz worker is a process of its own: a set of tokens issued in one
// process means nothing in another. The key and the clock are fixed so that
// every worker verifies the tokens the others issued, and corpus tokens
// stay valid.
func FuzzVerify(f *testing.F) {
	key := []byte("fuzz-key-fuzz-key-fuzz-key-fuzz!")
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s, err := NewSigner(key, "authql", "authql", func() time.Time { return now })
	if err != nil {
		f.Fatal(err)
	}
	for _, sub := range []string{"user-1", "admin-1"} {
		tok, _, err := s.Issue(sub, "session-"+sub, []string{"user"}, 15*time.Minute)
		if err != nil {
			f.Fatal(err)
		}
		// Without this, a Verify that refuses everything would pass.
		if _, err := s.Verify(context.Background(), tok); err != nil {
			f.Fatalf("Verify refuses its own token: %v", err)
		}
		for _, seed := range forgeries(f, tok) {
			f.Add(seed)
		}
	}

	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.Verify(context.Background(), token)
		if err != nil {
			if c != nil {
				t.Errorf("Verify(%q) failed (%v) but returned claims", token, err)
			}
			if !errors.Is(err, ErrTokenInvalid) && !errors.Is(err, ErrTokenExpired) {
				t.Errorf("Verify(%q) error %v is neither ErrTokenInvalid nor ErrTokenExpired", token, err)
			}
			return
		}
		if why := notSignedBy(key, token); why != "" {
			t.Fatalf("Verify accepted a token the signer did not produce (%s): %q", why, token)
		}
		if c == nil || c.Subject == "" {
			t.Errorf("Verify(%q) accepted it with claims %+v", token, c)
		}
	})
}

// notSignedBy says why token is not exactly what a signer holding key
// produces, or "" when it is: three canonical base64url segments, alg HS256,
// and the HMAC of the first two under key as the third.
func notSignedBy(key []byte, token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "not three segments"
	}
	var raw [3][]byte
	for i, p := range parts {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil || base64.RawURLEncoding.EncodeToString(b) != p {
			return "segment " + strconv.Itoa(i) + " is not canonical base64url"
		}
		raw[i] = b
	}
	var header struct{ Alg string }
	if err := json.Unmarshal(raw[0], &header); err != nil || header.Alg != "HS256" {
		return "alg is not HS256"
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(mac.Sum(nil), raw[2]) {
		return "not signed with the key"
	}
	return ""
}

// forgeries returns tok and the ways an attacker would alter it: other
// algorithms (none, asymmetric, stronger HMAC), other kid and typ, changed
// claims under the old signature, truncations, re-encodings of the same
// bytes, and huge segments.
func forgeries(tb testing.TB, tok string) []string {
	tb.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		tb.Fatalf("issued token %q is not a JWS compact serialization", tok)
	}
	decode := func(seg string) map[string]any {
		raw, err := base64.RawURLEncoding.DecodeString(seg)
		if err != nil {
			tb.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			tb.Fatal(err)
		}
		return m
	}
	encode := func(m map[string]any) string {
		raw, _ := json.Marshal(m)
		return base64.RawURLEncoding.EncodeToString(raw)
	}
	header, payload, sig := parts[0], parts[1], parts[2]
	withHeader := func(k string, v any) string {
		h := decode(header)
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
		return encode(h) + "." + payload + "." + sig
	}
	withClaim := func(k string, v any) string {
		c := decode(payload)
		c[k] = v
		return header + "." + encode(c) + "." + sig
	}
	huge := strings.Repeat("A", 1<<16)

	out := []string{tok, tok + ".", tok + ".x", " " + tok, tok + " ", tok + "\n", tok + "=",
		header + "." + payload, header + "." + payload + ".", tok[:len(tok)-1], tok[:len(tok)/2],
		"", ".", "..", "a.b.c", "e30.e30.", "e30.e30.e30",
		huge + "." + payload + "." + sig, header + "." + huge + "." + sig, header + "." + payload + "." + huge,
		"eyJ" + huge + ".." + huge,
		header + "=." + payload + "." + sig,
		strings.NewReplacer("-", "+", "_", "/").Replace(tok),
	}
	for _, alg := range []string{"none", "None", "NONE", "", "HS384", "HS512", "RS256", "ES256", "EdDSA", "PS256"} {
		out = append(out, withHeader("alg", alg))
		h := decode(header)
		h["alg"] = alg
		out = append(out, encode(h)+"."+payload+".")
	}
	out = append(out,
		withHeader("alg", nil), withHeader("kid", "other"), withHeader("kid", ""), withHeader("kid", nil),
		withHeader("kid", 1), withHeader("kid", []any{}), withHeader("typ", "JWT"), withHeader("typ", nil),
		withHeader("crit", []any{"exp"}), withHeader("jku", "https://attacker.example/jwks.json"),
		withHeader("jwk", map[string]any{"kty": "oct", "k": "AAAA"}),
		withClaim("sub", "admin-1"), withClaim("roles", []any{"admin"}), withClaim("exp", 1e300),
		withClaim("aud", []any{}), withClaim("iss", nil),
	)
	// The same signature bytes under another spelling: the last character
	// of an unpadded base64 segment carries bits that decoding ignores.
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" {
		if v := tok[:len(tok)-1] + string(c); v != tok {
			out = append(out, v)
		}
	}
	return out
}
