package auth

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// BenchmarkAuthorize is what @auth costs per field: a bare @auth and a
// role (the user cache, no SQL) against the step-up rules, which read the
// database: aal 2 for a user without a factor (the factors, one query),
// aal 2 for a user with one (the factors and the session), and maxAge
// (the session). Compare within one run: the step-up rules are on the
// mutations that manage credentials only, never on `me`.
func BenchmarkAuthorize(b *testing.B) {
	dsns := map[string]string{"sqlite": testdb.SQLite(b)}
	if os.Getenv("TEST_DATABASE_URL") != "" {
		dsns["postgres"] = testdb.Postgres(b)
	}
	for name, dsn := range dsns {
		b.Run(name, func(b *testing.B) {
			e := newMailEnv(b, dsn)
			plain, err := e.s.Register(e.ctx, "plain@example.com", "password1")
			if err != nil {
				b.Fatal(err)
			}
			withFactor, err := e.s.Register(e.ctx, "factor@example.com", "password1")
			if err != nil {
				b.Fatal(err)
			}
			now := e.c.Now()
			f := &models.MfaFactor{ID: uuid.NewString(), UserID: withFactor.User.ID, Type: models.FactorTOTP, Label: "phone", Secret: "x", CreatedAt: now, ConfirmedAt: &now}
			if err := e.db.Create(f).Error; err != nil {
				b.Fatal(err)
			}
			ctxOf := func(g *Grant) context.Context {
				p, err := e.s.Authenticate(e.ctx, g.AccessToken)
				if err != nil {
					b.Fatal(err)
				}
				return WithPrincipal(e.ctx, p)
			}
			for _, bc := range []struct {
				name string
				g    *Grant
				rule Rule
				want string
			}{
				{"Auth", plain, Rule{}, ""},
				{"Role", plain, Rule{Role: models.RoleUser}, ""},
				{"AAL2NoFactor", plain, Rule{AAL: 2}, ""},
				{"AAL2WithFactor", withFactor, Rule{AAL: 2}, models.InsufficientUserAuthentication},
				{"MaxAge", plain, Rule{MaxAge: time.Hour}, ""},
				{"AAL2MaxAgeWithFactor", withFactor, Rule{AAL: 2, MaxAge: time.Hour}, models.InsufficientUserAuthentication},
			} {
				ctx := ctxOf(bc.g)
				b.Run(bc.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						err := e.s.Authorize(ctx, bc.rule)
						if (bc.want == "" && err != nil) || (bc.want != "" && models.ErrorCode(err) != bc.want) {
							b.Fatalf("Authorize = %v, want %q", err, bc.want)
						}
					}
				})
			}
		})
	}
}
