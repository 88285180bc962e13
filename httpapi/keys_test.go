package httpapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/auth/keys"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
)

// rotate adds a key as authql keys rotate does, on the test clock, and
// reloads the server's keys as its periodic reload would.
func rotate(tb testing.TB, ts *authtest.Server, alg string, activateIn time.Duration) string {
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

// window is how long after its retirement a key verifies (see auth).
const window = keys.ReloadInterval + 15*time.Minute + 2*auth.MaxClockSkew

var asymmetric = []string{keys.AlgEdDSA, keys.AlgES256}

func TestAsymmetricTokensAndJWKS(t *testing.T) {
	t.Parallel()
	for _, alg := range asymmetric {
		t.Run(alg, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, dsn string) {
				ts := authtest.NewServer(t, dsn, nil, authtest.WithAlg(alg))
				user := ts.Register(t, alg+"@example.com", "password1")
				ts.Me(t, user.Access).OK(t)
				h := authtest.Header(t, user.Access)
				if h["alg"] != alg || h["typ"] != "at+jwt" {
					t.Errorf("header = %v, want alg %s typ at+jwt", h, alg)
				}

				set := authtest.GetJWKS(t, ts.URL)
				if ct := set.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
				if cc := set.Header.Get("Cache-Control"); cc != "public, max-age=240" {
					t.Errorf("Cache-Control = %q", cc)
				}
				if len(set.Keys) != 1 {
					t.Fatalf("JWKS = %v, want one key", set.Keys)
				}
				k := set.Key(authtest.KID(t, user.Access))
				if k == nil || k["alg"] != alg || k["use"] != "sig" {
					t.Fatalf("JWKS %v has no %s key with the token's kid %s", set.Keys, alg, authtest.KID(t, user.Access))
				}
				for _, private := range []string{"d", "k"} {
					if _, ok := k[private]; ok {
						t.Errorf("JWKS publishes private member %q", private)
					}
				}
				// A relying party verifies the token with the JWKS alone.
				var c jwt.RegisteredClaims
				_, err := jwt.ParseWithClaims(user.Access, &c, func(*jwt.Token) (any, error) { return authtest.PublicKey(t, k), nil },
					jwt.WithValidMethods([]string{alg}), jwt.WithAudience("authql"), jwt.WithIssuer("authql"), jwt.WithTimeFunc(ts.Clock.Now))
				if err != nil || c.Subject != user.UserID {
					t.Errorf("token does not verify against the JWKS key: %v (sub %q)", err, c.Subject)
				}
				r := ts.Refresh(t, user.Refresh).OK(t)
				ts.Me(t, r.Str("refresh", "accessToken")).OK(t)
			})
		})
	}
}

func TestHS256JWKSIsEmpty(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string][]authtest.Option{"ConfiguredSecret": nil, "GeneratedSecret": {authtest.WithAlg("hs256")}} {
		t.Run(name, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, dsn string) {
				ts := authtest.NewServer(t, dsn, nil, opts...)
				ts.Me(t, ts.Register(t, "a@example.com", "password1").Access).OK(t)
				if set := authtest.GetJWKS(t, ts.URL); len(set.Keys) != 0 {
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
	t.Parallel()
	for _, alg := range asymmetric {
		t.Run(alg, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, dsn string) {
				ts := authtest.NewServer(t, dsn, nil, authtest.WithAlg(alg))
				user := ts.Register(t, "victim@example.com", "password1")
				serverKID := authtest.KID(t, user.Access)
				method, priv := authtest.StoredKey(t, ts, serverKID)
				admin := func(m jwt.MapClaims) { m["roles"] = []string{"admin", "user"} }

				// The control: the same forgery signed with the real private
				// key is accepted, so each refusal below is due to its key.
				ts.Me(t, authtest.Forge(t, user.Access, method, priv, serverKID, admin)).OK(t)

				pub := authtest.PublicKey(t, authtest.GetJWKS(t, ts.URL).Key(serverKID))
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
					ts.WantUnauthenticated(t, authtest.Forge(t, user.Access, jwt.SigningMethodHS256, secret, serverKID, admin), "HS256 with the public key as "+name)
				}

				ts.WantUnauthenticated(t, authtest.Forge(t, user.Access, method, priv, "", nil), "missing kid")
				other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				ts.WantUnauthenticated(t, authtest.Forge(t, user.Access, jwt.SigningMethodES256, other, "attacker-key", nil), "unknown kid")
				ts.WantUnauthenticated(t, authtest.Forge(t, user.Access, method, priv, "attacker-key", nil), "unknown kid, real signature")
			})
		})
	}
}

// TestRotationOverHTTP: after a rotation new tokens carry the new kid and
// the old key verifies its tokens until they have expired, then nothing.
func TestRotationOverHTTP(t *testing.T) {
	t.Parallel()
	for _, alg := range append(asymmetric, keys.AlgHS256) {
		t.Run(alg, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, dsn string) {
				ts := authtest.NewServer(t, dsn, nil, authtest.WithAlg(alg))
				user := ts.Register(t, "a@example.com", "password1")
				oldKID := authtest.KID(t, user.Access)
				method, oldKey := authtest.StoredKey(t, ts, oldKID)
				// Signed by the old key before the rotation but valid for
				// a day: only the key's window can end it early.
				longLived := authtest.Forge(t, user.Access, method, oldKey, oldKID, func(m jwt.MapClaims) {
					m["exp"] = ts.Clock.Now().Add(24 * time.Hour).Unix()
				})

				newKID := rotate(t, ts, alg, 0)
				fresh := authtest.TokensOf(ts.Login(t, "a@example.com", "password1").OK(t), "login")
				if got := authtest.KID(t, fresh.Access); got != newKID || got == oldKID {
					t.Fatalf("token after rotation has kid %s, want the new %s", got, newKID)
				}
				ts.Me(t, fresh.Access).OK(t)
				ts.Me(t, user.Access).OK(t)

				ts.Clock.Advance(10 * time.Minute)
				ts.Me(t, user.Access).OK(t)
				ts.Me(t, longLived).OK(t)
				// The old key cannot sign new tokens, even for its holder.
				ts.WantUnauthenticated(t, authtest.Forge(t, user.Access, method, oldKey, oldKID, func(m jwt.MapClaims) {
					m["iat"], m["nbf"] = ts.Clock.Now().Unix(), ts.Clock.Now().Unix()
					m["exp"] = ts.Clock.Now().Add(15 * time.Minute).Unix()
				}), "token signed by the retired key after its retirement")
				if alg != keys.AlgHS256 {
					if set := authtest.GetJWKS(t, ts.URL); set.Key(oldKID) == nil || set.Key(newKID) == nil {
						t.Errorf("JWKS %v lacks the old or the new key inside the old key's window", set.Keys)
					}
				}

				ts.Clock.Advance(window - 10*time.Minute)
				ts.Me(t, longLived).OK(t)
				ts.Clock.Advance(time.Second)
				ts.WantUnauthenticated(t, longLived, "old key after its window")
				if alg != keys.AlgHS256 {
					if set := authtest.GetJWKS(t, ts.URL); set.Key(oldKID) != nil || set.Key(newKID) == nil {
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
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil, authtest.WithAlg(keys.AlgEdDSA))
		user := ts.Register(t, "a@example.com", "password1")
		oldKID := authtest.KID(t, user.Access)
		newKID := rotate(t, ts, keys.AlgEdDSA, 10*time.Minute)
		method, newKey := authtest.StoredKey(t, ts, newKID)

		if set := authtest.GetJWKS(t, ts.URL); set.Key(newKID) == nil || set.Key(oldKID) == nil {
			t.Errorf("JWKS %v lacks the pending or the current key", set.Keys)
		}
		if got := authtest.KID(t, authtest.TokensOf(ts.Login(t, "a@example.com", "password1").OK(t), "login").Access); got != oldKID {
			t.Errorf("before activation tokens carry %s, want %s", got, oldKID)
		}
		early := authtest.Forge(t, user.Access, method, newKey, newKID, nil)
		ts.WantUnauthenticated(t, early, "token of a key not yet active")

		ts.Clock.Advance(10 * time.Minute)
		if got := authtest.KID(t, authtest.TokensOf(ts.Login(t, "a@example.com", "password1").OK(t), "login").Access); got != newKID {
			t.Errorf("after activation tokens carry %s, want %s", got, newKID)
		}
		// Its iat predates the key's activation: still refused.
		ts.WantUnauthenticated(t, early, "token of a pending key, after activation")
		ts.Me(t, authtest.Forge(t, user.Access, method, newKey, newKID, func(m jwt.MapClaims) {
			m["iat"], m["nbf"] = ts.Clock.Now().Unix(), ts.Clock.Now().Unix()
			m["exp"] = ts.Clock.Now().Add(15 * time.Minute).Unix()
		})).OK(t)
		ts.Me(t, user.Access).OK(t)
	})
}

// TestSecondInstanceLearnsRotation: two servers share a database; authql
// keys rotate (through run) adds a key; the first server signs with it
// after its periodic reload, and the second verifies its tokens at once by
// reloading on the unknown kid.
func TestSecondInstanceLearnsRotation(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		clk := authtest.NewClock()
		a := authtest.NewServer(t, dsn, clk, authtest.WithAlg(keys.AlgEdDSA))
		b := authtest.NewServer(t, dsn, clk, authtest.WithAlg(keys.AlgEdDSA))
		user := a.Register(t, "a@example.com", "password1")
		if a.Svc.KeyID() != b.Svc.KeyID() {
			t.Fatalf("instances sign with different keys: %s, %s", a.Svc.KeyID(), b.Svc.KeyID())
		}
		b.Me(t, user.Access).OK(t)

		// Rotated as authql keys rotate does it, by another process: a
		// key store of its own over the same database.
		newKID, err := keys.Rotate(context.Background(), a.DB, keys.Config{Alg: keys.AlgEdDSA}, 0, time.Now, nil)
		if err != nil {
			t.Fatalf("keys rotate: %v", err)
		}
		// The rotation ran on the wall clock; let the test clock pass the
		// new key's activation.
		clk.Advance(time.Minute)
		if err := a.Svc.Keys().Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		fresh := authtest.TokensOf(a.Login(t, "a@example.com", "password1").OK(t), "login")
		if got := authtest.KID(t, fresh.Access); got != newKID {
			t.Fatalf("a signs with %s after reload, want the rotated %s", got, newKID)
		}
		b.Me(t, fresh.Access).OK(t)
		if authtest.GetJWKS(t, b.URL).Key(newKID) == nil {
			t.Error("b does not publish the new key after learning it")
		}
		a.Me(t, user.Access).OK(t)
		b.Me(t, user.Access).OK(t)
	})
}

// TestES256HighSRefused: an ECDSA signature (r, s) verifies as well as
// (r, n-s), so anyone could respell a real ES256 token. authql issues only
// the low-S form and refuses the high one: each of many tokens it issues
// is low-S and accepted, and its high-S twin is UNAUTHENTICATED.
func TestES256HighSRefused(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil, authtest.WithAlg(keys.AlgES256))
		user := ts.Register(t, "a@example.com", "password1")
		n := elliptic.P256().Params().N
		half := new(big.Int).Rsh(n, 1)
		// Go's signer gives the high form about half the time: 24 tokens
		// without one would happen once in 16 million runs.
		refresh := user.Refresh
		for i := range 24 {
			pair := authtest.TokensOf(ts.Refresh(t, refresh).OK(t), "refresh")
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
			ts.Me(t, pair.Access).OK(t)

			twin := append([]byte(nil), sig...)
			new(big.Int).Sub(n, s).FillBytes(twin[32:])
			// The twin is a valid ECDSA signature: only the rule refuses it.
			jwk := authtest.GetJWKS(t, ts.URL).Key(authtest.KID(t, pair.Access))
			if !ecdsa.Verify(authtest.PublicKey(t, jwk).(*ecdsa.PublicKey), sha256Of(parts[0]+"."+parts[1]), new(big.Int).SetBytes(twin[:32]), new(big.Int).SetBytes(twin[32:])) {
				t.Fatal("the high-S twin does not verify as ECDSA; the test proves nothing")
			}
			ts.WantUnauthenticated(t, parts[0]+"."+parts[1]+"."+base64.RawURLEncoding.EncodeToString(twin), "high-S twin of a real token")
		}
	})
}

func sha256Of(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}
