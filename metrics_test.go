package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
)

// scrape returns the metrics of the server at url, one sample a line.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", resp.StatusCode, body)
	}
	return string(body)
}

// wantSample fails unless the metrics hold a sample line starting with
// prefix (a name with its labels) and having value.
func wantSample(t *testing.T, metrics, prefix, value string) {
	t.Helper()
	for _, line := range strings.Split(metrics, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
			if rest != value {
				t.Errorf("%s = %s, want %s", prefix, rest, value)
			}
			return
		}
	}
	t.Errorf("no sample %s in the metrics", prefix)
}

func TestMetrics(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := newTestServer(t, dsn, nil)
		u := ts.register(t, "user@example.com", "password1")
		ts.login(t, "user@example.com", "wrong-password")
		ts.me(t, u.Access).OK(t)
		ts.me(t, u.Access).OK(t)
		ts.do(t, u.Access, `{ me { id } roles { name } me2: me { email } }`, nil)
		ts.do(t, "", `{ me `, nil)
		// Client-chosen operation names must not become label values:
		// each would be a new series, and memory is not endless.
		for i := range 5 {
			ts.do(t, u.Access, fmt.Sprintf(`query attack%d { me { id } }`, i), nil).OK(t)
		}
		resp, err := http.Post(ts.URL+"/query", "application/json", strings.NewReader(`{"query":"`+strings.Repeat(" ", 70<<10)+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ts.do(t, u.Access, `mutation { logout }`, nil).OK(t)

		m := scrape(t, ts.URL)
		const reqs = "authql_graphql_requests_total"
		wantSample(t, m, reqs+`{operation="me",outcome="ok"}`, "7")
		wantSample(t, m, reqs+`{operation="register",outcome="ok"}`, "1")
		wantSample(t, m, reqs+`{operation="login",outcome="UNAUTHENTICATED"}`, "1")
		wantSample(t, m, reqs+`{operation="me,roles",outcome="FORBIDDEN"}`, "1")
		wantSample(t, m, reqs+`{operation="invalid",outcome="GRAPHQL_PARSE_FAILED"}`, "1")
		wantSample(t, m, reqs+`{operation="invalid",outcome="PAYLOAD_TOO_LARGE"}`, "1")
		wantSample(t, m, reqs+`{operation="logout",outcome="ok"}`, "1")
		wantSample(t, m, `authql_graphql_request_duration_seconds_count{operation="me",outcome="ok"}`, "7")
		if strings.Contains(m, "attack") {
			t.Error("a client's operationName is a label value")
		}
		// Counted by auth as each audit event is recorded.
		wantSample(t, m, `authql_auth_events_total{outcome="SUCCESS",type="REGISTER"}`, "1")
		wantSample(t, m, `authql_auth_events_total{outcome="FAILURE",type="LOGIN"}`, "1")
		wantSample(t, m, `authql_auth_events_total{outcome="SUCCESS",type="LOGOUT"}`, "1")
		// register and login each hashed once, neither waited.
		wantSample(t, m, `authql_password_hash_wait_seconds_bucket{le="0.001"}`, "2")
		wantSample(t, m, `authql_revoked_sessions`, "1")
		for _, name := range []string{`go_sql_max_open_connections{db_name="authql"}`, "go_goroutines", "process_resident_memory_bytes"} {
			if !strings.Contains(m, "\n"+name+" ") {
				t.Errorf("no %s in the metrics", name)
			}
		}
	})
}

func TestOperationLabelIsBounded(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t), nil)
	u := ts.register(t, "user@example.com", "password1")
	a := ts.admin(t)
	for _, tc := range []struct{ name, token, doc, want string }{
		{"Alias", u.Access, `{ x: me { id } y: me { email } }`, "me"},
		{"Fragments", a.Access, `query { ...Q ... on Query { roles { name } } } fragment Q on Query { users { id } }`, "roles,users"},
		{"Typename", u.Access, `{ __typename }`, "__typename"},
		{"Many", a.Access, `{ me { id } users { id } roles { name } __typename }`, "many"},
		{"UnknownField", u.Access, `{ secret }`, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts.do(t, tc.token, tc.doc, nil)
			if !strings.Contains(scrape(t, ts.URL), `authql_graphql_requests_total{operation="`+tc.want+`"`) {
				t.Errorf("no series with operation %q", tc.want)
			}
		})
	}
}

func TestMetricsConfig(t *testing.T) {
	dir := t.TempDir()
	t.Run("Off", func(t *testing.T) {
		url, _ := startRun(t, map[string]string{"DATABASE_URL": dir + "/off.db", "AUTH_METRICS": "false"})
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("AUTH_METRICS=false: GET /metrics = %d, want 404", resp.StatusCode)
		}
	})
	t.Run("OwnAddress", func(t *testing.T) {
		addr := make(chan string, 1)
		out := &addrWriter{addr: addr}
		env := map[string]string{"DATABASE_URL": dir + "/own.db", "PORT": "0", "AUTH_METRICS_ADDR": "127.0.0.1:0",
			"AUTH_ARGON2_MEMORY": "64", "AUTH_ARGON2_TIME": "1"}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, nil, out, io.Discard) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}()
		var url string
		select {
		case url = <-addr:
		case err := <-done:
			t.Fatalf("run: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("run did not start listening")
		}
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("with AUTH_METRICS_ADDR: GET /metrics on PORT = %d, want 404", resp.StatusCode)
		}
		out.mu.Lock()
		printed := out.buf.String()
		out.mu.Unlock()
		_, rest, ok := strings.Cut(printed, "authql metrics on ")
		if !ok {
			t.Fatalf("the metrics address is not printed: %q", printed)
		}
		metricsURL, _, _ := strings.Cut(rest, "\n")
		m := scrape(t, strings.TrimSuffix(metricsURL, "/metrics"))
		if !strings.Contains(m, "authql_revoked_sessions") {
			t.Errorf("AUTH_METRICS_ADDR serves no authql metrics")
		}
	})
}
