package auth

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/internal/testclock"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// newRefreshService is a Service on db with the clock c, a 10s reuse
// interval and the access-token lifetime accessTTL.
func newRefreshService(t *testing.T, db *gorm.DB, c *testclock.Clock, accessTTL time.Duration, opts ...func(*Config)) *Service {
	t.Helper()
	cfg := Config{
		Issuer: "authql", Audience: "authql", AccessTTL: accessTTL, RefreshTTL: 720 * time.Hour, ReuseInterval: 10 * time.Second,
		Signup: true, Argon2: Argon2Params{Memory: 64, Time: 1, Threads: 1}, Now: c.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := NewService(context.Background(), db, []byte(strings.Repeat("k", 32)), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func mustRefresh(t *testing.T, s *Service, token string) *Grant {
	t.Helper()
	g, err := s.Refresh(context.Background(), token)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	return g
}

func refuseRefresh(t *testing.T, s *Service, token, what string) {
	t.Helper()
	if _, err := s.Refresh(context.Background(), token); models.ErrorCode(err) != models.Unauthenticated {
		t.Errorf("%s: Refresh err = %v, want UNAUTHENTICATED", what, err)
	}
}

// TestRefreshRetryRule is the rule for a rotated token presented again:
// within the grace interval, a new pair; later, a retry if none of its
// successors was used (they are spent); anything else revokes the session.
func TestRefreshRetryRule(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		c := testclock.New(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
		s := newRefreshService(t, testdb.Open(t, dsn), c, 15*time.Minute)
		ctx := context.Background()
		n := 0
		register := func() *Grant {
			n++
			g, err := s.Register(ctx, "user"+string(rune('a'+n))+"@example.com", "password1")
			if err != nil {
				t.Fatal(err)
			}
			return g
		}
		live := func(g *Grant) bool {
			_, err := s.Authenticate(ctx, g.AccessToken)
			return err == nil
		}

		t.Run("LostAnswerRetriedAfterTenMinutes", func(t *testing.T) {
			p := register()
			lost := mustRefresh(t, s, p.RefreshToken)
			c.Advance(10 * time.Minute)
			r := mustRefresh(t, s, p.RefreshToken)
			if r.SessionID != p.SessionID || !live(r) {
				t.Fatalf("retry: session %s live %v, want %s live", r.SessionID, live(r), p.SessionID)
			}
			next := mustRefresh(t, s, r.RefreshToken)
			if !live(next) {
				t.Error("the session does not go on after the retry")
			}
			// The lost successor was spent: presenting it is reuse.
			refuseRefresh(t, s, lost.RefreshToken, "spent successor")
			if live(next) {
				t.Error("the session survived the spent successor's presentation")
			}
		})
		t.Run("RetryAfterSuccessorUsedIsReuse", func(t *testing.T) {
			p := register()
			s1 := mustRefresh(t, s, p.RefreshToken)
			s2 := mustRefresh(t, s, s1.RefreshToken)
			c.Advance(10 * time.Minute)
			refuseRefresh(t, s, p.RefreshToken, "parent of a used successor")
			if live(s2) {
				t.Error("the session survived reuse")
			}
		})
		t.Run("WithinGraceSiblingsAllWork", func(t *testing.T) {
			p := register()
			a := mustRefresh(t, s, p.RefreshToken)
			c.Advance(5 * time.Second)
			b := mustRefresh(t, s, p.RefreshToken)
			mustRefresh(t, s, a.RefreshToken)
			mustRefresh(t, s, b.RefreshToken)
		})
		t.Run("RetryRestartsGrace", func(t *testing.T) {
			p := register()
			mustRefresh(t, s, p.RefreshToken)
			c.Advance(10 * time.Minute)
			a := mustRefresh(t, s, p.RefreshToken)
			c.Advance(5 * time.Second)
			b := mustRefresh(t, s, p.RefreshToken) // a second retry, within the first's grace
			mustRefresh(t, s, a.RefreshToken)
			mustRefresh(t, s, b.RefreshToken)
		})
	})
}

// TestRevocationUsesLatestAccessExpiry: a revocation lasts until the latest
// expiry of the session's access tokens, not now + the lifetime configured
// now; the session records that expiry when it starts and at each rotation.
func TestRevocationUsesLatestAccessExpiry(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := testdb.Open(t, dsn)
		c := testclock.New(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
		ctx := context.Background()
		long := newRefreshService(t, db, c, time.Hour)
		g, err := long.Register(ctx, "user@example.com", "password1")
		if err != nil {
			t.Fatal(err)
		}
		start := c.Now()
		c.Advance(time.Minute)
		g = mustRefresh(t, long, g.RefreshToken)
		var sess models.Session
		if err := db.Where("id = ?", g.SessionID).Take(&sess).Error; err != nil {
			t.Fatal(err)
		}
		if want := start.Add(time.Minute + time.Hour); sess.AccessExpiresAt == nil || !sess.AccessExpiresAt.Equal(want) {
			t.Fatalf("access_expires_at = %v, want %v", sess.AccessExpiresAt, want)
		}

		short := newRefreshService(t, db, c, time.Minute) // restarted with a shorter lifetime
		g2 := mustRefresh(t, short, g.RefreshToken)
		if err := db.Where("id = ?", g.SessionID).Take(&sess).Error; err != nil {
			t.Fatal(err)
		}
		if want := start.Add(time.Minute + time.Hour); !sess.AccessExpiresAt.Equal(want) {
			t.Errorf("access_expires_at = %v after a shorter token, want it kept at %v", sess.AccessExpiresAt, want)
		}
		p, err := short.Authenticate(ctx, g2.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		now := c.Now()
		if err := short.Logout(ctx, p, false); err != nil {
			t.Fatal(err)
		}
		revs, err := models.Revocations(ctx, db, now)
		if err != nil {
			t.Fatal(err)
		}
		if want := start.Add(time.Minute + time.Hour + MaxClockSkew); !revs[g.SessionID].Equal(want) {
			t.Errorf("revocation until %v, want %v (the 1h token's expiry plus skew)", revs[g.SessionID], want)
		}
		c.Advance(2 * time.Minute)
		if _, err := newRefreshService(t, db, c, time.Minute).Authenticate(ctx, g.AccessToken); models.ErrorCode(err) != models.Unauthenticated {
			t.Errorf("1h token after logout and a restart with 1m, 2m later: err = %v, want UNAUTHENTICATED", err)
		}
	})
}
