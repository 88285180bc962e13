package httpapi_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

const exchangeDoc = `mutation($a: String!, $s: [String!]) { exchangeToken(audience: $a, scope: $s) { accessToken tokenType expiresIn audience scope } }`

// withAudiences lists the downstream audiences (AUTH_AUDIENCES).
func withAudiences(a ...string) authtest.Option {
	return func(c *authtest.Config) { c.Auth.Audiences = a }
}

func exchange(tb testing.TB, ts *authtest.Server, token, audience string, scope []string) authtest.Response {
	tb.Helper()
	vars := map[string]any{"a": audience}
	if scope != nil {
		vars["s"] = scope
	}
	return ts.Do(tb, token, exchangeDoc, vars)
}

// TestExchangeToken: exchangeToken issues a token for one listed
// downstream audience, with the caller's sub and sid, the scope asked
// (a subset of the caller's current permissions, all when omitted), a new
// jti, expiring with the caller's token or after AUTH_EXCHANGE_TTL; authql
// itself refuses it (wrong audience), and so does a verifier of any other
// audience.
func TestExchangeToken(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, withAudiences("orders", "billing"))
		admin := ts.Admin(t)
		verify := func(t *testing.T, audience, token string) error {
			t.Helper()
			_, err := ts.Svc.Keys().Signer("authql", audience, ts.Clock.Now).Verify(context.Background(), token)
			return err
		}
		t.Run("AllPermissionsWhenOmitted", func(t *testing.T) {
			r := exchange(t, ts, admin.Access, "orders", nil).OK(t)
			x := r.Get("exchangeToken").(map[string]any)
			if x["audience"] != "orders" || x["tokenType"] != "Bearer" || x["expiresIn"] != float64(300) {
				t.Errorf("answer %v", x)
			}
			tok := x["accessToken"].(string)
			c, caller := authtest.Claims(t, tok), authtest.Claims(t, admin.Access)
			for _, k := range []string{"iss", "sub", "sid", "client_id", "acr", "aal_max", "auth_time"} {
				if c[k] != caller[k] {
					t.Errorf("%s = %v, want the caller's %v", k, c[k], caller[k])
				}
			}
			if aud, _ := c["aud"].([]any); len(aud) != 1 || aud[0] != "orders" {
				t.Errorf("aud = %v, want [orders]", c["aud"])
			}
			if c["scope"] != "events:read roles:read users:read users:write" || c["jti"] == caller["jti"] || c["exp"].(float64)-c["iat"].(float64) != 300 {
				t.Errorf("scope %v, jti %v (caller's %v), exp-iat %v", c["scope"], c["jti"], caller["jti"], c["exp"].(float64)-c["iat"].(float64))
			}
			if err := verify(t, "orders", tok); err != nil {
				t.Errorf("a verifier of orders: %v", err)
			}
			if err := verify(t, "billing", tok); err == nil {
				t.Error("a verifier of billing accepted a token for orders")
			}
			if r := ts.Me(t, tok); r.Code(t) != models.Unauthenticated || r.Reason(t) != models.ReasonTokenInvalid {
				t.Errorf("authql accepted a token for orders: %+v", r.Errors)
			}
		})
		t.Run("SubsetOfScope", func(t *testing.T) {
			r := exchange(t, ts, admin.Access, "billing", []string{"users:read", "roles:read", "users:read"}).OK(t)
			if got := r.Get("exchangeToken", "scope"); !slices.Equal(toStrings(got), []string{"roles:read", "users:read"}) {
				t.Errorf("scope = %v, want [roles:read users:read]", got)
			}
			if c := authtest.Claims(t, r.Str("exchangeToken", "accessToken")); c["scope"] != "roles:read users:read" {
				t.Errorf("scope claim = %v", c["scope"])
			}
		})
		t.Run("EmptyScope", func(t *testing.T) {
			r := exchange(t, ts, admin.Access, "billing", []string{}).OK(t)
			if _, ok := authtest.Claims(t, r.Str("exchangeToken", "accessToken"))["scope"]; ok {
				t.Error("an empty scope asked, a scope claim given")
			}
		})
		t.Run("PermissionNotHeldForbidden", func(t *testing.T) {
			user := ts.Register(t, "ada@example.com", "password1")
			r := exchange(t, ts, user.Access, "orders", []string{"users:read"})
			if r.Code(t) != models.Forbidden || !strings.Contains(r.Errors[0].Message, `"users:read"`) {
				t.Errorf("errors %+v, want FORBIDDEN naming users:read", r.Errors)
			}
			if r := exchange(t, ts, user.Access, "orders", nil).OK(t); len(toStrings(r.Get("exchangeToken", "scope"))) != 0 {
				t.Errorf("a user without permissions got scope %v", r.Get("exchangeToken", "scope"))
			}
		})
		t.Run("AudienceNotAllowed", func(t *testing.T) {
			for _, a := range []string{"authql", "inventory", "", strings.Repeat("a", 300)} {
				if r := exchange(t, ts, admin.Access, a, nil); r.Code(t) != models.BadUserInput {
					t.Errorf("audience %.20q: %+v, want BAD_USER_INPUT", a, r.Errors)
				}
			}
			if r := exchange(t, ts, admin.Access, "orders", []string{"users read"}); r.Code(t) != models.BadUserInput {
				t.Errorf("a scope with a space: %+v, want BAD_USER_INPUT", r.Errors)
			}
		})
		t.Run("NoToken", func(t *testing.T) {
			if r := exchange(t, ts, "", "orders", nil); r.Reason(t) != models.ReasonNoToken {
				t.Errorf("%+v, want NO_TOKEN", r.Errors)
			}
		})
		t.Run("Audited", func(t *testing.T) {
			if err := ts.Svc.FlushAudit(context.Background()); err != nil {
				t.Fatal(err)
			}
			var n int64
			ts.DB.Model(&models.AuditEvent{}).Where("type = ? AND user_id = ? AND outcome = ?", models.AuditTokenExchanged, admin.UserID, models.AuditSuccess).Count(&n)
			if n == 0 {
				t.Error("no TOKEN_EXCHANGED event")
			}
		})
		t.Run("ExpiresWithTheCaller", func(t *testing.T) {
			s := authtest.TokensOf(ts.Login(t, "admin@example.com", "admin-password").OK(t), "login")
			ts.Clock.Advance(13 * time.Minute)
			r := exchange(t, ts, s.Access, "orders", nil).OK(t)
			c, caller := authtest.Claims(t, r.Str("exchangeToken", "accessToken")), authtest.Claims(t, s.Access)
			if c["exp"] != caller["exp"] || r.Get("exchangeToken", "expiresIn").(float64) > 120 {
				t.Errorf("exp %v, expiresIn %v; want the caller's exp %v, at most 120 s", c["exp"], r.Get("exchangeToken", "expiresIn"), caller["exp"])
			}
		})
	})
}

// TestExchangedTokenRevokedWithSession: an exchanged token carries the
// caller's sid, so the session's revocation (what the revocation feed
// sends downstream) is the exchanged token's; after a logout the caller
// can exchange no more.
func TestExchangedTokenRevokedWithSession(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, withAudiences("orders"))
		s := ts.Register(t, "ada@example.com", "password1")
		tok := exchange(t, ts, s.Access, "orders", nil).OK(t).Str("exchangeToken", "accessToken")
		sid := authtest.SID(t, s.Access)
		if got := authtest.Claims(t, tok)["sid"]; got != sid {
			t.Fatalf("sid = %v, want the caller's %s", got, sid)
		}
		ts.Do(t, s.Access, `mutation { logout }`, nil).OK(t)
		var sess models.Session
		if err := ts.DB.Where("id = ?", sid).Take(&sess).Error; err != nil || sess.RevokedAt == nil {
			t.Errorf("session %s: revoked_at %v, err %v; want it revoked", sid, sess.RevokedAt, err)
		}
		if r := exchange(t, ts, s.Access, "orders", nil); r.Reason(t) != models.ReasonTokenRevoked {
			t.Errorf("exchange after logout: %+v, want TOKEN_REVOKED", r.Errors)
		}
	})
}

// TestExchangeRateLimited: each exchange counts against the refresh rate,
// per user.
func TestExchangeRateLimited(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, withAudiences("orders"), authtest.WithLimits(auth.Limits{Refresh: auth.Rate{N: 2, Per: time.Minute}}))
		s := ts.Register(t, "ada@example.com", "password1")
		exchange(t, ts, s.Access, "orders", nil).OK(t)
		exchange(t, ts, s.Access, "orders", nil).OK(t)
		if r := exchange(t, ts, s.Access, "orders", nil); r.Code(t) != models.RateLimited {
			t.Errorf("third exchange: %+v, want RATE_LIMITED", r.Errors)
		}
	})
}

// TestExchangeNotConfigured: without AUTH_AUDIENCES every audience is
// refused.
func TestExchangeNotConfigured(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		s := ts.Register(t, "ada@example.com", "password1")
		if r := exchange(t, ts, s.Access, "orders", nil); r.Code(t) != models.BadUserInput || !strings.Contains(r.Errors[0].Message, "audience not allowed") {
			t.Errorf("%+v, want BAD_USER_INPUT audience not allowed", r.Errors)
		}
	})
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
