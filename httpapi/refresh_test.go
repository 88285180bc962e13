package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// withAccessTTL sets the access tokens' lifetime (AUTH_ACCESS_TTL).
func withAccessTTL(d time.Duration) authtest.Option {
	return func(c *authtest.Config) { c.Auth.AccessTTL = d }
}

// liveRefreshToken reports whether the refresh token is stored and neither
// rotated nor spent, looked up by its hash as the server stores it.
func liveRefreshToken(tb testing.TB, db *gorm.DB, token string) bool {
	tb.Helper()
	sum := sha256.Sum256([]byte(token))
	var n int64
	if err := db.Model(&models.RefreshToken{}).Where("id = ? AND rotated_at IS NULL", hex.EncodeToString(sum[:])).Count(&n).Error; err != nil {
		tb.Fatal(err)
	}
	return n == 1
}

// liveRefreshTokens counts the session's refresh tokens neither rotated nor
// spent.
func liveRefreshTokens(tb testing.TB, db *gorm.DB, sessionID string) int64 {
	tb.Helper()
	var n int64
	if err := db.Model(&models.RefreshToken{}).Where("session_id = ? AND rotated_at IS NULL", sessionID).Count(&n).Error; err != nil {
		tb.Fatal(err)
	}
	return n
}

// refused fails the test unless the session of s is over: its access token
// and its refresh token are both refused.
func refused(t *testing.T, ts *authtest.Server, s authtest.Tokens, what string) {
	t.Helper()
	if code := ts.Me(t, s.Access).Code(t); code != models.Unauthenticated {
		t.Errorf("%s: access token: code = %s, want UNAUTHENTICATED", what, code)
	}
	if code := ts.Refresh(t, s.Refresh).Code(t); code != models.Unauthenticated {
		t.Errorf("%s: refresh token: code = %s, want UNAUTHENTICATED", what, code)
	}
}

// TestRefreshLostAnswer: a refresh that committed but whose answer never
// reached the client (thrown away here) does not cost the session: the
// client's retry with the token it still holds, however late, is a retry,
// not theft. Any later use of a superseded token still revokes.
func TestRefreshLostAnswer(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		n := 0
		signIn := func() authtest.Tokens {
			n++
			email := "user" + string(rune('a'+n)) + "@example.com"
			return ts.Register(t, email, "password1")
		}

		t.Run("RetryAfterTenMinutesKeepsSession", func(t *testing.T) { lostAnswerRetried(t, ts, signIn()) })
		t.Run("SpentSuccessorRevokes", func(t *testing.T) {
			p := signIn()
			lost := authtest.TokensOf(ts.Refresh(t, p.Refresh).OK(t), "refresh")
			ts.Clock.Advance(10 * time.Minute)
			r := authtest.TokensOf(ts.Refresh(t, p.Refresh).OK(t), "refresh")
			if liveRefreshToken(t, ts.DB, lost.Refresh) {
				t.Fatal("the unused successor is still live after the retry")
			}
			// Whoever presents it did not get it from the lost answer.
			if code := ts.Refresh(t, lost.Refresh).Code(t); code != models.Unauthenticated {
				t.Errorf("spent successor: code = %s, want UNAUTHENTICATED", code)
			}
			refused(t, ts, r, "after the spent successor was presented")
		})
		t.Run("SpentSuccessorWithinGraceRevokes", func(t *testing.T) {
			p := signIn()
			lost := authtest.TokensOf(ts.Refresh(t, p.Refresh).OK(t), "refresh")
			ts.Clock.Advance(10 * time.Minute)
			r := authtest.TokensOf(ts.Refresh(t, p.Refresh).OK(t), "refresh")
			ts.Clock.Advance(time.Second)
			if code := ts.Refresh(t, lost.Refresh).Code(t); code != models.Unauthenticated {
				t.Errorf("spent successor: code = %s, want UNAUTHENTICATED", code)
			}
			refused(t, ts, r, "after the spent successor was presented")
		})
		t.Run("ReuseAfterSuccessorUsedRevokes", func(t *testing.T) {
			p := signIn()
			s1 := authtest.TokensOf(ts.Refresh(t, p.Refresh).OK(t), "refresh")
			s2 := authtest.TokensOf(ts.Refresh(t, s1.Refresh).OK(t), "refresh")
			ts.Clock.Advance(10 * time.Minute)
			if code := ts.Refresh(t, p.Refresh).Code(t); code != models.Unauthenticated {
				t.Errorf("parent after its successor was used: code = %s, want UNAUTHENTICATED", code)
			}
			refused(t, ts, s2, "after reuse")
		})
		t.Run("RetriedTwice", func(t *testing.T) {
			p := signIn()
			lost1 := authtest.TokensOf(ts.Refresh(t, p.Refresh).OK(t), "refresh")
			ts.Clock.Advance(10 * time.Minute)
			lost2 := authtest.TokensOf(ts.Refresh(t, p.Refresh).OK(t), "refresh")
			ts.Clock.Advance(10 * time.Minute)
			r := authtest.TokensOf(ts.Refresh(t, p.Refresh).OK(t), "refresh")
			for _, l := range []authtest.Tokens{lost1, lost2} {
				if liveRefreshToken(t, ts.DB, l.Refresh) {
					t.Error("an earlier unused successor is still live")
				}
			}
			if n := liveRefreshTokens(t, ts.DB, authtest.SID(t, p.Access)); n != 1 {
				t.Errorf("%d live refresh tokens, want 1", n)
			}
			ts.Refresh(t, r.Refresh).OK(t)
		})
		t.Run("TabsWithinGrace", func(t *testing.T) {
			results := refreshConcurrently(t, ts, signIn().Refresh, 5)
			for _, res := range results {
				got := authtest.TokensOf(res.OK(t), "refresh")
				ts.Me(t, got.Access).OK(t)
				if !liveRefreshToken(t, ts.DB, got.Refresh) {
					t.Error("a tab's refresh token is not live")
				}
			}
			// Every tab goes on.
			for _, res := range results {
				ts.Refresh(t, authtest.TokensOf(res, "refresh").Refresh).OK(t)
			}
		})
	})
}

// lostAnswerRetried: the session p, whose refresh answer is lost, goes on
// with the client's retry ten minutes later, and the retry is audited as one.
func lostAnswerRetried(t *testing.T, ts *authtest.Server, p authtest.Tokens) {
	ts.Refresh(t, p.Refresh).OK(t) // the answer is lost
	ts.Clock.Advance(10 * time.Minute)
	r := authtest.TokensOf(ts.Refresh(t, p.Refresh).OK(t), "refresh")
	if authtest.SID(t, r.Access) != authtest.SID(t, p.Access) {
		t.Errorf("the retry started another session")
	}
	ts.Me(t, r.Access).OK(t)
	next := authtest.TokensOf(ts.Refresh(t, r.Refresh).OK(t), "refresh")
	ts.Me(t, next.Access).OK(t)
	if got := mySessions(t, ts, next.Access); len(got) != 1 || got[0].ID != authtest.SID(t, p.Access) {
		t.Errorf("mySessions = %+v, want the one session", got)
	}
	if err := ts.Svc.FlushAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	var retries int64
	ts.DB.Model(&models.AuditEvent{}).Where("type = ? AND outcome = ? AND session_id = ? AND detail = ?", models.AuditRefresh, "SUCCESS", authtest.SID(t, p.Access), "retry").Count(&retries)
	if retries != 1 {
		t.Errorf("%d REFRESH events with detail retry, want 1", retries)
	}
}

// TestRefreshRetriesConcurrent: retries that arrive together after a lost
// answer (several tabs, or a client retrying on several connections) are
// served as concurrent presentations are; and a retry racing the use of
// the successor leaves no two lines of the session alive.
func TestRefreshRetriesConcurrent(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Run("AllRetriesServed", func(t *testing.T) {
			ts := authtest.NewServer(t, dsn, nil)
			p := ts.Register(t, "user@example.com", "password1")
			lost := authtest.TokensOf(ts.Refresh(t, p.Refresh).OK(t), "refresh")
			ts.Clock.Advance(10 * time.Minute)
			results := refreshConcurrently(t, ts, p.Refresh, 10)
			for _, r := range results {
				got := authtest.TokensOf(r.OK(t), "refresh")
				ts.Me(t, got.Access).OK(t)
			}
			if liveRefreshToken(t, ts.DB, lost.Refresh) {
				t.Error("the lost successor is still live")
			}
			// Within the grace interval of the retry, every retry's token
			// is live, as concurrent tabs' are.
			if n := liveRefreshTokens(t, ts.DB, authtest.SID(t, p.Access)); n != 10 {
				t.Errorf("%d live refresh tokens, want the 10 retries'", n)
			}
			ts.Refresh(t, authtest.TokensOf(results[3], "refresh").Refresh).OK(t)
		})
		t.Run("RetryRacingSuccessorUse", func(t *testing.T) {
			ts := authtest.NewServer(t, dsn, nil)
			ts.Register(t, "racer@example.com", "password1")
			for i := range 5 {
				p := authtest.TokensOf(ts.Login(t, "racer@example.com", "password1").OK(t), "login")
				s1 := authtest.TokensOf(ts.Refresh(t, p.Refresh).OK(t), "refresh")
				ts.Clock.Advance(10 * time.Minute)
				var wg sync.WaitGroup
				var fromP, fromS1 authtest.Response
				start := make(chan struct{})
				wg.Add(2)
				go func() { defer wg.Done(); <-start; fromP = ts.Refresh(t, p.Refresh) }()
				go func() { defer wg.Done(); <-start; fromS1 = ts.Refresh(t, s1.Refresh) }()
				close(start)
				wg.Wait()
				// Whichever came first, the other is a superseded token
				// presented again: the session is revoked, and no pair
				// from this race works.
				ok := 0
				for _, r := range []authtest.Response{fromP, fromS1} {
					if len(r.Errors) == 0 {
						ok++
						refused(t, ts, authtest.TokensOf(r, "refresh"), "after the race")
					}
				}
				if ok != 1 {
					t.Errorf("round %d: %d of the 2 racing refreshes succeeded, want exactly 1", i, ok)
				}
				var revoked int64
				ts.DB.Model(&models.Session{}).Where("id = ? AND revoked_at IS NOT NULL", authtest.SID(t, p.Access)).Count(&revoked)
				if revoked != 1 {
					t.Errorf("round %d: session not revoked", i)
				}
			}
		})
	})
}

// TestRefreshTimesAtCommit: a refresh that waited for the database dates
// what it writes from when it wrote, not from when the request came in:
// the session's expiry and last use, and the grace interval, start at the
// commit.
func TestRefreshTimesAtCommit(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil, authtest.WithPool(models.Options{MaxConns: 1}))
		u := ts.Register(t, "user@example.com", "password1")
		ctx := context.Background()
		if err := ts.Svc.FlushAudit(ctx); err != nil {
			t.Fatal(err)
		}
		sqlDB, _ := ts.DB.DB()
		conn, err := sqlDB.Conn(ctx) // the only connection: the refresh waits for it
		if err != nil {
			t.Fatal(err)
		}
		waits := sqlDB.Stats().WaitCount
		start := ts.Clock.Now()
		done := make(chan authtest.Response)
		go func() { done <- ts.Refresh(t, u.Refresh) }()
		for deadline := time.Now().Add(10 * time.Second); sqlDB.Stats().WaitCount == waits; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the refresh never waited for the connection")
			}
		}
		ts.Clock.Advance(20 * time.Second)
		conn.Close()
		r := authtest.TokensOf((<-done).OK(t), "refresh")

		committed := start.Add(20 * time.Second)
		s := mySessions(t, ts, r.Access)
		if len(s) != 1 || !s[0].LastUsedAt.Equal(committed) || !s[0].ExpiresAt.Equal(committed.Add(720*time.Hour)) {
			t.Errorf("session = %+v, want last used at %v and expiring 720h later", s, committed)
		}
		if iat := int64(authtest.Claims(t, r.Access)["iat"].(float64)); iat != committed.Unix() {
			t.Errorf("access token issued at %d, want %d", iat, committed.Unix())
		}
		var tok models.RefreshToken
		sum := sha256.Sum256([]byte(u.Refresh))
		if err := ts.DB.Where("id = ?", hex.EncodeToString(sum[:])).Take(&tok).Error; err != nil {
			t.Fatal(err)
		}
		if tok.RotatedAt == nil || !tok.RotatedAt.Equal(committed) {
			t.Errorf("rotated at %v, want %v: the grace interval starts at the commit", tok.RotatedAt, committed)
		}
	})
}

// TestRevocationOutlivesLoweredTTL: a revocation lasts as long as the
// tokens it revokes, whatever AUTH_ACCESS_TTL is now. Tokens issued under
// a 1h lifetime, revoked after a restart with 1m, stay refused 2 minutes
// later (after another restart and a purge), when a revocation sized by
// the current lifetime would have lapsed.
func TestRevocationOutlivesLoweredTTL(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		c := authtest.NewClock()
		long := authtest.NewServer(t, dsn, c, withAccessTTL(time.Hour))
		long.Register(t, "user@example.com", "password1")
		long.Register(t, "all@example.com", "password1")
		signIn := func(email string) authtest.Tokens {
			return authtest.TokensOf(long.Login(t, email, "password1").OK(t), "login")
		}
		loggedOutBefore, logout, revoked, reused := signIn("user@example.com"), signIn("user@example.com"), signIn("user@example.com"), signIn("user@example.com")
		all1, all2 := signIn("all@example.com"), signIn("all@example.com")
		long.Do(t, loggedOutBefore.Access, `mutation { logout }`, nil).OK(t)
		reusedNext := authtest.TokensOf(long.Refresh(t, reused.Refresh).OK(t), "refresh") // a 1h token too

		short := authtest.NewServer(t, dsn, c, withAccessTTL(time.Minute)) // the restart
		revokeSession(t, short, logout.Access, authtest.SID(t, revoked.Access)).OK(t)
		short.Do(t, logout.Access, `mutation { logout }`, nil).OK(t)
		short.Do(t, all1.Access, `mutation { logout(allSessions: true) }`, nil).OK(t)
		c.Advance(11 * time.Second)
		authtest.TokensOf(short.Refresh(t, reusedNext.Refresh).OK(t), "refresh") // the successor is used
		if code := short.Refresh(t, reused.Refresh).Code(t); code != models.Unauthenticated {
			t.Fatalf("reuse: code = %s, want UNAUTHENTICATED", code)
		}

		c.Advance(2 * time.Minute)
		after := authtest.NewServer(t, dsn, c, withAccessTTL(time.Minute)) // restarted again: only the database carries over
		if err := after.Svc.Purge(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, ts := range []*authtest.Server{short, after} {
			for name, s := range map[string]authtest.Tokens{
				"LoggedOutBeforeRestart": loggedOutBefore, "Logout": logout, "LogoutAll": all1, "LogoutAllOther": all2,
				"RevokeSession": revoked, "Reuse": reused, "ReuseSuccessor": reusedNext,
			} {
				if code := ts.Me(t, s.Access).Code(t); code != models.Unauthenticated {
					t.Errorf("%s: 1h access token 2m after its revocation under a 1m lifetime: code = %s, want UNAUTHENTICATED", name, code)
				}
			}
		}
		// The revoked sessions are kept while their tokens could live.
		var kept int64
		after.DB.Model(&models.Session{}).Where("revoked_at IS NOT NULL").Count(&kept)
		if kept != 7 { // the six above and the session register started for all@
			t.Errorf("%d revoked sessions left after the purge, want the 7 whose 1h tokens still live", kept)
		}
	})
}
