package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

func TestRegisterLoginMe(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)

		r := ts.Do(t, "", `mutation { register(email: "  Ada@Example.COM ", password: "correct horse") { `+authtest.PayloadFields+` } }`, nil).OK(t)
		if got := r.Str("register", "user", "email"); got != "ada@example.com" {
			t.Errorf("email = %q, want trimmed and lower-cased", got)
		}
		if _, err := uuid.Parse(r.Str("register", "user", "id")); err != nil {
			t.Errorf("id %q is not a UUID", r.Str("register", "user", "id"))
		}
		if got := fmt.Sprint(r.Get("register", "user", "roles")); got != "[user]" {
			t.Errorf("roles = %s, want [user]", got)
		}
		if r.Str("register", "tokenType") != "Bearer" || r.Get("register", "expiresIn") != float64(900) {
			t.Errorf("tokenType/expiresIn = %v/%v, want Bearer/900", r.Get("register", "tokenType"), r.Get("register", "expiresIn"))
		}

		t.Run("MeWithToken", func(t *testing.T) {
			me := ts.Me(t, r.Str("register", "accessToken")).OK(t)
			if me.Str("me", "email") != "ada@example.com" || me.Str("me", "id") != r.Str("register", "user", "id") {
				t.Errorf("me = %v", me.Data)
			}
		})
		t.Run("LoginIsCaseInsensitive", func(t *testing.T) {
			l := ts.Login(t, "ADA@example.com ", "correct horse").OK(t)
			if l.Str("login", "user", "id") != r.Str("register", "user", "id") {
				t.Errorf("login user = %v", l.Get("login", "user"))
			}
			ts.Me(t, l.Str("login", "accessToken")).OK(t)
		})
		t.Run("WrongPasswordAndUnknownEmailFailAlike", func(t *testing.T) {
			wrong := ts.Login(t, "ada@example.com", "wrong password")
			unknown := ts.Login(t, "nobody@example.com", "correct horse")
			for _, resp := range []authtest.Response{wrong, unknown} {
				if code := resp.Code(t); code != models.Unauthenticated {
					t.Errorf("code = %s, want UNAUTHENTICATED", code)
				}
				if resp.Data != nil {
					t.Errorf("data = %v, want null", resp.Data)
				}
			}
			if wrong.Errors[0].Message != unknown.Errors[0].Message {
				t.Errorf("messages differ: %q vs %q", wrong.Errors[0].Message, unknown.Errors[0].Message)
			}
		})
	})
}

func TestRegisterValidation(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		ts.Register(t, "taken@example.com", "password1")
		tests := []struct {
			name, email, password, wantCode string
		}{
			{"InvalidEmail", "not-an-email", "password1", models.BadUserInput},
			{"EmailWithoutDomainDot", "a@b", "password1", models.BadUserInput},
			{"EmailWithDisplayName", "Bob <bob@example.com>", "password1", models.BadUserInput},
			{"EmptyEmail", "", "password1", models.BadUserInput},
			{"PasswordTooShort", "short@example.com", "1234567", models.BadUserInput},
			{"PasswordTooLong", "long@example.com", strings.Repeat("x", 129), models.BadUserInput},
			{"DuplicateEmailOtherCase", " TAKEN@example.com", "password1", models.BadUserInput},
			{"PasswordOf8Runes", "eight@example.com", "ünïcödéß", ""},
			{"PasswordOf128Bytes", "max@example.com", strings.Repeat("y", 128), ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := ts.Do(t, "", `mutation($e: String!, $p: String!) { register(email: $e, password: $p) { accessToken } }`,
					map[string]any{"e": tt.email, "p": tt.password})
				if tt.wantCode == "" {
					r.OK(t)
					return
				}
				if code := r.Code(t); code != tt.wantCode {
					t.Errorf("code = %s, want %s (%s)", code, tt.wantCode, r.Errors[0].Message)
				}
			})
		}
		t.Run("LoginPasswordTooLongRefusedBeforeHashing", func(t *testing.T) {
			if code := ts.Login(t, "taken@example.com", strings.Repeat("x", 129)).Code(t); code != models.BadUserInput {
				t.Errorf("code = %s, want BAD_USER_INPUT", code)
			}
		})
	})
}

func TestSignupDisabled(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil, func(c *authtest.Config) { c.Auth.Signup = false })
	r := ts.Do(t, "", `mutation { register(email: "a@example.com", password: "password1") { accessToken } }`, nil)
	if code := r.Code(t); code != models.Forbidden {
		t.Errorf("code = %s, want FORBIDDEN", code)
	}
}

func TestAuthDirective(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		user := ts.Register(t, "user@example.com", "password1")
		admin := ts.Admin(t)

		t.Run("NoTokenFailsOnlyAuthFields", func(t *testing.T) {
			r := ts.Do(t, "", `{ me { id } }`, nil)
			if code := r.Code(t); code != models.Unauthenticated {
				t.Errorf("code = %s", code)
			}
			if fmt.Sprint(r.Errors[0].Path) != "[me]" {
				t.Errorf("path = %v, want [me]", r.Errors[0].Path)
			}
		})
		t.Run("MalformedAuthorizationHeader", func(t *testing.T) {
			for _, h := range []string{"Basic dXNlcjpwYXNz", "Bearer", "Token " + user.Access} {
				r := authtest.PostGraphQL(t, ts.URL, map[string]string{"Authorization": h}, `{ me { id } }`, nil)
				if code := r.Code(t); code != models.Unauthenticated {
					t.Errorf("%q: code = %s", h, code)
				}
			}
		})
		t.Run("PartialResultForAdminOnlyField", func(t *testing.T) {
			r := ts.Do(t, user.Access, `{ me { id lastLoginAt } }`, nil)
			if r.Str("me", "id") != user.UserID {
				t.Errorf("me.id = %v, want %s", r.Get("me", "id"), user.UserID)
			}
			if code := r.Code(t); code != models.Forbidden {
				t.Errorf("code = %s, want FORBIDDEN", code)
			}
			if fmt.Sprint(r.Errors[0].Path) != "[me lastLoginAt]" {
				t.Errorf("path = %v, want [me lastLoginAt]", r.Errors[0].Path)
			}
		})
		t.Run("AdminSeesLastLoginAt", func(t *testing.T) {
			r := ts.Do(t, admin.Access, `{ me { lastLoginAt } }`, nil).OK(t)
			if r.Str("me", "lastLoginAt") == "" {
				t.Errorf("lastLoginAt = %v, want the login time", r.Get("me", "lastLoginAt"))
			}
		})
		t.Run("RoleGate", func(t *testing.T) {
			if code := ts.Do(t, user.Access, `{ users { id } }`, nil).Code(t); code != models.Forbidden {
				t.Errorf("user: code = %s, want FORBIDDEN", code)
			}
			r := ts.Do(t, admin.Access, `{ users { id email roles } }`, nil).OK(t)
			if n := len(r.Get("users").([]any)); n != 2 {
				t.Errorf("users: %d, want 2", n)
			}
		})
		t.Run("ObjectDirectiveChecksPermission", func(t *testing.T) {
			r := ts.Do(t, admin.Access, `{ roles { name permissions } }`, nil).OK(t)
			if got := fmt.Sprint(r.Get("roles")); !strings.Contains(got, "roles:read") {
				t.Errorf("roles = %s", got)
			}
			// Take roles:read from the admin role: the object type Role
			// is gated by @auth(permission: "roles:read").
			if err := ts.DB.Exec("DELETE FROM role_permissions WHERE role_name = ? AND permission_name = ?", "admin", "roles:read").Error; err != nil {
				t.Fatal(err)
			}
			if err := ts.Svc.Reload(context.Background()); err != nil {
				t.Fatal(err)
			}
			r = ts.Do(t, admin.Access, `{ roles { name } }`, nil)
			if code := r.Code(t); code != models.Forbidden || !strings.Contains(r.Errors[0].Message, "roles:read") {
				t.Errorf("code = %s (%s), want FORBIDDEN for roles:read", code, r.Errors[0].Message)
			}
		})
		t.Run("StaleTokenDoesNotBlockPublicFields", func(t *testing.T) {
			headers := map[string]string{"Authorization": "Bearer not.a.token"}
			r := authtest.PostGraphQL(t, ts.URL, headers, `mutation { login(email: "user@example.com", password: "password1") { accessToken } }`, nil).OK(t)
			if r.Str("login", "accessToken") == "" {
				t.Error("no access token")
			}
			authtest.PostGraphQL(t, ts.URL, headers, `mutation($t: String!) { refresh(refreshToken: $t) { accessToken } }`, map[string]any{"t": user.Refresh}).OK(t)
		})
	})
}

func TestForgedTokens(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		user := ts.Register(t, "user@example.com", "password1")
		c := authtest.Claims(t, user.Access)
		sign := func(method jwt.SigningMethod, key any, header map[string]any, mutate func(jwt.MapClaims)) string {
			mc := jwt.MapClaims{}
			for k, v := range c {
				mc[k] = v
			}
			if mutate != nil {
				mutate(mc)
			}
			tok := jwt.NewWithClaims(method, mc)
			tok.Header["typ"] = "at+jwt"
			tok.Header["kid"] = ts.Svc.KeyID()
			for k, v := range header {
				if v == nil {
					delete(tok.Header, k)
				} else {
					tok.Header[k] = v
				}
			}
			s, err := tok.SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		parts := strings.Split(user.Access, ".")
		tampered := sign(jwt.SigningMethodHS256, authtest.TestKey, nil, func(m jwt.MapClaims) { m["roles"] = []string{"admin"} })
		tamperedParts := strings.Split(tampered, ".")

		forged := map[string]string{
			"AlgNone":           sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil, nil),
			"WrongKey":          sign(jwt.SigningMethodHS256, []byte("another-key-that-is-32-bytes-long!!"), nil, nil),
			"HS512SameKey":      sign(jwt.SigningMethodHS512, authtest.TestKey, nil, nil),
			"TamperedClaims":    parts[0] + "." + tamperedParts[1] + "." + parts[2],
			"WrongTyp":          sign(jwt.SigningMethodHS256, authtest.TestKey, map[string]any{"typ": "JWT"}, nil),
			"NoTyp":             sign(jwt.SigningMethodHS256, authtest.TestKey, map[string]any{"typ": nil}, nil),
			"UnknownKid":        sign(jwt.SigningMethodHS256, authtest.TestKey, map[string]any{"kid": "other"}, nil),
			"WrongIssuer":       sign(jwt.SigningMethodHS256, authtest.TestKey, nil, func(m jwt.MapClaims) { m["iss"] = "evil" }),
			"WrongAudience":     sign(jwt.SigningMethodHS256, authtest.TestKey, nil, func(m jwt.MapClaims) { m["aud"] = "other-service" }),
			"NoExpiry":          sign(jwt.SigningMethodHS256, authtest.TestKey, nil, func(m jwt.MapClaims) { delete(m, "exp") }),
			"RefreshAsBearer":   user.Refresh,
			"Garbage":           "a.b.c",
			"ExpiredBeyondSkew": sign(jwt.SigningMethodHS256, authtest.TestKey, nil, func(m jwt.MapClaims) { m["exp"] = time.Now().Add(-time.Minute).Unix() }),
		}
		for name, token := range forged {
			t.Run(name, func(t *testing.T) {
				r := ts.Me(t, token)
				if code := r.Code(t); code != models.Unauthenticated {
					t.Errorf("code = %s, want UNAUTHENTICATED", code)
				}
			})
		}
		t.Run("ExpiredByClock", func(t *testing.T) {
			ts.Me(t, user.Access).OK(t)
			ts.Clock.Advance(15*time.Minute + 31*time.Second)
			r := ts.Me(t, user.Access)
			if code := r.Code(t); code != models.Unauthenticated || !strings.Contains(r.Errors[0].Message, "expired") {
				t.Errorf("code = %s (%s), want UNAUTHENTICATED, expired", code, r.Errors[0].Message)
			}
		})
	})
}

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

func TestSetUserRoles(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		admin := ts.Admin(t)
		user := ts.Register(t, "user@example.com", "password1")
		set := func(token, id string, roles []string) authtest.Response {
			return ts.Do(t, token, `mutation($id: ID!, $r: [String!]!) { setUserRoles(userId: $id, roles: $r) { id roles } }`,
				map[string]any{"id": id, "r": roles})
		}
		cases := []struct {
			name, token, id string
			roles           []string
			wantCode        string
		}{
			{"UnknownRole", admin.Access, user.UserID, []string{"user", "wizard"}, models.BadUserInput},
			{"UnknownUser", admin.Access, uuid.NewString(), []string{"user"}, models.NotFound},
			{"NotAUUID", admin.Access, "42", []string{"user"}, models.NotFound},
			{"NotAnAdmin", user.Access, user.UserID, []string{"admin"}, models.Forbidden},
			{"NoToken", "", user.UserID, []string{"admin"}, models.Unauthenticated},
			{"LastAdminKeepsRole", admin.Access, admin.UserID, []string{"user"}, models.BadUserInput},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if code := set(tc.token, tc.id, tc.roles).Code(t); code != tc.wantCode {
					t.Errorf("code = %s, want %s", code, tc.wantCode)
				}
			})
		}
		t.Run("CaseInsensitive", func(t *testing.T) {
			r := set(admin.Access, user.UserID, []string{" Admin", "USER", "user"}).OK(t)
			if got := fmt.Sprint(r.Get("setUserRoles", "roles")); got != "[admin user]" {
				t.Errorf("roles = %s, want [admin user]", got)
			}
			// Role checks use the user's current roles: the token issued
			// before the change already has the new role's power.
			ts.Do(t, user.Access, `{ users { id } }`, nil).OK(t)
			// With two admins, one may lose the role.
			r = set(admin.Access, admin.UserID, []string{"user"}).OK(t)
			if got := fmt.Sprint(r.Get("setUserRoles", "roles")); got != "[user]" {
				t.Errorf("roles = %s, want [user]", got)
			}
		})
	})
}

func TestPasswordHashUpgrade(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		u := ts.Register(t, "imported@example.com", "password1")
		stored := func() string {
			var user models.User
			if err := ts.DB.Where("id = ?", u.UserID).Take(&user).Error; err != nil {
				t.Fatal(err)
			}
			return user.PasswordHash
		}
		if h := stored(); !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
			t.Fatalf("stored hash %q is not argon2id with the configured parameters", h)
		}
		t.Run("FromBcrypt", func(t *testing.T) {
			b, _ := bcrypt.GenerateFromPassword([]byte("imported-pw"), bcrypt.MinCost)
			ts.DB.Model(&models.User{}).Where("id = ?", u.UserID).Update("password_hash", string(b))
			if code := ts.Login(t, "imported@example.com", "wrong-password").Code(t); code != models.Unauthenticated {
				t.Errorf("wrong password: code = %s", code)
			}
			ts.Login(t, "imported@example.com", "imported-pw").OK(t)
			if h := stored(); !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
				t.Errorf("hash not upgraded: %q", h)
			}
			ts.Login(t, "imported@example.com", "imported-pw").OK(t)
		})
		t.Run("FromOlderArgon2Parameters", func(t *testing.T) {
			old := authtest.NewServer(t, dsn, nil, func(c *authtest.Config) { c.Auth.Argon2.Memory = 32 })
			old.Do(t, "", `mutation { register(email: "old@example.com", password: "password1") { accessToken } }`, nil).OK(t)
			ts.Login(t, "old@example.com", "password1").OK(t)
			var user models.User
			ts.DB.Where("email = ?", "old@example.com").Take(&user)
			if !strings.HasPrefix(user.PasswordHash, "$argon2id$v=19$m=64,t=1,p=1$") {
				t.Errorf("hash not upgraded: %q", user.PasswordHash)
			}
		})
	})
}

func TestNoPlaintextSecretsStored(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		const password = "very-secret-password"
		u := ts.Register(t, "user@example.com", password)
		r := authtest.TokensOf(ts.Refresh(t, u.Refresh).OK(t), "refresh")
		tables := []string{"users", "sessions", "refresh_tokens", "revocations"}
		for _, table := range tables {
			var rows []map[string]any
			if err := ts.DB.Table(table).Find(&rows).Error; err != nil {
				t.Fatal(err)
			}
			dump := fmt.Sprint(rows)
			for _, secret := range []string{password, u.Refresh, r.Refresh} {
				if strings.Contains(dump, secret) {
					t.Errorf("table %s holds a plaintext secret", table)
				}
			}
		}
	})
}

func TestInternalErrorsDoNotLeak(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil)
	u := ts.Register(t, "user@example.com", "password1")
	sqlDB, _ := ts.DB.DB()
	sqlDB.Close() // every query now fails inside the driver
	r := ts.Me(t, u.Access)
	if code := r.Code(t); code != models.Internal {
		t.Fatalf("code = %s, want INTERNAL_SERVER_ERROR", code)
	}
	if msg := r.Errors[0].Message; msg != "internal error" {
		t.Errorf("message = %q, want \"internal error\"", msg)
	}
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

func TestHTTPSurface(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil)
	get := func(path string) *http.Response {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := get("/"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET / = %d %s, want the playground", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp := get("/query"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /query = %d, want 405 (POST only)", resp.StatusCode)
	}
	r := ts.Do(t, "", `{ __schema { queryType { name } } }`, nil).OK(t)
	if r.Str("__schema", "queryType", "name") != "Query" {
		t.Errorf("introspection = %v", r.Data)
	}
	if r := ts.Do(t, "", `{ nope }`, nil); r.Code(t) != "GRAPHQL_VALIDATION_FAILED" {
		t.Errorf("unknown field: code = %s", r.Code(t))
	}
}
