package authz_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authql/authql/auth/keys"
	"github.com/authql/authql/authz"
	"github.com/authql/authql/examples/service/api"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/authzcases"
	"github.com/authql/authql/internal/testdb"
)

// netProbe is an HTTP client's transport over real connections that
// counts JWKS requests, can fail them, and can cut every open connection.
type netProbe struct {
	base     *http.Transport
	jwks     atomic.Int32
	failJWKS atomic.Bool
	// hangJWKS, when set, sends JWKS requests to that server instead
	// (one that holds them); jwksInFlight counts those not yet answered.
	hangJWKS     atomic.Pointer[url.URL]
	jwksInFlight atomic.Int32
	mu           sync.Mutex
	conns        []net.Conn
}

func newNetProbe() *netProbe {
	p := &netProbe{}
	d := &net.Dialer{}
	p.base = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
		}
		return c, err
	}}
	return p
}

func (p *netProbe) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/jwks.json") {
		p.jwks.Add(1)
		if p.failJWKS.Load() {
			return nil, errors.New("JWKS unreachable (test)")
		}
		if u := p.hangJWKS.Load(); u != nil {
			r = r.Clone(r.Context())
			r.URL.Scheme, r.URL.Host, r.Host = u.Scheme, u.Host, u.Host
			p.jwksInFlight.Add(1)
			defer p.jwksInFlight.Add(-1)
		}
	}
	return p.base.RoundTrip(r)
}

// cut closes every connection made so far.
func (p *netProbe) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// newVerifier is a verifier on e's authql over probe, reading the feed
// with the service account's tokens when feed is set.
func newVerifier(t *testing.T, e *authzcases.Env, probe *netProbe, cfg authz.Config, feedToken func(context.Context) (string, error)) *authz.Verifier {
	t.Helper()
	cfg.Issuer, cfg.Audience, cfg.Now, cfg.FeedToken = e.TS.URL, "authql", e.TS.Clock.Now, feedToken
	cfg.NoRevocationFeed = feedToken == nil
	cfg.HTTPClient = &http.Client{Transport: probe}
	v, err := authz.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// serviceTokens makes the service account and returns its token source.
func serviceTokens(t *testing.T, e *authzcases.Env) *api.TokenSource {
	t.Helper()
	acct := e.TS.Register(t, authzcases.ServiceEmail, authzcases.ServicePassword)
	if _, err := e.TS.Svc.SetUserRoles(context.Background(), acct.UserID, []string{"service"}); err != nil {
		t.Fatal(err)
	}
	return &api.TokenSource{Endpoint: e.TS.URL + "/query", Email: authzcases.ServiceEmail, Password: authzcases.ServicePassword, Now: e.TS.Clock.Now}
}

// TestFeedDownFailsClosed: with the feed never connected, or cut for
// longer than FeedMaxLag, every token is refused with SERVICE_UNAVAILABLE
// and retryAfter; once the feed is back, tokens pass again.
func TestFeedDownFailsClosed(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := authzcases.NewEnv(t, dsn)
		ctx := context.Background()

		never := newVerifier(t, e, newNetProbe(), authz.Config{}, func(context.Context) (string, error) {
			return "", errors.New("no token (test)")
		})
		_, err := never.Verify(ctx, e.User.Access)
		if authz.ErrorCode(err) != authz.CodeServiceUnavailable || !strings.Contains(err.Error(), "retry") {
			t.Fatalf("feed never connected: %v, want SERVICE_UNAVAILABLE", err)
		}

		probe := newNetProbe()
		tokens := serviceTokens(t, e)
		var down atomic.Bool
		v := newVerifier(t, e, probe, authz.Config{FeedMaxLag: 200 * time.Millisecond}, func(ctx context.Context) (string, error) {
			if down.Load() {
				return "", errors.New("authql unreachable (test)")
			}
			return tokens.Token(ctx)
		})
		authtest.WaitFor(t, "the feed to connect", v.FeedConnected)
		if _, err := v.Verify(ctx, e.User.Access); err != nil {
			t.Fatalf("feed up: %v", err)
		}
		down.Store(true)
		probe.cut()
		authtest.WaitFor(t, "SERVICE_UNAVAILABLE past FeedMaxLag", func() bool {
			_, err := v.Verify(ctx, e.User.Access)
			return authz.ErrorCode(err) == authz.CodeServiceUnavailable
		})
		down.Store(false)
		authtest.WaitFor(t, "tokens accepted after the feed is back", func() bool {
			_, err := v.Verify(ctx, e.User.Access)
			return err == nil
		})
	})
}

// TestUnknownKIDThrottled: tokens naming kids the JWKS lacks refetch it at
// most once per interval, whatever their number; each is TOKEN_INVALID.
func TestUnknownKIDThrottled(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := authzcases.NewEnv(t, dsn)
		probe := newNetProbe()
		v := newVerifier(t, e, probe, authz.Config{}, nil)
		start := probe.jwks.Load()
		for i := range 20 {
			tok := authzcases.Find(t, "UnknownKID").Token(t, e) // a key authql never had
			if _, err := v.Verify(context.Background(), tok); authz.ErrorReason(err) != authz.ReasonTokenInvalid {
				t.Fatalf("token %d of an unknown kid: %v, want TOKEN_INVALID", i, err)
			}
		}
		if n := probe.jwks.Load() - start; n > 1 {
			t.Errorf("20 unknown kids fetched the JWKS %d times, want at most 1", n)
		}
	})
}

// TestFailedFetchKeepsKeys: when the JWKS cannot be fetched once its
// max-age has passed, the last good key set keeps verifying.
func TestFailedFetchKeepsKeys(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := authzcases.NewEnv(t, dsn)
		probe := newNetProbe()
		v := newVerifier(t, e, probe, authz.Config{}, nil)
		probe.failJWKS.Store(true)
		before := probe.jwks.Load()
		e.TS.Clock.Advance(5 * time.Minute) // past max-age, within the token's life
		fresh := authtest.TokensOf(e.TS.Login(t, "user@example.com", "user-password").OK(t), "login").Access
		if _, err := v.Verify(context.Background(), fresh); err != nil {
			t.Fatalf("with the JWKS unreachable: %v, want the last key set to verify", err)
		}
		// The refetch runs in the background (TestHungJWKSDoesNotDelayKnownKID).
		authtest.WaitFor(t, "the stale key set to be refetched", func() bool { return probe.jwks.Load() > before })
	})
}

// TestIssuerMismatchRefused: a discovery document naming another issuer
// than the one configured is refused (RFC 8414 §3.3).
func TestIssuerMismatchRefused(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil, authtest.WithIssuerURL())
	_, err := authz.New(context.Background(), authz.Config{Issuer: ts.URL + "/", Audience: "authql", NoRevocationFeed: true})
	if err == nil || !strings.Contains(err.Error(), "names issuer") {
		t.Errorf("New with %s/: %v, want the issuer refused", ts.URL, err)
	}
}

// TestNoFeedMustBeExplicit: a nil FeedToken is refused at New with an
// error that names both ways out; NoRevocationFeed runs without the feed
// and logs a warning at New.
func TestNoFeedMustBeExplicit(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil, authtest.WithAlg(keys.AlgEdDSA), authtest.WithIssuerURL())
	_, err := authz.New(context.Background(), authz.Config{Issuer: ts.URL, Audience: "authql"})
	if err == nil || !strings.Contains(err.Error(), "FeedToken is nil") || !strings.Contains(err.Error(), "NoRevocationFeed") {
		t.Errorf("New without FeedToken: %v, want an error naming FeedToken and NoRevocationFeed", err)
	}
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	v, err := authz.New(context.Background(), authz.Config{Issuer: ts.URL, Audience: "authql", NoRevocationFeed: true, Logger: log})
	if err != nil {
		t.Fatalf("New with NoRevocationFeed: %v", err)
	}
	defer v.Close()
	mu.Lock()
	got := logs.String()
	mu.Unlock()
	if !strings.Contains(got, "level=WARN") || !strings.Contains(got, "NoRevocationFeed") {
		t.Errorf("New with NoRevocationFeed logged %q, want a warning", got)
	}
	_, err = authz.New(context.Background(), authz.Config{Issuer: ts.URL, Audience: "authql", NoRevocationFeed: true,
		FeedToken: func(context.Context) (string, error) { return "", nil }})
	if err == nil {
		t.Error("New with both FeedToken and NoRevocationFeed: no error")
	}
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestHungJWKSDoesNotDelayKnownKID: once the key set's max-age has passed,
// tokens of a known kid are verified with the cached keys while one
// refetch runs in the background, even when the JWKS server holds it.
func TestHungJWKSDoesNotDelayKnownKID(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := authzcases.NewEnv(t, dsn)
		probe := newNetProbe()
		v := newVerifier(t, e, probe, authz.Config{}, nil)
		arrived, release := make(chan struct{}, 16), make(chan struct{})
		hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			select { // held until the test ends or the client gives up
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(hung.Close)
		t.Cleanup(func() { close(release) })
		u, _ := url.Parse(hung.URL)
		probe.hangJWKS.Store(u)
		before := probe.jwks.Load()
		e.TS.Clock.Advance(5 * time.Minute) // past max-age, within the token's life
		fresh := authtest.TokensOf(e.TS.Login(t, "user@example.com", "user-password").OK(t), "login").Access
		if _, err := v.Verify(context.Background(), fresh); err != nil {
			t.Fatalf("a known kid past max-age: %v", err)
		}
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("no refetch reached the JWKS server")
		}
		for i := range 5 {
			if _, err := v.Verify(context.Background(), fresh); err != nil {
				t.Fatalf("verification %d during the hung refetch: %v", i, err)
			}
			// A verification that had waited for the refetch would return
			// only once it had ended.
			if n := probe.jwksInFlight.Load(); n != 1 {
				t.Fatalf("verification %d returned with %d JWKS requests in flight, want the one held", i, n)
			}
		}
		if n := probe.jwks.Load() - before; n != 1 {
			t.Errorf("%d JWKS requests past max-age, want the one background refetch", n)
		}
	})
}
