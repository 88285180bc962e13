package models_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// TestRotateCommonCaseCost: the retry rule and the recorded access-token
// expiry cost the common rotation nothing: on SQLite it stays three
// statements, on PostgreSQL one statement through database/sql (none
// through GORM).
func TestRotateCommonCaseCost(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := testdb.OpenAsIs(t, dsn)
		ctx := context.Background()
		if err := models.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
		u := &models.User{ID: "00000000-0000-4000-8000-000000000001", Email: "u@example.com", PasswordHash: "x"}
		if err := models.CreateUser(ctx, db, u, []string{models.RoleUser}, nil); err != nil {
			t.Fatal(err)
		}
		s := &models.Session{ID: "00000000-0000-4000-8000-000000000002", UserID: u.ID, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour)}
		rt := &models.RefreshToken{ID: strings.Repeat("a", 64), SessionID: s.ID, CreatedAt: now, ExpiresAt: s.ExpiresAt}
		if _, err := models.CreateSession(ctx, db, &models.NewSession{Session: s, Token: rt}); err != nil {
			t.Fatal(err)
		}
		counter := testdb.CountSQL(t, db)
		rot, err := models.RotateRefreshToken(ctx, db, models.Rotate{
			OldHash: rt.ID, NewHash: strings.Repeat("b", 64), Now: func() time.Time { return now },
			TTL: time.Hour, AccessTTL: time.Minute, ReuseInterval: 10 * time.Second,
			Revoke: models.Revoke{For: time.Minute, Skew: time.Second},
		})
		if err != nil || rot.Session == nil || rot.Reuse || rot.Retry {
			t.Fatalf("rotation = %+v, %v", rot, err)
		}
		if rot.Session.AccessExpiresAt == nil || !rot.Session.AccessExpiresAt.Equal(now.Add(time.Minute)) {
			t.Errorf("access_expires_at = %v, want %v", rot.Session.AccessExpiresAt, now.Add(time.Minute))
		}
		want := int64(3)
		if db.Dialector.Name() == "postgres" {
			want = 0
		}
		if got := counter.N.Load(); got != want {
			t.Errorf("%d statements through GORM, want %d", got, want)
		}
	})
}
