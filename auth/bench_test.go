package auth

import (
	"context"
	"os"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/authql/authql/internal/testdb"
)

// Benchmarks of the per-request and per-login costs. The clock is fixed, so
// the token stays valid however long a run takes.

func BenchmarkSignerVerify(b *testing.B) {
	s, _ := newTestSigner(b, testKey)
	token, _, err := s.Issue("user-1", "sess-1", []string{"admin", "user"}, 15*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Verify(context.Background(), token); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignerIssue(b *testing.B) {
	s, _ := newTestSigner(b, testKey)
	roles := []string{"admin", "user"}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Issue("user-1", "sess-1", roles, 15*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

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

// BenchmarkVerifyByAlg is the per-request cost of checking an access token
// signed with each algorithm AUTH_JWT_ALG offers, keys from the key store.
func BenchmarkVerifyByAlg(b *testing.B) {
	for _, alg := range []string{AlgHS256, AlgEdDSA, AlgES256} {
		b.Run(alg, func(b *testing.B) {
			e := newKeyEnv(b, testdb.SQLite(b), KeyConfig{Alg: alg})
			token := e.issue(b)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.signer.Verify(context.Background(), token); err != nil {
					b.Fatal(err)
				}
			}
		})
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
