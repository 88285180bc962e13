package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/graph"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// syncBuffer is a bytes.Buffer safe for a server's goroutines to write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logLines decodes a JSON log, failing on any line that is not JSON.
func logLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

// requestLines returns the "request" lines of a log by request id.
func requestLines(t *testing.T, lines []map[string]any) map[string][]map[string]any {
	t.Helper()
	byID := map[string][]map[string]any{}
	for _, l := range lines {
		if l["msg"] == "request" {
			id, _ := l["request_id"].(string)
			byID[id] = append(byID[id], l)
		}
	}
	return byID
}

// TestLogsHoldNoSecrets runs the whole server with its log captured,
// signs up, in and out every way there is with right and wrong
// credentials, and checks that the log has one JSON line per request with
// the request's id and holds none of the passwords, tokens and secrets.
func TestLogsHoldNoSecrets(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		const (
			jwtSecret     = "jwt-secret-ZZ-of-at-least-32-bytes-long"
			adminPassword = "admin-password-QQ"
			password      = "user-password-XX"
			wrongPassword = "wrong-password-YY"
			garbledSecret = "garbled-password-WW"
			origin        = "https://app.example.com"
		)
		var logs syncBuffer
		url, stop := startRunLogging(t, map[string]string{
			"DATABASE_URL":        dsn,
			"AUTH_JWT_SECRET":     jwtSecret,
			"AUTH_ADMIN_EMAIL":    "root@example.com",
			"AUTH_ADMIN_PASSWORD": adminPassword,
			"AUTH_REFRESH_COOKIE": "true",
			"AUTH_CORS_ORIGINS":   origin,
			"AUTH_LOG_LEVEL":      "debug",
		}, &logs)

		n := 0
		var ids []string
		post := func(headers map[string]string, query string, vars map[string]any) gqlResponse {
			t.Helper()
			n++
			id := fmt.Sprintf("test-%d", n)
			ids = append(ids, id)
			if headers == nil {
				headers = map[string]string{}
			}
			headers["X-Request-ID"] = id
			r := postGraphQL(t, url, headers, query, vars)
			if got := r.Header.Get("X-Request-ID"); got != id {
				t.Errorf("X-Request-ID = %q, want %q echoed", got, id)
			}
			return r
		}
		email := map[string]any{"e": "user@example.com", "p": password}

		reg := tokensOf(post(nil, registerDoc, email).OK(t), "register")
		login := tokensOf(post(nil, loginDoc, email).OK(t), "login")
		if code := post(nil, loginDoc, map[string]any{"e": "user@example.com", "p": wrongPassword}).Code(t); code != models.Unauthenticated {
			t.Fatalf("wrong password: code %s", code)
		}
		// Inline, not in variables: the document itself holds the password.
		post(nil, `mutation { login(email: "nobody@example.com", password: "`+wrongPassword+`") { accessToken } }`, nil)
		refreshed := tokensOf(post(nil, refreshDoc, map[string]any{"t": login.Refresh}).OK(t), "refresh")
		byCookie := tokensOf(post(map[string]string{"Origin": origin, "Cookie": auth.CookieName + "=" + refreshed.Refresh},
			refreshCookieDoc, nil).OK(t), "refresh")
		me := post(map[string]string{"Authorization": bearer(byCookie.Access)}, `query Me { me { id email } }`, nil).OK(t)
		admin := tokensOf(post(nil, loginDoc, map[string]any{"e": "root@example.com", "p": adminPassword}).OK(t), "login")
		post(map[string]string{"Authorization": bearer(admin.Access)}, `{ users { id } roles { name } }`, nil).OK(t)
		post(map[string]string{"Authorization": bearer(byCookie.Access)}, `mutation { logout }`, nil).OK(t)
		if code := post(map[string]string{"Authorization": bearer(reg.Access + "x")}, `{ me { id } }`, nil).Code(t); code != models.Unauthenticated {
			t.Fatalf("invalid token: code %s", code)
		}
		if code := post(map[string]string{"Authorization": "Basic " + jwtSecret}, `{ me { id } }`, nil).Code(t); code != models.Unauthenticated {
			t.Fatalf("malformed Authorization: code %s", code)
		}

		// A body that is not JSON, holding a password.
		n++
		garbledID := fmt.Sprintf("test-%d", n)
		ids = append(ids, garbledID)
		req, _ := http.NewRequest(http.MethodPost, url+"/query?token="+admin.Refresh,
			strings.NewReader(`{"query":"mutation { login(email: \"a@b.c\", password: \"`+garbledSecret+`\") { accessToken } }"`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-ID", garbledID)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()

		// An unusable request id is replaced, not logged.
		resp, err = http.DefaultClient.Do(func() *http.Request {
			req, _ := http.NewRequest(http.MethodGet, url+"/healthz", nil)
			req.Header.Set("X-Request-ID", "bad id "+jwtSecret)
			return req
		}())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		healthID := resp.Header.Get("X-Request-ID")
		if !regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`).MatchString(healthID) || strings.Contains(healthID, "bad") {
			t.Errorf("X-Request-ID for an insane one = %q, want a new id", healthID)
		}
		ids = append(ids, healthID)

		if err := stop(); err != nil {
			t.Fatalf("run: %v", err)
		}
		log := logs.String()

		secrets := map[string]string{
			"AUTH_JWT_SECRET":       jwtSecret,
			"AUTH_ADMIN_PASSWORD":   adminPassword,
			"password":              password,
			"wrong password":        wrongPassword,
			"garbled body password": garbledSecret,
		}
		for name, tk := range map[string]tokens{"register": reg, "login": login, "refresh": refreshed, "cookie refresh": byCookie, "admin": admin} {
			secrets[name+" access token"] = tk.Access
			secrets[name+" access token signature"] = tk.Access[strings.LastIndex(tk.Access, ".")+1:]
			secrets[name+" refresh token"] = tk.Refresh
		}
		for name, s := range secrets {
			if s == "" {
				t.Fatalf("%s is empty: the test lost it", name)
			}
			if strings.Contains(log, s) {
				t.Errorf("the log holds the %s", name)
			}
		}

		byID := requestLines(t, logLines(t, log))
		for _, id := range ids {
			if got := len(byID[id]); got != 1 {
				t.Errorf("request %s: %d log lines, want 1", id, got)
			}
		}
		if got, want := len(byID), len(ids); got != want {
			t.Errorf("%d requests logged, want %d", got, want)
		}
		meLine := byID["test-7"][0]
		for k, want := range map[string]any{
			"method": "POST", "path": "/query", "status": 200.0, "operation": "me",
			"operation_name": "Me", "user_id": me.Str("me", "id"), "outcome": "ok",
		} {
			if meLine[k] != want {
				t.Errorf("me's line: %s = %v, want %v (line %v)", k, meLine[k], want, meLine)
			}
		}
		if got := byID["test-9"][0]["operation"]; got != "roles,users" {
			t.Errorf("users and roles: operation = %v, want roles,users", got)
		}
		if got := byID["test-3"][0]; got["outcome"] != models.Unauthenticated || got["user_id"] != "" {
			t.Errorf("wrong password: line %v, want outcome UNAUTHENTICATED and no user", got)
		}
		// Signed in by the operation itself, without a token.
		for _, id := range []string{"test-1", "test-2", "test-5", "test-6"} {
			if got := byID[id][0]["user_id"]; got != reg.UserID {
				t.Errorf("%s (%v): user_id = %v, want %s", id, byID[id][0]["operation"], got, reg.UserID)
			}
		}
		if got := byID[garbledID][0]; got["operation"] != "invalid" || got["outcome"] != models.BadRequest || got["path"] != "/query" {
			t.Errorf("garbled body: line %v, want operation invalid, outcome BAD_REQUEST, path without query", got)
		}
	})
}

// BenchmarkObserve measures what observe adds to a request, in process:
// the request id, the log line (JSON, to io.Discard) and the metrics of a
// GraphQL request, around a handler that only fills the RequestInfo as the
// GraphQL handler would.
func BenchmarkObserve(b *testing.B) {
	body := []byte(`{"data":{"me":{"id":"1","email":"user@example.com"}}}`)
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info := graph.RequestInfoFrom(r.Context()); info != nil {
			info.Operation, info.Outcome, info.UserID = "me", "ok", "7f7f7f7f-0000-4000-8000-000000000000"
		}
		w.Write(body)
	})
	req := httptest.NewRequest(http.MethodPost, "/query", nil)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"Bare", inner},
		{"Observed", observe(newLogger(io.Discard, "json", slog.LevelInfo), newMetrics(), inner)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}

func TestNewLogger(t *testing.T) {
	ctx := graph.WithRequestInfo(context.Background(), &graph.RequestInfo{ID: "req-1"})
	for _, tc := range []struct {
		name, format string
		level        slog.Level
		want         string // "" when nothing is logged
	}{
		{"NotATerminalIsJSON", "", slog.LevelInfo, `{"time":`},
		{"JSON", "json", slog.LevelInfo, `{"time":`},
		{"Text", "text", slog.LevelInfo, `time=`},
		{"Level", "json", slog.LevelWarn, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			newLogger(&buf, tc.format, tc.level).InfoContext(ctx, "hello")
			got := buf.String()
			if tc.want == "" {
				if got != "" {
					t.Errorf("logged %q below the level", got)
				}
				return
			}
			if !strings.HasPrefix(got, tc.want) || !strings.Contains(got, "req-1") {
				t.Errorf("logged %q, want it to start with %q and hold the request id", got, tc.want)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	for id, keep := range map[string]bool{
		"abc-123":                  true,
		"A.b_C-9":                  true,
		strings.Repeat("a", 128):   true,
		strings.Repeat("a", 129):   false,
		"":                         false,
		"has space":                false,
		"new\nline":                false,
		`quote"`:                   false,
		"ünïcode":                  false,
		"Bearer eyJhbGciOiJIUzI1N": false,
	} {
		h := http.Header{}
		h.Set("X-Request-ID", id)
		got := requestID(h)
		if (got == id) != keep {
			t.Errorf("requestID(%q) = %q, keep = %v", id, got, keep)
		}
		if got == "" {
			t.Errorf("requestID(%q) is empty", id)
		}
	}
	if a, b := requestID(http.Header{}), requestID(http.Header{}); a == b {
		t.Errorf("two new request ids are both %q", a)
	}
}

// TestInternalErrorLogCarriesRequestID breaks the database under a server
// whose log is captured: the internal error's line (with its cause) and the
// request's line carry the same request id, so one leads to the other.
func TestInternalErrorLogCarriesRequestID(t *testing.T) {
	ctx := context.Background()
	db, _, err := models.Open(testdb.SQLite(t), models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := models.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := newLogger(&logs, "json", slog.LevelInfo)
	svc, err := auth.NewService(ctx, db, testKey, auth.Config{
		Issuer: "authql", Audience: "authql", AccessTTL: time.Minute, RefreshTTL: time.Hour,
		Signup: true, Argon2: cheapArgon2, UserCacheSize: 1,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	hs := httptest.NewServer(newServer(defaultConfig(), svc, log, newMetrics(), newReadiness(sqlDB, svc, log)))
	defer hs.Close()

	r := postGraphQL(t, hs.URL, nil, registerDoc, map[string]any{"e": "user@example.com", "p": "password1"}).OK(t)
	// A second user pushes the first out of the one-user cache, so that
	// me must read the database.
	postGraphQL(t, hs.URL, nil, registerDoc, map[string]any{"e": "other@example.com", "p": "password1"}).OK(t)
	sqlDB.Close()
	r = postGraphQL(t, hs.URL, map[string]string{"Authorization": bearer(r.Str("register", "accessToken")), "X-Request-ID": "broken-1"},
		`{ me { id } }`, nil)
	if code := r.Code(t); code != models.Internal {
		t.Fatalf("code %s, want INTERNAL_SERVER_ERROR", code)
	}

	var internal, request map[string]any
	for _, l := range logLines(t, logs.String()) {
		switch l["msg"] {
		case "internal error":
			internal = l
		case "request":
			if l["request_id"] == "broken-1" {
				request = l
			}
		}
	}
	if internal == nil || internal["request_id"] != "broken-1" || internal["err"] == nil {
		t.Errorf("internal error line %v, want request_id broken-1 and the cause", internal)
	}
	if request == nil || request["level"] != "ERROR" || request["outcome"] != models.Internal {
		t.Errorf("request line %v, want level ERROR, outcome INTERNAL_SERVER_ERROR", request)
	}
}

// TestLogBuffer: buffered lines reach the output by the periodic flush,
// while the server runs, and all of them once it stops.
func TestLogBuffer(t *testing.T) {
	var out syncBuffer
	b := newLogBuffer(&out)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.run(ctx); close(done) }()
	fmt.Fprintln(b, "first")
	for !strings.Contains(out.String(), "first\n") {
		time.Sleep(10 * time.Millisecond) // the periodic flush; no timing asserted
	}
	fmt.Fprintln(b, "last")
	cancel()
	<-done
	if got := out.String(); got != "first\nlast\n" {
		t.Errorf("written %q, want both lines once", got)
	}
}
