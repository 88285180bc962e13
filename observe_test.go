package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

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
