package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
)

// TestGraphQLOverHTTPStatus: a request error (parse, validation, variable
// coercion, a document limit) answers 200 to an application/json client
// (no Accept, */*, application/json) and 400 to one that prefers
// application/graphql-response+json, in that media type, and never with a
// data entry; a body that is not a GraphQL request is 400 for both; an
// executed operation is 200 with data. TestGraphQLOverHTTPAudit runs the
// graphql-http suite itself.
func TestGraphQLOverHTTPStatus(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil)
	const gr = "application/graphql-response+json"
	requests := []struct{ name, body string }{
		{"ParseFailure", `{"query":"{"}`},
		{"ValidationFailure", `{"query":"{ nope }"}`},
		{"VariableCoercion", `{"query":"query($id: ID!) { __typename }","variables":{"id":null}}`},
		{"DepthLimit", `{"query":"{ __type(name: \"User\") { ` + strings.Repeat("ofType { ", 25) + "name" + strings.Repeat(" }", 26) + `"}`},
		{"UnknownOperation", `{"query":"query A { __typename }","operationName":"B"}`},
	}
	for _, c := range []struct {
		accept, wantType string
		wantStatus       int
	}{
		{"", "application/json", 200},
		{"*/*", "application/json", 200},
		{"application/json", "application/json", 200},
		{gr, gr, 400},
		{gr + ", application/json;q=0.9", gr, 400},
		{"application/json, " + gr + ";q=0.5", "application/json", 200},
		{"text/html", "application/json", 200},
	} {
		for _, req := range requests {
			t.Run(req.name+"/"+c.accept, func(t *testing.T) {
				status, ctype, body := postAccept(t, ts.URL, c.accept, req.body)
				if status != c.wantStatus || ctype != c.wantType {
					t.Errorf("status %d, Content-Type %q, want %d %q (%s)", status, ctype, c.wantStatus, c.wantType, body)
				}
				var m map[string]json.RawMessage
				if err := json.Unmarshal(body, &m); err != nil || m["errors"] == nil {
					t.Fatalf("body %s: %v, want errors", body, err)
				}
				if _, ok := m["data"]; ok {
					t.Errorf("body %s has a data entry: nothing ran", body)
				}
			})
		}
	}
	for _, accept := range []string{"", gr} {
		for _, body := range []string{`{"qeury":"{ __typename }"}`, `[1]`, `{"query":`} {
			if status, _, b := postAccept(t, ts.URL, accept, body); status != 400 {
				t.Errorf("Accept %q, body %s: %d %s, want 400", accept, body, status, b)
			}
		}
		status, ctype, b := postAccept(t, ts.URL, accept, `{"query":"{ __typename }"}`)
		if status != 200 || !strings.Contains(string(b), `"data":{"__typename":"Query"}`) || (accept != "" && ctype != accept) {
			t.Errorf("Accept %q: an operation that ran: %d %q %s", accept, status, ctype, b)
		}
	}
}

func postAccept(t *testing.T, url, accept, body string) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/query", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// TestSubscriptionOverPOSTRefused: a subscription sent over POST, even by
// a caller allowed to run it, is a request error (BAD_REQUEST, with the
// same statuses as other request errors) answered at once, instead of a
// handler held until the next event outside the websocket's limits.
func TestSubscriptionOverPOSTRefused(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil)
	admin := ts.Admin(t)
	// The deadline only ends a request the server holds: a pass never waits on it.
	client := &http.Client{Timeout: 10 * time.Second}
	for _, c := range []struct {
		accept     string
		wantStatus int
	}{{"", 200}, {"application/json", 200}, {"application/graphql-response+json", 400}} {
		for _, q := range []string{`subscription { auditEvents { id } }`, `subscription S { sessionEvents { type } }`} {
			body, _ := json.Marshal(map[string]string{"query": q})
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/query", strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", authtest.Bearer(admin.Access))
			if c.accept != "" {
				req.Header.Set("Accept", c.accept)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("Accept %q, %s: %v (the handler held the request)", c.accept, q, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var r struct {
				Data   json.RawMessage `json:"data"`
				Errors []struct {
					Message    string         `json:"message"`
					Extensions map[string]any `json:"extensions"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("body %s: %v", b, err)
			}
			if resp.StatusCode != c.wantStatus || r.Data != nil || len(r.Errors) != 1 ||
				r.Errors[0].Extensions["code"] != "BAD_REQUEST" ||
				r.Errors[0].Message != "subscriptions are served over a websocket (graphql-transport-ws) on /query" {
				t.Errorf("Accept %q, %s: %d %s, want %d BAD_REQUEST without data", c.accept, q, resp.StatusCode, b, c.wantStatus)
			}
		}
	}
}
