package httpapi_test

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/httpapi"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

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
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		u := ts.Register(t, "user@example.com", "password1")
		ts.Login(t, "user@example.com", "wrong-password")
		ts.Me(t, u.Access).OK(t)
		ts.Me(t, u.Access).OK(t)
		ts.Do(t, u.Access, `{ me { id } roles { name } me2: me { email } }`, nil)
		ts.Do(t, "", `{ me `, nil)
		// Client-chosen operation names must not become label values:
		// each would be a new series, and memory is not endless.
		for i := range 5 {
			ts.Do(t, u.Access, fmt.Sprintf(`query attack%d { me { id } }`, i), nil).OK(t)
		}
		resp, err := http.Post(ts.URL+"/query", "application/json", strings.NewReader(`{"query":"`+strings.Repeat(" ", 70<<10)+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ts.Do(t, u.Access, `mutation { logout }`, nil).OK(t)

		m := authtest.Scrape(t, ts.URL)
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
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil)
	u := ts.Register(t, "user@example.com", "password1")
	a := ts.Admin(t)
	for _, tc := range []struct{ name, token, doc, want string }{
		{"Alias", u.Access, `{ x: me { id } y: me { email } }`, "me"},
		{"Fragments", a.Access, `query { ...Q ... on Query { roles { name } } } fragment Q on Query { users { id } }`, "roles,users"},
		{"Typename", u.Access, `{ __typename }`, "__typename"},
		{"Many", a.Access, `{ me { id } users { id } roles { name } __typename }`, "many"},
		{"UnknownField", u.Access, `{ secret }`, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts.Do(t, tc.token, tc.doc, nil)
			if !strings.Contains(authtest.Scrape(t, ts.URL), `authql_graphql_requests_total{operation="`+tc.want+`"`) {
				t.Errorf("no series with operation %q", tc.want)
			}
		})
	}
}

// countingObserver counts auth events by type and outcome.
type countingObserver struct {
	mu     sync.Mutex
	events map[string]int
}

func (o *countingObserver) AuthEvent(typ, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events[typ+" "+outcome]++
}

func (o *countingObserver) HashWait(time.Duration) {}

// TestAuditEventsObserved: every audited event reaches the Observer, each
// refusal by a rate limit included, although the audit log coalesces them.
func TestAuditEventsObserved(t *testing.T) {
	t.Parallel()
	obs := &countingObserver{events: map[string]int{}}
	ts := authtest.NewServer(t, testdb.SQLite(t), nil, func(c *authtest.Config) { c.Auth.Observer = obs },
		authtest.WithLimits(auth.Limits{LoginClient: auth.Rate{N: 2, Per: time.Hour}}))
	u := ts.Register(t, "ada@example.com", "password1")
	for range 2 {
		ts.Login(t, "ada@example.com", "wrong-password")
	}
	for range 5 {
		if code := ts.Login(t, "ada@example.com", "wrong-password").Code(t); code != models.RateLimited {
			t.Fatalf("past the limit: %s", code)
		}
	}
	ts.Refresh(t, u.Refresh).OK(t)
	obs.mu.Lock()
	got := maps.Clone(obs.events)
	obs.mu.Unlock()
	want := map[string]int{"REGISTER SUCCESS": 1, "LOGIN FAILURE": 2, "RATE_LIMITED FAILURE": 5, "REFRESH SUCCESS": 1}
	if !maps.Equal(got, want) {
		t.Errorf("observed %v, want %v", got, want)
	}
	var rows int64
	flushAudit(t, ts)
	ts.DB.Model(&models.AuditEvent{}).Where("type = ?", models.AuditRateLimited).Count(&rows)
	if rows != 1 {
		t.Errorf("%d RATE_LIMITED rows within the minute, want 1", rows)
	}
}

// TestMetricsRoute: /metrics is one of the API's routes in development, in
// production only with MetricsPublic, and never with a listener of its own
// (MetricsAddr), where MetricsHandler serves it alone.
func TestMetricsRoute(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  func(*httpapi.Config)
		want int
	}{
		{"Development", func(*httpapi.Config) {}, http.StatusOK},
		{"Production", func(c *httpapi.Config) { c.Production = true }, http.StatusNotFound},
		{"ProductionPublic", func(c *httpapi.Config) { c.Production, c.MetricsPublic = true, true }, http.StatusOK},
		{"OwnListener", func(c *httpapi.Config) { c.MetricsAddr = "127.0.0.1:0" }, http.StatusNotFound},
		{"Off", func(c *httpapi.Config) { c.Metrics = false }, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := authtest.NewServer(t, testdb.SQLite(t), nil, func(c *authtest.Config) { tc.cfg(&c.HTTP) })
			resp, err := http.Get(ts.URL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("GET /metrics = %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	t.Run("MetricsHandler", func(t *testing.T) {
		t.Parallel()
		h := httpapi.MetricsHandler(httpapi.NewMetrics())
		for path, want := range map[string]int{"/metrics": http.StatusOK, "/query": http.StatusNotFound, "/healthz": http.StatusNotFound} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if rec.Code != want {
				t.Errorf("metrics listener: GET %s = %d, want %d", path, rec.Code, want)
			}
		}
		if body := metricsBody(h); !strings.Contains(body, "go_goroutines") {
			t.Errorf("metrics listener: no Go runtime metrics in %.200q", body)
		}
	})
}

// metricsBody returns the body h answers GET /metrics with.
func metricsBody(h http.Handler) string {
	r := httptest.NewRecorder()
	h.ServeHTTP(r, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return r.Body.String()
}
