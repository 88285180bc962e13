package keys

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
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

	"github.com/authql/authql/internal/testclock"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

const testTTL = 15 * time.Minute

// keyEnv is a key store on a real database with a signer over it.
type keyEnv struct {
	db     *gorm.DB
	clk    *testclock.Clock
	ks     *Set
	signer *Signer
}

func newKeyEnv(tb testing.TB, dsn string, cfg Config) *keyEnv {
	tb.Helper()
	e := &keyEnv{db: testdb.Open(tb, dsn), clk: testclock.New(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))}
	e.open(tb, cfg)
	return e
}

// open (re)starts the key set, as a server start does.
func (e *keyEnv) open(tb testing.TB, cfg Config) {
	tb.Helper()
	ks, err := Open(context.Background(), e.db, cfg, testTTL, e.clk.Now, nil)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	e.ks, e.signer = ks, ks.Signer(testIssuer, testAudience, e.clk.Now)
}

func (e *keyEnv) rotate(tb testing.TB, alg string, activateIn time.Duration) string {
	tb.Helper()
	kid, err := Rotate(context.Background(), e.db, Config{Alg: alg}, activateIn, e.clk.Now, nil)
	if err != nil {
		tb.Fatalf("Rotate: %v", err)
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
	header := map[string]any{"kid": nil}
	if kid != "" {
		header["kid"] = kid
	}
	return signHeader(tb, method, key, header, claims)
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

// TestKeyVerifyRules attacks verification with tokens that carry a good
// signature but break one rule about the key; each must be refused for
// that reason.
func TestKeyVerifyRules(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		for _, alg := range []string{AlgEdDSA, AlgES256} {
			t.Run(alg, func(t *testing.T) {
				e := newKeyEnv(t, dsn+"", Config{Alg: alg})
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

func TestOpenConcurrentFirstStart(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		for _, alg := range []string{AlgEdDSA, AlgHS256} {
			t.Run(alg, func(t *testing.T) {
				db := testdb.Open(t, dsn)
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
						ks, err := Open(context.Background(), testdb.Open(t, dsn), Config{Alg: alg}, testTTL, nil, nil)
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

// TestOpenLegacySecretTakenOver: two first starts on a new store take
// over the legacy HS256 setting. Here one start's read of the setting comes
// after another start inserted it (so its own insert changed nothing) and
// then took it into the key store and deleted it. The late start must settle
// on the key the other one added, not fail for the setting it cannot find
// (seen as a flaky TestRunConcurrentStarts: `SettingValue("jwt_hs256_secret"):
// record not found`). Hooks on the late start's pool force the interleaving.
func TestOpenLegacySecretTakenOver(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		late, early := testdb.Open(t, dsn), testdb.Open(t, dsn)
		var theirs *Set
		reads := 0
		isSetting := func(tx *gorm.DB) bool {
			_, ok := tx.Statement.Dest.(*models.Setting)
			return ok
		}
		// After the late start's first read (no setting yet), the early
		// start inserts the setting.
		err := late.Callback().Query().After("gorm:query").Register("test:early-inserts", func(tx *gorm.DB) {
			if !isSetting(tx) {
				return
			}
			if reads++; reads == 1 {
				s := models.Setting{Name: models.LegacyHS256Setting, Value: base64.RawStdEncoding.EncodeToString(testKey)}
				if err := early.Create(&s).Error; err != nil {
					t.Error(err)
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		// Before the late start reads the setting again, after its
		// insert lost, the early start takes it over and deletes it.
		err = late.Callback().Query().Before("gorm:query").Register("test:early-takes-over", func(tx *gorm.DB) {
			if !isSetting(tx) || reads != 1 || theirs != nil {
				return
			}
			var err error
			if theirs, err = Open(context.Background(), early, Config{}, testTTL, nil, nil); err != nil {
				t.Errorf("the early start: %v", err)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		ks, err := Open(context.Background(), late, Config{}, testTTL, nil, nil)
		if err != nil {
			t.Fatalf("the late start: %v", err)
		}
		if theirs == nil {
			t.Fatal("the interleaving did not happen: the early start never ran")
		}
		if ks.CurrentKID() != theirs.CurrentKID() {
			t.Errorf("the starts disagree on the signing key: %s and %s", ks.CurrentKID(), theirs.CurrentKID())
		}
		if k, _ := newKey(AlgHS256, testKey); ks.CurrentKID() != k.kid {
			t.Errorf("kid = %s, want the legacy secret's %s", ks.CurrentKID(), k.kid)
		}
		rows, _ := models.SigningKeys(context.Background(), early)
		if len(rows) != 1 {
			t.Errorf("%d keys stored, want 1", len(rows))
		}
		var n int64
		if err := early.Model(&models.Setting{}).Where("name = ?", models.LegacyHS256Setting).Count(&n).Error; err != nil || n != 0 {
			t.Errorf("legacy settings left: %d, %v; want none", n, err)
		}
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
				db := testdb.Open(t, dsn)
				cfg := Config{Secret: testKey}
				if !configured {
					// As authql stored its generated secret before the key store.
					if err := db.Create(&models.Setting{Name: "jwt_hs256_secret", Value: base64.RawStdEncoding.EncodeToString(testKey)}).Error; err != nil {
						t.Fatal(err)
					}
					cfg = Config{}
				}
				old, clk := newTestSigner(t, testKey) // the signer of old versions
				token, _, err := old.Issue("user-1", "sess-1", nil, testTTL)
				if err != nil {
					t.Fatal(err)
				}
				// The upgrade starts a minute later.
				clk.Advance(time.Minute)
				ks, err := Open(context.Background(), db, cfg, testTTL, clk.Now, nil)
				if err != nil {
					t.Fatal(err)
				}
				if ks.CurrentKID() != old.KeyID() {
					t.Errorf("kid = %s, want the pre-upgrade %s", ks.CurrentKID(), old.KeyID())
				}
				mustVerify(t, ks.Signer(testIssuer, testAudience, clk.Now), token)
			})
		})
	}
}

func TestUnknownKidReloadThrottled(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newKeyEnv(t, dsn, Config{Alg: AlgEdDSA})
		// Another process's rotation, not yet seen here.
		other := &keyEnv{db: testdb.Open(t, dsn), clk: e.clk}
		kid1, err := Rotate(context.Background(), other.db, Config{Alg: AlgEdDSA}, 0, e.clk.Now, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e.ks.lookup(context.Background(), kid1) == nil {
			t.Fatal("unknown kid did not trigger a reload")
		}
		kid2, err := Rotate(context.Background(), other.db, Config{Alg: AlgEdDSA}, 0, e.clk.Now, nil)
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
		e := newKeyEnv(t, dsn, Config{})
		if got := string(e.ks.JWKS()); got != `{"keys":[]}` {
			t.Errorf("HS256 JWKS = %s, want {\"keys\":[]}", got)
		}
		e.open(t, Config{Alg: AlgEdDSA})
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
