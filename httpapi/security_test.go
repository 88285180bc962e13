package httpapi_test

// The adversarial suite: each test attacks one defence over real HTTP with
// real GraphQL documents, on SQLite and (with TEST_DATABASE_URL) PostgreSQL.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/httpapi"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// loopbackProxy trusts the test client's own address as a proxy, so that a
// test can act as many clients through X-Forwarded-For.
func loopbackProxy(c *authtest.Config) {
	c.Auth.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
}

// aliasedLogins is one document with n aliased login fields.
func aliasedLogins(n int, email, password string) string {
	var b strings.Builder
	b.WriteString("mutation {")
	for i := range n {
		fmt.Fprintf(&b, " a%d: login(email: %q, password: %q) { accessToken }", i, email, password)
	}
	b.WriteString(" }")
	return b.String()
}

// codesByField returns the extensions.code of the error at each top-level
// field, by alias.
func codesByField(r authtest.Response) map[string]authtest.GQLError {
	out := map[string]authtest.GQLError{}
	for _, e := range r.Errors {
		if len(e.Path) > 0 {
			out[fmt.Sprint(e.Path[0])] = e
		}
	}
	return out
}

// loginAs logs in as a client at ip (through the trusted loopback proxy).
func loginAs(tb testing.TB, ts *authtest.Server, ip, email, password string) authtest.Response {
	tb.Helper()
	return authtest.PostGraphQL(tb, ts.URL, map[string]string{"X-Forwarded-For": ip},
		`mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }`,
		map[string]any{"e": email, "p": password})
}

func TestBruteForceAliasBatching(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		limits := auth.Limits{LoginAccount: auth.Rate{N: 5, Per: 15 * time.Minute}, LoginClient: auth.Rate{N: 1000, Per: 15 * time.Minute}}
		ts := authtest.NewServer(t, dsn, nil, authtest.WithLimits(limits), loopbackProxy)
		ts.Register(t, "victim@example.com", "the-password")

		// Thirty guesses in one HTTP request are thirty attempts: the
		// first five are checked, the other 25 refused unchecked.
		r := authtest.PostGraphQL(t, ts.URL, map[string]string{"X-Forwarded-For": "203.0.113.7"}, aliasedLogins(30, "victim@example.com", "guess"), nil)
		byField := codesByField(r)
		if len(byField) != 30 {
			t.Fatalf("%d errors, want one per aliased login: %+v", len(byField), r.Errors)
		}
		for i := range 30 {
			e := byField[fmt.Sprintf("a%d", i)]
			code, _ := e.Extensions["code"].(string)
			want := models.Unauthenticated
			if i >= 5 {
				want = models.RateLimited
			}
			if code != want {
				t.Errorf("a%d: code = %s, want %s", i, code, want)
			}
			if want == models.RateLimited {
				if ra, _ := e.Extensions["retryAfter"].(float64); ra < 1 {
					t.Errorf("a%d: retryAfter = %v, want whole seconds >= 1", i, e.Extensions["retryAfter"])
				}
			}
		}

		t.Run("RightPasswordRefusedToo", func(t *testing.T) {
			if code := loginAs(t, ts, "203.0.113.7", "victim@example.com", "the-password").Code(t); code != models.RateLimited {
				t.Errorf("code = %s, want RATE_LIMITED whatever the password", code)
			}
		})
		t.Run("UnknownAccountLimitedAlike", func(t *testing.T) {
			// The same answers for an email without an account: the limit
			// does not tell which emails are registered.
			r := authtest.PostGraphQL(t, ts.URL, map[string]string{"X-Forwarded-For": "203.0.113.7"}, aliasedLogins(6, "nobody@example.com", "guess"), nil)
			byField := codesByField(r)
			if code := byField["a4"].Extensions["code"]; code != models.Unauthenticated {
				t.Errorf("5th attempt: code = %v, want UNAUTHENTICATED", code)
			}
			if e := byField["a5"]; e.Extensions["code"] != models.RateLimited || e.Message != "too many attempts; try again later" {
				t.Errorf("6th attempt: %+v, want RATE_LIMITED with the same message as for a real account", e)
			}
		})
		t.Run("OwnerElsewhereUnaffected", func(t *testing.T) {
			// Keyed by account and client: an attacker cannot lock the
			// owner out.
			loginAs(t, ts, "198.51.100.1", "victim@example.com", "the-password").OK(t)
		})
		t.Run("PaceResumesAfterInterval", func(t *testing.T) {
			ts.Clock.Advance(3 * time.Minute) // 15m / 5: one attempt regained
			loginAs(t, ts, "203.0.113.7", "victim@example.com", "the-password").OK(t)
		})
		t.Run("SuccessesDoNotCount", func(t *testing.T) {
			for i := range 8 {
				if r := loginAs(t, ts, "192.0.2.44", "victim@example.com", "the-password"); len(r.Errors) > 0 {
					t.Fatalf("login %d: %+v", i+1, r.Errors)
				}
			}
		})
	})
}

func TestBruteForceAcrossAccounts(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		limits := auth.Limits{LoginAccount: auth.Rate{N: 100, Per: time.Hour}, LoginClient: auth.Rate{N: 8, Per: time.Hour}}
		ts := authtest.NewServer(t, dsn, nil, authtest.WithLimits(limits), loopbackProxy)
		ts.Register(t, "someone@example.com", "the-password")
		for i := range 8 {
			if code := loginAs(t, ts, "203.0.113.9", fmt.Sprintf("user%d@example.com", i), "guess").Code(t); code != models.Unauthenticated {
				t.Fatalf("attempt %d: code = %s, want UNAUTHENTICATED", i+1, code)
			}
		}
		if code := loginAs(t, ts, "203.0.113.9", "someone@example.com", "the-password").Code(t); code != models.RateLimited {
			t.Errorf("9th attempt from the client on a fresh account: code = %s, want RATE_LIMITED", code)
		}
		// IPv6 clients are counted by /64: a host owns the whole prefix.
		for i := range 8 {
			loginAs(t, ts, fmt.Sprintf("2001:db8:1:2::%x", i+1), "guess@example.com", "guess")
		}
		if code := loginAs(t, ts, "2001:db8:1:2:ffff::1", "someone@example.com", "the-password").Code(t); code != models.RateLimited {
			t.Errorf("another address of the same /64: code = %s, want RATE_LIMITED", code)
		}
		loginAs(t, ts, "2001:db8:1:3::1", "someone@example.com", "the-password").OK(t)
	})
}

func TestForwardedForNotTrustedByDefault(t *testing.T) {
	t.Parallel()
	limits := auth.Limits{LoginAccount: auth.Rate{N: 3, Per: time.Hour}}
	ts := authtest.NewServer(t, testdb.SQLite(t), nil, authtest.WithLimits(limits))
	// Without trusted proxies, a client rotating X-Forwarded-For is still
	// one client: its connection's address.
	for i := range 3 {
		loginAs(t, ts, fmt.Sprintf("203.0.113.%d", i+1), "a@example.com", "guess")
	}
	if code := loginAs(t, ts, "203.0.113.99", "a@example.com", "guess").Code(t); code != models.RateLimited {
		t.Errorf("code = %s, want RATE_LIMITED: the forged header must not reset the count", code)
	}
}

func TestRateLimitsSharedByReplicas(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	limits := auth.Limits{LoginAccount: auth.Rate{N: 4, Per: time.Hour}}
	c := authtest.NewClock()
	a := authtest.NewServer(t, dsn, c, authtest.WithLimits(limits), loopbackProxy)
	b := authtest.NewServer(t, dsn, c, authtest.WithLimits(limits), loopbackProxy)
	a.Register(t, "shared@example.com", "the-password")
	for i, ts := range []*authtest.Server{a, b, a, b} {
		if code := loginAs(t, ts, "203.0.113.5", "shared@example.com", "guess").Code(t); code != models.Unauthenticated {
			t.Fatalf("attempt %d: code = %s", i+1, code)
		}
	}
	for name, ts := range map[string]*authtest.Server{"A": a, "B": b} {
		if code := loginAs(t, ts, "203.0.113.5", "shared@example.com", "the-password").Code(t); code != models.RateLimited {
			t.Errorf("replica %s after 4 failures spread over both: code = %s, want RATE_LIMITED", name, code)
		}
	}
}

func TestRegisterAndRefreshLimits(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		limits := auth.Limits{Register: auth.Rate{N: 2, Per: time.Hour}, Refresh: auth.Rate{N: 3, Per: time.Minute}}
		ts := authtest.NewServer(t, dsn, nil, authtest.WithLimits(limits))
		u := ts.Register(t, "one@example.com", "password1")
		ts.Register(t, "two@example.com", "password1")
		r := ts.Do(t, "", `mutation { register(email: "three@example.com", password: "password1") { accessToken } }`, nil)
		if code := r.Code(t); code != models.RateLimited {
			t.Errorf("3rd registration: code = %s, want RATE_LIMITED", code)
		}
		token := u.Refresh
		for range 3 {
			token = ts.Refresh(t, token).OK(t).Str("refresh", "refreshToken")
		}
		if code := ts.Refresh(t, token).Code(t); code != models.RateLimited {
			t.Errorf("4th refresh in a minute: code = %s, want RATE_LIMITED", code)
		}
		ts.Clock.Advance(20 * time.Second)
		ts.Refresh(t, token).OK(t) // the refused attempt spent nothing
	})
}

// post sends body to /query as is and returns the status and the decoded
// response.
func post(t *testing.T, url string, body io.Reader, contentLength int64) (int, authtest.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/query", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = contentLength
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out authtest.Response
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("status %d, body %q: %v", resp.StatusCode, raw, err)
	}
	return resp.StatusCode, out
}

func TestOversizedBody(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil)
	limit := httpapi.DefaultConfig().MaxBodyBytes
	doc := `{"query":"{ __typename }"}`
	exact := doc + strings.Repeat(" ", int(limit)-len(doc))
	t.Run("AtTheLimit", func(t *testing.T) {
		status, r := post(t, ts.URL, strings.NewReader(exact), int64(len(exact)))
		if status != http.StatusOK || r.Str("__typename") != "Query" {
			t.Errorf("a body of exactly %d bytes: status %d, %+v", limit, status, r)
		}
	})
	for _, tc := range []struct {
		name   string
		length int64 // -1: unknown, sent chunked
	}{{"DeclaredLength", limit + 1}, {"Chunked", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			body := io.MultiReader(strings.NewReader(exact), strings.NewReader(" "))
			status, r := post(t, ts.URL, body, tc.length)
			if status != http.StatusRequestEntityTooLarge || r.Code(t) != "PAYLOAD_TOO_LARGE" {
				t.Errorf("status %d, errors %+v; want 413 PAYLOAD_TOO_LARGE", status, r.Errors)
			}
		})
	}
}

func TestDocumentLimits(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil)
	nested := func(depth int) string {
		// __type's ofType chain is the one unbounded nesting this schema has.
		// __type, depth-2 ofType, name: depth fields in a chain.
		return `{ __type(name: "User") { ` + strings.Repeat("ofType { ", depth-2) + "name" + strings.Repeat(" }", depth-1) + " }"
	}
	limit := httpapi.DefaultConfig().MaxDepth
	t.Run("DeepDocumentRefused", func(t *testing.T) {
		status, r := post(t, ts.URL, jsonBody(nested(limit+1)), -1)
		if status != http.StatusOK || r.Code(t) != "DEPTH_LIMIT_EXCEEDED" {
			t.Errorf("depth %d: status %d, errors %+v; want 200 (application/json) DEPTH_LIMIT_EXCEEDED", limit+1, status, r.Errors)
		}
	})
	t.Run("DepthAtLimitRuns", func(t *testing.T) {
		ts.Do(t, "", nested(limit), nil).OK(t)
	})
	t.Run("DepthThroughFragments", func(t *testing.T) {
		doc := `query { __type(name: "User") { ...A } }
			fragment A on __Type { ofType { ...B } }
			fragment B on __Type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } } } } } } } } }`
		if code := ts.Do(t, "", doc, nil).Code(t); code != "DEPTH_LIMIT_EXCEEDED" {
			t.Errorf("code = %s, want DEPTH_LIMIT_EXCEEDED", code)
		}
	})
	t.Run("FragmentBombWalkedOnce", func(t *testing.T) {
		// Each fragment spreads the next twice: expanded naively that is
		// 2^40 selections; the depth walk must visit each fragment once.
		var b strings.Builder
		b.WriteString("{ me { ...F0 } }\n")
		for i := range 40 {
			fmt.Fprintf(&b, "fragment F%d on User { ...F%d ...F%d }\n", i, i+1, i+1)
		}
		b.WriteString("fragment F40 on User { id }\n")
		if code := ts.Do(t, "", b.String(), nil).Code(t); code != "COMPLEXITY_LIMIT_EXCEEDED" {
			t.Errorf("code = %s, want COMPLEXITY_LIMIT_EXCEEDED", code)
		}
	})
	t.Run("ComplexityRefused", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("{")
		for i := range 600 {
			fmt.Fprintf(&b, " m%d: me { id }", i)
		}
		b.WriteString(" }")
		status, r := post(t, ts.URL, jsonBody(b.String()), -1)
		if status != http.StatusOK || r.Code(t) != "COMPLEXITY_LIMIT_EXCEEDED" {
			t.Errorf("status %d, errors %+v; want 200 (application/json) COMPLEXITY_LIMIT_EXCEEDED", status, r.Errors)
		}
	})
	t.Run("DeeplyNestedGarbage", func(t *testing.T) {
		// Twenty thousand open braces: refused cleanly, not a crash.
		status, r := post(t, ts.URL, jsonBody(strings.Repeat("{ me ", 10000)), -1)
		if status == http.StatusInternalServerError || len(r.Errors) == 0 {
			t.Errorf("status %d, errors %+v", status, r.Errors)
		}
		if code, _ := r.Errors[0].Extensions["code"].(string); code == "" || code == models.Internal {
			t.Errorf("code = %q, want a parse or validation code", code)
		}
	})
}

// jsonBody is a GraphQL request body for query.
func jsonBody(query string) io.Reader {
	b, _ := json.Marshal(map[string]any{"query": query})
	return bytes.NewReader(b)
}

func TestProductionHidesSchema(t *testing.T) {
	t.Parallel()
	prod := func(c *authtest.Config) {
		c.HTTP.Introspection, c.HTTP.Playground = false, false
	}
	ts := authtest.NewServer(t, testdb.SQLite(t), nil, prod)
	for _, doc := range []string{
		`{ __schema { types { name } } }`,
		`{ __type(name: "User") { fields { name } } }`,
		`query { me { id } ... on Query { __schema { queryType { name } } } }`,
	} {
		status, r := post(t, ts.URL, jsonBody(doc), -1)
		if status != http.StatusOK || r.Code(t) != "GRAPHQL_VALIDATION_FAILED" || r.Data != nil {
			t.Errorf("%s: status %d, data %v, errors %+v; want 200 (application/json) GRAPHQL_VALIDATION_FAILED", doc, status, r.Data, r.Errors)
		}
	}
	ts.Do(t, "", `{ __typename }`, nil).OK(t)
	resp, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / = %d, want 404 (no playground)", resp.StatusCode)
	}
}

// introspectionQuery is the query GraphiQL (the playground) sends when it
// loads, as graphql-js's getIntrospectionQuery writes it with every option
// on.
const introspectionQuery = `query IntrospectionQuery {
  __schema {
    description
    queryType { name kind }
    mutationType { name kind }
    subscriptionType { name kind }
    types { ...FullType }
    directives { name description isRepeatable locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL isOneOf
  fields(includeDeprecated: true) { name description args(includeDeprecated: true) { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue isDeprecated deprecationReason }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
}`

func TestPlaygroundIntrospectionWithinLimits(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil)
	r := ts.Do(t, "", introspectionQuery, nil).OK(t)
	if r.Str("__schema", "queryType", "name") != "Query" {
		t.Errorf("introspection = %v", r.Data["__schema"])
	}
}
