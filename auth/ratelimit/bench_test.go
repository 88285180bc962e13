package ratelimit

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
)

// BenchmarkLimiterTake is the cost a rate limit adds to login, register and
// refresh: one Take, in memory (SQLite deployments) or as one upsert in the
// database (PostgreSQL, shared by replicas).
func BenchmarkLimiterTake(b *testing.B) {
	r := Rate{N: 1 << 20, Per: time.Hour} // never refuses
	bench := func(b *testing.B, l *Limiter) {
		now := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.Take(context.Background(), "bench", r, now); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("memory", func(b *testing.B) { bench(b, newMemory()) })
	if os.Getenv("TEST_DATABASE_URL") != "" {
		b.Run("postgres", func(b *testing.B) { bench(b, newShared(testdb.Open(b, testdb.Postgres(b)))) })
	}
}
