package auth

import (
	"context"
	"os"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/authql/authql/internal/testdb"
)

// Benchmarks of the per-login and per-request costs in auth; those of
// access tokens are in package keys.

func BenchmarkHashDefault(b *testing.B) {
	h := mustHasher(b, DefaultArgon2)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(testPassword); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyDefault(b *testing.B) {
	h := mustHasher(b, DefaultArgon2)
	stored := mustHash(b, h, testPassword)
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify(stored, testPassword); !ok || err != nil {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}

// BenchmarkBcryptVerifyCost10 is for comparison with BenchmarkVerifyDefault:
// bcrypt at its default cost, through the same Verify as imported hashes.
func BenchmarkBcryptVerifyCost10(b *testing.B) {
	h := mustHasher(b, cheapArgon2)
	stored, err := bcrypt.GenerateFromPassword([]byte(testPassword), 10)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify(string(stored), testPassword); !ok || err != nil {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}

// BenchmarkLimiterTake is the cost a rate limit adds to login, register and
// refresh: one Take, in memory (SQLite deployments) or as one upsert in the
// database (PostgreSQL, shared by replicas).
func BenchmarkLimiterTake(b *testing.B) {
	r := Rate{N: 1 << 20, Per: time.Hour} // never refuses
	bench := func(b *testing.B, l Limiter) {
		now := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.Take(context.Background(), "bench", r, now); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("memory", func(b *testing.B) { bench(b, newMemoryLimiter()) })
	if os.Getenv("TEST_DATABASE_URL") != "" {
		b.Run("postgres", func(b *testing.B) { bench(b, dbLimiter{db: openDB(b, testdb.Postgres(b))}) })
	}
}
