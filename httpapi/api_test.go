package httpapi_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

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
		sign := func(method jwt.SigningMethod, key any, header map[string]any, mutate func(jwt.MapClaims)) string {
			h := map[string]any{"kid": ts.Svc.KeyID()}
			maps.Copy(h, header)
			return authtest.ForgeHeader(t, user.Access, method, key, h, mutate)
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
