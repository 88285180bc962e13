package authz_test

import (
	"context"
	"slices"
	"testing"

	"github.com/authql/authql/auth/keys"
	"github.com/authql/authql/authz"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
)

// TestExchangedTokenForOneService: a token from exchangeToken for the
// audience "orders" is accepted by a service configured for "orders", with
// the granted scope only, and refused (TOKEN_INVALID) by one configured
// for authql's own audience; the caller's own token is refused by
// "orders".
func TestExchangedTokenForOneService(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil, authtest.WithAlg(keys.AlgEdDSA), authtest.WithIssuerURL(),
			func(c *authtest.Config) { c.Auth.Audiences = []string{"orders"} })
		admin := ts.Admin(t)
		r := ts.Do(t, admin.Access, `mutation { exchangeToken(audience: "orders", scope: ["roles:read"]) { accessToken } }`, nil).OK(t)
		exchanged := r.Str("exchangeToken", "accessToken")

		verifier := func(audience string) *authz.Verifier {
			v, err := authz.New(context.Background(), authz.Config{Issuer: ts.URL, Audience: audience, Now: ts.Clock.Now, NoRevocationFeed: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(v.Close)
			return v
		}
		orders, own := verifier("orders"), verifier("authql")
		p, err := orders.Verify(context.Background(), exchanged)
		if err != nil {
			t.Fatalf("orders refuses its exchanged token: %v", err)
		}
		if !slices.Equal(p.Scope, []string{"roles:read"}) || p.SessionID != authtest.SID(t, admin.Access) {
			t.Errorf("principal %+v: want scope [roles:read] and the caller's session", p)
		}
		if _, err := own.Verify(context.Background(), exchanged); authz.ErrorReason(err) != authz.ReasonTokenInvalid {
			t.Errorf("authql's audience accepts a token for orders: %v", err)
		}
		if _, err := orders.Verify(context.Background(), admin.Access); authz.ErrorReason(err) != authz.ReasonTokenInvalid {
			t.Errorf("orders accepts authql's own token: %v", err)
		}
	})
}
