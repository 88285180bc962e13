package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/testdb"
)

// TestExampleUI checks what the browser test (browser_test.go) takes for
// granted, without a browser: the example is served only when asked, with
// its Content-Security-Policy, and its own origins may refresh by cookie
// while others may not.
func TestExampleUI(t *testing.T) {
	t.Run("OffByDefault", func(t *testing.T) {
		url, _ := startRun(t, map[string]string{"DATABASE_URL": testdb.SQLite(t)})
		if code, _, _ := getNoRedirect(t, url+examplePath); code != http.StatusNotFound {
			t.Errorf("GET %s = %d without AUTH_EXAMPLE_UI, want 404", examplePath, code)
		}
	})

	url, _ := startRun(t, map[string]string{"DATABASE_URL": testdb.SQLite(t), "AUTH_EXAMPLE_UI": "true"})
	for _, tc := range []struct{ path, wantType, wantBody string }{
		{"index.html", "text/html", `<script src="app.js" defer></script>`},
		{"", "text/html", `<script src="app.js" defer></script>`},
		{"app.js", "javascript", "mutation { refresh {"},
		{"accounts.js", "javascript", "history.replaceState("},
		{"mfa.js", "javascript", "reauthenticate(password: $password, proof: $proof)"},
		{"factors.js", "javascript", "enrollTotp(label: $label)"},
		{"style.css", "text/css", "body {"},
	} {
		code, h, body := getNoRedirect(t, url+examplePath+tc.path)
		if tc.path == "index.html" {
			// The file server sends index.html to the directory.
			if code != http.StatusMovedPermanently {
				t.Errorf("GET %sindex.html = %d, want 301 to %s", examplePath, code, examplePath)
			}
			continue
		}
		if code != http.StatusOK || !strings.Contains(h.Get("Content-Type"), tc.wantType) || !strings.Contains(body, tc.wantBody) {
			t.Errorf("GET %s%s = %d %s, want 200 %s with %q", examplePath, tc.path, code, h.Get("Content-Type"), tc.wantType, tc.wantBody)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s%s: Content-Security-Policy %q, want script-src 'self' only", examplePath, tc.path, csp)
		}
	}
	if code, _, _ := getNoRedirect(t, url+examplePath+"web.go"); code != http.StatusNotFound {
		t.Errorf("GET %sweb.go = %d, want 404: only the frontend's files are served", examplePath, code)
	}
	t.Run("Pages", func(t *testing.T) { testExamplePages(t, url) })

	// The cookie of a register is honoured from the server's own origins,
	// as the example's page sends them, and refused from any other.
	port := url[strings.LastIndex(url, ":")+1:]
	r := postGraphQL(t, url, map[string]string{"Origin": "http://localhost:" + port},
		`mutation { register(email: "example@example.com", password: "password1") { accessToken } }`, nil).OK(t)
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == auth.CookieName {
			cookie = c
		}
	}
	if cookie == nil || !cookie.Secure || !cookie.HttpOnly {
		t.Fatalf("register from the example's origin set cookie %v, want a Secure HttpOnly %s", cookie, auth.CookieName)
	}
	refresh := func(origin string) gqlResponse {
		return postGraphQL(t, url, map[string]string{"Origin": origin, "Cookie": cookie.Name + "=" + cookie.Value},
			`mutation { refresh { accessToken } }`, nil)
	}
	if code := refresh("http://elsewhere.example.com").Code(t); code != "FORBIDDEN" {
		t.Errorf("refresh by cookie from another origin: %s, want FORBIDDEN", code)
	}
	refresh("http://127.0.0.1:" + port).OK(t)
}

// testExamplePages checks that the paths of the mailed links (AUTH_APP_URL
// defaults to the example outside production) serve the example's page,
// with the same headers as ExamplePath, and that nothing else below it does.
func testExamplePages(t *testing.T, url string) {
	code, want, page := getNoRedirect(t, url+examplePath)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d", examplePath, code)
	}
	for _, p := range []string{"forgot", "reset", "verify", "confirm-email"} {
		code, h, body := getNoRedirect(t, url+examplePath+p)
		if code != http.StatusOK || body != page {
			t.Errorf("GET %s%s = %d with %d bytes, want 200 with the %d bytes of %s", examplePath, p, code, len(body), len(page), examplePath)
		}
		for _, k := range []string{"Content-Type", "Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "Cache-Control"} {
			if h.Get(k) != want.Get(k) || want.Get(k) == "" {
				t.Errorf("GET %s%s: %s %q, want %q as for %s", examplePath, p, k, h.Get(k), want.Get(k), examplePath)
			}
		}
	}
	// A query string does not change the page; a path below a page or
	// another name is no page.
	if code, _, body := getNoRedirect(t, url+examplePath+"reset?x=1"); code != http.StatusOK || body != page {
		t.Errorf("GET %sreset?x=1 = %d, want 200 with the page", examplePath, code)
	}
	for _, p := range []string{"reset/", "reset/x", "resets", "login"} {
		if code, _, _ := getNoRedirect(t, url+examplePath+p); code != http.StatusNotFound {
			t.Errorf("GET %s%s = %d, want 404", examplePath, p, code)
		}
	}
}

// getNoRedirect fetches url without following redirects.
func getNoRedirect(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
