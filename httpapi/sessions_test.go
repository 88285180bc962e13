package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// doAs posts a GraphQL document with a bearer token and a User-Agent.
func doAs(tb testing.TB, ts *authtest.Server, token, userAgent, query string, vars map[string]any) authtest.Response {
	tb.Helper()
	return authtest.PostGraphQL(tb, ts.URL, map[string]string{"Authorization": authtest.Bearer(token), "User-Agent": userAgent}, query, vars)
}

// session is one entry of mySessions.
type session struct {
	ID                               string
	CreatedAt, LastUsedAt, ExpiresAt time.Time
	UserAgent, IP                    string
	Current                          bool
}

// same reports whether s and o are the same session, times compared as
// instants.
func (s session) same(o session) bool {
	return s.ID == o.ID && s.CreatedAt.Equal(o.CreatedAt) && s.LastUsedAt.Equal(o.LastUsedAt) && s.ExpiresAt.Equal(o.ExpiresAt) &&
		s.UserAgent == o.UserAgent && s.IP == o.IP && s.Current == o.Current
}

const mySessionsQuery = `{ mySessions { id createdAt lastUsedAt expiresAt userAgent ip current } }`

func mySessions(tb testing.TB, ts *authtest.Server, token string) []session {
	tb.Helper()
	var out struct{ MySessions []session }
	if err := authtest.PostLoad(http.DefaultClient, ts.URL, token, mySessionsQuery, nil, &out); err != nil {
		tb.Fatalf("mySessions: %v", err)
	}
	return out.MySessions
}

func revokeSession(tb testing.TB, ts *authtest.Server, token, id string) authtest.Response {
	tb.Helper()
	return ts.Do(tb, token, `mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": id})
}

func TestMySessions(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		start := ts.Clock.Now()
		first := authtest.TokensOf(doAs(t, ts, "", "Agent/A", `mutation { register(email: "ada@example.com", password: "password1") { `+authtest.PayloadFields+` } }`, nil).OK(t), "register")
		ts.Clock.Advance(time.Minute)
		second := authtest.TokensOf(doAs(t, ts, "", "Agent/B", `mutation { login(email: "ada@example.com", password: "password1") { `+authtest.PayloadFields+` } }`, nil).OK(t), "login")
		// Another user's session must not show.
		ts.Register(t, "bob@example.com", "password1")

		got := mySessions(t, ts, second.Access)
		want := []session{
			{ID: authtest.SID(t, second.Access), CreatedAt: start.Add(time.Minute), LastUsedAt: start.Add(time.Minute),
				ExpiresAt: start.Add(time.Minute + 720*time.Hour), UserAgent: "Agent/B", IP: "127.0.0.1", Current: true},
			{ID: authtest.SID(t, first.Access), CreatedAt: start, LastUsedAt: start,
				ExpiresAt: start.Add(720 * time.Hour), UserAgent: "Agent/A", IP: "127.0.0.1"},
		}
		if len(got) != len(want) {
			t.Fatalf("mySessions = %+v, want %+v", got, want)
		}
		for i := range want {
			if !got[i].same(want[i]) {
				t.Errorf("session %d = %+v, want %+v", i, got[i], want[i])
			}
		}

		// A refresh of the first session makes it the most recently used
		// and slides its expiry; the User-Agent stays the one that began it.
		ts.Clock.Advance(time.Minute)
		refreshed := authtest.TokensOf(doAs(t, ts, "", "Agent/C", `mutation($t: String!) { refresh(refreshToken: $t) { `+authtest.PayloadFields+` } }`,
			map[string]any{"t": first.Refresh}).OK(t), "refresh")
		got = mySessions(t, ts, refreshed.Access)
		if len(got) != 2 || got[0].ID != authtest.SID(t, first.Access) || !got[0].Current || got[1].Current {
			t.Fatalf("after refresh: %+v, want the refreshed session first and current", got)
		}
		if w := start.Add(2 * time.Minute); !got[0].LastUsedAt.Equal(w) || !got[0].CreatedAt.Equal(start) {
			t.Errorf("refreshed session: lastUsedAt %s createdAt %s, want %s and %s", got[0].LastUsedAt, got[0].CreatedAt, w, start)
		}
		if w := start.Add(2*time.Minute + 720*time.Hour); !got[0].ExpiresAt.Equal(w) {
			t.Errorf("refreshed session expires %s, want %s", got[0].ExpiresAt, w)
		}
		if got[0].UserAgent != "Agent/A" {
			t.Errorf("refreshed session userAgent %q, want the one that began it", got[0].UserAgent)
		}

		// Ended sessions are gone from the list: logged out, and expired.
		ts.Do(t, second.Access, `mutation { logout }`, nil).OK(t)
		if got := mySessions(t, ts, refreshed.Access); len(got) != 1 || got[0].ID != authtest.SID(t, first.Access) {
			t.Errorf("after logout of the second: %+v", got)
		}
		if code := ts.Do(t, "", mySessionsQuery, nil).Code(t); code != models.Unauthenticated {
			t.Errorf("without a token: %s, want UNAUTHENTICATED", code)
		}
	})
}

func TestMySessionsLeavesOutExpired(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, func(c *authtest.Config) { c.Auth.RefreshTTL = time.Hour })
		old := ts.Register(t, "ada@example.com", "password1")
		ts.Clock.Advance(50 * time.Minute)
		fresh := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1").OK(t), "login")
		ts.Clock.Advance(11 * time.Minute) // the first is past its hour
		got := mySessions(t, ts, fresh.Access)
		if len(got) != 1 || got[0].ID != authtest.SID(t, fresh.Access) {
			t.Errorf("mySessions = %+v, want only %s (%s expired)", got, authtest.SID(t, fresh.Access), authtest.SID(t, old.Access))
		}
	})
}

func TestRevokeSession(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		a := ts.Register(t, "ada@example.com", "password1")
		b := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1").OK(t), "login")
		bob := ts.Register(t, "bob@example.com", "password1")
		ts.Me(t, a.Access).OK(t) // verified and cached: revocation must still apply

		t.Run("AnotherUsersSessionIsNotFound", func(t *testing.T) {
			for name, id := range map[string]string{
				"AnotherUsers": authtest.SID(t, a.Access),
				"Unknown":      uuid.NewString(),
				"Malformed":    "not-a-session",
				"Empty":        "",
			} {
				r := revokeSession(t, ts, bob.Access, id)
				if code := r.Code(t); code != models.NotFound || r.Errors[0].Message != "session not found" {
					t.Errorf("%s: %s %q, want NOT_FOUND \"session not found\"", name, code, r.Errors[0].Message)
				}
			}
			ts.Me(t, a.Access).OK(t)
			a = authtest.TokensOf(ts.Refresh(t, a.Refresh).OK(t), "refresh")
		})

		t.Run("OwnOtherSession", func(t *testing.T) {
			r := revokeSession(t, ts, b.Access, authtest.SID(t, a.Access)).OK(t)
			if r.Get("revokeSession") != true {
				t.Fatalf("revokeSession = %v, want true", r.Get("revokeSession"))
			}
			if code := ts.Me(t, a.Access).Code(t); code != models.Unauthenticated {
				t.Errorf("revoked session's access token: %s, want UNAUTHENTICATED at once", code)
			}
			if code := ts.Refresh(t, a.Refresh).Code(t); code != models.Unauthenticated {
				t.Errorf("revoked session's refresh: %s, want UNAUTHENTICATED", code)
			}
			if got := mySessions(t, ts, b.Access); len(got) != 1 || got[0].ID != authtest.SID(t, b.Access) {
				t.Errorf("mySessions after revoke: %+v", got)
			}
			// Again: it had ended already.
			if r := revokeSession(t, ts, b.Access, authtest.SID(t, a.Access)).OK(t); r.Get("revokeSession") != false {
				t.Errorf("second revokeSession = %v, want false", r.Get("revokeSession"))
			}
			ts.Me(t, bob.Access).OK(t)
		})

		t.Run("CurrentSession", func(t *testing.T) {
			r := revokeSession(t, ts, b.Access, authtest.SID(t, b.Access)).OK(t)
			if r.Get("revokeSession") != true {
				t.Fatalf("revokeSession = %v, want true", r.Get("revokeSession"))
			}
			if code := ts.Me(t, b.Access).Code(t); code != models.Unauthenticated {
				t.Errorf("own revoked session: %s, want UNAUTHENTICATED at once", code)
			}
			if code := ts.Refresh(t, b.Refresh).Code(t); code != models.Unauthenticated {
				t.Errorf("own revoked session's refresh: %s, want UNAUTHENTICATED", code)
			}
		})

		if code := revokeSession(t, ts, "", uuid.NewString()).Code(t); code != models.Unauthenticated {
			t.Errorf("without a token: %s, want UNAUTHENTICATED", code)
		}
	})
}
