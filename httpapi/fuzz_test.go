package httpapi_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/authql/authql/httpapi"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// fuzzStatuses are the only statuses POST /query may answer: 200 for a
// GraphQL response (with or without errors: a document that does not
// parse or validate or is over a limit, to an application/json client),
// 400 for a request that is not a GraphQL request (no JSON body, no
// query) or a request error under application/graphql-response+json, 413
// for a body over the limit, 415 for a wrong content type. A 500, or
// anything else, on client input is a bug.
var fuzzStatuses = map[int]bool{
	http.StatusOK:                    true,
	http.StatusBadRequest:            true,
	http.StatusRequestEntityTooLarge: true,
	http.StatusUnsupportedMediaType:  true,
}

// fuzzContentTypes are the Content-Type headers a fuzz input picks from: the
// one the transport serves, its spellings, and ones it refuses.
var fuzzContentTypes = []string{
	"application/json",
	"application/json; charset=utf-8",
	"APPLICATION/JSON",
	"",
	"text/plain",
	"application/graphql",
	"application/x-www-form-urlencoded",
	"multipart/form-data; boundary=x",
	"application/json; charset=",
}

// FuzzGraphQLRequest posts arbitrary bodies to /query of the real handler on
// a real SQLite database, with a Content-Type and an Authorization header
// (none, a user's, an admin's, garbage) picked by the input, and checks that
// whatever the body, the answer is a JSON GraphQL response with a known
// status whose every error carries a code, and never an internal error:
// garbage input is the client's fault, never the server's.
func FuzzGraphQLRequest(f *testing.F) {
	ts := authtest.NewServer(f, testdb.SQLite(f), nil)
	user := ts.Register(f, "user@example.com", "password1")
	admin := ts.Admin(f)
	authHeaders := []string{"", "Bearer " + user.Access, "Bearer " + admin.Access, "Bearer not-a-token", "Basic dXNlcjpwYXNz"}

	for _, body := range fuzzSeedBodies {
		for ct := range 2 {
			f.Add([]byte(body), uint8(ct), uint8(0))
		}
		f.Add([]byte(body), uint8(0), uint8(2))
	}
	for ct := range fuzzContentTypes {
		f.Add([]byte(`{"query":"{ me { id } }"}`), uint8(ct), uint8(1))
	}

	f.Fuzz(func(t *testing.T, body []byte, ct, authz uint8) {
		req := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
		if c := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]; c != "" {
			req.Header.Set("Content-Type", c)
		}
		if a := authHeaders[int(authz)%len(authHeaders)]; a != "" {
			req.Header.Set("Authorization", a)
		}
		rec := httptest.NewRecorder()
		ts.Handler.ServeHTTP(rec, req)

		if !fuzzStatuses[rec.Code] {
			t.Errorf("status %d; want one of %v", rec.Code, fuzzStatuses)
		}
		var resp struct {
			Errors []struct {
				Message    string         `json:"message"`
				Extensions map[string]any `json:"extensions"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("status %d, body is not a JSON object (%v): %q", rec.Code, err, rec.Body.Bytes())
		}
		for _, e := range resp.Errors {
			if code, ok := e.Extensions["code"].(string); !ok || code == "" {
				t.Errorf("error %q has no string extensions.code: %v", e.Message, e.Extensions)
			}
			if e.Message == "internal error" {
				t.Errorf("internal error on client input (status %d): %s", rec.Code, rec.Body.Bytes())
			}
		}
	})
}

// fuzzSeedBodies are the bodies the fuzzer starts from (besides the corpus
// in testdata/fuzz/FuzzGraphQLRequest): valid operations, and the ways a
// request goes wrong.
var fuzzSeedBodies = []string{
	`{"query":"{ me { id email roles createdAt lastLoginAt } }"}`,
	`{"query":"{ users { id email roles } roles { name permissions } }"}`,
	`{"query":"mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken tokenType expiresIn user { id } } }","variables":{"e":"user@example.com","p":"password1"}}`,
	`{"query":"mutation($e: String!, $p: String!) { register(email: $e, password: $p) { accessToken } }","variables":{"e":"new@example.com","p":"password2"}}`,
	`{"query":"mutation($t: String!) { refresh(refreshToken: $t) { accessToken } }","variables":{"t":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}`,
	`{"query":"mutation { setUserRoles(userId: \"00000000-0000-0000-0000-000000000000\", roles: [\"admin\"]) { id } }"}`,
	`{"query":"mutation { logout(allSessions: false) }"}`,
	`{"query":"query A { me { id } } query B { users { id } }","operationName":"B"}`,
	`{"query":"query A { me { id } }","operationName":"C"}`,
	`{"query":"query A { me { id } } query B { me { id } }"}`,
	`{"query":"{ __schema { types { name fields { name } } } }"}`,
	`{"query":"{ __typename }"}`,
	// Wrong types for variables, missing and extra variables.
	`{"query":"mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }","variables":{"e":1,"p":["x"]}}`,
	`{"query":"mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }","variables":{"e":null}}`,
	`{"query":"mutation($u: ID!, $r: [String!]!) { setUserRoles(userId: $u, roles: $r) { id } }","variables":{"u":{"a":1},"r":"admin"}}`,
	`{"query":"{ me { id } }","variables":"not an object"}`,
	`{"query":"{ me { id } }","variables":{"unused":1}}`,
	`{"query":"mutation($a: Boolean) { logout(allSessions: $a) }","variables":{"a":"yes"}}`,
	// Malformed JSON and non-GraphQL bodies.
	``,
	`{`,
	`null`,
	`[]`,
	`[{"query":"{ me { id } }"}]`,
	`"query"`,
	`{"query":1}`,
	`{"query":null}`,
	`{"query":""}`,
	`{"query":"{ me { id } }"`,
	`{"query":"{ me { id } }"} trailing`,
	`{"query":"{ me { id } }","query":"{ users { id } }"}`,
	"{\"query\":\"{ me\u0000 { id } }\"}",
	"{\"query\":\"{ me { id } }\"}\x00",
	"\x00\x01\x02\xff\xfe",
	`{"query":"\ud800"}`,
	`query { me { id } }`,
	// Syntax errors, deep nesting, many aliases, fragments.
	`{"query":"{ me { id "}`,
	`{"query":"{ me { ...F } } fragment F on User { ...F }"}`,
	`{"query":"{ me { ...on Role { name } } }"}`,
	`{"query":"` + strings.Repeat("{ me ", 200) + strings.Repeat("}", 200) + `"}`,
	`{"query":"{ ` + strings.Repeat("a: __typename ", 500) + `}"}`,
	`{"query":"{ ` + strings.Repeat("me { id } ", 100) + `}"}`,
	`{"query":"{ me(x: 1) { id } }"}`,
	`{"query":"{ me @skip(if: true) { id } }"}`,
	`{"query":"{ me @auth { id } }"}`,
	`{"query":"subscription { me { id } }"}`,
	// Extensions: automatic persisted queries, valid and not.
	`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38"}}}`,
	`{"query":"{ __typename }","extensions":{"persistedQuery":{"version":1,"sha256Hash":"0000"}}}`,
	`{"query":"{ __typename }","extensions":{"persistedQuery":{"version":2,"sha256Hash":"x"}}}`,
	`{"query":"{ __typename }","extensions":{"persistedQuery":"yes"}}`,
	`{"extensions":{"persistedQuery":{"version":1}}}`,
	`{"extensions":null}`,
}

// TestNotGraphQLRequests pins what the fuzz target found: requests that are
// not GraphQL requests are refused with a code (they were "internal error",
// or had no code at all), and a garbled body is neither echoed nor logged.
func TestNotGraphQLRequests(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil)
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	sqlDB, _ := ts.DB.DB()
	h := httpapi.New(httpapi.DefaultConfig(), ts.Svc, log, httpapi.NewMetrics(), httpapi.NewReadiness(sqlDB, ts.Svc, log))
	const secret = "hunter2-hunter2"
	for _, tc := range []struct {
		name, contentType, body string
		wantStatus              int
		wantCode                string
	}{
		{"MalformedJSON", "application/json", `{"query":"mutation { login(email: \"a@b.c\", password: \"` + secret + `\") { accessToken } }"`, 400, models.BadRequest},
		{"NotAnObject", "application/json", `[]`, 400, models.BadRequest},
		{"TextPlain", "text/plain", `{"query":"{ __typename }"}`, 415, models.BadRequest},
		{"NoContentType", "", `{"query":"{ __typename }"}`, 415, models.BadRequest},
		{"APQVersion", "application/json", `{"query":"{ __typename }","extensions":{"persistedQuery":{"version":2,"sha256Hash":"x"}}}`, 200, models.BadRequest},
		{"APQHashMismatch", "application/json", `{"query":"{ __typename }","extensions":{"persistedQuery":{"version":1,"sha256Hash":"00"}}}`, 200, models.BadRequest},
		{"APQNotObject", "application/json", `{"query":"{ __typename }","extensions":{"persistedQuery":"x"}}`, 200, models.BadRequest},
		{"UnknownOperationName", "application/json", `{"query":"query A { __typename }","operationName":"B"}`, 200, "GRAPHQL_VALIDATION_FAILED"},
		{"VariableOfWrongType", "application/json", `{"query":"mutation($a: Boolean) { logout(allSessions: $a) }","variables":{"a":"yes"}}`, 200, "GRAPHQL_VALIDATION_FAILED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var r authtest.Response
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatalf("body %q: %v", rec.Body.Bytes(), err)
			}
			if rec.Code != tc.wantStatus || r.Code(t) != tc.wantCode {
				t.Errorf("got %d %s, want %d %s: %s", rec.Code, r.Code(t), tc.wantStatus, tc.wantCode, rec.Body.Bytes())
			}
			if strings.Contains(rec.Body.String(), secret) {
				t.Errorf("the body is echoed back: %s", rec.Body.Bytes())
			}
		})
	}
	if strings.Contains(logged.String(), secret) {
		t.Errorf("a password reached the log:\n%s", logged.String())
	}
}
