package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/models"
)

// testKey signs the tokens of test servers.
var testKey = []byte("test-signing-key-of-at-least-32-bytes!!")

// cheapArgon2 keeps tests fast; TestDefaultArgon2 covers the real default.
var cheapArgon2 = auth.Argon2Params{Memory: 64, Time: 1, Threads: 1}

// clock is a settable clock shared by a test's servers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testServer is the real handler over a real database, served over HTTP.
type testServer struct {
	URL     string
	Handler http.Handler // the same handler, for in-process calls (fuzzing)
	DB      *gorm.DB
	Svc     *auth.Service
	Clock   *clock
}

// testConfig is what a test server is built from: the service's
// configuration and the HTTP layer's.
type testConfig struct {
	Auth auth.Config
	HTTP config
	DB   models.Options
	Log  io.Writer // the server's log (default: discarded)
	// WriteTimeout is the HTTP server's (0: none, httptest's default).
	WriteTimeout time.Duration
}

// serverOpt adjusts the configuration of a test server.
type serverOpt func(*testConfig)

func withReuseInterval(d time.Duration) serverOpt {
	return func(c *testConfig) { c.Auth.ReuseInterval = d }
}

// withLimits sets the rate limits (test servers have none by default).
func withLimits(l auth.Limits) serverOpt {
	return func(c *testConfig) { c.Auth.Limits = l }
}

// withPool sizes the server's connection pool.
func withPool(o models.Options) serverOpt {
	return func(c *testConfig) { c.DB = o }
}

// withAlg makes the server sign with keys of alg generated in its database
// (HS256 included) instead of the fixed testKey.
func withAlg(alg string) serverOpt {
	return func(c *testConfig) { c.Auth.JWTAlg = alg }
}

// newTestServer starts authql's handler on dsn (migrating it) with a
// settable clock; the server and database close when the test ends.
// raceDBTimeout is the database deadline (AUTH_DB_TIMEOUT) of the test
// servers under the race detector, unless a test sets its own. The race
// detector slows pure-Go SQLite about tenfold, so under the load tests'
// 32 concurrent clients a statement queued for SQLite's write lock or a
// pooled connection waited past the default 5 s (seen in CI), failing
// tests that measure other things. The fault tests, which test the
// deadline, set theirs.
const raceDBTimeout = time.Minute

func newTestServer(tb testing.TB, dsn string, c *clock, opts ...serverOpt) *testServer {
	tb.Helper()
	if c == nil {
		c = newClock()
	}
	cfg := testConfig{
		Auth: auth.Config{
			Issuer: "authql", Audience: "authql",
			AccessTTL: 15 * time.Minute, RefreshTTL: 720 * time.Hour, ReuseInterval: 10 * time.Second,
			Signup: true, Argon2: cheapArgon2, Now: c.Now,
		},
		HTTP: defaultConfig(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	if raceEnabled && cfg.DB.Timeout == 0 {
		cfg.DB.Timeout = raceDBTimeout
	}
	db, _, err := models.Open(dsn, cfg.DB)
	if err != nil {
		tb.Fatalf("open %s: %v", dsn, err)
	}
	sqlDB, _ := db.DB()
	tb.Cleanup(func() { sqlDB.Close() })
	ctx := context.Background()
	if err := models.Migrate(ctx, db); err != nil {
		tb.Fatal(err)
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	log := slog.New(slog.NewTextHandler(cfg.Log, nil))
	key := testKey
	if cfg.Auth.JWTAlg != "" {
		key = nil // withAlg: keys from the key store
	}
	m := newMetrics()
	if cfg.Auth.Observer == nil {
		cfg.Auth.Observer = m
	}
	svc, err := auth.NewService(ctx, db, key, cfg.Auth, log)
	if err != nil {
		tb.Fatal(err)
	}
	// Registered after the database's Close, so run before it.
	tb.Cleanup(func() { svc.Close(context.Background()) })
	m.watch(sqlDB, svc)
	h := newServer(cfg.HTTP, svc, log, m, newReadiness(sqlDB, svc, log))
	hs := httptest.NewUnstartedServer(h)
	hs.Config.WriteTimeout = cfg.WriteTimeout
	hs.Start()
	tb.Cleanup(hs.Close)
	return &testServer{URL: hs.URL, Handler: h, DB: db, Svc: svc, Clock: c}
}

// gqlError is one GraphQL error of a response.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// gqlResponse is a decoded GraphQL response.
type gqlResponse struct {
	Status int
	Data   map[string]any `json:"data"`
	Errors []gqlError     `json:"errors"`
	// Header is the HTTP response's (cookies, CORS).
	Header http.Header `json:"-"`
}

// Code returns the extensions.code of the only error, failing otherwise.
func (r gqlResponse) Code(tb testing.TB) string {
	tb.Helper()
	if len(r.Errors) != 1 {
		tb.Fatalf("want exactly one error, got %+v (data %v)", r.Errors, r.Data)
	}
	code, _ := r.Errors[0].Extensions["code"].(string)
	return code
}

// OK fails the test if the response has errors.
func (r gqlResponse) OK(tb testing.TB) gqlResponse {
	tb.Helper()
	if r.Status != http.StatusOK || len(r.Errors) > 0 {
		tb.Fatalf("want success, got status %d errors %+v", r.Status, r.Errors)
	}
	return r
}

// Get walks the data by keys: r.Get("login", "user", "id").
func (r gqlResponse) Get(keys ...string) any {
	var v any = r.Data
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// Str is Get for strings.
func (r gqlResponse) Str(keys ...string) string {
	s, _ := r.Get(keys...).(string)
	return s
}

// do posts a GraphQL document with an optional bearer token.
func (ts *testServer) do(tb testing.TB, token, query string, vars map[string]any) gqlResponse {
	tb.Helper()
	return postGraphQL(tb, ts.URL, map[string]string{"Authorization": bearer(token)}, query, vars)
}

func bearer(token string) string {
	if token == "" {
		return ""
	}
	return "Bearer " + token
}

func postGraphQL(tb testing.TB, url string, headers map[string]string, query string, vars map[string]any) gqlResponse {
	tb.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, url+"/query", bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := gqlResponse{Status: resp.StatusCode, Header: resp.Header}
	if err := json.Unmarshal(raw, &out); err != nil {
		tb.Fatalf("decode response %q: %v", raw, err)
	}
	return out
}

const payloadFields = `accessToken refreshToken tokenType expiresIn user { id email roles createdAt }`

// tokens is a signed-in session's pair.
type tokens struct{ Access, Refresh, UserID string }

func tokensOf(r gqlResponse, field string) tokens {
	return tokens{Access: r.Str(field, "accessToken"), Refresh: r.Str(field, "refreshToken"), UserID: r.Str(field, "user", "id")}
}

func (ts *testServer) register(tb testing.TB, email, password string) tokens {
	tb.Helper()
	r := ts.do(tb, "", `mutation($e: String!, $p: String!) { register(email: $e, password: $p) { `+payloadFields+` } }`,
		map[string]any{"e": email, "p": password}).OK(tb)
	return tokensOf(r, "register")
}

func (ts *testServer) login(tb testing.TB, email, password string) gqlResponse {
	tb.Helper()
	return ts.do(tb, "", `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { `+payloadFields+` } }`,
		map[string]any{"e": email, "p": password})
}

func (ts *testServer) refresh(tb testing.TB, refreshToken string) gqlResponse {
	tb.Helper()
	return ts.do(tb, "", `mutation($t: String!) { refresh(refreshToken: $t) { `+payloadFields+` } }`,
		map[string]any{"t": refreshToken})
}

func (ts *testServer) me(tb testing.TB, token string) gqlResponse {
	tb.Helper()
	return ts.do(tb, token, `{ me { id email roles } }`, nil)
}

// admin creates an admin through the service, as AUTH_ADMIN_EMAIL would,
// and signs it in.
func (ts *testServer) admin(tb testing.TB) tokens {
	tb.Helper()
	if err := ts.Svc.EnsureAdmin(context.Background(), "admin@example.com", "admin-password"); err != nil {
		tb.Fatal(err)
	}
	return tokensOf(ts.login(tb, "admin@example.com", "admin-password").OK(tb), "login")
}

// claims decodes a JWT's payload without verifying it.
func claims(tb testing.TB, jwt string) map[string]any {
	tb.Helper()
	return jwtSegment(tb, jwt, 1)
}

// jwtSegment decodes the i-th segment of a JWT (0 the header, 1 the
// payload) without verifying it.
func jwtSegment(tb testing.TB, jwt string, i int) map[string]any {
	tb.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		tb.Fatalf("not a JWT: %q", jwt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// sqlCounter counts the SQL statements run through a *gorm.DB: GORM reports
// every statement it executes to its logger, and this logger counts them.
type sqlCounter struct {
	logger.Interface
	n atomic.Int64
}

func (c *sqlCounter) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	c.n.Add(1)
}

func (c *sqlCounter) LogMode(logger.LogLevel) logger.Interface { return c }

// countSQL makes db count its statements from now on (for the rest of the
// test) and returns the counter.
func countSQL(tb testing.TB, db *gorm.DB) *sqlCounter {
	tb.Helper()
	c := &sqlCounter{Interface: logger.Discard}
	old := db.Config.Logger
	db.Config.Logger = c
	tb.Cleanup(func() { db.Config.Logger = old })
	return c
}
