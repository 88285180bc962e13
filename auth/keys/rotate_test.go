package keys

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

func TestKeyRotationWindows(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newKeyEnv(t, dsn, Config{Alg: AlgEdDSA})
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
		e := newKeyEnv(t, dsn, Config{Alg: AlgES256})
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

func TestOpenAlgorithmChange(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newKeyEnv(t, dsn, Config{Alg: AlgEdDSA})
		edToken := e.issue(t)
		edKID := e.ks.CurrentKID()

		e.open(t, Config{Alg: AlgES256})
		esToken := e.issue(t)
		if kidOf(t, esToken) == edKID {
			t.Fatal("restart with ES256 kept signing with the EdDSA key")
		}
		if h := strings.Split(esToken, ".")[0]; !strings.Contains(mustDecode(t, h), `"alg":"ES256"`) {
			t.Errorf("header %s, want alg ES256", mustDecode(t, h))
		}
		mustVerify(t, e.signer, edToken) // retired, but in its window
		mustVerify(t, e.signer, esToken)

		e.open(t, Config{Alg: AlgES256}) // a restart with the same setting
		if got := kidOf(t, e.issue(t)); got != kidOf(t, esToken) {
			t.Errorf("restart changed the key: %s, want %s", got, kidOf(t, esToken))
		}
		e.open(t, Config{}) // no algorithm configured: keep the store's
		if got := kidOf(t, e.issue(t)); got != kidOf(t, esToken) {
			t.Errorf("a start without an algorithm changed the key: %s, want %s", got, kidOf(t, esToken))
		}
		e.open(t, Config{Alg: AlgHS256}) // back to HS256
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
		e := newKeyEnv(t, dsn, Config{Alg: AlgEdDSA, PrivateKey: first})
		firstToken := e.issue(t)
		rows, _ := models.SigningKeys(context.Background(), e.db)
		if len(rows) != 1 || rows[0].PrivateKey != "" || rows[0].PublicKey == "" {
			t.Fatalf("stored %+v, want one row with the public key only", rows)
		}

		// The operator replaces the file: the old public key keeps
		// verifying the tokens it signed.
		e.open(t, Config{Alg: AlgEdDSA, PrivateKey: second})
		mustVerify(t, e.signer, firstToken)
		if kidOf(t, e.issue(t)) == kidOf(t, firstToken) {
			t.Error("still signing with the replaced key")
		}

		t.Run("RetiredKeyNotReused", func(t *testing.T) {
			_, err := Open(context.Background(), e.db, Config{Alg: AlgEdDSA, PrivateKey: first}, testTTL, e.clk.Now, nil)
			if err == nil || !strings.Contains(err.Error(), "retired") {
				t.Errorf("Open with a retired key: err = %v, want a refusal", err)
			}
		})
		t.Run("RotateRefused", func(t *testing.T) {
			if _, err := Rotate(context.Background(), e.db, Config{Alg: AlgEdDSA, PrivateKey: second}, 0, e.clk.Now, nil); !errors.Is(err, errExternalRotate) {
				t.Errorf("Rotate with a key file: err = %v", err)
			}
			if _, err := Rotate(context.Background(), e.db, Config{Secret: testKey}, 0, e.clk.Now, nil); !errors.Is(err, errExternalRotate) {
				t.Errorf("Rotate with a secret: err = %v", err)
			}
		})
		t.Run("SecretNotStored", func(t *testing.T) {
			db := testdb.Open(t, testdb.SQLite(t))
			if _, err := Open(context.Background(), db, Config{Secret: testKey}, testTTL, nil, nil); err != nil {
				t.Fatal(err)
			}
			rows, _ := models.SigningKeys(context.Background(), db)
			if len(rows) != 1 || rows[0].PrivateKey != "" || strings.Contains(rows[0].PublicKey+rows[0].KID, base64.RawStdEncoding.EncodeToString(testKey)) {
				t.Errorf("stored %+v, want no secret in the database", rows)
			}
		})
	})
}

func TestPurgeWipesRetiredPrivateKeys(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newKeyEnv(t, dsn, Config{Alg: AlgEdDSA})
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
		k1, k2 := secret.Random(), secret.Random()
		old := newKeyEnv(t, dsn, Config{Alg: AlgEdDSA, Encryption: secret.Keys{Current: k1}})
		token := old.issue(t)
		kid := old.ks.CurrentKID()

		restarted := newKeyEnv(t, dsn, Config{Alg: AlgEdDSA, Encryption: secret.Keys{Current: k2, Previous: [][]byte{k1}}})
		if restarted.ks.CurrentKID() != kid {
			t.Fatalf("the restarted server signs with %s, want %s", restarted.ks.CurrentKID(), kid)
		}
		rows, err := models.SigningKeys(context.Background(), old.db)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(rows[0].PrivateKey, "enc:v1:"+secret.Fingerprint(k2)+":") {
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
