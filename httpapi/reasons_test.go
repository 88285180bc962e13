package httpapi_test

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// TestUnauthenticatedReasons: every UNAUTHENTICATED answer over HTTP says
// why in extensions.reason, and each refusal gives the reason a client acts
// on (README, "Client recipes": refresh only on TOKEN_EXPIRED).
func TestUnauthenticatedReasons(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, withCookies(authtest.AppOrigin))
		admin := ts.Admin(t)
		n := 0
		signIn := func() authtest.Tokens {
			n++
			return ts.Register(t, "user"+string(rune('a'+n))+"@example.com", "password1")
		}
		logout := func(tb testing.TB, s authtest.Tokens) {
			ts.Do(tb, s.Access, `mutation { logout }`, nil).OK(tb)
		}
		for _, c := range []struct {
			name, want string
			answer     func(t *testing.T) authtest.Response
		}{
			{"NoToken", models.ReasonNoToken, func(t *testing.T) authtest.Response { return ts.Me(t, "") }},
			{"MalformedHeader", models.ReasonTokenInvalid, func(t *testing.T) authtest.Response {
				return authtest.PostGraphQL(t, ts.URL, map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, `{ me { id } }`, nil)
			}},
			{"Garbage", models.ReasonTokenInvalid, func(t *testing.T) authtest.Response { return ts.Me(t, "not.a.jwt") }},
			{"BadSignature", models.ReasonTokenInvalid, func(t *testing.T) authtest.Response {
				forged := authtest.Forge(t, signIn().Access, jwt.SigningMethodHS256, []byte("another-key-of-at-least-32-bytes!!!!"), "", nil)
				return ts.Me(t, forged)
			}},
			{"LoggedOut", models.ReasonTokenRevoked, func(t *testing.T) authtest.Response {
				s := signIn()
				logout(t, s)
				return ts.Me(t, s.Access)
			}},
			{"AccountDisabled", models.ReasonTokenRevoked, func(t *testing.T) authtest.Response {
				s := signIn()
				ts.Do(t, admin.Access, `mutation($id: ID!) { disableUser(userId: $id) { id } }`, map[string]any{"id": s.UserID}).OK(t)
				return ts.Me(t, s.Access)
			}},
			{"AccountDeleted", models.ReasonTokenRevoked, func(t *testing.T) authtest.Response {
				s := signIn()
				ts.Do(t, admin.Access, `mutation($id: ID!) { deleteUser(userId: $id) }`, map[string]any{"id": s.UserID}).OK(t)
				return ts.Me(t, s.Access)
			}},
			{"WrongPassword", models.ReasonInvalidCredentials, func(t *testing.T) authtest.Response {
				return ts.Login(t, "admin@example.com", "wrong-password")
			}},
			{"UnknownEmail", models.ReasonInvalidCredentials, func(t *testing.T) authtest.Response {
				return ts.Login(t, "nobody@example.com", "password1")
			}},
			{"UnknownRefreshToken", models.ReasonRefreshTokenInvalid, func(t *testing.T) authtest.Response {
				return ts.Refresh(t, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
			}},
			{"MalformedRefreshToken", models.ReasonRefreshTokenInvalid, func(t *testing.T) authtest.Response { return ts.Refresh(t, "nope") }},
			{"LoggedOutRefreshToken", models.ReasonRefreshTokenInvalid, func(t *testing.T) authtest.Response {
				s := signIn()
				logout(t, s)
				return ts.Refresh(t, s.Refresh)
			}},
			// Last, these move the clock on (past the admin's token).
			{"ReusedRefreshToken", models.ReasonRefreshTokenReused, func(t *testing.T) authtest.Response {
				s := signIn()
				s1 := authtest.TokensOf(ts.Refresh(t, s.Refresh).OK(t), "refresh")
				authtest.TokensOf(ts.Refresh(t, s1.Refresh).OK(t), "refresh")
				ts.Clock.Advance(10 * time.Minute)
				return ts.Refresh(t, s.Refresh)
			}},
			{"NoRefreshCookie", models.ReasonRefreshTokenInvalid, func(t *testing.T) authtest.Response {
				return browser(t, ts, authtest.AppOrigin, "", `mutation { refresh { accessToken } }`, nil)
			}},
			{"TwoRefreshCookies", models.ReasonRefreshTokenInvalid, func(t *testing.T) authtest.Response {
				return browser(t, ts, authtest.AppOrigin, "", `mutation { refresh { accessToken } }`, nil, "a", "b")
			}},
			// Last: these two move the clock on, past the admin's token.
			{"Expired", models.ReasonTokenExpired, func(t *testing.T) authtest.Response {
				s := signIn()
				ts.Clock.Advance(16 * time.Minute)
				return ts.Me(t, s.Access)
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := c.answer(t)
				if code := r.Code(t); code != models.Unauthenticated {
					t.Fatalf("code = %s, want UNAUTHENTICATED (%+v)", code, r.Errors)
				}
				if got := r.Reason(t); got != c.want {
					t.Errorf("reason = %q, want %q (%+v)", got, c.want, r.Errors)
				}
			})
		}
	})
}
