package httpapi_test

import (
	"testing"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
)

// TestAccessTokenClaims: access tokens carry client_id (AUTH_CLIENT_ID,
// else the issuer), scope (the user's permissions at issue, sorted, one
// space-separated string, absent when none) and aal_max (aal2 once the
// user has a second factor, whatever the session's own level), on every
// way a token is issued: register, login, refresh, verifyMfa.
func TestAccessTokenClaims(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		want := func(t *testing.T, token string, claims map[string]any) {
			t.Helper()
			got := authtest.Claims(t, token)
			for k, v := range claims {
				if v == nil {
					if _, ok := got[k]; ok {
						t.Errorf("%s = %v, want it absent", k, got[k])
					}
				} else if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		}
		user := ts.Register(t, "ada@example.com", "password1")
		t.Run("UserWithoutPermissions", func(t *testing.T) {
			want(t, user.Access, map[string]any{"client_id": "authql", "scope": nil, "aal_max": "aal1", "acr": "aal1"})
		})
		t.Run("AdminScopeSorted", func(t *testing.T) {
			want(t, ts.Admin(t).Access, map[string]any{"client_id": "authql", "scope": "events:read roles:read users:read users:write", "aal_max": "aal1"})
		})
		t.Run("RoleGrantedAppearsAtRefresh", func(t *testing.T) {
			admin := ts.Admin(t)
			ts.Do(t, admin.Access, `mutation($id: ID!) { setUserRoles(userId: $id, roles: ["user", "admin"]) { id } }`, map[string]any{"id": user.UserID}).OK(t)
			r := ts.Refresh(t, user.Refresh).OK(t)
			user = authtest.TokensOf(r, "refresh")
			want(t, user.Access, map[string]any{"scope": "events:read roles:read users:read users:write"})
		})
		t.Run("SecondFactorMakesAalMax2", func(t *testing.T) {
			// user's session stays at level 1 while a second session of
			// the same user enrolls a factor: its next refresh (the user
			// cached by the refreshes before) must see the factor.
			other := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1").OK(t), "login")
			en := ts.Do(t, other.Access, enrollTotpDoc, nil).OK(t)
			code, err := auth.TOTPCodeAt(en.Str("enrollTotp", "secret"), ts.Clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			// Cached now: the user has no factor.
			user = authtest.TokensOf(ts.Refresh(t, user.Refresh).OK(t), "refresh")
			want(t, user.Access, map[string]any{"aal_max": "aal1"})
			r := ts.Do(t, other.Access, `mutation($f: ID!, $c: String!) { confirmTotp(factorId: $f, code: $c, signOutOtherSessions: false) { factor { id } session { accessToken } } }`,
				map[string]any{"f": en.Str("enrollTotp", "factorId"), "c": code}).OK(t)
			raised := r.Str("confirmTotp", "session", "accessToken")
			want(t, raised, map[string]any{"acr": "aal2", "aal_max": "aal2"})
			user = authtest.TokensOf(ts.Refresh(t, user.Refresh).OK(t), "refresh")
			want(t, user.Access, map[string]any{"acr": "aal1", "aal_max": "aal2"})

			// Removed again (from the level-2 session): aal1 at the next
			// refresh of the level-1 one.
			ts.Do(t, raised, `mutation($id: ID!) { removeMfaFactor(id: $id) }`, map[string]any{"id": r.Str("confirmTotp", "factor", "id")}).OK(t)
			user = authtest.TokensOf(ts.Refresh(t, user.Refresh).OK(t), "refresh")
			want(t, user.Access, map[string]any{"acr": "aal1", "aal_max": "aal1"})
		})
		t.Run("VerifyMfaAalMax2", func(t *testing.T) {
			u := ts.Register(t, "grace@example.com", "password1")
			f := giveFactor(t, ts, u.UserID)
			ch := mfaChallenge(t, ts, nil, "grace@example.com")
			r := ts.Do(t, "", verifyMfaDoc, map[string]any{"c": ch["challengeId"], "p": map[string]any{"totpCode": f.code(t, ts)}}).OK(t)
			want(t, r.Str("verifyMfa", "accessToken"), map[string]any{"acr": "aal2", "aal_max": "aal2", "client_id": "authql"})
		})
	})
}

// TestClientIDConfigured: AUTH_CLIENT_ID names the client in every token.
func TestClientIDConfigured(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, func(c *authtest.Config) { c.Auth.ClientID = "web-app" })
		if got := authtest.Claims(t, ts.Register(t, "ada@example.com", "password1").Access)["client_id"]; got != "web-app" {
			t.Errorf("client_id = %v, want web-app", got)
		}
	})
}
