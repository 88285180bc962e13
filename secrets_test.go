package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// storedSecrets returns, as someone holding a copy of the database would
// read them, the private_key of every signing key (by kid) and the value of
// every setting (by name).
func storedSecrets(tb testing.TB, dsn string) (keys, settings map[string]string) {
	tb.Helper()
	db := testdb.OpenAsIs(tb, dsn)
	var krows []struct{ Kid, PrivateKey string }
	if err := db.Raw("SELECT kid, private_key FROM signing_keys").Scan(&krows).Error; err != nil {
		tb.Fatal(err)
	}
	var srows []struct{ Name, Value string }
	if err := db.Raw("SELECT name, value FROM settings").Scan(&srows).Error; err != nil {
		tb.Fatal(err)
	}
	keys, settings = map[string]string{}, map[string]string{}
	for _, r := range krows {
		keys[r.Kid] = r.PrivateKey
	}
	for _, r := range srows {
		settings[r.Name] = r.Value
	}
	return keys, settings
}

func execSQL(tb testing.TB, dsn, sql string, args ...any) {
	tb.Helper()
	if err := testdb.OpenAsIs(tb, dsn).Exec(sql, args...).Error; err != nil {
		tb.Fatal(err)
	}
}

func newEncryptionKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// serveFails runs serve with env and returns the error it stops with; a
// server that starts instead fails the test.
func serveFails(t *testing.T, env map[string]string) error {
	t.Helper()
	env["PORT"] = "0"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := run(ctx, nil, func(k string) string { return env[k] }, nil, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("the server started")
	}
	return err
}

// TestSecretsAtRest: an HS256 deployment upgraded from the version that
// kept its generated secret in settings, then given AUTH_ENCRYPTION_KEY,
// then rotated to EdDSA, then to a new encryption key. At each step the
// database holds no private key material in plaintext, the old secret's
// copy is gone, tokens issued before keep verifying, and a start without
// the right key stops with a message naming the variable.
func TestSecretsAtRest(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db, _, err := models.Open(dsn, models.Options{MaxConns: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := models.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		sqlDB, _ := db.DB()
		sqlDB.Close()
		// What a version before the key store generated and kept.
		legacy := base64.RawStdEncoding.EncodeToString([]byte("legacy-generated-secret-32-bytes"))
		execSQL(t, dsn, "INSERT INTO settings (name, value) VALUES (?, ?)", models.LegacyHS256Setting, legacy)

		var log bytes.Buffer
		env := map[string]string{"DATABASE_URL": dsn}
		url, stop := startRunLogging(t, env, &log)
		user := gql(t, url, "", `mutation { register(email: "a@example.com", password: "password1") { accessToken } }`).OK(t).Str("register", "accessToken")
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(log.String(), "AUTH_ENCRYPTION_KEY is not set"); n != 1 {
			t.Errorf("%d log lines say AUTH_ENCRYPTION_KEY is not set, want 1:\n%s", n, log.String())
		}
		keys, settings := storedSecrets(t, dsn)
		if _, ok := settings[models.LegacyHS256Setting]; ok {
			t.Errorf("the generated HS256 secret is still in settings after the key store took it over")
		}
		if keys[kid(t, user)] != legacy {
			t.Fatalf("the key store did not take over the legacy secret: %v", keys)
		}
		limitKey := settings["rate_limit_key"]
		if limitKey == "" {
			t.Fatal("no rate-limit key stored")
		}

		// The key is set: what is there is encrypted at the next start.
		k1 := newEncryptionKey()
		env["AUTH_ENCRYPTION_KEY"] = k1
		log.Reset()
		url, stop = startRunLogging(t, env, &log)
		gql(t, url, user, `{ me { email } }`).OK(t)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(log.String(), "AUTH_ENCRYPTION_KEY is not set") {
			t.Error("the start with AUTH_ENCRYPTION_KEY says it is not set")
		}
		var out bytes.Buffer
		if err := run(ctx, []string{"keys", "rotate", "--alg", "EdDSA"}, func(k string) string { return env[k] }, nil, &out, io.Discard); err != nil {
			t.Fatalf("keys rotate: %v", err)
		}
		edKID := strings.TrimSpace(out.String())
		keys, settings = storedSecrets(t, dsn)
		wantSealed := func(what, v, plain string) {
			t.Helper()
			if !strings.HasPrefix(v, "enc:v1:"+secret.Fingerprint(mustKey(t, env["AUTH_ENCRYPTION_KEY"]))+":") ||
				strings.Contains(v, "PRIVATE KEY") || (plain != "" && strings.Contains(v, plain)) {
				t.Errorf("%s stored as %q, want it encrypted under AUTH_ENCRYPTION_KEY", what, v)
			}
		}
		if len(keys) != 2 {
			t.Fatalf("%d keys, want the HS256 and the EdDSA one", len(keys))
		}
		for kid, v := range keys {
			wantSealed("signing key "+kid, v, legacy)
		}
		wantSealed("the rate-limit key", settings["rate_limit_key"], limitKey)
		for name, v := range settings {
			if strings.Contains(v, legacy) {
				t.Errorf("setting %s holds the HS256 secret", name)
			}
		}

		// A start without the key, or with another one, stops and says why.
		// The commands that touch no key still work without it.
		delete(env, "AUTH_ENCRYPTION_KEY")
		if err := serveFails(t, env); !strings.Contains(err.Error(), "AUTH_ENCRYPTION_KEY") {
			t.Errorf("start without the key: %v, want a message naming AUTH_ENCRYPTION_KEY", err)
		}
		shell := map[string]string{"DATABASE_URL": dsn, "AUTH_ARGON2_MEMORY": "64", "AUTH_ARGON2_TIME": "1"}
		if err := run(ctx, []string{"user", "add", "--email", "b@example.com", "--password-stdin"}, func(k string) string { return shell[k] }, strings.NewReader("password2\n"), io.Discard, io.Discard); err != nil {
			t.Errorf("user add without the encryption key: %v", err)
		}
		if err := run(ctx, []string{"keys", "rotate"}, func(k string) string { return env[k] }, nil, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "AUTH_ENCRYPTION_KEY") {
			t.Errorf("keys rotate without the key: %v, want a refusal naming AUTH_ENCRYPTION_KEY", err)
		}
		k2 := newEncryptionKey()
		env["AUTH_ENCRYPTION_KEY"] = k2
		if err := serveFails(t, env); !strings.Contains(err.Error(), "AUTH_ENCRYPTION_KEY_PREVIOUS") {
			t.Errorf("start with another key: %v, want a message naming AUTH_ENCRYPTION_KEY_PREVIOUS", err)
		}

		// Rotating the encryption key: the old one as previous, once.
		env["AUTH_ENCRYPTION_KEY_PREVIOUS"] = k1
		url, stop = startRun(t, env)
		gql(t, url, user, `{ me { email } }`).OK(t)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		delete(env, "AUTH_ENCRYPTION_KEY_PREVIOUS")
		keys, settings = storedSecrets(t, dsn)
		for kid, v := range keys {
			wantSealed("signing key "+kid, v, legacy)
		}
		wantSealed("the rate-limit key", settings["rate_limit_key"], limitKey)
		url, stop = startRun(t, env)
		gql(t, url, user, `{ me { email } }`).OK(t)
		ed := gql(t, url, "", `mutation { login(email: "a@example.com", password: "password1") { accessToken } }`).OK(t).Str("login", "accessToken")
		if kid(t, ed) != edKID {
			t.Errorf("signing with %s, want the rotated EdDSA key %s", kid(t, ed), edKID)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}

		// Rows cannot be swapped: a key's ciphertext decrypts in its own
		// row only.
		execSQL(t, dsn, "UPDATE signing_keys SET private_key = ? WHERE kid = ?", keys[kid(t, user)], edKID)
		if err := serveFails(t, env); !strings.Contains(err.Error(), "altered or moved") {
			t.Errorf("start with a key's ciphertext moved to another row: %v, want a refusal", err)
		}
	})
}

func mustKey(tb testing.TB, b64 string) []byte {
	tb.Helper()
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
