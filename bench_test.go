package main

import (
	"os"
	"testing"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/testdb"
)

// eachBenchDB runs f on SQLite and, with TEST_DATABASE_URL, on PostgreSQL.
func eachBenchDB(b *testing.B, f func(b *testing.B, dsn string)) {
	b.Run("sqlite", func(b *testing.B) { f(b, testdb.SQLite(b)) })
	if os.Getenv("TEST_DATABASE_URL") != "" {
		b.Run("postgres", func(b *testing.B) { f(b, testdb.Postgres(b)) })
	}
}

// BenchmarkLogin compares a failed login for an existing email with one for
// an unknown email, at the default argon2id cost: the unknown email is
// verified against a dummy hash, so the two should take about as long.
func BenchmarkLogin(b *testing.B) {
	eachBenchDB(b, func(b *testing.B, dsn string) {
		ts := newTestServer(b, dsn, nil, func(c *testConfig) { c.Auth.Argon2 = auth.DefaultArgon2 })
		ts.register(b, "user@example.com", "password1")
		for _, bc := range []struct{ name, email, password string }{
			{"WrongPassword", "user@example.com", "wrong-password"},
			{"UnknownEmail", "nobody@example.com", "wrong-password"},
			{"Success", "user@example.com", "password1"},
		} {
			b.Run(bc.name, func(b *testing.B) {
				for b.Loop() {
					ts.login(b, bc.email, bc.password)
				}
			})
		}
	})
}

// BenchmarkMe measures { me { id email } } over HTTP with 2×GOMAXPROCS
// concurrent clients.
func BenchmarkMe(b *testing.B) {
	eachBenchDB(b, func(b *testing.B, dsn string) {
		ts := newTestServer(b, dsn, nil)
		u := ts.register(b, "user@example.com", "password1")
		b.ReportAllocs()
		b.SetParallelism(2)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ts.do(b, u.Access, `{ me { id email } }`, nil).OK(b)
			}
		})
	})
}

// BenchmarkRefresh measures chained refreshes: each feeds the refresh token
// it got into the next.
func BenchmarkRefresh(b *testing.B) {
	eachBenchDB(b, func(b *testing.B, dsn string) {
		ts := newTestServer(b, dsn, nil)
		token := ts.register(b, "user@example.com", "password1").Refresh
		b.ReportAllocs()
		for b.Loop() {
			token = ts.refresh(b, token).OK(b).Str("refresh", "refreshToken")
		}
	})
}
