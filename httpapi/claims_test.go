package httpapi_test

import (
	"testing"

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
			f := giveFactor(t, ts, user.UserID)
			// The session is still at level 1; the user now has a factor.
			user = authtest.TokensOf(ts.Refresh(t, user.Refresh).OK(t), "refresh")
			want(t, user.Access, map[string]any{"acr": "aal1", "aal_max": "aal2"})
			ch := mfaChallenge(t, ts, nil, "ada@example.com")
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
