package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/internal/testclock"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// The refresh, reuse and logout flows at the service level, on every
// database under test and with the injected clock: the HTTP scenarios check
// the same rules through the handler.

// flowEnv is a Service on a fresh database with a settable clock.
type flowEnv struct {
	s   *Service
	c   *testclock.Clock
	ctx context.Context
	n   int
}

func newFlowEnv(t *testing.T, dsn string, opts ...func(*Config)) *flowEnv {
	c := testclock.New(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	return &flowEnv{s: newRefreshService(t, testdb.Open(t, dsn), c, 15*time.Minute, opts...), c: c, ctx: context.Background()}
}

// register signs a new user up.
func (e *flowEnv) register(t *testing.T) *Grant {
	t.Helper()
	e.n++
	return registerNth(t, e.s, e.ctx, e.n)
}

// registerNth signs up the n-th test user of a service (userb@…, userc@…)
// with the password "password1".
func registerNth(t testing.TB, s *Service, ctx context.Context, n int) *Grant {
	t.Helper()
	g, err := s.Register(ctx, "user"+string(rune('a'+n))+"@example.com", "password1")
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// login starts another session of g's user.
func (e *flowEnv) login(t *testing.T, g *Grant) *Grant {
	t.Helper()
	l, err := e.s.Login(e.ctx, g.User.Email, "password1")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// principal authenticates g's access token.
func (e *flowEnv) principal(t *testing.T, g *Grant) *Principal {
	t.Helper()
	p, err := e.s.Authenticate(e.ctx, g.AccessToken)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return p
}

// refused fails the test unless g's access token is refused as
// Unauthenticated.
func (e *flowEnv) refused(t *testing.T, g *Grant, what string) {
	t.Helper()
	if _, err := e.s.Authenticate(e.ctx, g.AccessToken); models.ErrorCode(err) != models.Unauthenticated {
		t.Errorf("%s: Authenticate err = %v, want UNAUTHENTICATED", what, err)
	}
}

func TestRefreshFlow(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newFlowEnv(t, dsn)
		t.Run("RotatesWithinTheSession", func(t *testing.T) {
			g := e.register(t)
			e.c.Advance(time.Minute)
			r := mustRefresh(t, e.s, g.RefreshToken)
			if r.SessionID != g.SessionID || r.User.ID != g.User.ID {
				t.Errorf("refresh: session %s user %s, want %s %s", r.SessionID, r.User.ID, g.SessionID, g.User.ID)
			}
			if r.RefreshToken == g.RefreshToken || r.AccessToken == g.AccessToken {
				t.Error("refresh returned the presented tokens again")
			}
			if r.ExpiresIn != int((15 * time.Minute).Seconds()) {
				t.Errorf("ExpiresIn = %d, want 900", r.ExpiresIn)
			}
			if p := e.principal(t, r); !p.ExpiresAt.Equal(e.c.Now().Add(15 * time.Minute)) {
				t.Errorf("access token expires at %s, want %s (issued at the injected clock)", p.ExpiresAt, e.c.Now().Add(15*time.Minute))
			}
			mustRefresh(t, e.s, r.RefreshToken)
		})
		t.Run("MalformedOrUnknownRefused", func(t *testing.T) {
			refuseRefresh(t, e.s, "", "empty token")
			refuseRefresh(t, e.s, "not a refresh token", "malformed token")
			token, _ := newRefreshToken()
			refuseRefresh(t, e.s, token, "unknown token")
		})
		t.Run("RolesFollowAtRefresh", func(t *testing.T) {
			g := e.register(t)
			if _, err := e.s.SetUserRoles(e.ctx, g.User.ID, []string{"admin", "user"}); err != nil {
				t.Fatal(err)
			}
			if p := e.principal(t, g); p.HasRole("admin") {
				t.Error("the token's roles claim changed before a refresh")
			}
			if p := e.principal(t, mustRefresh(t, e.s, g.RefreshToken)); !p.HasRole("admin") {
				t.Errorf("roles after refresh = %q, want admin among them", p.Roles)
			}
		})
		t.Run("ExpiredSessionRefused", func(t *testing.T) {
			g := e.register(t)
			e.c.Advance(721 * time.Hour) // past RefreshTTL
			refuseRefresh(t, e.s, g.RefreshToken, "expired refresh token")
		})
	})
}

func TestRefreshReuse(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newFlowEnv(t, dsn)
		t.Run("ReuseRevokesSession", func(t *testing.T) {
			g := e.register(t)
			other := e.login(t, g)
			s1 := mustRefresh(t, e.s, g.RefreshToken)
			s2 := mustRefresh(t, e.s, s1.RefreshToken)
			e.c.Advance(11 * time.Second) // past the reuse interval
			_, err := e.s.Refresh(e.ctx, g.RefreshToken)
			if models.ErrorCode(err) != models.Unauthenticated || !strings.Contains(models.ErrorMessage(err), "revoked") {
				t.Fatalf("reuse: err = %v, want UNAUTHENTICATED saying the session was revoked", err)
			}
			// The thief's and the owner's tokens alike, at once.
			e.refused(t, s2, "latest access token after reuse")
			e.refused(t, g, "first access token after reuse")
			refuseRefresh(t, e.s, s2.RefreshToken, "latest refresh token after reuse")
			// The user's other session is not the stolen one.
			e.principal(t, other)
			mustRefresh(t, e.s, other.RefreshToken)
		})
		t.Run("WithinIntervalNotReuse", func(t *testing.T) {
			g := e.register(t)
			s1 := mustRefresh(t, e.s, g.RefreshToken)
			e.c.Advance(9 * time.Second)
			again := mustRefresh(t, e.s, g.RefreshToken)
			e.principal(t, s1)
			e.principal(t, again)
		})
		t.Run("RevocationSeenByAnotherReplica", func(t *testing.T) {
			g := e.register(t)
			mustRefresh(t, e.s, mustRefresh(t, e.s, g.RefreshToken).RefreshToken)
			e.c.Advance(11 * time.Second)
			refuseRefresh(t, e.s, g.RefreshToken, "reuse")
			// A replica starting now reads the revocation from the database.
			replica := newRefreshService(t, e.s.db, e.c, 15*time.Minute)
			if _, err := replica.Authenticate(e.ctx, g.AccessToken); models.ErrorCode(err) != models.Unauthenticated {
				t.Errorf("another replica: Authenticate err = %v, want UNAUTHENTICATED", err)
			}
		})
	})
}

func TestLogout(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newFlowEnv(t, dsn)
		t.Run("EndsTheSessionAtOnce", func(t *testing.T) {
			g := e.register(t)
			other := e.login(t, g)
			if err := e.s.Logout(e.ctx, e.principal(t, g), false); err != nil {
				t.Fatal(err)
			}
			e.refused(t, g, "access token after logout")
			refuseRefresh(t, e.s, g.RefreshToken, "refresh token after logout")
			e.principal(t, other)
			mustRefresh(t, e.s, other.RefreshToken)
		})
		t.Run("AllSessions", func(t *testing.T) {
			g := e.register(t)
			other := e.login(t, g)
			if err := e.s.Logout(e.ctx, e.principal(t, g), true); err != nil {
				t.Fatal(err)
			}
			for _, s := range []*Grant{g, other} {
				e.refused(t, s, "access token after logout of all sessions")
				refuseRefresh(t, e.s, s.RefreshToken, "refresh token after logout of all sessions")
			}
		})
		t.Run("TwiceIsHarmless", func(t *testing.T) {
			g := e.register(t)
			p := e.principal(t, g)
			for i := range 2 {
				if err := e.s.Logout(e.ctx, p, false); err != nil {
					t.Fatalf("logout %d: %v", i+1, err)
				}
			}
			e.refused(t, g, "access token after two logouts")
		})
		t.Run("LastsAsLongAsTheAccessToken", func(t *testing.T) {
			g := e.register(t)
			if err := e.s.Logout(e.ctx, e.principal(t, g), false); err != nil {
				t.Fatal(err)
			}
			// Within the token's life, a restarted replica still refuses it.
			e.c.Advance(14 * time.Minute)
			replica := newRefreshService(t, e.s.db, e.c, 15*time.Minute)
			if _, err := replica.Authenticate(e.ctx, g.AccessToken); models.ErrorCode(err) != models.Unauthenticated {
				t.Errorf("restarted replica: Authenticate err = %v, want UNAUTHENTICATED", err)
			}
		})
	})
}

// TestAuthorizeUsesCurrentRoles checks that the @auth directive's check
// reads the user's roles now, not the token's roles claim.
func TestAuthorizeUsesCurrentRoles(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, testdb.SQLite(t))
	// Another admin, so that g's admin role can be taken away again.
	if _, err := e.s.SetUserRoles(e.ctx, e.register(t).User.ID, []string{"admin"}); err != nil {
		t.Fatal(err)
	}
	g := e.register(t)
	ctx := WithPrincipal(e.ctx, e.principal(t, g))
	admin := Rule{Role: "admin"}
	checkCode(t, e.s.Authorize(ctx, admin), models.Forbidden)
	if _, err := e.s.SetUserRoles(e.ctx, g.User.ID, []string{"admin", "user"}); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Authorize(ctx, admin); err != nil {
		t.Fatalf("granted admin, token unchanged: Authorize = %v, want nil", err)
	}
	if err := e.s.Authorize(ctx, Rule{Permission: "users:read"}); err != nil {
		t.Fatalf("granted admin: Authorize(users:read) = %v, want nil", err)
	}
	if _, err := e.s.SetUserRoles(e.ctx, g.User.ID, []string{"user"}); err != nil {
		t.Fatal(err)
	}
	checkCode(t, e.s.Authorize(ctx, admin), models.Forbidden)
	checkCode(t, e.s.Authorize(context.Background(), Rule{}), models.Unauthenticated)
	if err := e.s.Authorize(ctx, Rule{}); err != nil {
		t.Fatalf("Authorize(Rule{}) = %v, want nil", err)
	}
}
