package authzcases

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/authql/authql/authz"
	"github.com/authql/authql/examples/service/api"
	"github.com/authql/authql/internal/authtest"
)

// ServiceQuery is a document whose only field is gated by rule on the
// example service (examples/service/api/schema.graphqls).
func ServiceQuery(rule Rule) string {
	switch rule {
	case AdminRole:
		return `{ adminReport }`
	case RolesRead:
		return `{ roleCatalog }`
	}
	return `{ whoami { userId } }`
}

// Service is the example service, in front of authz configured on an
// Env's authql, served over real HTTP.
type Service struct {
	URL string
	V   *authz.Verifier
}

// Service account of the feed: a user with authql's role `service`.
const (
	ServiceEmail    = "service@example.com"
	ServicePassword = "service-password"
)

// StartService starts the example service on e's authql, with the feed
// read by a service account, and waits for the feed to connect. The
// verifier shares authql's test clock.
func StartService(t *testing.T, e *Env) *Service {
	t.Helper()
	acct := e.TS.Register(t, ServiceEmail, ServicePassword)
	if _, err := e.TS.Svc.SetUserRoles(context.Background(), acct.UserID, []string{"service"}); err != nil {
		t.Fatalf("grant the role service: %v", err)
	}
	tokens := &api.TokenSource{Endpoint: e.TS.URL + "/query", Email: ServiceEmail, Password: ServicePassword, Now: e.TS.Clock.Now}
	v, err := authz.New(context.Background(), authz.Config{
		Issuer: e.TS.URL, Audience: "authql", FeedToken: tokens.Token, Now: e.TS.Clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	mux := http.NewServeMux()
	mux.Handle("/query", v.Middleware(api.NewHandler(v)))
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	authtest.WaitFor(t, "the revocation feed to connect", v.FeedConnected)
	return &Service{URL: hs.URL, V: v}
}

// Do posts query to the service with token.
func (s *Service) Do(t *testing.T, token, query string) authtest.Response {
	t.Helper()
	return authtest.PostGraphQL(t, s.URL, map[string]string{"Authorization": authtest.Bearer(token)}, query, nil)
}
