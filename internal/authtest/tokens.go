package authtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"maps"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authql/authql/auth/keys"
	"github.com/authql/authql/models"
)

// JWKS is a fetched JSON Web Key Set.
type JWKS struct {
	Keys   []map[string]string `json:"keys"`
	Header http.Header         `json:"-"`
}

// GetJWKS fetches the JWKS of the server at baseURL.
func GetJWKS(tb testing.TB, baseURL string) JWKS {
	tb.Helper()
	resp, err := http.Get(baseURL + "/.well-known/jwks.json")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET jwks.json = %d", resp.StatusCode)
	}
	var set JWKS
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		tb.Fatal(err)
	}
	if set.Keys == nil {
		tb.Fatal(`JWKS has no "keys" array`)
	}
	set.Header = resp.Header
	return set
}

// Key returns the JWK with kid, or nil.
func (s JWKS) Key(kid string) map[string]string {
	for _, k := range s.Keys {
		if k["kid"] == kid {
			return k
		}
	}
	return nil
}

// PublicKey decodes a JWK as a relying party would.
func PublicKey(tb testing.TB, k map[string]string) any {
	tb.Helper()
	b64 := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	switch {
	case k["kty"] == "OKP" && k["crv"] == "Ed25519":
		return ed25519.PublicKey(b64(k["x"]))
	case k["kty"] == "EC" && k["crv"] == "P-256":
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, b64(k["x"])...), b64(k["y"])...))
		if err != nil {
			tb.Fatalf("JWK %v: %v", k, err)
		}
		return pub
	}
	tb.Fatalf("unexpected JWK %v", k)
	return nil
}

// Header decodes a JWT's header without verifying it.
func Header(tb testing.TB, token string) map[string]any {
	tb.Helper()
	return JWTSegment(tb, token, 0)
}

// KID returns the kid in a JWT's header.
func KID(tb testing.TB, token string) string {
	tb.Helper()
	k, _ := Header(tb, token)["kid"].(string)
	return k
}

// StoredKey returns the signing material of a stored key, as someone who
// has read the database (or an old backup) would hold it.
func StoredKey(tb testing.TB, ts *Server, kid string) (jwt.SigningMethod, any) {
	tb.Helper()
	rows, err := models.SigningKeys(context.Background(), ts.DB)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range rows {
		if r.KID != kid {
			continue
		}
		method := jwt.GetSigningMethod(r.Alg)
		if r.Alg == keys.AlgHS256 {
			b, err := base64.RawStdEncoding.DecodeString(r.PrivateKey)
			if err != nil {
				tb.Fatal(err)
			}
			return method, b
		}
		k, err := keys.ParsePrivateKeyPEM([]byte(r.PrivateKey), r.Alg)
		if err != nil {
			tb.Fatal(err)
		}
		return method, k
	}
	tb.Fatalf("no stored key %s", kid)
	return nil, nil
}

// Forge signs the claims of a real token, changed by mutate, with key under
// header kid (none when ""). ES256 signatures are made low-S, as authql's
// are, so that only what the test changes can make them fail.
func Forge(tb testing.TB, real string, method jwt.SigningMethod, key any, kid string, mutate func(jwt.MapClaims)) string {
	tb.Helper()
	header := map[string]any{"kid": nil}
	if kid != "" {
		header["kid"] = kid
	}
	return ForgeHeader(tb, real, method, key, header, mutate)
}

// ForgeHeader is Forge under an access token's header (typ at+jwt) with
// header's entries set on top; a nil value deletes the entry.
func ForgeHeader(tb testing.TB, real string, method jwt.SigningMethod, key any, header map[string]any, mutate func(jwt.MapClaims)) string {
	tb.Helper()
	mc := jwt.MapClaims{}
	maps.Copy(mc, Claims(tb, real))
	if mutate != nil {
		mutate(mc)
	}
	t := jwt.NewWithClaims(method, mc)
	t.Header["typ"] = "at+jwt"
	for k, v := range header {
		if v == nil {
			delete(t.Header, k)
		} else {
			t.Header[k] = v
		}
	}
	s, err := t.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	if method.Alg() == keys.AlgES256 {
		head, sig, _ := strings.Cut(s[strings.Index(s, ".")+1:], ".")
		raw, _ := base64.RawURLEncoding.DecodeString(sig)
		n := elliptic.P256().Params().N
		if sv := new(big.Int).SetBytes(raw[32:]); sv.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
			new(big.Int).Sub(n, sv).FillBytes(raw[32:])
		}
		s = s[:strings.Index(s, ".")+1] + head + "." + base64.RawURLEncoding.EncodeToString(raw)
	}
	return s
}
