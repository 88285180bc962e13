package httpapi_test

// Attacks on the cost of one request (issue 10, §1 and §6): each test
// sends the hostile document or connection over real HTTP or TCP and
// asserts on what comes back: codes, counts of errors, sizes.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/graph"
	"github.com/authql/authql/httpapi"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
	"github.com/vektah/gqlparser/v2/ast"
)

// repeated is a document selecting unit n times.
func repeated(unit string, n int) string {
	return "{" + strings.Repeat(" "+unit, n) + " }"
}

// fillTo is a document of unit repeated to fill a body of size bytes.
func fillTo(unit string, size int) string {
	return repeated(unit, (size-len(`{"query":"{ }"}`))/(len(unit)+1))
}

// postRaw posts a JSON body and returns the status, the decoded response and
// the body's size.
func postRaw(t *testing.T, url string, body any) (int, authtest.Response, int) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url+"/query", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := authtest.Response{Status: resp.StatusCode, Header: resp.Header}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("status %d, body of %d bytes: %v", resp.StatusCode, len(raw), err)
	}
	return resp.StatusCode, out, len(raw)
}

// manySpreads is a document spreading n fragments into one selection set,
// every pair of them conflicting.
func manySpreads(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " ...F%d", i)
	}
	b.WriteString(" }")
	for i := range n {
		field := "me { id }"
		if i%2 == 1 {
			field = "roles { name }"
		}
		fmt.Fprintf(&b, " fragment F%d on Query { a: %s }", i, field)
	}
	return b.String()
}

func TestHostileDocumentsRefusedBeforeValidation(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil)
	limit := int(httpapi.DefaultConfig().MaxBodyBytes)
	for _, tc := range []struct {
		name, doc, code string
	}{
		// 64 KB of repeated selections: tens of seconds of CPU in the
		// overlapping-fields validation before the fix. The parser stops
		// at its token limit.
		{"RepeatedSelections64KB", fillTo("me { id }", limit), "GRAPHQL_PARSE_FAILED"},
		// Within the token limit but past the fields: counted before
		// validation (this one validated and ran before: complexity 500).
		{"RepeatedSelectionsPastFields", repeated("me { id }", graph.MaxFields/2+1), "COMPLEXITY_LIMIT_EXCEEDED"},
		// Invalid and past the fields: the count comes first, so the
		// answer is the count's, not validation's.
		{"InvalidPastFields", repeated("me { nope }", graph.MaxFields/2+1), "COMPLEXITY_LIMIT_EXCEEDED"},
		// 37 KB of conflicting aliases: 300 MB of errors before the fix.
		{"ConflictingAliases37KB", fillTo("a: me { id } a: roles { name }", 37<<10), "GRAPHQL_PARSE_FAILED"},
		{"ConflictingAliasesPastFields", repeated("a: me { id } a: roles { name }", graph.MaxFields/4+1), "COMPLEXITY_LIMIT_EXCEEDED"},
		// Within the fields, but one response name too often, or too many
		// fragments spread in one selection set: the numbers whose square
		// validation costs.
		{"OneNameTooOften", repeated("me { id }", graph.MaxRepeats+1), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"OneAliasTooOftenThroughInlineFragments", repeated("... on Query { a: me { id } }", graph.MaxRepeats+1), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"TooManySpreads", manySpreads(graph.MaxRepeats + 1), "COMPLEXITY_LIMIT_EXCEEDED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, r, size := postRaw(t, ts.URL, map[string]any{"query": tc.doc})
			if status != http.StatusOK || r.Code(t) != tc.code || r.Data != nil {
				t.Errorf("status %d, data %v, errors %+v; want 200 (application/json) %s without data", status, r.Data, r.Errors, tc.code)
			}
			if size > 1024 {
				t.Errorf("the answer is %d bytes, want one short error", size)
			}
		})
	}

	t.Run("ConflictingAliasesWithinLimits", func(t *testing.T) {
		// n conflicting aliases make n²/2 errors: five names, each
		// MaxRepeats/2 times on me and as many on roles, make 320
		// conflicts.
		var units []string
		for _, name := range []string{"a", "b", "c", "d", "e"} {
			units = append(units, strings.Repeat(name+": me { id } "+name+": roles { name } ", graph.MaxRepeats/2))
		}
		doc := "{ " + strings.Join(units, "") + "}"
		status, r, size := postRaw(t, ts.URL, map[string]any{"query": doc})
		if status != http.StatusOK || len(r.Errors) != graph.MaxErrors {
			t.Fatalf("status %d, %d errors; want 200 (application/json) with %d", status, len(r.Errors), graph.MaxErrors)
		}
		for _, e := range r.Errors {
			if e.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
				t.Fatalf("error %+v, want GRAPHQL_VALIDATION_FAILED", e)
			}
		}
		if size > 32<<10 {
			t.Errorf("the answer is %d bytes, want at most 32 KB", size)
		}
	})
	t.Run("ExecutionErrorsCapped", func(t *testing.T) {
		// Sixty aliased fields that each fail: sixty errors, of which the
		// answer carries the first fifty.
		var b strings.Builder
		b.WriteString("{")
		for i := range 60 {
			fmt.Fprintf(&b, " m%d: me { id }", i)
		}
		b.WriteString(" }")
		r := ts.Do(t, "", b.String(), nil)
		if len(r.Errors) != graph.MaxErrors || r.Errors[0].Extensions["code"] != models.Unauthenticated {
			t.Errorf("%d errors (first %+v), want %d UNAUTHENTICATED", len(r.Errors), r.Errors[0], graph.MaxErrors)
		}
	})
	t.Run("PlaygroundIntrospectionStillRuns", func(t *testing.T) {
		ts.Do(t, "", introspectionQuery, nil).OK(t)
	})
}

// apqBody is a request of an automatic persisted query: the hash of doc,
// and doc unless hashOnly.
func apqBody(doc string, hashOnly bool) map[string]any {
	sum := sha256.Sum256([]byte(doc))
	body := map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}}
	if !hashOnly {
		body["query"] = doc
	}
	return body
}

func TestPersistedQueriesKeepOnlyPassedDocuments(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil)
	for _, tc := range []struct{ name, doc, code string }{
		{"PastComplexity", repeated("users(first: 500) { id }", 24), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"PastFields", repeated("me { id }", graph.MaxFields), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"Invalid", `{ me { nope } }`, "GRAPHQL_VALIDATION_FAILED"},
		{"DoesNotParse", `{ me { id }`, "GRAPHQL_PARSE_FAILED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, r, _ := postRaw(t, ts.URL, apqBody(tc.doc, false)); r.Code(t) != tc.code {
				t.Fatalf("with the document: %+v, want %s", r.Errors, tc.code)
			}
			if _, r, _ := postRaw(t, ts.URL, apqBody(tc.doc, true)); r.Code(t) != "PERSISTED_QUERY_NOT_FOUND" {
				t.Errorf("by its hash afterwards: %+v, want PERSISTED_QUERY_NOT_FOUND", r.Errors)
			}
		})
	}
	t.Run("PassedDocumentKept", func(t *testing.T) {
		doc := `{ __typename }`
		postRaw(t, ts.URL, apqBody(doc, false))
		if _, r, _ := postRaw(t, ts.URL, apqBody(doc, true)); len(r.Errors) > 0 || r.Str("__typename") != "Query" {
			t.Errorf("by its hash: %+v", r)
		}
	})
}

// metricValue returns the value of the sample named name in the metrics.
func metricValue(t *testing.T, metrics, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(metrics, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no sample %s", name)
	return 0
}

func TestDocumentCacheKeepsOnlyPassedDocumentsWithinItsBytes(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil)
	cached := func() (entries, bytes float64) {
		m := authtest.Scrape(t, ts.URL)
		return metricValue(t, m, "authql_graphql_document_cache_entries"), metricValue(t, m, "authql_graphql_document_cache_bytes")
	}
	t.Run("RefusedNotKept", func(t *testing.T) {
		// Documents that parse and validate but are refused by a limit:
		// before the fix gqlgen cached each (1.6 MB for a 64 KB one).
		for i := range 50 {
			var doc string
			switch i % 3 {
			case 0: // past the complexity, pages counted
				doc = fmt.Sprintf("{ x%d: users(first: 500) { id email } %s }", i, strings.Repeat("users(first: 500) { id email } ", 6))
			case 1: // past the complexity through a variable's page
				doc = fmt.Sprintf("query($n: Int) { x%d: auditLog(first: $n) { id at type } %s }", i, strings.Repeat("auditLog(first: $n) { id at type } ", 4))
			default: // past the fields
				doc = repeated(fmt.Sprintf("a%d: me { id }", i), graph.MaxFields)
			}
			vars := map[string]any{"n": 500}
			if r := ts.Do(t, "", doc, vars); r.Code(t) != "COMPLEXITY_LIMIT_EXCEEDED" {
				t.Fatalf("document %d: %+v", i, r.Errors)
			}
		}
		if entries, bytes := cached(); entries != 0 || bytes != 0 {
			t.Errorf("after 50 refused documents the cache holds %v documents, %v bytes; want none", entries, bytes)
		}
	})
	t.Run("BoundedByBytes", func(t *testing.T) {
		// Distinct valid documents of the most fields allowed, many more
		// than fit: the cache stays within its bytes.
		const n = 120
		for i := range n {
			var b strings.Builder
			b.WriteString("{")
			for j := range graph.MaxFields / 2 {
				fmt.Fprintf(&b, " d%dm%d: me { id }", i, j)
			}
			b.WriteString(" }")
			if r := ts.Do(t, "", b.String(), nil); len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != models.Unauthenticated {
				t.Fatalf("document %d: %+v", i, r.Errors)
			}
		}
		entries, bytes := cached()
		if bytes > graph.DefaultDocumentCacheBytes || entries < 10 || entries >= n {
			t.Errorf("after %d large documents the cache holds %v documents, %v bytes; want some, fewer than %d, within %d bytes", n, entries, bytes, n, graph.DefaultDocumentCacheBytes)
		}
		// The hot path's document is kept again at once.
		ts.Do(t, "", `{ __typename }`, nil).OK(t)
		if e, _ := cached(); e > entries+1 || e < 1 {
			t.Errorf("entries = %v after one more document, want at most %v", e, entries+1)
		}
	})
}

// allUserFields and allAuditFields are every scalar of User and AuditEvent.
const (
	allUserFields    = `id email roles permissions createdAt cursor lastLoginAt emailVerified disabled`
	allAuditFields   = `id at type outcome reason userId actorId sessionId ip userAgent detail cursor`
	allSessionFields = `id createdAt lastUsedAt expiresAt userAgent ip current aal amr authTime`
	allMfaFields     = `enabled recoveryCodesRemaining factors { id type label createdAt lastUsedAt } passkeys { id label createdAt lastUsedAt backedUp }`
)

func TestListComplexityByPageSize(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		admin := ts.Admin(t)
		aliased := func(n int, field string) string {
			var b strings.Builder
			if strings.Contains(field, "$n") {
				b.WriteString("query($n: Int)")
			}
			b.WriteString("{")
			for i := range n {
				fmt.Fprintf(&b, " a%d: %s", i, field)
			}
			b.WriteString(" }")
			return b.String()
		}
		for _, tc := range []struct {
			name string
			doc  string
			vars map[string]any
			ok   bool
		}{
			// Every page the contract allows, with every scalar field.
			{"UsersFullPage", `{ users(first: 500) { ` + allUserFields + ` } }`, nil, true},
			{"AuditLogFullPage", `{ auditLog(first: 500) { ` + allAuditFields + ` } }`, nil, true},
			{"AuditLogFullPageByVariable", `query($n: Int) { auditLog(first: $n) { ` + allAuditFields + ` } }`, map[string]any{"n": 500}, true},
			{"MySessionsFull", `{ mySessions { ` + allSessionFields + ` } }`, nil, true},
			// A few dozen aliased lists do not fit.
			{"AliasedFullPages", aliased(24, "users(first: 500) { id }"), nil, false},
			{"AliasedFullPagesByVariable", aliased(24, "users(first: $n) { id }"), map[string]any{"n": 500}, false},
			{"AliasedSmallPagesByVariable", aliased(24, "users(first: $n) { id }"), map[string]any{"n": 2}, true},
			// Without first, a page is the default 50, from a variable too.
			{"AliasedDefaultPages", aliased(24, "auditLog { "+allAuditFields+" }"), nil, false},
			{"AliasedDefaultPagesByAbsentVariable", aliased(24, "auditLog(first: $n) { "+allAuditFields+" }"), map[string]any{}, false},
			{"AliasedDefaultPagesByNullVariable", aliased(24, "auditLog(first: $n) { "+allAuditFields+" }"), map[string]any{"n": nil}, false},
			// mySessions counts as many rows as a user may hold sessions.
			{"AliasedSessions", aliased(13, "mySessions { "+allSessionFields+" }"), nil, false},
			{"FewerAliasedSessions", aliased(12, "mySessions { "+allSessionFields+" }"), nil, true},
			// A user's second factors count by their bounds, and what the
			// mfa resolver reads counts whatever is selected of it.
			{"MyMfaFull", `{ me { mfa { ` + allMfaFields + ` } } }`, nil, true},
			{"UsersFullPageWithMfa", `{ users(first: 500) { id mfa { enabled } } }`, nil, false},
			{"UsersSmallerPageWithMfa", `{ users(first: 300) { id mfa { enabled } } }`, nil, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := ts.Do(t, admin.Access, tc.doc, tc.vars)
				if tc.ok {
					r.OK(t)
				} else if code := r.Code(t); code != "COMPLEXITY_LIMIT_EXCEEDED" {
					t.Errorf("code = %s, want COMPLEXITY_LIMIT_EXCEEDED", code)
				}
			})
		}
	})
}

func TestProductionValidationWithoutSuggestions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		production bool
	}{{"Development", false}, {"Production", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ts := authtest.NewServer(t, testdb.SQLite(t), nil, func(c *authtest.Config) {
				c.HTTP.Production = tc.production
				c.HTTP.Introspection = !tc.production
			})
			for _, doc := range []string{
				`{ me { emial } }`,                  // a field
				`{ users(frist: 5) { id } }`,        // an argument
				`{ auditLog(type: LOGINN) { id } }`, // an enum value
				`{ me }`,                            // a selection missing
			} {
				r := ts.Do(t, "", doc, nil)
				if len(r.Errors) == 0 {
					t.Fatalf("%s: no error", doc)
				}
				suggests := false
				for _, e := range r.Errors {
					suggests = suggests || strings.Contains(e.Message, "Did you mean")
				}
				if doc == `{ me }` {
					continue // gqlparser suggests nothing here either way
				}
				if suggests == tc.production {
					t.Errorf("%s: %+v; want suggestions only in development", doc, r.Errors)
				}
			}
		})
	}
}

func TestRetryAfterHeader(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		limits := auth.Limits{LoginAccount: auth.Rate{N: 3, Per: 15 * time.Minute}, LoginClient: auth.Rate{N: 1000, Per: 15 * time.Minute}}
		ts := authtest.NewServer(t, dsn, nil, authtest.WithLimits(limits), loopbackProxy)
		ts.Register(t, "victim@example.com", "the-password")

		r := authtest.PostGraphQL(t, ts.URL, map[string]string{"X-Forwarded-For": "203.0.113.8"}, aliasedLogins(5, "victim@example.com", "guess"), nil)
		most := 0
		for _, e := range r.Errors {
			if e.Extensions["code"] == models.RateLimited {
				ra, _ := e.Extensions["retryAfter"].(float64)
				most = max(most, int(ra))
			}
		}
		if most < 1 {
			t.Fatalf("no RATE_LIMITED error with retryAfter: %+v", r.Errors)
		}
		if got := r.Header.Get("Retry-After"); got != strconv.Itoa(most) {
			t.Errorf("Retry-After = %q, want %d, the largest retryAfter", got, most)
		}
		t.Run("NotOnOtherErrors", func(t *testing.T) {
			r := loginAs(t, ts, "198.51.100.2", "victim@example.com", "guess")
			if r.Code(t) != models.Unauthenticated || r.Header.Get("Retry-After") != "" {
				t.Errorf("a plain failure: %+v, Retry-After %q; want none", r.Errors, r.Header.Get("Retry-After"))
			}
		})
	})
}

// TestFullSelectionsAreFull keeps the full selections above true to the
// schema: a scalar added to User, AuditEvent or Session must join them, or
// the page-size tests would no longer test the largest page.
func TestFullSelectionsAreFull(t *testing.T) {
	schema := graph.NewExecutableSchema(graph.Config{}).Schema()
	for typ, list := range map[string]string{"User": allUserFields, "AuditEvent": allAuditFields, "Session": allSessionFields} {
		listed := map[string]bool{}
		for _, f := range strings.Fields(list) {
			listed[f] = true
		}
		for _, f := range schema.Types[typ].Fields {
			kind := schema.Types[f.Type.Name()].Kind
			if (kind == ast.Scalar || kind == ast.Enum) && !listed[f.Name] {
				t.Errorf("%s.%s is not in the full selection of %s", typ, f.Name, typ)
			}
		}
	}
}
