package httpapi_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		first := ts.Register(t, "user@example.com", "password1")
		sid := authtest.Claims(t, first.Access)["sid"]

		r := ts.Refresh(t, first.Refresh).OK(t)
		second := authtest.TokensOf(r, "refresh")
		if second.Refresh == first.Refresh || second.Access == first.Access {
			t.Fatal("refresh did not rotate the tokens")
		}
		if got := authtest.Claims(t, second.Access)["sid"]; got != sid {
			t.Errorf("sid = %v, want the same session %v", got, sid)
		}
		ts.Me(t, second.Access).OK(t)

		t.Run("ReuseWithinIntervalContinuesSession", func(t *testing.T) {
			ts.Clock.Advance(5 * time.Second)
			r := ts.Refresh(t, first.Refresh).OK(t)
			if got := authtest.Claims(t, r.Str("refresh", "accessToken"))["sid"]; got != sid {
				t.Errorf("sid = %v, want %v", got, sid)
			}
		})
		t.Run("ReuseAfterIntervalRevokesSession", func(t *testing.T) {
			ts.Clock.Advance(6 * time.Second) // 11s after the rotation
			// The successor is used: the first token is superseded for
			// good (had it not been used, presenting the first token
			// would be a retry, see TestRefreshLostAnswer).
			third := authtest.TokensOf(ts.Refresh(t, second.Refresh).OK(t), "refresh")
			if code := ts.Refresh(t, first.Refresh).Code(t); code != models.Unauthenticated {
				t.Errorf("reuse: code = %s, want UNAUTHENTICATED", code)
			}
			if code := ts.Me(t, third.Access).Code(t); code != models.Unauthenticated {
				t.Errorf("access token of the revoked session: code = %s, want UNAUTHENTICATED", code)
			}
			if code := ts.Refresh(t, third.Refresh).Code(t); code != models.Unauthenticated {
				t.Errorf("newest refresh token of the revoked session: code = %s, want UNAUTHENTICATED", code)
			}
		})
		t.Run("RefreshReadsCurrentRoles", func(t *testing.T) {
			admin := ts.Admin(t)
			user := ts.Register(t, "promoted@example.com", "password1")
			ts.Do(t, admin.Access, `mutation($id: ID!) { setUserRoles(userId: $id, roles: ["user", "ADMIN"]) { roles } }`, map[string]any{"id": user.UserID}).OK(t)
			r := ts.Refresh(t, user.Refresh).OK(t)
			if got := fmt.Sprint(authtest.Claims(t, r.Str("refresh", "accessToken"))["roles"]); got != "[admin user]" {
				t.Errorf("roles claim = %s, want [admin user]", got)
			}
			ts.Do(t, r.Str("refresh", "accessToken"), `{ users { id } }`, nil).OK(t)
		})
		t.Run("ExpiredSession", func(t *testing.T) {
			u := ts.Register(t, "expiring@example.com", "password1")
			ts.Clock.Advance(720*time.Hour + time.Second)
			if code := ts.Refresh(t, u.Refresh).Code(t); code != models.Unauthenticated {
				t.Errorf("code = %s, want UNAUTHENTICATED", code)
			}
		})
		t.Run("GarbageToken", func(t *testing.T) {
			for _, tok := range []string{"", "x", strings.Repeat("A", 43), first.Access} {
				if code := ts.Refresh(t, tok).Code(t); code != models.Unauthenticated {
					t.Errorf("%q: code = %s, want UNAUTHENTICATED", tok, code)
				}
			}
		})
	})
}

func TestRefreshConcurrent(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Run("WithinInterval", func(t *testing.T) {
			ts := authtest.NewServer(t, dsn, nil)
			u := ts.Register(t, "user@example.com", "password1")
			results := refreshConcurrently(t, ts, u.Refresh, 10)
			sid := authtest.Claims(t, u.Access)["sid"]
			var ok []authtest.Response
			for _, r := range results {
				if len(r.Errors) == 0 {
					ok = append(ok, r)
				}
			}
			if len(ok) != 10 {
				t.Fatalf("%d of 10 concurrent refreshes succeeded, want all: %+v", len(ok), results)
			}
			for _, r := range ok {
				if got := authtest.Claims(t, r.Str("refresh", "accessToken"))["sid"]; got != sid {
					t.Errorf("sid = %v, want %v", got, sid)
				}
			}
			// One working session: its tokens work, and so does a further rotation.
			last := authtest.TokensOf(ok[len(ok)-1], "refresh")
			ts.Me(t, last.Access).OK(t)
			ts.Refresh(t, last.Refresh).OK(t)
			var sessions int64
			ts.DB.Model(&models.Session{}).Where("user_id = ? AND revoked_at IS NULL", u.UserID).Count(&sessions)
			if sessions != 1 {
				t.Errorf("%d live sessions, want 1", sessions)
			}
		})
		t.Run("ZeroInterval", func(t *testing.T) {
			// Without a grace interval, every presentation after the first
			// is a retry (no successor was used yet): each one succeeds and
			// spends the successors before it, so exactly one stays live.
			ts := authtest.NewServer(t, dsn, nil, authtest.WithReuseInterval(0))
			u := ts.Register(t, "zero@example.com", "password1")
			results := refreshConcurrently(t, ts, u.Refresh, 10)
			var live []authtest.Tokens
			for _, r := range results {
				got := authtest.TokensOf(r.OK(t), "refresh")
				if liveRefreshToken(t, ts.DB, got.Refresh) {
					live = append(live, got)
				}
			}
			if len(live) != 1 {
				t.Fatalf("%d of the 10 successors are live, want exactly 1", len(live))
			}
			if n := liveRefreshTokens(t, ts.DB, authtest.SID(t, u.Access)); n != 1 {
				t.Errorf("%d live refresh tokens in the session, want 1", n)
			}
			ts.Me(t, live[0].Access).OK(t)
			ts.Refresh(t, live[0].Refresh).OK(t)
		})
	})
}

func refreshConcurrently(t *testing.T, ts *authtest.Server, token string, n int) []authtest.Response {
	t.Helper()
	results := make([]authtest.Response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = ts.Refresh(t, token)
		}()
	}
	close(start)
	wg.Wait()
	return results
}

func TestLogout(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		ts.Register(t, "user@example.com", "password1")
		login := func() authtest.Tokens {
			return authtest.TokensOf(ts.Login(t, "user@example.com", "password1").OK(t), "login")
		}

		t.Run("OneSession", func(t *testing.T) {
			a, b := login(), login()
			r := ts.Do(t, a.Access, `mutation { logout }`, nil).OK(t)
			if r.Get("logout") != true {
				t.Errorf("logout = %v", r.Get("logout"))
			}
			if code := ts.Me(t, a.Access).Code(t); code != models.Unauthenticated {
				t.Errorf("access token after logout: code = %s", code)
			}
			if code := ts.Refresh(t, a.Refresh).Code(t); code != models.Unauthenticated {
				t.Errorf("refresh token after logout: code = %s", code)
			}
			ts.Me(t, b.Access).OK(t)
			ts.Refresh(t, b.Refresh).OK(t)
		})
		t.Run("AllSessions", func(t *testing.T) {
			a, b := login(), login()
			ts.Do(t, a.Access, `mutation { logout(allSessions: true) }`, nil).OK(t)
			for _, s := range []authtest.Tokens{a, b} {
				if code := ts.Me(t, s.Access).Code(t); code != models.Unauthenticated {
					t.Errorf("access token: code = %s", code)
				}
				if code := ts.Refresh(t, s.Refresh).Code(t); code != models.Unauthenticated {
					t.Errorf("refresh token: code = %s", code)
				}
			}
			ts.Me(t, login().Access).OK(t) // signing in again still works
		})
		t.Run("RequiresToken", func(t *testing.T) {
			if code := ts.Do(t, "", `mutation { logout }`, nil).Code(t); code != models.Unauthenticated {
				t.Errorf("code = %s", code)
			}
		})
	})
}

func TestRevocationSurvivesRestart(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		c := authtest.NewClock()
		before := authtest.NewServer(t, dsn, c)
		before.Register(t, "user@example.com", "password1")
		a := authtest.TokensOf(before.Login(t, "user@example.com", "password1").OK(t), "login")
		b := authtest.TokensOf(before.Login(t, "user@example.com", "password1").OK(t), "login")
		before.Do(t, a.Access, `mutation { logout }`, nil).OK(t)

		after := authtest.NewServer(t, dsn, c) // a new process: only the database carries over
		if code := after.Me(t, a.Access).Code(t); code != models.Unauthenticated {
			t.Errorf("logged-out access token after restart: code = %s", code)
		}
		if code := after.Refresh(t, a.Refresh).Code(t); code != models.Unauthenticated {
			t.Errorf("logged-out refresh token after restart: code = %s", code)
		}
		after.Me(t, b.Access).OK(t)
	})
}

func TestPurgeExpired(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		u := ts.Register(t, "user@example.com", "password1")
		ts.Do(t, u.Access, `mutation { logout }`, nil).OK(t)
		count := func(model any) (n int64) {
			ts.DB.Model(model).Count(&n)
			return n
		}
		if count(&models.Revocation{}) != 1 || count(&models.Session{}) != 1 {
			t.Fatalf("before purge: %d revocations, %d sessions", count(&models.Revocation{}), count(&models.Session{}))
		}
		ts.Clock.Advance(15*time.Minute + time.Minute)
		if err := ts.Svc.Purge(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := count(&models.Revocation{}); n != 0 {
			t.Errorf("%d revocations left", n)
		}
		if n := count(&models.Session{}); n != 0 {
			t.Errorf("%d sessions left", n)
		}
		if n := count(&models.RefreshToken{}); n != 0 {
			t.Errorf("%d refresh tokens left", n)
		}
	})
}
