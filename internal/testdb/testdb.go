// Package testdb gives tests fresh databases: an SQLite file always, and a
// PostgreSQL database of its own when TEST_DATABASE_URL is set.
package testdb

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/authql/authql/models"
)

// Each runs f as a subtest on every database under test: "sqlite" always,
// and "postgres" when TEST_DATABASE_URL is set. Each call of f gets a new,
// empty database.
func Each(t *testing.T, f func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { f(t, SQLite(t)) })
	if os.Getenv("TEST_DATABASE_URL") != "" {
		t.Run("postgres", func(t *testing.T) { f(t, Postgres(t)) })
	}
}

// SQLite returns the DSN of a new SQLite file that lives as long as the test.
func SQLite(tb testing.TB) string {
	tb.Helper()
	return "sqlite://" + filepath.Join(tb.TempDir(), "authql.db")
}

// adminOptions open the connection that creates and drops test databases.
// CREATE and DROP DATABASE wait for a checkpoint, which takes seconds
// while parallel tests load the server: past the statements' default
// deadline (seen when httpapi's tests began to run in parallel).
var adminOptions = models.Options{MaxConns: 1, Timeout: time.Minute}

// Postgres creates a PostgreSQL database on the server of TEST_DATABASE_URL,
// drops it when the test ends, and returns its DSN. Without
// TEST_DATABASE_URL the test is skipped. An unreachable server skips the
// test with the reason logged, except in CI (CI=true), where it fails: CI
// must never pass by skipping the PostgreSQL tests.
func Postgres(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		tb.Skip("TEST_DATABASE_URL not set")
	}
	admin, _, err := models.Open(base, adminOptions)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("PostgreSQL at TEST_DATABASE_URL unreachable in CI: %v", err)
		}
		tb.Skipf("PostgreSQL at TEST_DATABASE_URL unreachable: %v", err)
	}
	sqlAdmin, _ := admin.DB()
	defer sqlAdmin.Close()

	b := make([]byte, 6)
	rand.Read(b)
	name := "authql_test_" + hex.EncodeToString(b)
	if err := admin.Exec("CREATE DATABASE " + name).Error; err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		db, _, err := models.Open(base, adminOptions)
		if err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
			return
		}
		sqlDB, _ := db.DB()
		defer sqlDB.Close()
		if err := db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)").Error; err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Long skips tb unless the long tests are asked for: CI=true (CI runs
// everything) or AUTHQL_LONG_TESTS=1. Long tests are the load, flood and
// fault scenarios that need thousands of requests or real seconds to show
// what they show; the default `go test ./...` a developer runs all day
// leaves them out, so that it stays fast. Reason says what the test spends.
func Long(tb testing.TB, reason string) {
	tb.Helper()
	if os.Getenv("CI") == "true" || os.Getenv("AUTHQL_LONG_TESTS") == "1" {
		return
	}
	tb.Skipf("long test (%s): set AUTHQL_LONG_TESTS=1 to run it (CI=true always does)", reason)
}
