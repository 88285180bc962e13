package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

const testTTL = 15 * time.Minute

// keyEnv is a key store on a real database with a signer over it.
type keyEnv struct {
	db     *gorm.DB
	clk    *fakeClock
	ks     *KeySet
	signer *Signer
}

func openDB(tb testing.TB, dsn string) *gorm.DB {
	tb.Helper()
	db, _, err := models.Open(dsn, models.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	sqlDB, _ := db.DB()
	tb.Cleanup(func() { sqlDB.Close() })
	if err := models.Migrate(context.Background(), db); err != nil {
		tb.Fatal(err)
	}
	return db
}

func newKeyEnv(tb testing.TB, dsn string, cfg KeyConfig) *keyEnv {
	tb.Helper()
	e := &keyEnv{db: openDB(tb, dsn), clk: &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}}
	e.open(tb, cfg)
	return e
}

// open (re)starts the key set, as a server start does.
func (e *keyEnv) open(tb testing.TB, cfg KeyConfig) {
	tb.Helper()
	ks, err := OpenKeySet(context.Background(), e.db, cfg, testTTL, e.clk.Now, nil)
	if err != nil {
		tb.Fatalf("OpenKeySet: %v", err)
	}
	e.ks, e.signer = ks, newSigner(ks, testIssuer, testAudience, e.clk.Now)
}

func (e *keyEnv) rotate(tb testing.TB, alg string, activateIn time.Duration) string {
	tb.Helper()
	kid, err := RotateKey(context.Background(), e.db, KeyConfig{Alg: alg}, activateIn, e.clk.Now, nil)
	if err != nil {
		tb.Fatalf("RotateKey: %v", err)
	}
	if err := e.ks.Reload(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return kid
}

// private returns the stored private material of kid, as an attacker
// holding the database (or an old backup of it) would have it.
func (e *keyEnv) private(tb testing.TB, kid string) (jwt.SigningMethod, any) {
	tb.Helper()
	rows, err := models.SigningKeys(context.Background(), e.db)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range rows {
		if r.KID == kid {
			m, err := decodePrivate(r.Alg, r.PrivateKey)
			if err != nil {
				tb.Fatal(err)
			}
			method, _ := jwtMethod(r.Alg)
			return method, m
		}
	}
	tb.Fatalf("no stored key %s", kid)
	return nil, nil
}

func (e *keyEnv) issue(tb testing.TB) string {
	tb.Helper()
	token, _, err := e.signer.Issue("user-1", "sess-1", []string{"user"}, testTTL)
	if err != nil {
		tb.Fatalf("Issue: %v", err)
	}
	return token
}

// sign builds a token with the given header kid (none when "").
func sign(tb testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.Claims) string {
	tb.Helper()
	t := jwt.NewWithClaims(method, claims)
	t.Header["typ"] = accessTokenType
	if kid != "" {
		t.Header["kid"] = kid
	}
	s, err := t.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// checkRefused fails unless Verify rejects token as invalid for reason.
func checkRefused(tb testing.TB, s *Signer, token string, reason error) {
	tb.Helper()
	c, err := s.Verify(context.Background(), token)
	if !errors.Is(err, ErrTokenInvalid) || !errors.Is(err, reason) {
		tb.Fatalf("Verify: err = %v, want ErrTokenInvalid for %q", err, reason)
	}
	if c != nil {
		tb.Error("Verify returned claims with its error")
	}
}

func kidOf(tb testing.TB, token string) string {
	tb.Helper()
	t, _, err := jwt.NewParser().ParseUnverified(token, &Claims{})
	if err != nil {
		tb.Fatal(err)
	}
	kid, _ := t.Header["kid"].(string)
	return kid
}

// pemOf encodes key as a PEM block of typ: PKCS#8, SEC 1 or PKIX.
func pemOf(tb testing.TB, typ string, key any) []byte {
	tb.Helper()
	var der []byte
	var err error
	switch typ {
	case "PRIVATE KEY":
		der, err = x509.MarshalPKCS8PrivateKey(key)
	case "EC PRIVATE KEY":
		der, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	case "PUBLIC KEY":
		der, err = x509.MarshalPKIXPublicKey(key)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestJWKThumbprintRFC8037(t *testing.T) {
	// RFC 8037 appendix A.1-A.3: an Ed25519 key and its RFC 7638
	// thumbprint.
	seed, _ := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	k, err := newKey(AlgEdDSA, ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	if k.jwk.X != "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" {
		t.Errorf("x = %s, want RFC 8037's", k.jwk.X)
	}
	if want := "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; k.kid != want {
		t.Errorf("kid = %s, want RFC 8037's thumbprint %s", k.kid, want)
	}
}

func TestJWKEncodingES256(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k, err := newKey(AlgES256, priv)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := base64.RawURLEncoding.DecodeString(k.jwk.X)
	y, _ := base64.RawURLEncoding.DecodeString(k.jwk.Y)
	// Fixed-length coordinates (RFC 7518 §6.2.1.2), so that a leading zero
	// byte is not dropped.
	if len(x) != 32 || len(y) != 32 {
		t.Fatalf("len(x), len(y) = %d, %d, want 32, 32", len(x), len(y))
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(&priv.PublicKey) {
		t.Error("x, y do not give back the public key")
	}
	if k.jwk.Kty != "EC" || k.jwk.Crv != "P-256" || k.jwk.Alg != "ES256" || k.jwk.Use != "sig" || k.jwk.Kid != k.kid {
		t.Errorf("jwk = %+v", k.jwk)
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPEM := pemOf(t, "PRIVATE KEY", ed)
	p256PEM := pemOf(t, "PRIVATE KEY", p256)
	p256SEC1 := pemOf(t, "EC PRIVATE KEY", p256)
	p384PEM := pemOf(t, "PRIVATE KEY", p384)
	rsaPEM := pemOf(t, "PRIVATE KEY", rsaKey)
	pubPEM := pemOf(t, "PUBLIC KEY", ed.Public())
	for _, tc := range []struct {
		name, alg string
		data      []byte
		ok        bool
	}{
		{"Ed25519ForEdDSA", AlgEdDSA, edPEM, true},
		{"P256ForES256", AlgES256, p256PEM, true},
		{"P256SEC1ForES256", AlgES256, p256SEC1, true},
		{"Ed25519ForES256", AlgES256, edPEM, false},
		{"P256ForEdDSA", AlgEdDSA, p256PEM, false},
		{"P256ForHS256", AlgHS256, p256PEM, false},
		{"P384", AlgES256, p384PEM, false},
		{"RSA", AlgES256, rsaPEM, false},
		{"PublicKey", AlgEdDSA, pubPEM, false},
		{"NotPEM", AlgEdDSA, []byte("not a key"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParsePrivateKeyPEM(tc.data, tc.alg)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if tc.ok {
				if _, err := newKey(tc.alg, k); err != nil {
					t.Errorf("newKey: %v", err)
				}
			}
		})
	}
}

func TestParseAlg(t *testing.T) {
	for in, want := range map[string]string{"": "HS256", "hs256": "HS256", "EDDSA": "EdDSA", "eddsa": "EdDSA", " es256 ": "ES256"} {
		if got, ok := ParseAlg(in); !ok || got != want {
			t.Errorf("ParseAlg(%q) = %q, %v, want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"none", "RS256", "HS512", "ES384", "Ed25519"} {
		if _, ok := ParseAlg(in); ok {
			t.Errorf("ParseAlg(%q) accepted", in)
		}
	}
}

// TestKeyVerifyRules attacks verification with tokens that carry a good
// signature but break one rule about the key; each must be refused for
// that reason.
func TestKeyVerifyRules(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		for _, alg := range []string{AlgEdDSA, AlgES256} {
			t.Run(alg, func(t *testing.T) {
				e := newKeyEnv(t, dsn+"", KeyConfig{Alg: alg})
				kid := e.ks.CurrentKID()
				method, priv := e.private(t, kid)
				now := e.clk.Now()

				t.Run("Control", func(t *testing.T) {
					mustVerify(t, e.signer, e.issue(t))
					mustVerify(t, e.signer, sign(t, method, priv, kid, validClaims(now)))
				})
				t.Run("HS256WithPublicKeyAsSecret", func(t *testing.T) {
					k := e.ks.lookup(context.Background(), kid)
					der, err := x509.MarshalPKIXPublicKey(k.verifyKey)
					if err != nil {
						t.Fatal(err)
					}
					var raw []byte
					switch p := k.verifyKey.(type) {
					case ed25519.PublicKey:
						raw = p
					case *ecdsa.PublicKey:
						e, _ := p.ECDH()
						raw = e.Bytes()
					}
					pemText := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
					jwks := e.ks.JWKS()
					for name, secret := range map[string][]byte{"PEM": pemText, "DER": der, "Raw": raw, "JWKS": jwks} {
						t.Run(name, func(t *testing.T) {
							checkRefused(t, e.signer, sign(t, jwt.SigningMethodHS256, secret, kid, validClaims(now)), errAlgMismatch)
						})
					}
				})
				t.Run("OtherAsymmetricAlg", func(t *testing.T) {
					other := map[string]string{AlgEdDSA: AlgES256, AlgES256: AlgEdDSA}[alg]
					k, _ := generateKey(other)
					checkRefused(t, e.signer, sign(t, k.method, k.signKey, kid, validClaims(now)), errAlgMismatch)
				})
				t.Run("MissingKid", func(t *testing.T) {
					checkRefused(t, e.signer, sign(t, method, priv, "", validClaims(now)), errNoKID)
				})
				t.Run("UnknownKid", func(t *testing.T) {
					k, _ := generateKey(alg)
					checkRefused(t, e.signer, sign(t, k.method, k.signKey, k.kid, validClaims(now)), errUnknownKID)
				})
				t.Run("MissingIat", func(t *testing.T) {
					c := validClaims(now)
					c.IssuedAt = nil
					checkRefused(t, e.signer, sign(t, method, priv, kid, c), errNoIssuedAt)
				})
				t.Run("IatBeforeKeyExisted", func(t *testing.T) {
					c := validClaims(now)
					c.IssuedAt = jwt.NewNumericDate(now.Add(-time.Hour))
					checkRefused(t, e.signer, sign(t, method, priv, kid, c), errIATOutsideKey)
				})
			})
		}
	})
}

func TestKeyRotationWindows(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newKeyEnv(t, dsn, KeyConfig{Alg: AlgEdDSA})
		oldKID := e.ks.CurrentKID()
		oldMethod, oldPriv := e.private(t, oldKID)
		oldToken := e.issue(t)
		start := e.clk.Now()
		// A token the old key signed just before rotation, valid for a
		// day: only the key's window can end it early.
		long := validClaims(start)
		long.ExpiresAt = jwt.NewNumericDate(start.Add(24 * time.Hour))
		longToken := sign(t, oldMethod, oldPriv, oldKID, long)

		newKID := e.rotate(t, AlgEdDSA, 0)
		if newKID == oldKID || e.ks.CurrentKID() != newKID {
			t.Fatalf("after rotation current kid = %s, want the new %s (old %s)", e.ks.CurrentKID(), newKID, oldKID)
		}
		if got := kidOf(t, e.issue(t)); got != newKID {
			t.Errorf("new token kid = %s, want %s", got, newKID)
		}
		mustVerify(t, e.signer, oldToken)

		t.Run("OldKeySigningAfterRetirement", func(t *testing.T) {
			// Someone with the old private key mints a fresh token.
			e.clk.Advance(retiredKeyGrace + time.Second)
			defer e.clk.Advance(-(retiredKeyGrace + time.Second))
			checkRefused(t, e.signer, sign(t, oldMethod, oldPriv, oldKID, validClaims(e.clk.Now())), errIATOutsideKey)
		})
		window := retiredKeyGrace + testTTL + MaxClockSkew
		e.clk.Advance(window)
		mustVerify(t, e.signer, longToken)
		if !strings.Contains(string(e.ks.JWKS()), oldKID) {
			t.Errorf("old key left the JWKS inside its window")
		}
		e.clk.Advance(time.Second)
		checkRefused(t, e.signer, longToken, errKeyRetired)
		if strings.Contains(string(e.ks.JWKS()), oldKID) {
			t.Errorf("old key still in the JWKS after its window")
		}
	})
}

func TestKeyNotYetActive(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newKeyEnv(t, dsn, KeyConfig{Alg: AlgES256})
		oldKID := e.ks.CurrentKID()
		newKID := e.rotate(t, AlgES256, time.Hour)
		method, priv := e.private(t, newKID)
		if !strings.Contains(string(e.ks.JWKS()), newKID) {
			t.Error("pending key not published in the JWKS")
		}
		if got := kidOf(t, e.issue(t)); got != oldKID {
			t.Errorf("before activation tokens carry %s, want the old %s", got, oldKID)
		}
		checkRefused(t, e.signer, sign(t, method, priv, newKID, validClaims(e.clk.Now())), errKeyNotActive)

		e.clk.Advance(time.Hour)
		if got := kidOf(t, e.issue(t)); got != newKID {
			t.Errorf("after activation tokens carry %s, want %s", got, newKID)
		}
		mustVerify(t, e.signer, sign(t, method, priv, newKID, validClaims(e.clk.Now())))
	})
}

func TestOpenKeySetConcurrentFirstStart(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		for _, alg := range []string{AlgEdDSA, AlgHS256} {
			t.Run(alg, func(t *testing.T) {
				db := openDB(t, dsn)
				if alg == AlgHS256 {
					// A fresh store for the second algorithm.
					db.Exec("DELETE FROM signing_keys")
					db.Exec("DELETE FROM settings")
				}
				const n = 6
				kids := make([]string, n)
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						// Each its own connection pool, as replicas have.
						ks, err := OpenKeySet(context.Background(), openDB(t, dsn), KeyConfig{Alg: alg}, testTTL, nil, nil)
						if err != nil {
							t.Error(err)
							return
						}
						kids[i] = ks.CurrentKID()
					})
				}
				wg.Wait()
				for _, k := range kids[1:] {
					if k != kids[0] || k == "" {
						t.Fatalf("replicas disagree on the signing key: %q", kids)
					}
				}
				rows, _ := models.SigningKeys(context.Background(), db)
				if len(rows) != 1 {
					t.Errorf("%d keys stored, want 1", len(rows))
				}
			})
		}
	})
}

func TestOpenKeySetAlgorithmChange(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newKeyEnv(t, dsn, KeyConfig{Alg: AlgEdDSA})
		edToken := e.issue(t)
		edKID := e.ks.CurrentKID()

		e.open(t, KeyConfig{Alg: AlgES256})
		esToken := e.issue(t)
		if kidOf(t, esToken) == edKID {
			t.Fatal("restart with ES256 kept signing with the EdDSA key")
		}
		if h := strings.Split(esToken, ".")[0]; !strings.Contains(mustDecode(t, h), `"alg":"ES256"`) {
			t.Errorf("header %s, want alg ES256", mustDecode(t, h))
		}
		mustVerify(t, e.signer, edToken) // retired, but in its window
		mustVerify(t, e.signer, esToken)

		e.open(t, KeyConfig{Alg: AlgES256}) // a restart with the same setting
		if got := kidOf(t, e.issue(t)); got != kidOf(t, esToken) {
			t.Errorf("restart changed the key: %s, want %s", got, kidOf(t, esToken))
		}
		e.open(t, KeyConfig{}) // no algorithm configured: keep the store's
		if got := kidOf(t, e.issue(t)); got != kidOf(t, esToken) {
			t.Errorf("a start without an algorithm changed the key: %s, want %s", got, kidOf(t, esToken))
		}
		e.open(t, KeyConfig{Alg: AlgHS256}) // back to HS256
		if jwks := string(e.ks.JWKS()); strings.Contains(jwks, `"alg":"HS256"`) || strings.Contains(jwks, e.ks.CurrentKID()) {
			t.Errorf("HS256 key published: %s", jwks)
		}
		mustVerify(t, e.signer, esToken)
	})
}

func mustDecode(tb testing.TB, seg string) string {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func TestExternalKeys(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		_, first, _ := ed25519.GenerateKey(rand.Reader)
		_, second, _ := ed25519.GenerateKey(rand.Reader)
		e := newKeyEnv(t, dsn, KeyConfig{Alg: AlgEdDSA, PrivateKey: first})
		firstToken := e.issue(t)
		rows, _ := models.SigningKeys(context.Background(), e.db)
		if len(rows) != 1 || rows[0].PrivateKey != "" || rows[0].PublicKey == "" {
			t.Fatalf("stored %+v, want one row with the public key only", rows)
		}

		// The operator replaces the file: the old public key keeps
		// verifying the tokens it signed.
		e.open(t, KeyConfig{Alg: AlgEdDSA, PrivateKey: second})
		mustVerify(t, e.signer, firstToken)
		if kidOf(t, e.issue(t)) == kidOf(t, firstToken) {
			t.Error("still signing with the replaced key")
		}

		t.Run("RetiredKeyNotReused", func(t *testing.T) {
			_, err := OpenKeySet(context.Background(), e.db, KeyConfig{Alg: AlgEdDSA, PrivateKey: first}, testTTL, e.clk.Now, nil)
			if err == nil || !strings.Contains(err.Error(), "retired") {
				t.Errorf("OpenKeySet with a retired key: err = %v, want a refusal", err)
			}
		})
		t.Run("RotateRefused", func(t *testing.T) {
			if _, err := RotateKey(context.Background(), e.db, KeyConfig{Alg: AlgEdDSA, PrivateKey: second}, 0, e.clk.Now, nil); !errors.Is(err, errExternalRotate) {
				t.Errorf("RotateKey with a key file: err = %v", err)
			}
			if _, err := RotateKey(context.Background(), e.db, KeyConfig{Secret: testKey}, 0, e.clk.Now, nil); !errors.Is(err, errExternalRotate) {
				t.Errorf("RotateKey with a secret: err = %v", err)
			}
		})
		t.Run("SecretNotStored", func(t *testing.T) {
			db := openDB(t, testdb.SQLite(t))
			if _, err := OpenKeySet(context.Background(), db, KeyConfig{Secret: testKey}, testTTL, nil, nil); err != nil {
				t.Fatal(err)
			}
			rows, _ := models.SigningKeys(context.Background(), db)
			if len(rows) != 1 || rows[0].PrivateKey != "" || strings.Contains(rows[0].PublicKey+rows[0].KID, base64.RawStdEncoding.EncodeToString(testKey)) {
				t.Errorf("stored %+v, want no secret in the database", rows)
			}
		})
	})
}

// TestUpgradeKeepsHS256Tokens: tokens issued by a version without the key
// store still verify after the upgrade, with the secret it generated and
// stored, or with AUTH_JWT_SECRET.
func TestUpgradeKeepsHS256Tokens(t *testing.T) {
	for _, configured := range []bool{false, true} {
		name := map[bool]string{false: "GeneratedSecret", true: "ConfiguredSecret"}[configured]
		t.Run(name, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, dsn string) {
				db := openDB(t, dsn)
				cfg := KeyConfig{Secret: testKey}
				if !configured {
					// As authql stored its generated secret before the key store.
					if err := db.Create(&models.Setting{Name: "jwt_hs256_secret", Value: base64.RawStdEncoding.EncodeToString(testKey)}).Error; err != nil {
						t.Fatal(err)
					}
					cfg = KeyConfig{}
				}
				old, clk := newTestSigner(t, testKey) // the signer of old versions
				token, _, err := old.Issue("user-1", "sess-1", nil, testTTL)
				if err != nil {
					t.Fatal(err)
				}
				// The upgrade starts a minute later.
				clk.Advance(time.Minute)
				ks, err := OpenKeySet(context.Background(), db, cfg, testTTL, clk.Now, nil)
				if err != nil {
					t.Fatal(err)
				}
				if ks.CurrentKID() != old.KeyID() {
					t.Errorf("kid = %s, want the pre-upgrade %s", ks.CurrentKID(), old.KeyID())
				}
				mustVerify(t, newSigner(ks, testIssuer, testAudience, clk.Now), token)
			})
		})
	}
}

func TestUnknownKidReloadThrottled(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newKeyEnv(t, dsn, KeyConfig{Alg: AlgEdDSA})
		// Another process's rotation, not yet seen here.
		other := &keyEnv{db: openDB(t, dsn), clk: e.clk}
		kid1, err := RotateKey(context.Background(), other.db, KeyConfig{Alg: AlgEdDSA}, 0, e.clk.Now, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e.ks.lookup(context.Background(), kid1) == nil {
			t.Fatal("unknown kid did not trigger a reload")
		}
		kid2, err := RotateKey(context.Background(), other.db, KeyConfig{Alg: AlgEdDSA}, 0, e.clk.Now, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e.ks.lookup(context.Background(), kid2) != nil {
			t.Fatal("a second unknown kid reloaded at once: random kids could hammer the database")
		}
		e.ks.missMu.Lock()
		e.ks.lastMiss = time.Now().Add(-unknownKIDReloadInterval)
		e.ks.missMu.Unlock()
		if e.ks.lookup(context.Background(), kid2) == nil {
			t.Fatal("no reload after the throttle interval")
		}
		if e.ks.lookup(context.Background(), strings.Repeat("k", maxKIDLen+1)) != nil {
			t.Fatal("found an overlong kid")
		}
	})
}

func TestJWKSSetShape(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newKeyEnv(t, dsn, KeyConfig{})
		if got := string(e.ks.JWKS()); got != `{"keys":[]}` {
			t.Errorf("HS256 JWKS = %s, want {\"keys\":[]}", got)
		}
		e.open(t, KeyConfig{Alg: AlgEdDSA})
		var set struct{ Keys []map[string]string }
		if err := json.Unmarshal(e.ks.JWKS(), &set); err != nil {
			t.Fatal(err)
		}
		if len(set.Keys) != 1 {
			t.Fatalf("keys = %v, want one", set.Keys)
		}
		k := set.Keys[0]
		if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["alg"] != "EdDSA" || k["use"] != "sig" || k["kid"] != e.ks.CurrentKID() || k["x"] == "" {
			t.Errorf("jwk = %v", k)
		}
		for _, private := range []string{"d", "k", "p", "q"} {
			if _, ok := k[private]; ok {
				t.Errorf("jwk has private member %q", private)
			}
		}
	})
}

func TestPurgeWipesRetiredPrivateKeys(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newKeyEnv(t, dsn, KeyConfig{Alg: AlgEdDSA})
		oldKID := e.ks.CurrentKID()
		e.rotate(t, AlgEdDSA, 0)
		wiped := func() bool {
			rows, _ := models.SigningKeys(context.Background(), e.db)
			for _, r := range rows {
				if r.KID == oldKID {
					return r.PrivateKey == ""
				}
			}
			t.Fatal("old key row gone")
			return false
		}
		before := e.clk.Now().Add(-(retiredKeyGrace + testTTL + MaxClockSkew))
		if _, err := models.WipeRetiredKeys(context.Background(), e.db, before); err != nil || wiped() {
			t.Fatalf("wiped inside the window (err %v)", err)
		}
		e.clk.Advance(retiredKeyGrace + testTTL + MaxClockSkew + time.Second)
		before = e.clk.Now().Add(-(retiredKeyGrace + testTTL + MaxClockSkew))
		if _, err := models.WipeRetiredKeys(context.Background(), e.db, before); err != nil || !wiped() {
			t.Fatalf("not wiped after the window (err %v)", err)
		}
		if err := e.ks.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if e.ks.lookup(context.Background(), oldKID) == nil || e.ks.lookup(context.Background(), oldKID).signKey != nil {
			t.Error("wiped key should stay known (public key only)")
		}
	})
}

// TestReloadKeepsKeysEncryptedAgain: during a rotation of the encryption
// key, a server started with the new one encrypts every key again; a
// server still running with the old one keeps signing and verifying with
// the keys it holds when it next reloads, instead of dropping them as
// undecryptable.
func TestReloadKeepsKeysEncryptedAgain(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		k1, k2 := randomSecret(), randomSecret()
		old := newKeyEnv(t, dsn, KeyConfig{Alg: AlgEdDSA, Encryption: EncryptionKeys{Current: k1}})
		token := old.issue(t)
		kid := old.ks.CurrentKID()

		restarted := newKeyEnv(t, dsn, KeyConfig{Alg: AlgEdDSA, Encryption: EncryptionKeys{Current: k2, Previous: [][]byte{k1}}})
		if restarted.ks.CurrentKID() != kid {
			t.Fatalf("the restarted server signs with %s, want %s", restarted.ks.CurrentKID(), kid)
		}
		rows, err := models.SigningKeys(context.Background(), old.db)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(rows[0].PrivateKey, sealedPrefix+EncryptionKeyFingerprint(k2)+":") {
			t.Fatalf("the key was not encrypted again under the new key: %.20s…", rows[0].PrivateKey)
		}

		if err := old.ks.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if old.ks.CurrentKID() != kid {
			t.Fatalf("after reloading, the old server signs with %q, want %s", old.ks.CurrentKID(), kid)
		}
		mustVerify(t, old.signer, token)
		mustVerify(t, old.signer, old.issue(t))
	})
}
