// Package authtest holds the helpers shared by authql's HTTP scenario tests
// and the command's tests: a settable clock, cheap password hashing, a
// test server (the real handler over a real database), GraphQL requests
// and their decoded answers, and token inspection and forging.
package authtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/httpapi"
	"github.com/authql/authql/internal/testclock"
	"github.com/authql/authql/models"
)

// TestKey signs the tokens of test servers.
var TestKey = []byte("test-signing-key-of-at-least-32-bytes!!")

// CheapArgon2 keeps tests fast; TestDefaultArgon2 covers the real default.
var CheapArgon2 = auth.Argon2Params{Memory: 64, Time: 1, Threads: 1}

// Clock is a settable clock shared by a test's servers.
type Clock = testclock.Clock

// NewClock returns a clock set to now, to the second.
func NewClock() *Clock { return testclock.New(time.Now().UTC().Truncate(time.Second)) }

// Server is the real handler over a real database, served over HTTP.
type Server struct {
	URL     string
	Handler http.Handler // the same handler, for in-process calls (fuzzing)
	DB      *gorm.DB
	Svc     *auth.Service
	Clock   *Clock
	Metrics *httpapi.Metrics
	// Mail is the mail sender (WithMail), nil without one.
	Mail *mail.Sender
}

// Config is what a test server is built from: the service's
// configuration and the HTTP layer's.
type Config struct {
	Auth auth.Config
	HTTP httpapi.Config
	DB   models.Options
	Log  io.Writer // the server's log (default: discarded)
	// WriteTimeout is the HTTP server's (0: none, httptest's default).
	WriteTimeout time.Duration
	// SMTPURL, when set (WithMail), gives the service a mail.Composer and
	// runs a mail.Sender delivering to it.
	SMTPURL string
	// IssuerURL (WithIssuerURL): the issuer is the server's own URL.
	IssuerURL bool
}

// Option adjusts the configuration of a test server.
type Option func(*Config)

// WithReuseInterval sets the refresh token reuse interval.
func WithReuseInterval(d time.Duration) Option {
	return func(c *Config) { c.Auth.ReuseInterval = d }
}

// WithLimits sets the rate limits (test servers have none by default).
func WithLimits(l auth.Limits) Option {
	return func(c *Config) { c.Auth.Limits = l }
}

// Mail settings of test servers (WithMail): links point at MailAppURL.
const (
	MailFrom   = "authql <no-reply@authql.test>"
	MailAppURL = "http://app.test"
)

// WithMail has the server mail: its service gets a mail.Composer (From
// MailFrom, AppURL MailAppURL, sealing with Auth.Encryption's keys if
// set) and a mail.Sender delivers the queued mails over SMTP to smtpURL
// (smtptest.Start(t).URL), woken by each commit that queued one
// (auth.Config.MailQueued) and stopped when the test ends.
func WithMail(smtpURL string) Option {
	return func(c *Config) { c.SMTPURL = smtpURL }
}

// WithPool sizes the server's connection pool.
func WithPool(o models.Options) Option {
	return func(c *Config) { c.DB = o }
}

// WithAlg makes the server sign with keys of alg generated in its database
// (HS256 included) instead of the fixed TestKey.
func WithAlg(alg string) Option {
	return func(c *Config) { c.Auth.JWTAlg = alg }
}

// RaceDBTimeout is the database deadline (AUTH_DB_TIMEOUT) of the test
// servers under the race detector, unless a test sets its own. The race
// detector slows pure-Go SQLite about tenfold, so under the load tests'
// 32 concurrent clients a statement queued for SQLite's write lock or a
// pooled connection waited past the default 5 s (seen in CI), failing
// tests that measure other things. The fault tests, which test the
// deadline, set theirs.
const RaceDBTimeout = time.Minute

// NewServer starts authql's handler on dsn (migrating it) with a settable
// clock (a new one when c is nil); the server and database close when the
// test ends.
func NewServer(tb testing.TB, dsn string, c *Clock, opts ...Option) *Server {
	tb.Helper()
	if c == nil {
		c = NewClock()
	}
	cfg := Config{
		Auth: auth.Config{
			Issuer: "authql", Audience: "authql",
			AccessTTL: 15 * time.Minute, RefreshTTL: 720 * time.Hour, ReuseInterval: 10 * time.Second,
			Signup: true, Argon2: CheapArgon2, Now: c.Now,
			// Passkeys for an Authenticator (see webauthn.go).
			WebAuthnRPID: WebAuthnRPID, WebAuthnOrigins: []string{WebAuthnOrigin},
		},
		HTTP: httpapi.DefaultConfig(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	if RaceEnabled && cfg.DB.Timeout == 0 {
		cfg.DB.Timeout = RaceDBTimeout
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
	key := TestKey
	if cfg.Auth.JWTAlg != "" {
		key = nil // withAlg: keys from the key store
	}
	var ln net.Listener
	if cfg.IssuerURL {
		// The listener first, so that the issuer can be its URL.
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			tb.Fatal(err)
		}
		cfg.Auth.Issuer = "http://" + ln.Addr().String()
	}
	m := httpapi.NewMetrics()
	if cfg.Auth.Observer == nil {
		cfg.Auth.Observer = m
	}
	var sender *mail.Sender
	if cfg.SMTPURL != "" {
		composeMail(tb, &cfg, &sender)
	}
	svc, err := auth.NewService(ctx, db, key, cfg.Auth, log)
	if err != nil {
		tb.Fatal(err)
	}
	// Registered after the database's Close, so run before it.
	tb.Cleanup(func() { svc.Close(context.Background()) })
	if cfg.SMTPURL != "" {
		sender = startSender(tb, db, cfg, m, svc, log)
	}
	m.Watch(sqlDB, svc)
	h := httpapi.New(cfg.HTTP, svc, log, m, httpapi.NewReadiness(sqlDB, svc, log))
	hs := httptest.NewUnstartedServer(h)
	if ln != nil {
		hs.Listener.Close()
		hs.Listener = ln
	}
	hs.Config.WriteTimeout = cfg.WriteTimeout
	hs.Start()
	tb.Cleanup(hs.Close)
	return &Server{URL: hs.URL, Handler: h, DB: db, Svc: svc, Clock: c, Metrics: m, Mail: sender}
}

// GQLError is one GraphQL error of a response.
type GQLError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Response is a decoded GraphQL response.
type Response struct {
	Status int
	Data   map[string]any `json:"data"`
	Errors []GQLError     `json:"errors"`
	// Header is the HTTP response's (cookies, CORS).
	Header http.Header `json:"-"`
}

// Code returns the extensions.code of the only error, failing otherwise.
func (r Response) Code(tb testing.TB) string {
	tb.Helper()
	if len(r.Errors) != 1 {
		tb.Fatalf("want exactly one error, got %+v (data %v)", r.Errors, r.Data)
	}
	code, _ := r.Errors[0].Extensions["code"].(string)
	return code
}

// Reason returns the extensions.reason of the only error, failing
// unless there is exactly one.
func (r Response) Reason(tb testing.TB) string {
	tb.Helper()
	r.Code(tb)
	reason, _ := r.Errors[0].Extensions["reason"].(string)
	return reason
}

// OK fails the test if the response has errors.
func (r Response) OK(tb testing.TB) Response {
	tb.Helper()
	if r.Status != http.StatusOK || len(r.Errors) > 0 {
		tb.Fatalf("want success, got status %d errors %+v", r.Status, r.Errors)
	}
	return r
}

// Get walks the data by keys: r.Get("login", "user", "id").
func (r Response) Get(keys ...string) any {
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
func (r Response) Str(keys ...string) string {
	s, _ := r.Get(keys...).(string)
	return s
}

// Do posts a GraphQL document with an optional bearer token.
func (ts *Server) Do(tb testing.TB, token, query string, vars map[string]any) Response {
	tb.Helper()
	return PostGraphQL(tb, ts.URL, map[string]string{"Authorization": Bearer(token)}, query, vars)
}

// Bearer is the Authorization header's value for token ("" for none).
func Bearer(token string) string {
	if token == "" {
		return ""
	}
	return "Bearer " + token
}

// PostGraphQL posts a GraphQL document to url's /query with headers (empty
// values left out) and decodes the answer.
func PostGraphQL(tb testing.TB, url string, headers map[string]string, query string, vars map[string]any) Response {
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
	out := Response{Status: resp.StatusCode, Header: resp.Header}
	if err := json.Unmarshal(raw, &out); err != nil {
		tb.Fatalf("decode response %q: %v", raw, err)
	}
	return out
}

// PayloadFields are the fields of an AuthPayload the helpers ask for.
const PayloadFields = `accessToken refreshToken tokenType expiresIn user { id email roles createdAt }`

// Tokens is a signed-in session's pair.
type Tokens struct{ Access, Refresh, UserID string }

// TokensOf returns the session of the AuthPayload at field of r.
func TokensOf(r Response, field string) Tokens {
	return Tokens{Access: r.Str(field, "accessToken"), Refresh: r.Str(field, "refreshToken"), UserID: r.Str(field, "user", "id")}
}

// Register signs up email and returns its session, failing on an error.
func (ts *Server) Register(tb testing.TB, email, password string) Tokens {
	tb.Helper()
	r := ts.Do(tb, "", `mutation($e: String!, $p: String!) { register(email: $e, password: $p) { `+PayloadFields+` } }`,
		map[string]any{"e": email, "p": password}).OK(tb)
	return TokensOf(r, "register")
}

// Login signs email in.
func (ts *Server) Login(tb testing.TB, email, password string) Response {
	tb.Helper()
	return ts.Do(tb, "", `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { `+PayloadFields+` } }`,
		map[string]any{"e": email, "p": password})
}

// Refresh rotates refreshToken.
func (ts *Server) Refresh(tb testing.TB, refreshToken string) Response {
	tb.Helper()
	return ts.Do(tb, "", `mutation($t: String!) { refresh(refreshToken: $t) { `+PayloadFields+` } }`,
		map[string]any{"t": refreshToken})
}

// Me asks for me with token.
func (ts *Server) Me(tb testing.TB, token string) Response {
	tb.Helper()
	return ts.Do(tb, token, `{ me { id email roles } }`, nil)
}

// Admin creates an admin through the service, as AUTH_ADMIN_EMAIL would,
// and signs it in.
func (ts *Server) Admin(tb testing.TB) Tokens {
	tb.Helper()
	if err := ts.Svc.EnsureAdmin(context.Background(), "admin@example.com", "admin-password"); err != nil {
		tb.Fatal(err)
	}
	return TokensOf(ts.Login(tb, "admin@example.com", "admin-password").OK(tb), "login")
}

// Claims decodes a JWT's payload without verifying it.
func Claims(tb testing.TB, jwt string) map[string]any {
	tb.Helper()
	return JWTSegment(tb, jwt, 1)
}

// JWTSegment decodes the i-th segment of a JWT (0 the header, 1 the
// payload) without verifying it.
func JWTSegment(tb testing.TB, jwt string, i int) map[string]any {
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

// WantUnauthenticated fails the test unless me with token is refused as
// UNAUTHENTICATED; why says which token it is.
func (ts *Server) WantUnauthenticated(tb testing.TB, token, why string) {
	tb.Helper()
	if code := ts.Me(tb, token).Code(tb); code != models.Unauthenticated {
		tb.Errorf("%s: code = %s, want UNAUTHENTICATED", why, code)
	}
}

// WaitFor polls cond until it holds, failing the test after 10 s: long
// enough for a change to reach another replica on a loaded machine.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	const within = 10 * time.Second
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("still waiting for %s after %s", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sid is the session id of an access token.
// SID returns the session id (the sid claim) of an access token.
func SID(tb testing.TB, access string) string {
	tb.Helper()
	s, _ := Claims(tb, access)["sid"].(string)
	if s == "" {
		tb.Fatalf("access token without sid")
	}
	return s
}

// PostLoad sends a GraphQL document over client and decodes its data into out.
// Unlike PostGraphQL it returns errors, so load goroutines can use it.
func PostLoad(client *http.Client, url, token, query string, vars map[string]any, out any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, url+"/query", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", Bearer(token))
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []GQLError      `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || len(r.Errors) > 0 {
		return fmt.Errorf("status %d, errors %+v", resp.StatusCode, r.Errors)
	}
	return json.Unmarshal(r.Data, out)
}

// WithIssuerURL makes the server's issuer (AUTH_ISSUER) its own URL, as
// operators set it (RFC 8414 wants the issuer to be the URL its discovery
// document is read under): what a relying party such as authz needs.
func WithIssuerURL() Option {
	return func(c *Config) { c.IssuerURL = true }
}
