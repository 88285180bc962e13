package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authql/authql/auth/keys"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// jwks is a fetched JSON Web Key Set.
type jwks struct {
	Keys   []map[string]string `json:"keys"`
	Header http.Header         `json:"-"`
}

func getJWKS(tb testing.TB, baseURL string) jwks {
	tb.Helper()
	resp, err := http.Get(baseURL + "/.well-known/jwks.json")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET jwks.json = %d", resp.StatusCode)
	}
	var set jwks
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		tb.Fatal(err)
	}
	if set.Keys == nil {
		tb.Fatal(`JWKS has no "keys" array`)
	}
	set.Header = resp.Header
	return set
}

// key returns the JWK with kid, or nil.
func (s jwks) key(kid string) map[string]string {
	for _, k := range s.Keys {
		if k["kid"] == kid {
			return k
		}
	}
	return nil
}

// publicKey decodes a JWK as a relying party would.
func publicKey(tb testing.TB, k map[string]string) any {
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

// header decodes a JWT's header without verifying it.
func header(tb testing.TB, token string) map[string]any {
	tb.Helper()
	return jwtSegment(tb, token, 0)
}

func kid(tb testing.TB, token string) string {
	tb.Helper()
	k, _ := header(tb, token)["kid"].(string)
	return k
}

// storedKey returns the signing material of a stored key, as someone who
// has read the database (or an old backup) would hold it.
func storedKey(tb testing.TB, ts *testServer, kid string) (jwt.SigningMethod, any) {
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

// forge signs the claims of a real token, changed by mutate, with key under
// header kid (none when ""). ES256 signatures are made low-S, as authql's
// are, so that only what the test changes can make them fail.
func forge(tb testing.TB, real string, method jwt.SigningMethod, key any, kid string, mutate func(jwt.MapClaims)) string {
	tb.Helper()
	mc := jwt.MapClaims{}
	for k, v := range claims(tb, real) {
		mc[k] = v
	}
	if mutate != nil {
		mutate(mc)
	}
	t := jwt.NewWithClaims(method, mc)
	t.Header["typ"] = "at+jwt"
	if kid != "" {
		t.Header["kid"] = kid
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

// rotate adds a key as authql keys rotate does, on the test clock, and
// reloads the server's keys as its periodic reload would.
func (ts *testServer) rotate(tb testing.TB, alg string, activateIn time.Duration) string {
	tb.Helper()
	kid, err := keys.Rotate(context.Background(), ts.DB, keys.Config{Alg: alg}, activateIn, ts.Clock.Now, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := ts.Svc.Keys().Reload(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return kid
}

func (ts *testServer) wantUnauthenticated(tb testing.TB, token, why string) {
	tb.Helper()
	if code := ts.me(tb, token).Code(tb); code != models.Unauthenticated {
		tb.Errorf("%s: code = %s, want UNAUTHENTICATED", why, code)
	}
}

// window is how long after its retirement a key verifies (see auth).
const window = keys.ReloadInterval + 15*time.Minute + 2*keys.MaxClockSkew

var asymmetric = []string{keys.AlgEdDSA, keys.AlgES256}

func TestAsymmetricTokensAndJWKS(t *testing.T) {
	for _, alg := range asymmetric {
		t.Run(alg, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, dsn string) {
				ts := newTestServer(t, dsn, nil, withAlg(alg))
				user := ts.register(t, alg+"@example.com", "password1")
				ts.me(t, user.Access).OK(t)
				h := header(t, user.Access)
				if h["alg"] != alg || h["typ"] != "at+jwt" {
					t.Errorf("header = %v, want alg %s typ at+jwt", h, alg)
				}

				set := getJWKS(t, ts.URL)
				if ct := set.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
				if cc := set.Header.Get("Cache-Control"); cc != "public, max-age=300" {
					t.Errorf("Cache-Control = %q", cc)
				}
				if len(set.Keys) != 1 {
					t.Fatalf("JWKS = %v, want one key", set.Keys)
				}
				k := set.key(kid(t, user.Access))
				if k == nil || k["alg"] != alg || k["use"] != "sig" {
					t.Fatalf("JWKS %v has no %s key with the token's kid %s", set.Keys, alg, kid(t, user.Access))
				}
				for _, private := range []string{"d", "k"} {
					if _, ok := k[private]; ok {
						t.Errorf("JWKS publishes private member %q", private)
					}
				}
				// A relying party verifies the token with the JWKS alone.
				var c jwt.RegisteredClaims
				_, err := jwt.ParseWithClaims(user.Access, &c, func(*jwt.Token) (any, error) { return publicKey(t, k), nil },
					jwt.WithValidMethods([]string{alg}), jwt.WithAudience("authql"), jwt.WithIssuer("authql"), jwt.WithTimeFunc(ts.Clock.Now))
				if err != nil || c.Subject != user.UserID {
					t.Errorf("token does not verify against the JWKS key: %v (sub %q)", err, c.Subject)
				}
				r := ts.refresh(t, user.Refresh).OK(t)
				ts.me(t, r.Str("refresh", "accessToken")).OK(t)
			})
		})
	}
}

func TestHS256JWKSIsEmpty(t *testing.T) {
	for name, opts := range map[string][]serverOpt{"ConfiguredSecret": nil, "GeneratedSecret": {withAlg("hs256")}} {
		t.Run(name, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, dsn string) {
				ts := newTestServer(t, dsn, nil, opts...)
				ts.me(t, ts.register(t, "a@example.com", "password1").Access).OK(t)
				if set := getJWKS(t, ts.URL); len(set.Keys) != 0 {
					t.Errorf("HS256 server publishes %v", set.Keys)
				}
			})
		})
	}
}

// TestForgedWithServerPublicKey: the public key is public, so an HS256
// token whose HMAC secret is the public key must not verify, however the
// key is written; nor may a token with a missing or unknown kid.
func TestForgedWithServerPublicKey(t *testing.T) {
	for _, alg := range asymmetric {
		t.Run(alg, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, dsn string) {
				ts := newTestServer(t, dsn, nil, withAlg(alg))
				user := ts.register(t, "victim@example.com", "password1")
				serverKID := kid(t, user.Access)
				method, priv := storedKey(t, ts, serverKID)
				admin := func(m jwt.MapClaims) { m["roles"] = []string{"admin", "user"} }

				// The control: the same forgery signed with the real private
				// key is accepted, so each refusal below is due to its key.
				ts.me(t, forge(t, user.Access, method, priv, serverKID, admin)).OK(t)

				pub := publicKey(t, getJWKS(t, ts.URL).key(serverKID))
				der, err := x509.MarshalPKIXPublicKey(pub)
				if err != nil {
					t.Fatal(err)
				}
				var raw []byte
				switch p := pub.(type) {
				case ed25519.PublicKey:
					raw = p
				case *ecdsa.PublicKey:
					e, _ := p.ECDH()
					raw = e.Bytes()
				}
				secrets := map[string][]byte{
					"PEM": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
					"DER": der,
					"Raw": raw,
				}
				for name, secret := range secrets {
					ts.wantUnauthenticated(t, forge(t, user.Access, jwt.SigningMethodHS256, secret, serverKID, admin), "HS256 with the public key as "+name)
				}

				ts.wantUnauthenticated(t, forge(t, user.Access, method, priv, "", nil), "missing kid")
				other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				ts.wantUnauthenticated(t, forge(t, user.Access, jwt.SigningMethodES256, other, "attacker-key", nil), "unknown kid")
				ts.wantUnauthenticated(t, forge(t, user.Access, method, priv, "attacker-key", nil), "unknown kid, real signature")
			})
		})
	}
}

// TestRotationOverHTTP: after a rotation new tokens carry the new kid and
// the old key verifies its tokens until they have expired, then nothing.
func TestRotationOverHTTP(t *testing.T) {
	for _, alg := range append(asymmetric, keys.AlgHS256) {
		t.Run(alg, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, dsn string) {
				ts := newTestServer(t, dsn, nil, withAlg(alg))
				user := ts.register(t, "a@example.com", "password1")
				oldKID := kid(t, user.Access)
				method, oldKey := storedKey(t, ts, oldKID)
				// Signed by the old key before the rotation but valid for
				// a day: only the key's window can end it early.
				longLived := forge(t, user.Access, method, oldKey, oldKID, func(m jwt.MapClaims) {
					m["exp"] = ts.Clock.Now().Add(24 * time.Hour).Unix()
				})

				newKID := ts.rotate(t, alg, 0)
				fresh := tokensOf(ts.login(t, "a@example.com", "password1").OK(t), "login")
				if got := kid(t, fresh.Access); got != newKID || got == oldKID {
					t.Fatalf("token after rotation has kid %s, want the new %s", got, newKID)
				}
				ts.me(t, fresh.Access).OK(t)
				ts.me(t, user.Access).OK(t)

				ts.Clock.Advance(10 * time.Minute)
				ts.me(t, user.Access).OK(t)
				ts.me(t, longLived).OK(t)
				// The old key cannot sign new tokens, even for its holder.
				ts.wantUnauthenticated(t, forge(t, user.Access, method, oldKey, oldKID, func(m jwt.MapClaims) {
					m["iat"], m["nbf"] = ts.Clock.Now().Unix(), ts.Clock.Now().Unix()
					m["exp"] = ts.Clock.Now().Add(15 * time.Minute).Unix()
				}), "token signed by the retired key after its retirement")
				if alg != keys.AlgHS256 {
					if set := getJWKS(t, ts.URL); set.key(oldKID) == nil || set.key(newKID) == nil {
						t.Errorf("JWKS %v lacks the old or the new key inside the old key's window", set.Keys)
					}
				}

				ts.Clock.Advance(window - 10*time.Minute)
				ts.me(t, longLived).OK(t)
				ts.Clock.Advance(time.Second)
				ts.wantUnauthenticated(t, longLived, "old key after its window")
				if alg != keys.AlgHS256 {
					if set := getJWKS(t, ts.URL); set.key(oldKID) != nil || set.key(newKID) == nil {
						t.Errorf("JWKS after the old key's window = %v, want only the new key", set.Keys)
					}
				}
			})
		})
	}
}

// TestPendingKeyOverHTTP: a key added with --activate-in is published at
// once but refused until it activates.
func TestPendingKeyOverHTTP(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := newTestServer(t, dsn, nil, withAlg(keys.AlgEdDSA))
		user := ts.register(t, "a@example.com", "password1")
		oldKID := kid(t, user.Access)
		newKID := ts.rotate(t, keys.AlgEdDSA, 10*time.Minute)
		method, newKey := storedKey(t, ts, newKID)

		if set := getJWKS(t, ts.URL); set.key(newKID) == nil || set.key(oldKID) == nil {
			t.Errorf("JWKS %v lacks the pending or the current key", set.Keys)
		}
		if got := kid(t, tokensOf(ts.login(t, "a@example.com", "password1").OK(t), "login").Access); got != oldKID {
			t.Errorf("before activation tokens carry %s, want %s", got, oldKID)
		}
		early := forge(t, user.Access, method, newKey, newKID, nil)
		ts.wantUnauthenticated(t, early, "token of a key not yet active")

		ts.Clock.Advance(10 * time.Minute)
		if got := kid(t, tokensOf(ts.login(t, "a@example.com", "password1").OK(t), "login").Access); got != newKID {
			t.Errorf("after activation tokens carry %s, want %s", got, newKID)
		}
		// Its iat predates the key's activation: still refused.
		ts.wantUnauthenticated(t, early, "token of a pending key, after activation")
		ts.me(t, forge(t, user.Access, method, newKey, newKID, func(m jwt.MapClaims) {
			m["iat"], m["nbf"] = ts.Clock.Now().Unix(), ts.Clock.Now().Unix()
			m["exp"] = ts.Clock.Now().Add(15 * time.Minute).Unix()
		})).OK(t)
		ts.me(t, user.Access).OK(t)
	})
}

// TestSecondInstanceLearnsRotation: two servers share a database; authql
// keys rotate (through run) adds a key; the first server signs with it
// after its periodic reload, and the second verifies its tokens at once by
// reloading on the unknown kid.
func TestSecondInstanceLearnsRotation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		clk := newClock()
		a := newTestServer(t, dsn, clk, withAlg(keys.AlgEdDSA))
		b := newTestServer(t, dsn, clk, withAlg(keys.AlgEdDSA))
		user := a.register(t, "a@example.com", "password1")
		if a.Svc.KeyID() != b.Svc.KeyID() {
			t.Fatalf("instances sign with different keys: %s, %s", a.Svc.KeyID(), b.Svc.KeyID())
		}
		b.me(t, user.Access).OK(t)

		var out, errOut bytes.Buffer
		env := map[string]string{"DATABASE_URL": dsn, "AUTH_JWT_ALG": "eddsa"}
		if err := run(context.Background(), []string{"keys", "rotate"}, func(k string) string { return env[k] }, nil, &out, &errOut); err != nil {
			t.Fatalf("keys rotate: %v (stderr %s)", err, errOut.String())
		}
		newKID := strings.TrimSpace(out.String())
		// keys rotate ran on the wall clock; let the test clock pass the
		// new key's activation.
		clk.Advance(time.Minute)
		if err := a.Svc.Keys().Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		fresh := tokensOf(a.login(t, "a@example.com", "password1").OK(t), "login")
		if got := kid(t, fresh.Access); got != newKID {
			t.Fatalf("a signs with %s after reload, want the rotated %s", got, newKID)
		}
		b.me(t, fresh.Access).OK(t)
		if getJWKS(t, b.URL).key(newKID) == nil {
			t.Error("b does not publish the new key after learning it")
		}
		a.me(t, user.Access).OK(t)
		b.me(t, user.Access).OK(t)
	})
}

func writeKeyFile(tb testing.TB, key any) string {
	tb.Helper()
	var block *pem.Block
	if ec, ok := key.(*ecdsa.PrivateKey); ok && ec.Curve == elliptic.P256() && strings.Contains(tb.Name(), "SEC1") {
		der, err := x509.MarshalECPrivateKey(ec)
		if err != nil {
			tb.Fatal(err)
		}
		block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	} else {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			tb.Fatal(err)
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	path := filepath.Join(tb.TempDir(), "signing.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestRunKeysRotate(t *testing.T) {
	env := map[string]string{"DATABASE_URL": filepath.Join(t.TempDir(), "keys.db"), "AUTH_JWT_ALG": "EdDSA"}
	getenv := func(k string) string { return env[k] }
	url, stop := startRun(t, env)
	r := gql(t, url, "", `mutation { register(email: "a@example.com", password: "password1") { accessToken } }`).OK(t)
	oldToken := r.Str("register", "accessToken")
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := run(context.Background(), []string{"keys", "rotate"}, getenv, nil, &out, io.Discard); err != nil {
		t.Fatalf("keys rotate: %v", err)
	}
	newKID := strings.TrimSpace(out.String())
	if newKID == "" || strings.Contains(newKID, "\n") || newKID == kid(t, oldToken) {
		t.Fatalf("keys rotate printed %q, want one new kid", out.String())
	}

	url, _ = startRun(t, env)
	r = gql(t, url, "", `mutation { login(email: "a@example.com", password: "password1") { accessToken } }`).OK(t)
	if got := kid(t, r.Str("login", "accessToken")); got != newKID {
		t.Errorf("after restart tokens carry %s, want %s", got, newKID)
	}
	gql(t, url, oldToken, `{ me { email } }`).OK(t)
	set := getJWKS(t, url)
	if set.key(newKID) == nil || set.key(kid(t, oldToken)) == nil {
		t.Errorf("JWKS %v, want the new and the old key", set.Keys)
	}

	out.Reset()
	if err := run(context.Background(), []string{"keys", "rotate", "--activate-in", "1h"}, getenv, nil, &out, io.Discard); err != nil {
		t.Fatalf("keys rotate --activate-in 1h: %v", err)
	}
	pending := strings.TrimSpace(out.String())
	// A token naming it makes the running server reload and publish it.
	gql(t, url, forge(t, oldToken, jwt.SigningMethodHS256, []byte("x"), pending, nil), `{ me { email } }`)
	if getJWKS(t, url).key(pending) == nil {
		t.Errorf("pending key %s not published", pending)
	}
}

func TestRunKeyFile(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "file.db")
	_, first, _ := ed25519.GenerateKey(rand.Reader)
	env := map[string]string{"DATABASE_URL": dbPath, "AUTH_JWT_ALG": "EdDSA", "AUTH_JWT_PRIVATE_KEY_FILE": writeKeyFile(t, first)}
	url, stop := startRun(t, env)
	r := gql(t, url, "", `mutation { register(email: "a@example.com", password: "password1") { accessToken } }`).OK(t)
	oldToken := r.Str("register", "accessToken")
	k := getJWKS(t, url).key(kid(t, oldToken))
	if k == nil || !bytes.Equal(publicKey(t, k).(ed25519.PublicKey), first.Public().(ed25519.PublicKey)) {
		t.Fatalf("JWKS does not publish the file's public key under the token's kid")
	}
	if err := run(context.Background(), []string{"keys", "rotate"}, func(k string) string { return env[k] }, nil, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "replace the file") {
		t.Errorf("keys rotate with a key file: err = %v, want a refusal saying to replace the file", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// The operator replaces the file.
	_, second, _ := ed25519.GenerateKey(rand.Reader)
	env["AUTH_JWT_PRIVATE_KEY_FILE"] = writeKeyFile(t, second)
	url, _ = startRun(t, env)
	r = gql(t, url, "", `mutation { login(email: "a@example.com", password: "password1") { accessToken } }`).OK(t)
	if kid(t, r.Str("login", "accessToken")) == kid(t, oldToken) {
		t.Error("still signing with the replaced file's key")
	}
	gql(t, url, oldToken, `{ me { email } }`).OK(t)

	db, _, err := models.Open(dbPath, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	rows, err := models.SigningKeys(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if row.PrivateKey != "" {
			t.Errorf("key %s from a file has private material in the database", row.KID)
		}
	}
}

func TestRunRejectsBadKeyConfiguration(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edFile, p384File := writeKeyFile(t, ed), writeKeyFile(t, p384)
	secret := "a-secret-that-is-long-enough-for-hs256!"
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantText []string
	}{
		{"UnknownAlg", nil, map[string]string{"AUTH_JWT_ALG": "RS256"}, []string{"AUTH_JWT_ALG", "RS256"}},
		{"AlgNone", nil, map[string]string{"AUTH_JWT_ALG": "none"}, []string{"AUTH_JWT_ALG"}},
		{"SecretWithEdDSA", nil, map[string]string{"AUTH_JWT_ALG": "EdDSA", "AUTH_JWT_SECRET": secret}, []string{"AUTH_JWT_SECRET", "EdDSA"}},
		{"KeyFileWithHS256", nil, map[string]string{"AUTH_JWT_PRIVATE_KEY_FILE": edFile}, []string{"AUTH_JWT_PRIVATE_KEY_FILE", "AUTH_JWT_ALG"}},
		{"KeyFileMissing", nil, map[string]string{"AUTH_JWT_ALG": "EdDSA", "AUTH_JWT_PRIVATE_KEY_FILE": edFile + ".missing"}, []string{"AUTH_JWT_PRIVATE_KEY_FILE"}},
		{"Ed25519FileForES256", nil, map[string]string{"AUTH_JWT_ALG": "ES256", "AUTH_JWT_PRIVATE_KEY_FILE": edFile}, []string{"AUTH_JWT_PRIVATE_KEY_FILE", "Ed25519"}},
		{"P384File", nil, map[string]string{"AUTH_JWT_ALG": "ES256", "AUTH_JWT_PRIVATE_KEY_FILE": p384File}, []string{"AUTH_JWT_PRIVATE_KEY_FILE", "P-384"}},
		{"RotateWithSecret", []string{"keys", "rotate"}, map[string]string{"AUTH_JWT_SECRET": secret}, []string{"AUTH_JWT_SECRET", "new secret"}},
		{"RotateBadDuration", []string{"keys", "rotate", "--activate-in", "soon"}, map[string]string{}, []string{"activate-in"}},
		{"RotateNegative", []string{"keys", "rotate", "--activate-in=-1m"}, map[string]string{}, []string{"negative"}},
		{"RotateExtraArgument", []string{"keys", "rotate", "now"}, map[string]string{}, []string{"now"}},
		{"RotateUnknownAlg", []string{"keys", "rotate", "--alg", "RS256"}, map[string]string{}, []string{"--alg", "RS256"}},
		{"EncryptionKeyNotBase64", nil, map[string]string{"AUTH_ENCRYPTION_KEY": "not base64!"}, []string{"AUTH_ENCRYPTION_KEY", "openssl rand -base64 32"}},
		{"EncryptionKeyShort", nil, map[string]string{"AUTH_ENCRYPTION_KEY": base64.StdEncoding.EncodeToString(make([]byte, 16))}, []string{"AUTH_ENCRYPTION_KEY", "32 bytes"}},
		{"EncryptionKeyPreviousAlone", nil, map[string]string{"AUTH_ENCRYPTION_KEY_PREVIOUS": base64.StdEncoding.EncodeToString(make([]byte, 32))}, []string{"AUTH_ENCRYPTION_KEY_PREVIOUS", "without AUTH_ENCRYPTION_KEY"}},
		{"EncryptionKeyPreviousBad", nil, map[string]string{"AUTH_ENCRYPTION_KEY": base64.StdEncoding.EncodeToString(make([]byte, 32)), "AUTH_ENCRYPTION_KEY_PREVIOUS": "short"}, []string{"AUTH_ENCRYPTION_KEY_PREVIOUS", "32 bytes"}},
		{"UnknownKeysCommand", []string{"keys", "delete"}, map[string]string{}, []string{"delete"}},
		{"UnknownCommand", []string{"frobnicate"}, map[string]string{}, []string{"frobnicate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.env["DATABASE_URL"] = filepath.Join(t.TempDir(), "bad.db")
			tt.env["PORT"] = "0"
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := run(ctx, tt.args, func(k string) string { return tt.env[k] }, nil, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("run accepted it")
			}
			for _, want := range tt.wantText {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"keys rotate", "jwks.json", "AUTH_JWT_ALG", "AUTH_JWT_PRIVATE_KEY_FILE", "AUTH_ENCRYPTION_KEY", "AUTH_ENCRYPTION_KEY_PREVIOUS"}},
		{[]string{"serve", "-h"}, []string{"keys rotate", "AUTH_JWT_ALG"}},
		{[]string{"help"}, []string{"keys rotate"}},
		{[]string{"keys", "--help"}, []string{"--activate-in", "--alg", "replace the file"}},
		{[]string{"keys"}, []string{"--activate-in"}},
		{[]string{"keys", "rotate", "-h"}, []string{"--activate-in"}},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			var out bytes.Buffer
			if err := run(context.Background(), tc.args, func(string) string { return "" }, nil, &out, io.Discard); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("help lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestES256HighSRefused: an ECDSA signature (r, s) verifies as well as
// (r, n-s), so anyone could respell a real ES256 token. authql issues only
// the low-S form and refuses the high one: each of many tokens it issues
// is low-S and accepted, and its high-S twin is UNAUTHENTICATED.
func TestES256HighSRefused(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := newTestServer(t, dsn, nil, withAlg(keys.AlgES256))
		user := ts.register(t, "a@example.com", "password1")
		n := elliptic.P256().Params().N
		half := new(big.Int).Rsh(n, 1)
		// Go's signer gives the high form about half the time: 24 tokens
		// without one would happen once in 16 million runs.
		refresh := user.Refresh
		for i := range 24 {
			pair := tokensOf(ts.refresh(t, refresh).OK(t), "refresh")
			refresh = pair.Refresh
			parts := strings.Split(pair.Access, ".")
			sig, err := base64.RawURLEncoding.DecodeString(parts[2])
			if err != nil || len(sig) != 64 {
				t.Fatalf("signature %q: %v", parts[2], err)
			}
			s := new(big.Int).SetBytes(sig[32:])
			if s.Cmp(half) > 0 {
				t.Errorf("token %d was issued with a high-S signature", i)
			}
			ts.me(t, pair.Access).OK(t)

			twin := append([]byte(nil), sig...)
			new(big.Int).Sub(n, s).FillBytes(twin[32:])
			// The twin is a valid ECDSA signature: only the rule refuses it.
			jwk := getJWKS(t, ts.URL).key(kid(t, pair.Access))
			if !ecdsa.Verify(publicKey(t, jwk).(*ecdsa.PublicKey), sha256Of(parts[0]+"."+parts[1]), new(big.Int).SetBytes(twin[:32]), new(big.Int).SetBytes(twin[32:])) {
				t.Fatal("the high-S twin does not verify as ECDSA; the test proves nothing")
			}
			ts.wantUnauthenticated(t, parts[0]+"."+parts[1]+"."+base64.RawURLEncoding.EncodeToString(twin), "high-S twin of a real token")
		}
	})
}

func sha256Of(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// keyRows returns the signing keys stored in the database of dsn.
func keyRows(tb testing.TB, dsn string) []models.SigningKey {
	tb.Helper()
	db, _, err := models.Open(dsn, models.Options{MaxConns: 1})
	if err != nil {
		tb.Fatal(err)
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	rows, err := models.SigningKeys(context.Background(), db)
	if err != nil {
		tb.Fatal(err)
	}
	return rows
}

// TestCommandsKeepTheAlgorithm: a running EdDSA deployment, and an operator
// running the commands from a shell without AUTH_JWT_ALG. user add, user
// roles and migrate leave the keys as they are; keys rotate without --alg
// adds a key of the current algorithm; a server started without
// AUTH_JWT_ALG keeps it; only keys rotate --alg changes it.
func TestCommandsKeepTheAlgorithm(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		serverEnv := map[string]string{"DATABASE_URL": dsn, "AUTH_JWT_ALG": "EdDSA"}
		url, stop := startRun(t, serverEnv)
		first := gql(t, url, "", `mutation { register(email: "a@example.com", password: "password1") { accessToken } }`).OK(t).Str("register", "accessToken")
		before := keyRows(t, dsn)
		if len(before) != 1 || before[0].Alg != keys.AlgEdDSA {
			t.Fatalf("keys at start: %+v, want one EdDSA key", before)
		}

		shell := map[string]string{"DATABASE_URL": dsn, "AUTH_ARGON2_MEMORY": "64", "AUTH_ARGON2_TIME": "1"}
		command := func(stdin string, args ...string) string {
			t.Helper()
			var out, errOut bytes.Buffer
			if err := run(context.Background(), args, func(k string) string { return shell[k] }, strings.NewReader(stdin), &out, &errOut); err != nil {
				t.Fatalf("authql %s: %v (stderr %s)", strings.Join(args, " "), err, errOut.String())
			}
			return strings.TrimSpace(out.String())
		}
		command("password2\n", "user", "add", "--email", "b@example.com", "--password-stdin")
		command("", "user", "roles", "--email", "b@example.com", "--set", "admin,user")
		command("", "migrate")
		after := keyRows(t, dsn)
		if len(after) != 1 || after[0].KID != before[0].KID || after[0].RetiredAt != nil {
			t.Fatalf("keys after user add, user roles and migrate: %+v, want the EdDSA key alone and current", after)
		}
		// The running server still signs, and its tokens verify.
		gql(t, url, "", `mutation { login(email: "b@example.com", password: "password2") { accessToken } }`).OK(t)
		gql(t, url, first, `{ me { email } }`).OK(t)
		if err := stop(); err != nil {
			t.Fatal(err)
		}

		rotated := command("", "keys", "rotate")
		rows := keyRows(t, dsn)
		if last := rows[len(rows)-1]; last.KID != rotated || last.Alg != keys.AlgEdDSA {
			t.Fatalf("keys rotate without --alg added %s %s, want an EdDSA key %s", last.Alg, last.KID, rotated)
		}

		// A server started from the shell without AUTH_JWT_ALG keeps it.
		url, stop = startRun(t, shell)
		tok := gql(t, url, "", `mutation { login(email: "a@example.com", password: "password1") { accessToken } }`).OK(t).Str("login", "accessToken")
		if h := header(t, tok); h["alg"] != keys.AlgEdDSA || h["kid"] != rotated {
			t.Errorf("a server without AUTH_JWT_ALG signs with %v %v, want EdDSA %s", h["alg"], h["kid"], rotated)
		}
		if getJWKS(t, url).key(rotated) == nil {
			t.Error("the current key is missing from the JWKS")
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if n := len(keyRows(t, dsn)); n != 2 {
			t.Errorf("%d keys after a start without AUTH_JWT_ALG, want 2", n)
		}

		es := command("", "keys", "rotate", "--alg", "es256")
		rows = keyRows(t, dsn)
		if last := rows[len(rows)-1]; last.KID != es || last.Alg != keys.AlgES256 {
			t.Errorf("keys rotate --alg es256 added %s %s, want ES256", last.Alg, last.KID)
		}
	})
}
