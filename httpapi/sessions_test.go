package httpapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// doAs posts a GraphQL document with a bearer token and a User-Agent.
func (ts *testServer) doAs(tb testing.TB, token, userAgent, query string, vars map[string]any) gqlResponse {
	tb.Helper()
	return postGraphQL(tb, ts.URL, map[string]string{"Authorization": bearer(token), "User-Agent": userAgent}, query, vars)
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

func (ts *testServer) mySessions(tb testing.TB, token string) []session {
	tb.Helper()
	var out struct{ MySessions []session }
	if err := postLoad(http.DefaultClient, ts.URL, token, mySessionsQuery, nil, &out); err != nil {
		tb.Fatalf("mySessions: %v", err)
	}
	return out.MySessions
}

func (ts *testServer) revokeSession(tb testing.TB, token, id string) gqlResponse {
	tb.Helper()
	return ts.do(tb, token, `mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": id})
}

// sid is the session id of an access token.
func sid(tb testing.TB, access string) string {
	tb.Helper()
	s, _ := claims(tb, access)["sid"].(string)
	if s == "" {
		tb.Fatalf("access token without sid")
	}
	return s
}

func TestMySessions(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := newTestServer(t, dsn, nil)
		start := ts.Clock.Now()
		first := tokensOf(ts.doAs(t, "", "Agent/A", `mutation { register(email: "ada@example.com", password: "password1") { `+payloadFields+` } }`, nil).OK(t), "register")
		ts.Clock.Advance(time.Minute)
		second := tokensOf(ts.doAs(t, "", "Agent/B", `mutation { login(email: "ada@example.com", password: "password1") { `+payloadFields+` } }`, nil).OK(t), "login")
		// Another user's session must not show.
		ts.register(t, "bob@example.com", "password1")

		got := ts.mySessions(t, second.Access)
		want := []session{
			{ID: sid(t, second.Access), CreatedAt: start.Add(time.Minute), LastUsedAt: start.Add(time.Minute),
				ExpiresAt: start.Add(time.Minute + 720*time.Hour), UserAgent: "Agent/B", IP: "127.0.0.1", Current: true},
			{ID: sid(t, first.Access), CreatedAt: start, LastUsedAt: start,
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
		refreshed := tokensOf(ts.doAs(t, "", "Agent/C", `mutation($t: String!) { refresh(refreshToken: $t) { `+payloadFields+` } }`,
			map[string]any{"t": first.Refresh}).OK(t), "refresh")
		got = ts.mySessions(t, refreshed.Access)
		if len(got) != 2 || got[0].ID != sid(t, first.Access) || !got[0].Current || got[1].Current {
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
		ts.do(t, second.Access, `mutation { logout }`, nil).OK(t)
		if got := ts.mySessions(t, refreshed.Access); len(got) != 1 || got[0].ID != sid(t, first.Access) {
			t.Errorf("after logout of the second: %+v", got)
		}
		if code := ts.do(t, "", mySessionsQuery, nil).Code(t); code != models.Unauthenticated {
			t.Errorf("without a token: %s, want UNAUTHENTICATED", code)
		}
	})
}

func TestMySessionsLeavesOutExpired(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := newTestServer(t, dsn, nil, func(c *testConfig) { c.Auth.RefreshTTL = time.Hour })
		old := ts.register(t, "ada@example.com", "password1")
		ts.Clock.Advance(50 * time.Minute)
		fresh := tokensOf(ts.login(t, "ada@example.com", "password1").OK(t), "login")
		ts.Clock.Advance(11 * time.Minute) // the first is past its hour
		got := ts.mySessions(t, fresh.Access)
		if len(got) != 1 || got[0].ID != sid(t, fresh.Access) {
			t.Errorf("mySessions = %+v, want only %s (%s expired)", got, sid(t, fresh.Access), sid(t, old.Access))
		}
	})
}

func TestRevokeSession(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := newTestServer(t, dsn, nil)
		a := ts.register(t, "ada@example.com", "password1")
		b := tokensOf(ts.login(t, "ada@example.com", "password1").OK(t), "login")
		bob := ts.register(t, "bob@example.com", "password1")
		ts.me(t, a.Access).OK(t) // verified and cached: revocation must still apply

		t.Run("AnotherUsersSessionIsNotFound", func(t *testing.T) {
			for name, id := range map[string]string{
				"AnotherUsers": sid(t, a.Access),
				"Unknown":      uuid.NewString(),
				"Malformed":    "not-a-session",
				"Empty":        "",
			} {
				r := ts.revokeSession(t, bob.Access, id)
				if code := r.Code(t); code != models.NotFound || r.Errors[0].Message != "session not found" {
					t.Errorf("%s: %s %q, want NOT_FOUND \"session not found\"", name, code, r.Errors[0].Message)
				}
			}
			ts.me(t, a.Access).OK(t)
			a = tokensOf(ts.refresh(t, a.Refresh).OK(t), "refresh")
		})

		t.Run("OwnOtherSession", func(t *testing.T) {
			r := ts.revokeSession(t, b.Access, sid(t, a.Access)).OK(t)
			if r.Get("revokeSession") != true {
				t.Fatalf("revokeSession = %v, want true", r.Get("revokeSession"))
			}
			if code := ts.me(t, a.Access).Code(t); code != models.Unauthenticated {
				t.Errorf("revoked session's access token: %s, want UNAUTHENTICATED at once", code)
			}
			if code := ts.refresh(t, a.Refresh).Code(t); code != models.Unauthenticated {
				t.Errorf("revoked session's refresh: %s, want UNAUTHENTICATED", code)
			}
			if got := ts.mySessions(t, b.Access); len(got) != 1 || got[0].ID != sid(t, b.Access) {
				t.Errorf("mySessions after revoke: %+v", got)
			}
			// Again: it had ended already.
			if r := ts.revokeSession(t, b.Access, sid(t, a.Access)).OK(t); r.Get("revokeSession") != false {
				t.Errorf("second revokeSession = %v, want false", r.Get("revokeSession"))
			}
			ts.me(t, bob.Access).OK(t)
		})

		t.Run("CurrentSession", func(t *testing.T) {
			r := ts.revokeSession(t, b.Access, sid(t, b.Access)).OK(t)
			if r.Get("revokeSession") != true {
				t.Fatalf("revokeSession = %v, want true", r.Get("revokeSession"))
			}
			if code := ts.me(t, b.Access).Code(t); code != models.Unauthenticated {
				t.Errorf("own revoked session: %s, want UNAUTHENTICATED at once", code)
			}
			if code := ts.refresh(t, b.Refresh).Code(t); code != models.Unauthenticated {
				t.Errorf("own revoked session's refresh: %s, want UNAUTHENTICATED", code)
			}
		})

		if code := ts.revokeSession(t, "", uuid.NewString()).Code(t); code != models.Unauthenticated {
			t.Errorf("without a token: %s, want UNAUTHENTICATED", code)
		}
	})
}

// TestRevokeSessionOnAIsRefusedOnB: a session revoked through one replica
// is refused by another without waiting for the purge cycle.
func TestRevokeSessionOnAIsRefusedOnB(t *testing.T) {
	c := newCluster(t, nil)
	a, b := c.start(t, nil), c.start(t, nil)
	first := registerAt(t, a, "ada@example.com", "password1")
	second := loginAt(t, b, "ada@example.com", "password1")
	if code, msg := meError(t, b, first.Access); code != "" {
		t.Fatalf("me at B before the revocation: %s %s", code, msg)
	}
	r := postGraphQL(t, a, map[string]string{"Authorization": bearer(second.Access)},
		`mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": sid(t, first.Access)}).OK(t)
	if r.Get("revokeSession") != true {
		t.Fatalf("revokeSession = %v", r.Get("revokeSession"))
	}
	waitRevoked(t, b, first.Access)
}
