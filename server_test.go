package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// addrWriter captures run's stdout and reports the address it listens on.
type addrWriter struct {
	mu   sync.Mutex
	buf  strings.Builder
	addr chan string
}

var listeningRE = regexp.MustCompile(`listening on http://\S*:(\d+)`)

func (w *addrWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if m := listeningRE.FindStringSubmatch(w.buf.String()); m != nil && w.addr != nil {
		w.addr <- "http://127.0.0.1:" + m[1]
		w.addr = nil
	}
	return len(p), nil
}

// startRun runs the whole program in-process with env (PORT=0 unless set)
// and returns its base URL and a function that stops it and returns run's
// error.
func startRun(t testing.TB, env map[string]string) (string, func() error) {
	t.Helper()
	return startRunLogging(t, env, io.Discard)
}

// startRunLogging is startRun with the program's stderr (its log) going
// to stderr.
func startRunLogging(t testing.TB, env map[string]string, stderr io.Writer) (string, func() error) {
	t.Helper()
	if env["PORT"] == "" {
		env["PORT"] = "0"
	}
	if env["AUTH_ARGON2_MEMORY"] == "" {
		env["AUTH_ARGON2_MEMORY"] = "64"
		env["AUTH_ARGON2_TIME"] = "1"
	}
	if raceEnabled && env["AUTH_DB_TIMEOUT"] == "" {
		env["AUTH_DB_TIMEOUT"] = raceDBTimeout.String() // see raceDBTimeout
	}
	if env["AUTH_SMTP_URL"] == "" && env["AUTH_MAIL_DIR"] == "" {
		// The default directory is ./mail on PostgreSQL: the test's working
		// directory, the package's source. A mail a test sends goes to the
		// test's own directory instead.
		env["AUTH_MAIL_DIR"] = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	out := &addrWriter{addr: addr}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, nil, out, stderr) }()
	var stopped bool
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	select {
	case url := <-addr:
		return url, stop
	case err := <-done:
		cancel()
		stopped = true // run has returned: the cleanup has nothing to wait for
		t.Fatalf("run returned before listening: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("run did not start listening")
	}
	return "", nil
}

func gql(t *testing.T, url, token, query string) gqlResponse {
	t.Helper()
	return postGraphQL(t, url, map[string]string{"Authorization": bearer(token)}, query, nil)
}

func TestRunDefaults(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	url, stop := startRun(t, map[string]string{})

	resp, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "/query") {
		t.Errorf("GET / = %d, want the playground pointing at /query", resp.StatusCode)
	}
	r := gql(t, url, "", `mutation { register(email: "a@example.com", password: "password1") { accessToken } }`).OK(t)
	gql(t, url, r.Str("register", "accessToken"), `{ me { email } }`).OK(t)
	if err := stop(); err != nil {
		t.Errorf("run returned %v after shutdown, want nil", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "authql.db")); err != nil {
		t.Errorf("no authql.db in the working directory: %v", err)
	}
}

func TestRunKeepsGeneratedKeyAcrossRestarts(t *testing.T) {
	env := map[string]string{"DATABASE_URL": filepath.Join(t.TempDir(), "keys.db")}
	url, stop := startRun(t, env)
	r := gql(t, url, "", `mutation { register(email: "a@example.com", password: "password1") { accessToken } }`).OK(t)
	token := r.Str("register", "accessToken")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	url, _ = startRun(t, env)
	gql(t, url, token, `{ me { email } }`).OK(t)
}

func TestRunEnsuresAdmin(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL":        "sqlite://" + filepath.Join(t.TempDir(), "admin.db"),
		"AUTH_ADMIN_EMAIL":    "Root@Example.com",
		"AUTH_ADMIN_PASSWORD": "first-password",
	}
	url, stop := startRun(t, env)
	r := gql(t, url, "", `mutation { login(email: "root@example.com", password: "first-password") { accessToken user { roles } } }`).OK(t)
	gql(t, url, r.Str("login", "accessToken"), `{ users { email } }`).OK(t)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	env["AUTH_ADMIN_PASSWORD"] = "second-password"
	url, _ = startRun(t, env) // idempotent: the existing password is kept
	gql(t, url, "", `mutation { login(email: "root@example.com", password: "first-password") { accessToken } }`).OK(t)
	if code := gql(t, url, "", `mutation { login(email: "root@example.com", password: "second-password") { accessToken } }`).Code(t); code != models.Unauthenticated {
		t.Errorf("new password: code = %s, want UNAUTHENTICATED", code)
	}
}

func TestRunPostgres(t *testing.T) {
	dsn := testdb.Postgres(t)
	env := map[string]string{"DATABASE_URL": dsn, "AUTH_SIGNUP": "false", "AUTH_ADMIN_EMAIL": "root@example.com", "AUTH_ADMIN_PASSWORD": "root-password"}
	url, stop := startRun(t, env)
	if code := gql(t, url, "", `mutation { register(email: "a@example.com", password: "password1") { accessToken } }`).Code(t); code != models.Forbidden {
		t.Errorf("register with AUTH_SIGNUP=false: code = %s, want FORBIDDEN", code)
	}
	r := gql(t, url, "", `mutation { login(email: "root@example.com", password: "root-password") { accessToken } }`).OK(t)
	token := r.Str("login", "accessToken")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	url, _ = startRun(t, env) // a second replica or a restart: same key from the database
	gql(t, url, token, `{ me { email } }`).OK(t)
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		wantText []string
	}{
		{"ShortSecret", map[string]string{"AUTH_JWT_SECRET": "too-short"}, []string{"AUTH_JWT_SECRET", "at least 32"}},
		{"BadDuration", map[string]string{"AUTH_ACCESS_TTL": "15 minutes"}, []string{"AUTH_ACCESS_TTL", "duration"}},
		{"BadBool", map[string]string{"AUTH_SIGNUP": "maybe"}, []string{"AUTH_SIGNUP"}},
		{"AdminHalfSet", map[string]string{"AUTH_ADMIN_EMAIL": "a@example.com"}, []string{"AUTH_ADMIN_EMAIL", "AUTH_ADMIN_PASSWORD"}},
		{"BadPort", map[string]string{"PORT": "http"}, []string{"PORT"}},
		{"ReuseIntervalTooLong", map[string]string{"AUTH_REFRESH_REUSE_INTERVAL": "1h"}, []string{"AUTH_REFRESH_REUSE_INTERVAL"}},
		{"UnknownScheme", map[string]string{"DATABASE_URL": "mysql://localhost/x"}, []string{"unsupported database URL"}},
		{"AdminPasswordTooShort", map[string]string{"AUTH_ADMIN_EMAIL": "a@example.com", "AUTH_ADMIN_PASSWORD": "short"}, []string{"AUTH_ADMIN_PASSWORD", "at least 8"}},
		{"CORSWildcard", map[string]string{"AUTH_CORS_ORIGINS": "*"}, []string{"AUTH_CORS_ORIGINS", "wildcard"}},
		{"CORSWildcardSubdomain", map[string]string{"AUTH_CORS_ORIGINS": "https://*.example.com"}, []string{"AUTH_CORS_ORIGINS", "wildcard"}},
		{"CORSPath", map[string]string{"AUTH_CORS_ORIGINS": "https://app.example.com/app"}, []string{"AUTH_CORS_ORIGINS", "no path"}},
		{"CORSTrailingSlash", map[string]string{"AUTH_CORS_ORIGINS": "https://ok.example.com, https://app.example.com/"}, []string{"AUTH_CORS_ORIGINS", `"https://app.example.com/"`, "no path"}},
		{"CORSNoScheme", map[string]string{"AUTH_CORS_ORIGINS": "app.example.com"}, []string{"AUTH_CORS_ORIGINS", "scheme://host"}},
		{"CORSNull", map[string]string{"AUTH_CORS_ORIGINS": "null"}, []string{"AUTH_CORS_ORIGINS", "scheme://host"}},
		{"CORSUserinfo", map[string]string{"AUTH_CORS_ORIGINS": "https://user@app.example.com"}, []string{"AUTH_CORS_ORIGINS"}},
		{"CookieWithoutOrigins", map[string]string{"AUTH_REFRESH_COOKIE": "true"}, []string{"AUTH_REFRESH_COOKIE", "AUTH_CORS_ORIGINS"}},
		{"BadCookieBool", map[string]string{"AUTH_REFRESH_COOKIE": "yes please", "AUTH_CORS_ORIGINS": "https://app.example.com"}, []string{"AUTH_REFRESH_COOKIE", "boolean"}},
		{"BadCookieInsecureBool", map[string]string{"AUTH_COOKIE_INSECURE": "on"}, []string{"AUTH_COOKIE_INSECURE", "boolean"}},
		{"InsecureCookieInProduction", map[string]string{"AUTH_ENV": "production", "AUTH_REFRESH_COOKIE": "true", "AUTH_COOKIE_INSECURE": "true", "AUTH_CORS_ORIGINS": "https://app.example.com"}, []string{"AUTH_COOKIE_INSECURE", "production"}},
		{"ExampleUIInProduction", map[string]string{"AUTH_ENV": "production", "AUTH_EXAMPLE_UI": "true"}, []string{"AUTH_EXAMPLE_UI", "production"}},
		{"ExampleUIWithoutCookie", map[string]string{"AUTH_EXAMPLE_UI": "true", "AUTH_REFRESH_COOKIE": "false"}, []string{"AUTH_REFRESH_COOKIE", "AUTH_EXAMPLE_UI"}},
		{"BadRate", map[string]string{"AUTH_LOGIN_LIMIT_ACCOUNT": "10 per minute"}, []string{"AUTH_LOGIN_LIMIT_ACCOUNT", "COUNT/DURATION"}},
		{"BadRateWindow", map[string]string{"AUTH_REFRESH_LIMIT": "10/1ms"}, []string{"AUTH_REFRESH_LIMIT", "window"}},
		{"BadTrustedProxy", map[string]string{"AUTH_TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal"}, []string{"AUTH_TRUSTED_PROXIES", "proxy.internal"}},
		{"TooManyHashWorkers", map[string]string{"AUTH_HASH_WORKERS": "1000"}, []string{"AUTH_HASH_WORKERS"}},
		{"HashWaitTooLong", map[string]string{"AUTH_HASH_WAIT": "10m"}, []string{"AUTH_HASH_WAIT"}},
		{"UnknownEnv", map[string]string{"AUTH_ENV": "prod"}, []string{"AUTH_ENV", "production"}},
		{"BodyLimitTooSmall", map[string]string{"AUTH_MAX_BODY_BYTES": "10"}, []string{"AUTH_MAX_BODY_BYTES"}},
		{"BadDepth", map[string]string{"AUTH_MAX_QUERY_DEPTH": "deep"}, []string{"AUTH_MAX_QUERY_DEPTH"}},
		{"BadComplexity", map[string]string{"AUTH_MAX_COMPLEXITY": "0"}, []string{"AUTH_MAX_COMPLEXITY"}},
		{"NegativeConnsPerClient", map[string]string{"AUTH_MAX_CONNS_PER_CLIENT": "-1"}, []string{"AUTH_MAX_CONNS_PER_CLIENT"}},
		{"BadMetricsPublic", map[string]string{"AUTH_METRICS_PUBLIC": "yes please"}, []string{"AUTH_METRICS_PUBLIC"}},
		{"DBNoConns", map[string]string{"AUTH_DB_MAX_CONNS": "0"}, []string{"AUTH_DB_MAX_CONNS", "from 1"}},
		{"DBIdleOverMax", map[string]string{"AUTH_DB_MAX_CONNS": "4", "AUTH_DB_MAX_IDLE_CONNS": "5"}, []string{"AUTH_DB_MAX_IDLE_CONNS", "at most 4"}},
		{"DBIdleOverDefaultMax", map[string]string{"AUTH_DB_MAX_IDLE_CONNS": "9"}, []string{"AUTH_DB_MAX_IDLE_CONNS", "at most 8"}},
		{"DBLifetimeTooShort", map[string]string{"AUTH_DB_CONN_MAX_LIFETIME": "5s"}, []string{"AUTH_DB_CONN_MAX_LIFETIME", "at least 1m"}},
		{"BadSyncTimeout", map[string]string{"AUTH_SYNC_TIMEOUT": "5"}, []string{"AUTH_SYNC_TIMEOUT", "duration"}},
		{"SyncTimeoutTooShort", map[string]string{"AUTH_SYNC_TIMEOUT": "10ms"}, []string{"AUTH_SYNC_TIMEOUT", "at least"}},
		{"SyncTimeoutTooLong", map[string]string{"AUTH_SYNC_TIMEOUT": "1h"}, []string{"AUTH_SYNC_TIMEOUT", "at most 10m"}},
		{"BadLogFormat", map[string]string{"AUTH_LOG_FORMAT": "logfmt"}, []string{"AUTH_LOG_FORMAT", "json or text"}},
		{"BadLogLevel", map[string]string{"AUTH_LOG_LEVEL": "verbose"}, []string{"AUTH_LOG_LEVEL", "debug, info, warn or error"}},
		{"BadMetricsBool", map[string]string{"AUTH_METRICS": "no thanks"}, []string{"AUTH_METRICS", "boolean"}},
		{"BadMetricsAddr", map[string]string{"AUTH_METRICS_ADDR": "9090"}, []string{"AUTH_METRICS_ADDR", "host:port"}},
		{"MetricsAddrButOff", map[string]string{"AUTH_METRICS": "false", "AUTH_METRICS_ADDR": ":9090"}, []string{"AUTH_METRICS_ADDR", "AUTH_METRICS is false"}},
		{"ShutdownTimeoutTooLong", map[string]string{"AUTH_SHUTDOWN_TIMEOUT": "1h"}, []string{"AUTH_SHUTDOWN_TIMEOUT", "at most 10m"}},
		{"ShutdownDelayTooLong", map[string]string{"AUTH_SHUTDOWN_DELAY": "1h"}, []string{"AUTH_SHUTDOWN_DELAY", "at most 5m"}},
		{"PublicURLRequiredInProduction", map[string]string{"AUTH_ENV": "production", "AUTH_SMTP_URL": "smtp://127.0.0.1:1", "AUTH_MAIL_FROM": "no-reply@example.com", "AUTH_APP_URL": "https://app.example.com"}, []string{"AUTH_PUBLIC_URL", "must be set with AUTH_ENV=production"}},
		{"AudiencesOwn", map[string]string{"AUTH_AUDIENCES": "orders, authql"}, []string{"AUTH_AUDIENCES", "authql's own"}},
		{"AudiencesSpace", map[string]string{"AUTH_AUDIENCES": "orders service"}, []string{"AUTH_AUDIENCES", "not an audience"}},
		{"ExchangeTTLTooLong", map[string]string{"AUTH_EXCHANGE_TTL": "2h"}, []string{"AUTH_EXCHANGE_TTL", "at most 1h"}},
		{"PublicURLRelative", map[string]string{"AUTH_PUBLIC_URL": "auth.example.com"}, []string{"AUTH_PUBLIC_URL", "absolute"}},
		{"PublicURLScheme", map[string]string{"AUTH_PUBLIC_URL": "ftp://auth.example.com"}, []string{"AUTH_PUBLIC_URL", "http or https"}},
		{"PublicURLQuery", map[string]string{"AUTH_PUBLIC_URL": "https://auth.example.com/?a=b"}, []string{"AUTH_PUBLIC_URL", "query or fragment"}},
		{"PublicURLFragment", map[string]string{"AUTH_PUBLIC_URL": "https://auth.example.com/#x"}, []string{"AUTH_PUBLIC_URL", "query or fragment"}},
		{"PublicURLCredentials", map[string]string{"AUTH_PUBLIC_URL": "https://u:p@auth.example.com"}, []string{"AUTH_PUBLIC_URL", "credentials"}},
		{"PublicURLHTTPInProduction", map[string]string{"AUTH_ENV": "production", "AUTH_PUBLIC_URL": "http://auth.example.com"}, []string{"AUTH_PUBLIC_URL", "https"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env["DATABASE_URL"] == "" {
				tt.env["DATABASE_URL"] = filepath.Join(t.TempDir(), "bad.db")
			}
			if tt.env["PORT"] == "" {
				tt.env["PORT"] = "0"
			}
			// A configuration wrongly accepted would serve until the deadline.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := run(ctx, nil, func(k string) string { return tt.env[k] }, nil, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("run accepted the configuration")
			}
			for _, want := range tt.wantText {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		Port: "8080", DatabaseURL: "authql.db",
		AccessTTL: 15 * time.Minute, RefreshTTL: 720 * time.Hour, ReuseInterval: 10 * time.Second,
		Issuer: "authql", Audience: "authql", Signup: true,
		Argon2: c.Argon2,
	}
	if c.Port != want.Port || c.DatabaseURL != want.DatabaseURL || c.AccessTTL != want.AccessTTL ||
		c.RefreshTTL != want.RefreshTTL || c.ReuseInterval != want.ReuseInterval || c.Issuer != want.Issuer ||
		c.Audience != want.Audience || !c.Signup || c.JWTSecret != nil {
		t.Errorf("defaults = %+v, want %+v", c, want)
	}
	if c.Argon2.Memory != 19456 || c.Argon2.Time != 2 || c.Argon2.Threads != 1 {
		t.Errorf("argon2 defaults = %+v, want OWASP's m=19456 t=2 p=1", c.Argon2)
	}
	if c.Limits != auth.DefaultLimits || c.Limits.LoginAccount.String() != "10/15m0s" || c.TrustedProxies != nil ||
		c.HashWorkers != 0 || c.HashWait != time.Second {
		t.Errorf("abuse defaults = %+v %v %d %s", c.Limits, c.TrustedProxies, c.HashWorkers, c.HashWait)
	}
	if c.SyncTimeout != 5*time.Second {
		t.Errorf("sync timeout = %s, want 5s", c.SyncTimeout)
	}
	if c.Production || !c.Introspection || !c.Playground || c.MaxBodyBytes != 65536 || c.MaxDepth != 20 || c.MaxComplexity != 6500 {
		t.Errorf("request defaults = production %v introspection %v playground %v body %d depth %d complexity %d",
			c.Production, c.Introspection, c.Playground, c.MaxBodyBytes, c.MaxDepth, c.MaxComplexity)
	}
}

func TestRunProduction(t *testing.T) {
	for _, tc := range []struct {
		name               string
		env                map[string]string
		wantSchema, wantUI bool
	}{
		{"Production", map[string]string{"AUTH_ENV": "production"}, false, false},
		{"ProductionWithIntrospection", map[string]string{"AUTH_ENV": "Production", "AUTH_INTROSPECTION": "true"}, true, false},
		{"ProductionWithPlayground", map[string]string{"AUTH_ENV": "production", "AUTH_PLAYGROUND": "true"}, false, true},
		{"DevelopmentWithoutIntrospection", map[string]string{"AUTH_INTROSPECTION": "false"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["DATABASE_URL"] = filepath.Join(t.TempDir(), "prod.db")
			if tc.env["AUTH_ENV"] != "" {
				withProductionMail(t, tc.env)
			}
			url, _ := startRun(t, tc.env)
			r := gql(t, url, "", `{ __schema { queryType { name } } }`)
			if got := len(r.Errors) == 0; got != tc.wantSchema {
				t.Errorf("introspection answered = %v, want %v (%+v)", got, tc.wantSchema, r.Errors)
			}
			if !tc.wantSchema && r.Code(t) != "GRAPHQL_VALIDATION_FAILED" {
				t.Errorf("code = %s, want GRAPHQL_VALIDATION_FAILED", r.Code(t))
			}
			gql(t, url, "", `mutation { register(email: "p@example.com", password: "password1") { accessToken } }`).OK(t)
			resp, err := http.Get(url + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.StatusCode == http.StatusOK; got != tc.wantUI {
				t.Errorf("GET / = %d, want playground %v", resp.StatusCode, tc.wantUI)
			}
		})
	}
}

func TestLoadConfigBrowserSessions(t *testing.T) {
	env := map[string]string{
		"AUTH_REFRESH_COOKIE":  "true",
		"AUTH_COOKIE_INSECURE": "true",
		// Written as browsers write Origin: lower case, no default port.
		"AUTH_CORS_ORIGINS": " HTTPS://App.Example.com:443 ,http://localhost:5173,, http://[::1]:80 ",
	}
	c, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"https://app.example.com", "http://localhost:5173", "http://[::1]"}
	if !c.RefreshCookie || !c.CookieInsecure || !slices.Equal(c.CORSOrigins, want) {
		t.Errorf("config = cookie %v insecure %v origins %q, want true true %q", c.RefreshCookie, c.CookieInsecure, c.CORSOrigins, want)
	}

	c, err = loadConfig(func(string) string { return "" })
	if err != nil || c.RefreshCookie || c.CookieInsecure || len(c.CORSOrigins) != 0 {
		t.Errorf("defaults: cookie %v insecure %v origins %q (%v), want off, off, none", c.RefreshCookie, c.CookieInsecure, c.CORSOrigins, err)
	}
}
