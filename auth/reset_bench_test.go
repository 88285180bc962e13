package auth

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// BenchmarkRequestPasswordReset times requestPasswordReset for an address
// with an account and one without, alternately (so that drift of the
// machine or of the growing tables weighs on both alike), and reports each
// one's time and their ratio unknown/known: 1 is the goal, the same work
// for both (see TestResetUnknownEmailIndistinguishable for the rows).
//
//	go test ./auth -run '^$' -bench RequestPasswordReset -benchtime 2000x
func BenchmarkRequestPasswordReset(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchReset(b, testdb.SQLite(b)) })
	if os.Getenv("TEST_DATABASE_URL") != "" {
		b.Run("postgres", func(b *testing.B) { benchReset(b, testdb.Postgres(b)) })
	}
}

func benchReset(b *testing.B, dsn string) {
	e := newMailEnv(b, dsn)
	known := e.register(b).User.Email
	const unknown = "nobody@example.com"
	var spent [2]time.Duration
	i := 0
	for b.Loop() {
		for j := range 2 {
			k := (i + j) % 2 // which of the two goes first alternates
			email := known
			if k == 1 {
				email = unknown
			}
			start := time.Now()
			if _, err := e.s.RequestPasswordReset(e.ctx, email); err != nil {
				b.Fatal(err)
			}
			spent[k] += time.Since(start)
		}
		i++
	}
	b.ReportMetric(float64(spent[0].Nanoseconds())/float64(i), "known-ns/op")
	b.ReportMetric(float64(spent[1].Nanoseconds())/float64(i), "unknown-ns/op")
	b.ReportMetric(float64(spent[1])/float64(spent[0]), "unknown/known")
}

// BenchmarkRegisterUnverified times register with AUTH_REQUIRE_VERIFIED_EMAIL
// for a new address (the account, its verification request and mail) and
// for a taken one (the owner's notice), alternately, with the default
// argon2 cost: both hash the password, which is most of the time. Reports
// their ratio taken/new.
func BenchmarkRegisterUnverified(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchRegisterUnverified(b, testdb.SQLite(b)) })
	if os.Getenv("TEST_DATABASE_URL") != "" {
		b.Run("postgres", func(b *testing.B) { benchRegisterUnverified(b, testdb.Postgres(b)) })
	}
}

func benchRegisterUnverified(b *testing.B, dsn string) {
	e := newMailEnv(b, dsn, requireVerified, func(c *Config) { c.Argon2 = DefaultArgon2 })
	const taken = "taken@example.com"
	e.s.Register(e.ctx, taken, "password1")
	var spent [2]time.Duration
	i := 0
	for b.Loop() {
		for j := range 2 {
			k := (i + j) % 2
			email := taken
			if k == 0 {
				email = fmt.Sprintf("new%d@example.com", i)
			}
			start := time.Now()
			if _, err := e.s.Register(e.ctx, email, "password1"); models.ErrorCode(err) != models.EmailNotVerified {
				b.Fatal(err)
			}
			spent[k] += time.Since(start)
		}
		i++
	}
	b.ReportMetric(float64(spent[0].Nanoseconds())/float64(i), "new-ns/op")
	b.ReportMetric(float64(spent[1].Nanoseconds())/float64(i), "taken-ns/op")
	b.ReportMetric(float64(spent[1])/float64(spent[0]), "taken/new")
}
