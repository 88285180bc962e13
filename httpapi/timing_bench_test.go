package httpapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// BenchmarkLoginTimingAcrossCosts compares a wrong password with an unknown
// email, over real HTTP, when the account's stored hash was made at another
// cost than the server's: AUTH_ARGON2_* raised or lowered since the account
// last logged in, or a bcrypt hash imported from another system. Without
// padding the unknown email takes the server's cost and the account its
// own; with it, both take the slowest (see auth/timing.go). Each case warms
// up with one failure of each kind first, as a running server has seen.
//
//	go test -run '^$' -bench LoginTimingAcrossCosts -benchtime 10x .
func BenchmarkLoginTimingAcrossCosts(b *testing.B) {
	low := auth.Argon2Params{Memory: 8 * 1024, Time: 1, Threads: 1}
	high := auth.Argon2Params{Memory: 64 * 1024, Time: 3, Threads: 1}
	for _, bc := range []struct {
		name    string
		server  auth.Argon2Params
		account func(b *testing.B) string // the stored hash of "password1"
	}{
		{"Unchanged", auth.DefaultArgon2, argon2Hash(auth.DefaultArgon2)},
		{"Raised", high, argon2Hash(auth.DefaultArgon2)},
		{"Lowered", low, argon2Hash(auth.DefaultArgon2)},
		{"Bcrypt12", auth.DefaultArgon2, func(b *testing.B) string {
			h, err := bcrypt.GenerateFromPassword([]byte("password1"), 12)
			if err != nil {
				b.Fatal(err)
			}
			return string(h)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ts := authtest.NewServer(b, testdb.SQLite(b), nil, func(c *authtest.Config) { c.Auth.Argon2 = bc.server })
			u := &models.User{ID: uuid.NewString(), Email: "user@example.com", PasswordHash: bc.account(b)}
			if err := models.CreateUser(context.Background(), ts.DB, u, []string{models.RoleUser}, nil); err != nil {
				b.Fatal(err)
			}
			ts.Login(b, "user@example.com", "wrong-password")
			ts.Login(b, "nobody@example.com", "wrong-password")
			// Interleaved, so that both see the same load on a shared
			// machine: the ratio is the figure, not the times.
			var wrong, unknown time.Duration
			for b.Loop() {
				start := time.Now()
				ts.Login(b, "user@example.com", "wrong-password")
				mid := time.Now()
				ts.Login(b, "nobody@example.com", "wrong-password")
				wrong += mid.Sub(start)
				unknown += time.Since(mid)
			}
			n := float64(b.N)
			b.ReportMetric(float64(wrong.Milliseconds())/n, "wrong-ms/op")
			b.ReportMetric(float64(unknown.Milliseconds())/n, "unknown-ms/op")
			b.ReportMetric(float64(unknown)/float64(wrong), "unknown/wrong")
		})
	}
}

func argon2Hash(p auth.Argon2Params) func(b *testing.B) string {
	return func(b *testing.B) string {
		h, err := auth.NewHasher(p)
		if err != nil {
			b.Fatal(err)
		}
		s, err := h.Hash("password1")
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
}
