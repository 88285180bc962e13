package models_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"syscall"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// BenchmarkRotate measures one chain of rotations, one at a time, beside
// the bare rotation authql-bench takes as refresh's floor (mark the token
// rotated by its hash, insert its successor, one transaction): the CPU a
// rotation costs in models, without HTTP and without contention.
func BenchmarkRotate(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			dsn := testdb.SQLite(b)
			if name == "postgres" {
				dsn = testdb.Postgres(b)
			}
			db := testdb.Open(b, dsn)
			ctx := context.Background()
			b.Run("RotateRefreshToken", func(b *testing.B) {
				hash := seedChain(b, db)
				b.ReportAllocs()
				defer reportCPU(b)()
				for b.Loop() {
					next := benchHash()
					rot, err := models.RotateRefreshToken(ctx, db, models.Rotate{
						OldHash: hash, NewHash: next, Now: time.Now,
						TTL: time.Hour, AccessTTL: time.Minute, ReuseInterval: 10 * time.Second,
						Revoke: models.Revoke{For: time.Minute, Skew: time.Second},
					})
					if err != nil || rot.Session == nil || rot.Reuse {
						b.Fatalf("rotation = %+v, %v", rot, err)
					}
					hash = next
				}
			})
			b.Run("floor", func(b *testing.B) {
				hash := seedChain(b, db)
				b.ReportAllocs()
				defer reportCPU(b)()
				for b.Loop() {
					next := benchHash()
					err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
						now := time.Now()
						var sessions []string
						if err := tx.Raw(`UPDATE refresh_tokens SET rotated_at = ? WHERE id = ? AND rotated_at IS NULL RETURNING session_id`,
							now, hash).Scan(&sessions).Error; err != nil || len(sessions) == 0 {
							b.Fatalf("%v %v", sessions, err)
						}
						return tx.Exec(`INSERT INTO refresh_tokens (id, session_id, created_at, expires_at, parent_id) VALUES (?, ?, ?, ?, ?)`,
							next, sessions[0], now, now.Add(24*time.Hour), hash).Error
					})
					if err != nil {
						b.Fatal(err)
					}
					hash = next
				}
			})
		})
	}
}

// seedChain makes a user with one session and its first token, and
// returns that token's hash.
func seedChain(b *testing.B, db *gorm.DB) string {
	b.Helper()
	ctx := context.Background()
	now := time.Now()
	id := benchHash()
	u := &models.User{ID: id[:36], Email: id[:12] + "@example.com", PasswordHash: "x"}
	if err := models.CreateUser(ctx, db, u, []string{models.RoleUser}, nil); err != nil {
		b.Fatal(err)
	}
	s := &models.Session{ID: benchHash()[:36], UserID: u.ID, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour)}
	rt := &models.RefreshToken{ID: benchHash(), SessionID: s.ID, CreatedAt: now, ExpiresAt: s.ExpiresAt}
	if _, err := models.CreateSession(ctx, db, &models.NewSession{Session: s, Token: rt}); err != nil {
		b.Fatal(err)
	}
	return rt.ID
}

// benchHash is a new token's hash as authql stores it.
func benchHash() string {
	var r [32]byte
	rand.Read(r[:])
	h := sha256.Sum256(r[:])
	return hex.EncodeToString(h[:])
}

// reportCPU reports the process's CPU time (user and system) per
// operation from now to the call of the function it returns: on a shared
// machine, a steadier measure than the wall time.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() { b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op") }
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
