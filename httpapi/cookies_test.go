package httpapi_test

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// withCookies turns cookie sessions on for the origins.
func withCookies(origins ...string) authtest.Option {
	return func(c *authtest.Config) { c.Auth.RefreshCookie, c.Auth.AllowedOrigins = true, origins }
}

// withOrigins allows the origins CORS only, with cookie sessions off.
func withOrigins(origins ...string) authtest.Option {
	return func(c *authtest.Config) { c.Auth.AllowedOrigins = origins }
}

func withInsecureCookie() authtest.Option {
	return func(c *authtest.Config) { c.Auth.CookieInsecure = true }
}

// browser posts a document as a page at origin would ("" sends no Origin),
// with the refresh cookie values given (none when empty) and an optional
// bearer token.
func browser(tb testing.TB, ts *authtest.Server, origin, token, query string, vars map[string]any, cookies ...string) authtest.Response {
	tb.Helper()
	h := map[string]string{"Origin": origin, "Authorization": authtest.Bearer(token)}
	var pairs []string
	for _, c := range cookies {
		pairs = append(pairs, auth.CookieName+"="+c)
	}
	h["Cookie"] = strings.Join(pairs, "; ")
	return authtest.PostGraphQL(tb, ts.URL, h, query, vars)
}

func noSetCookie(tb testing.TB, r authtest.Response) {
	tb.Helper()
	if lines := r.Header.Values("Set-Cookie"); len(lines) > 0 {
		tb.Errorf("Set-Cookie = %q, want none", lines)
	}
}

// attrs returns the attributes of a Set-Cookie line, sorted, without the
// name=value pair.
func attrs(line string) []string {
	a := strings.Split(line, "; ")[1:]
	slices.Sort(a)
	return a
}

func wantAttrs(tb testing.TB, line string, want ...string) {
	tb.Helper()
	slices.Sort(want)
	if got := attrs(line); !slices.Equal(got, want) {
		tb.Errorf("Set-Cookie %q: attributes %q, want exactly %q", line, got, want)
	}
}

// refreshMaxAge is the Max-Age attribute for authtest.NewServer's refresh TTL.
var refreshMaxAge = "Max-Age=" + strconv.Itoa(int((720 * time.Hour).Seconds()))

func TestCookieLoginSetsRefreshCookie(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, withCookies(authtest.AppOrigin))

		for _, doc := range []struct{ name, query string }{{"register", authtest.RegisterDoc}, {"login", authtest.LoginDoc}} {
			t.Run(doc.name, func(t *testing.T) {
				r := browser(t, ts, authtest.AppOrigin, "", doc.query, authtest.Creds("ada@example.com")).OK(t)
				c, line := authtest.SetCookie(t, r)
				if c.Value == "" || c.Value != r.Str(doc.name, "refreshToken") {
					t.Errorf("cookie value %q, want the payload's refreshToken %q", c.Value, r.Str(doc.name, "refreshToken"))
				}
				// Exactly these: no Domain (host-only), no Expires, nothing else.
				wantAttrs(t, line, "HttpOnly", "Path=/query", "SameSite=Strict", "Secure", refreshMaxAge)
			})
		}
		t.Run("SecureOffOnlyWhenAsked", func(t *testing.T) {
			insecure := authtest.NewServer(t, dsn, nil, withCookies(authtest.AppOrigin), withInsecureCookie())
			r := browser(t, insecure, authtest.AppOrigin, "", authtest.LoginDoc, authtest.Creds("ada@example.com")).OK(t)
			_, line := authtest.SetCookie(t, r)
			wantAttrs(t, line, "HttpOnly", "Path=/query", "SameSite=Strict", refreshMaxAge)
		})
		// Login CSRF: a page elsewhere must not plant a session of its own
		// choosing in the browser. The JSON answer is unchanged.
		t.Run("NoneForForeignOrigin", func(t *testing.T) {
			r := browser(t, ts, "https://evil.example", "", authtest.LoginDoc, authtest.Creds("ada@example.com")).OK(t)
			noSetCookie(t, r)
			if r.Str("login", "refreshToken") == "" {
				t.Error("the payload lost its refreshToken")
			}
		})
		t.Run("NoneWithoutOrigin", func(t *testing.T) {
			noSetCookie(t, browser(t, ts, "", "", authtest.LoginDoc, authtest.Creds("ada@example.com")).OK(t))
		})
		t.Run("NoneWhenCookieModeOff", func(t *testing.T) {
			off := authtest.NewServer(t, dsn, nil, withOrigins(authtest.AppOrigin))
			noSetCookie(t, browser(t, off, authtest.AppOrigin, "", authtest.LoginDoc, authtest.Creds("ada@example.com")).OK(t))
		})
	})
}

func TestCookieOneSetCookiePerResponse(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, withCookies(authtest.AppOrigin))
		ts.Register(t, "ada@example.com", "password1")
		// Mutations run in order, so the browser must end up with b's token,
		// and one Set-Cookie leaves it no choice to make.
		r := browser(t, ts, authtest.AppOrigin, "", `mutation($e: String!, $p: String!) {
			a: login(email: $e, password: $p) { refreshToken }
			b: login(email: $e, password: $p) { refreshToken } }`, authtest.Creds("ada@example.com")).OK(t)
		c, _ := authtest.SetCookie(t, r)
		if c.Value != r.Str("b", "refreshToken") || c.Value == r.Str("a", "refreshToken") {
			t.Errorf("cookie %q, want b's token %q", c.Value, r.Str("b", "refreshToken"))
		}
	})
}

func TestCookieRefreshRotates(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		// No reuse grace, so that a spent token is refused at once.
		ts := authtest.NewServer(t, dsn, nil, withCookies(authtest.AppOrigin), authtest.WithReuseInterval(0))
		first, _ := authtest.SetCookie(t, browser(t, ts, authtest.AppOrigin, "", authtest.RegisterDoc, authtest.Creds("ada@example.com")).OK(t))

		r := browser(t, ts, authtest.AppOrigin, "", authtest.RefreshCookieDoc, nil, first.Value).OK(t)
		second, line := authtest.SetCookie(t, r)
		if second.Value == first.Value || second.Value != r.Str("refresh", "refreshToken") {
			t.Fatalf("rotated cookie %q (was %q), want the new refreshToken %q", second.Value, first.Value, r.Str("refresh", "refreshToken"))
		}
		wantAttrs(t, line, "HttpOnly", "Path=/query", "SameSite=Strict", "Secure", refreshMaxAge)
		ts.Me(t, r.Str("refresh", "accessToken")).OK(t)

		// refresh with an argument works as before and sets the cookie too.
		r = browser(t, ts, authtest.AppOrigin, "", authtest.RefreshDoc, map[string]any{"t": second.Value}).OK(t)
		if third, _ := authtest.SetCookie(t, r); third.Value != r.Str("refresh", "refreshToken") {
			t.Errorf("cookie %q, want the new refreshToken", third.Value)
		}

		t.Run("SpentCookieRefusedAndCleared", func(t *testing.T) {
			r := browser(t, ts, authtest.AppOrigin, "", authtest.RefreshCookieDoc, nil, first.Value)
			if code := r.Code(t); code != models.Unauthenticated {
				t.Fatalf("spent cookie: code = %s, want UNAUTHENTICATED", code)
			}
			c, line := authtest.SetCookie(t, r)
			if c.Value != "" {
				t.Errorf("clearing cookie has value %q", c.Value)
			}
			wantAttrs(t, line, "HttpOnly", "Path=/query", "SameSite=Strict", "Secure", "Max-Age=0")
		})
	})
}

func TestCookieRefreshRefusesForeignOrigins(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		// No reuse grace: had a refused request rotated the token, the last
		// refresh below would find it spent.
		ts := authtest.NewServer(t, dsn, nil, withCookies(authtest.AppOrigin, "http://localhost:5173"), authtest.WithReuseInterval(0))
		c, _ := authtest.SetCookie(t, browser(t, ts, authtest.AppOrigin, "", authtest.RegisterDoc, authtest.Creds("ada@example.com")).OK(t))

		for _, origin := range []string{
			"https://evil.example",
			"",     // no Origin at all
			"null", // sandboxed frames, file: pages, some redirects
			"https://app.example.com.evil.example",
			"https://evil.example/https://app.example.com",
			"http://app.example.com", // same host, other scheme
			"https://app.example.com:8443",
			"https://example.com",
			"http://localhost:5174",
			authtest.AppOrigin + ", https://evil.example",
		} {
			t.Run(strconv.Quote(origin), func(t *testing.T) {
				r := browser(t, ts, origin, "", authtest.RefreshCookieDoc, nil, c.Value)
				if code := r.Code(t); code != models.Forbidden {
					t.Errorf("code = %s, want FORBIDDEN", code)
				}
				// Words the frontend's developer can act on.
				why := "Origin is not allowed"
				if origin == "" {
					why = "no Origin header"
				}
				if !strings.Contains(r.Errors[0].Message, why) {
					t.Errorf("message %q does not say %q", r.Errors[0].Message, why)
				}
				if r.Data != nil {
					t.Errorf("data = %v, want null", r.Data)
				}
				noSetCookie(t, r)
			})
		}
		t.Run("StillUsableFromTheAllowedOrigin", func(t *testing.T) {
			r := browser(t, ts, authtest.AppOrigin, "", authtest.RefreshCookieDoc, nil, c.Value).OK(t)
			authtest.SetCookie(t, r)
		})
	})
}

func TestCookieRefreshWithoutUsableCookie(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, withCookies(authtest.AppOrigin), authtest.WithReuseInterval(0))

		t.Run("NoCookie", func(t *testing.T) {
			r := browser(t, ts, authtest.AppOrigin, "", authtest.RefreshCookieDoc, nil)
			if code := r.Code(t); code != models.Unauthenticated {
				t.Errorf("code = %s, want UNAUTHENTICATED", code)
			}
			noSetCookie(t, r)
		})
		t.Run("GarbageIsCleared", func(t *testing.T) {
			r := browser(t, ts, authtest.AppOrigin, "", authtest.RefreshCookieDoc, nil, "not-a-token")
			if code := r.Code(t); code != models.Unauthenticated {
				t.Errorf("code = %s, want UNAUTHENTICATED", code)
			}
			if c, _ := authtest.SetCookie(t, r); c.MaxAge >= 0 {
				t.Errorf("cookie %+v, want it deleted", c)
			}
		})
		// A sibling domain can plant a second cookie of the same name
		// (cookie tossing) to swap its own session in; neither is used.
		t.Run("TwoCookiesRefused", func(t *testing.T) {
			victim, _ := authtest.SetCookie(t, browser(t, ts, authtest.AppOrigin, "", authtest.RegisterDoc, authtest.Creds("victim@example.com")).OK(t))
			planted, _ := authtest.SetCookie(t, browser(t, ts, authtest.AppOrigin, "", authtest.RegisterDoc, authtest.Creds("planted@example.com")).OK(t))
			for _, order := range [][]string{{victim.Value, planted.Value}, {planted.Value, victim.Value}} {
				r := browser(t, ts, authtest.AppOrigin, "", authtest.RefreshCookieDoc, nil, order...)
				if code := r.Code(t); code != models.Unauthenticated {
					t.Errorf("code = %s, want UNAUTHENTICATED", code)
				}
				noSetCookie(t, r)
			}
			browser(t, ts, authtest.AppOrigin, "", authtest.RefreshCookieDoc, nil, victim.Value).OK(t)
		})
	})
}

func TestRefreshWithoutArgumentNeedsCookieMode(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, withOrigins(authtest.AppOrigin), authtest.WithReuseInterval(0))
		tok := ts.Register(t, "ada@example.com", "password1")
		r := browser(t, ts, authtest.AppOrigin, "", authtest.RefreshCookieDoc, nil, tok.Refresh)
		if code := r.Code(t); code != models.BadUserInput {
			t.Errorf("code = %s, want BAD_USER_INPUT", code)
		}
		if !strings.Contains(r.Errors[0].Message, "refreshToken is required") {
			t.Errorf("message = %q", r.Errors[0].Message)
		}
		noSetCookie(t, r)
		ts.Refresh(t, tok.Refresh).OK(t) // the cookie was not read, so not spent
	})
}

func TestRefreshArgumentIgnoresCookieAndOrigin(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, withCookies(authtest.AppOrigin))
		tok := ts.Register(t, "ada@example.com", "password1")
		for _, origin := range []string{"https://evil.example", ""} {
			r := browser(t, ts, origin, "", authtest.RefreshDoc, map[string]any{"t": tok.Refresh}, "not-a-token").OK(t)
			noSetCookie(t, r) // only allowed origins get the cookie
			tok = authtest.TokensOf(r, "refresh")
		}
	})
}

func TestCookieLogoutClears(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, withCookies(authtest.AppOrigin))
		// Deleting grants nothing, so a logout clears the cookie whatever
		// its Origin.
		for i, origin := range []string{authtest.AppOrigin, ""} {
			t.Run("Origin"+strconv.Quote(origin), func(t *testing.T) {
				r := browser(t, ts, authtest.AppOrigin, "", authtest.RegisterDoc, authtest.Creds(fmt.Sprintf("user%d@example.com", i))).OK(t)
				c, _ := authtest.SetCookie(t, r)
				out := browser(t, ts, origin, r.Str("register", "accessToken"), `mutation { logout }`, nil, c.Value).OK(t)
				gone, line := authtest.SetCookie(t, out)
				if gone.Value != "" {
					t.Errorf("clearing cookie has value %q", gone.Value)
				}
				wantAttrs(t, line, "HttpOnly", "Path=/query", "SameSite=Strict", "Secure", "Max-Age=0")
				if code := browser(t, ts, authtest.AppOrigin, "", authtest.RefreshCookieDoc, nil, c.Value).Code(t); code != models.Unauthenticated {
					t.Errorf("refresh after logout: code = %s, want UNAUTHENTICATED", code)
				}
			})
		}
		t.Run("NothingWhenCookieModeOff", func(t *testing.T) {
			off := authtest.NewServer(t, dsn, nil, withOrigins(authtest.AppOrigin))
			tok := off.Register(t, "off@example.com", "password1")
			noSetCookie(t, browser(t, off, authtest.AppOrigin, tok.Access, `mutation { logout }`, nil).OK(t))
		})
	})
}

// rawRequest sends method /query with headers and an empty JSON document,
// returning the status and headers.
func rawRequest(tb testing.TB, method, baseURL string, headers map[string]string) (int, http.Header) {
	tb.Helper()
	req, err := http.NewRequest(method, baseURL+"/query", strings.NewReader(`{"query":"{ __typename }"}`))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// accessControl returns the Access-Control-* headers of h.
func accessControl(h http.Header) map[string]string {
	m := map[string]string{}
	for k, v := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			m[k] = strings.Join(v, ", ")
		}
	}
	return m
}

func wantVaryOrigin(tb testing.TB, h http.Header) {
	tb.Helper()
	if !slices.Contains(h.Values("Vary"), "Origin") {
		tb.Errorf("Vary = %q, want Origin", h.Values("Vary"))
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		// Cookie mode off: bearer-token frontends on another origin need
		// CORS too.
		ts := authtest.NewServer(t, dsn, nil, withOrigins(authtest.AppOrigin, "http://localhost:5173"))
		preflight := func(origin string) map[string]string {
			return map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,authorization"}
		}

		for _, origin := range []string{authtest.AppOrigin, "http://localhost:5173"} {
			t.Run("Allowed"+strconv.Quote(origin), func(t *testing.T) {
				status, h := rawRequest(t, http.MethodPost, ts.URL, map[string]string{"Origin": origin})
				want := map[string]string{"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true"}
				if got := accessControl(h); status != http.StatusOK || !maps.Equal(got, want) {
					t.Errorf("POST: %d %v, want 200 %v", status, got, want)
				}
				wantVaryOrigin(t, h)

				status, h = rawRequest(t, http.MethodOptions, ts.URL, preflight(origin))
				want["Access-Control-Allow-Methods"] = "POST"
				want["Access-Control-Allow-Headers"] = "Content-Type, Authorization, X-Request-ID"
				want["Access-Control-Max-Age"] = "600"
				if got := accessControl(h); status != http.StatusNoContent || !maps.Equal(got, want) {
					t.Errorf("preflight: %d %v, want 204 %v", status, got, want)
				}
				wantVaryOrigin(t, h)
			})
		}
		for _, origin := range []string{"https://evil.example", "", "null", "https://app.example.com.evil.example", "http://app.example.com"} {
			t.Run("Refused"+strconv.Quote(origin), func(t *testing.T) {
				status, h := rawRequest(t, http.MethodPost, ts.URL, map[string]string{"Origin": origin})
				if got := accessControl(h); len(got) > 0 {
					t.Errorf("POST: %v, want no Access-Control-* header", got)
				}
				wantVaryOrigin(t, h)
				if status != http.StatusOK {
					t.Errorf("POST status %d: a request without CORS still gets its answer (the browser hides it)", status)
				}
				status, h = rawRequest(t, http.MethodOptions, ts.URL, preflight(origin))
				if got := accessControl(h); status != http.StatusForbidden || len(got) > 0 {
					t.Errorf("preflight: %d %v, want 403 and no Access-Control-* header", status, got)
				}
				wantVaryOrigin(t, h)
			})
		}
		t.Run("NoneConfigured", func(t *testing.T) {
			plain := authtest.NewServer(t, dsn, nil)
			status, h := rawRequest(t, http.MethodOptions, plain.URL, preflight(authtest.AppOrigin))
			if got := accessControl(h); status != http.StatusForbidden || len(got) > 0 {
				t.Errorf("preflight: %d %v, want 403 and no Access-Control-* header", status, got)
			}
		})
	})
}
