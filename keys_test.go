package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
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

	rows, err := models.SigningKeys(context.Background(), testdb.OpenAsIs(t, dbPath))
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

// keyRows returns the signing keys stored in the database of dsn.
func keyRows(tb testing.TB, dsn string) []models.SigningKey {
	tb.Helper()
	rows, err := models.SigningKeys(context.Background(), testdb.OpenAsIs(tb, dsn))
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
