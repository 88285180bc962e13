package main

import (
	"testing"

	"github.com/authql/authql/httpapi"
	"github.com/authql/authql/internal/authtest"
)

// The command's tests use the shared helpers of internal/authtest under
// these short names.

type (
	testConfig  = authtest.Config
	serverOpt   = authtest.Option
	gqlResponse = authtest.Response
	tokens      = authtest.Tokens
	syncBuffer  = authtest.SyncBuffer
)

var (
	newClock     = authtest.NewClock
	withPool     = authtest.WithPool
	postGraphQL  = authtest.PostGraphQL
	postLoad     = authtest.PostLoad
	bearer       = authtest.Bearer
	tokensOf     = authtest.TokensOf
	claims       = authtest.Claims
	jwtSegment   = authtest.JWTSegment
	creds        = authtest.Creds
	setCookie    = authtest.SetCookie
	probe        = authtest.Probe
	scrape       = authtest.Scrape
	logLines     = authtest.LogLines
	requestLines = authtest.RequestLines
	sid          = authtest.SID
	publicKey    = authtest.PublicKey
	header       = authtest.Header
	kid          = authtest.KID
	forge        = authtest.Forge
)

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	authtest.WaitFor(t, what, cond)
}

// testServer is authtest's, with the names the command's tests call.
type testServer struct{ *authtest.Server }

// newTestServer starts a test server (see authtest.NewServer).
func newTestServer(tb testing.TB, dsn string, c *authtest.Clock, opts ...serverOpt) *testServer {
	tb.Helper()
	return &testServer{authtest.NewServer(tb, dsn, c, opts...)}
}

func (ts *testServer) register(tb testing.TB, email, password string) tokens {
	tb.Helper()
	return ts.Register(tb, email, password)
}

// jwks is authtest's, with the names the command's tests call.
type jwks struct{ authtest.JWKS }

func getJWKS(tb testing.TB, baseURL string) jwks {
	tb.Helper()
	return jwks{authtest.GetJWKS(tb, baseURL)}
}

func (s jwks) key(kid string) map[string]string { return s.Key(kid) }

const (
	payloadFields       = authtest.PayloadFields
	raceEnabled         = authtest.RaceEnabled
	raceDBTimeout       = authtest.RaceDBTimeout
	appOrigin           = authtest.AppOrigin
	loginDoc            = authtest.LoginDoc
	registerDoc         = authtest.RegisterDoc
	refreshDoc          = authtest.RefreshDoc
	refreshCookieDoc    = authtest.RefreshCookieDoc
	examplePath         = httpapi.ExamplePath
	statusClientClosed  = httpapi.StatusClientClosed
	outcomeClientClosed = httpapi.OutcomeClientClosed
)
