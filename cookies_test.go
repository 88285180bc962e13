package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/models"
)

// TestRunCookieSessions drives a cookie session through run() with a
// cookie jar, as a browser frontend on local http would.
func TestRunCookieSessions(t *testing.T) {
	const origin = "http://localhost:5173"
	url0, _ := startRun(t, map[string]string{
		"DATABASE_URL":         filepath.Join(t.TempDir(), "cookies.db"),
		"AUTH_REFRESH_COOKIE":  "true",
		"AUTH_COOKIE_INSECURE": "true",
		"AUTH_CORS_ORIGINS":    " HTTP://LocalHost:5173 , https://app.example.com:443",
	})
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar}
	base, _ := url.Parse(url0 + "/query")
	post := func(token, query string) gqlResponse {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base.String(), strings.NewReader(`{"query":`+strconv.Quote(query)+`}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", origin)
		if token != "" {
			req.Header.Set("Authorization", bearer(token))
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		out := gqlResponse{Status: resp.StatusCode, Header: resp.Header}
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("decode %q: %v", raw, err)
		}
		return out
	}
	jarValue := func() string {
		for _, c := range jar.Cookies(base) {
			if c.Name == auth.CookieName {
				return c.Value
			}
		}
		return ""
	}

	r := post("", `mutation { register(email: "ada@example.com", password: "password1") { refreshToken } }`).OK(t)
	if jarValue() == "" || jarValue() != r.Str("register", "refreshToken") {
		t.Fatalf("jar holds %q after register, want the refreshToken", jarValue())
	}
	if h := r.Header.Get("Access-Control-Allow-Origin"); h != origin {
		t.Errorf("Access-Control-Allow-Origin = %q, want %q (normalized from the configuration)", h, origin)
	}
	r = post("", `mutation { refresh { accessToken refreshToken } }`).OK(t)
	if jarValue() != r.Str("refresh", "refreshToken") {
		t.Errorf("jar holds %q after refresh, want the new refreshToken", jarValue())
	}
	post(r.Str("refresh", "accessToken"), `mutation { logout }`).OK(t)
	if v := jarValue(); v != "" {
		t.Errorf("jar still holds %q after logout", v)
	}
	if code := post("", `mutation { refresh { accessToken } }`).Code(t); code != models.Unauthenticated {
		t.Errorf("refresh after logout: code = %s, want UNAUTHENTICATED", code)
	}
}
