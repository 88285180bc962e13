package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/internal/pgcluster"
	"github.com/authql/authql/models"
)

// The fault tests: authql against a PostgreSQL that the test stops,
// restarts and freezes (internal/pgcluster), and against an SQLite whose
// disk fills up. They count rows and answers, never time: the sleeps below
// only make a fault last, and every wait for a state is bounded by a count
// of attempts.

// tryGraphQL posts a document and returns the decoded answer, or the
// transport error: under faults a request may get no answer at all.
func tryGraphQL(client *http.Client, url, token, query string, vars map[string]any) (gqlResponse, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, url+"/query", bytes.NewReader(body))
	if err != nil {
		return gqlResponse{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return gqlResponse{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return gqlResponse{}, err
	}
	out := gqlResponse{Status: resp.StatusCode, Header: resp.Header}
	if err := json.Unmarshal(raw, &out); err != nil {
		return gqlResponse{}, fmt.Errorf("decode %q: %w", raw, err)
	}
	return out, nil
}

// answered is what clients were told during a fault test: every success
// (by audit event type and session), and the error codes seen.
type answered struct {
	mu          sync.Mutex
	successes   map[[2]string]int // {type, session id} -> answers
	codes       map[string]int
	noRetry     int // SERVICE_UNAVAILABLE or RATE_LIMITED without retryAfter
	unanswered  int // transport errors
	lastFailure string
}

func newAnswered() *answered {
	return &answered{successes: map[[2]string]int{}, codes: map[string]int{}}
}

// note records r, the answer to an operation of audit type typ in the
// session sid (known beforehand for refresh and logout; for login, read
// from the new access token). It reports whether r is a success.
func (a *answered) note(tb testing.TB, typ models.AuditEventType, sid, field string, r gqlResponse, err error) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.unanswered++
		return false
	}
	if len(r.Errors) > 0 {
		code, _ := r.Errors[0].Extensions["code"].(string)
		a.codes[code]++
		if ra, _ := r.Errors[0].Extensions["retryAfter"].(float64); ra < 1 &&
			(code == models.ServiceUnavailable || code == models.RateLimited) {
			a.noRetry++
		}
		a.lastFailure = fmt.Sprintf("%s: %s", typ, r.Errors[0].Message)
		return false
	}
	if sid == "" {
		if tok := r.Str(field, "accessToken"); tok != "" {
			sid, _ = claims(tb, tok)["sid"].(string)
		}
	}
	a.successes[[2]string{string(typ), sid}]++
	return true
}

// missing returns how many answered successes have no audit row of their
// type and session in db (counting each answer: two refreshes of one
// session need two rows), and how many successes there were.
func (a *answered) missing(tb testing.TB, db *gorm.DB) (missing, total int) {
	tb.Helper()
	var rows []struct {
		Type      string
		SessionID string
		N         int
	}
	if err := db.Raw(`SELECT type, session_id, count(*) AS n FROM audit_events
		WHERE outcome = 'SUCCESS' AND session_id IS NOT NULL GROUP BY type, session_id`).Scan(&rows).Error; err != nil {
		tb.Fatal(err)
	}
	have := map[[2]string]int{}
	for _, r := range rows {
		have[[2]string{r.Type, r.SessionID}] = r.N
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, n := range a.successes {
		total += n
		if have[k] < n {
			missing += n - have[k]
		}
	}
	return missing, total
}

// signInLoad runs workers, each signing its own user in, refreshing and
// logging out in a loop, until stop is closed; cycles counts the loops
// that succeeded from end to end.
func signInLoad(tb testing.TB, url string, users []string, a *answered, stop <-chan struct{}, cycles []atomic.Int64) *sync.WaitGroup {
	client := &http.Client{Timeout: time.Minute}
	var wg sync.WaitGroup
	for i, email := range users {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := tryGraphQL(client, url, "", `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken } }`,
					map[string]any{"e": email, "p": "password1"})
				if !a.note(tb, models.AuditLogin, "", "login", r, err) {
					continue
				}
				access, refresh := r.Str("login", "accessToken"), r.Str("login", "refreshToken")
				sid, _ := claims(tb, access)["sid"].(string)
				r, err = tryGraphQL(client, url, "", `mutation($t: String!) { refresh(refreshToken: $t) { accessToken refreshToken } }`,
					map[string]any{"t": refresh})
				if a.note(tb, models.AuditRefresh, sid, "refresh", r, err) {
					access = r.Str("refresh", "accessToken")
				}
				r, err = tryGraphQL(client, url, access, `mutation { logout }`, nil)
				if a.note(tb, models.AuditLogout, sid, "", r, err) {
					cycles[i].Add(1)
				}
			}
		})
	}
	return &wg
}

// waitCycles waits until every worker has completed n more cycles than in
// from, polling at most `polls` times.
func waitCycles(tb testing.TB, cycles []atomic.Int64, from []int64, n int64, polls int, what string, a *answered) {
	tb.Helper()
	for range polls {
		done := true
		for i := range cycles {
			if cycles[i].Load() < from[i]+n {
				done = false
			}
		}
		if done {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	tb.Fatalf("%s: the workers did not complete %d more sign-in cycles each (codes %v, unanswered %d, last failure %q)",
		what, n, a.codes, a.unanswered, a.lastFailure)
}

func snapshot(cycles []atomic.Int64) []int64 {
	out := make([]int64, len(cycles))
	for i := range cycles {
		out[i] = cycles[i].Load()
	}
	return out
}

// registerUsers registers n users (password "password1") and returns
// their emails.
func registerUsers(t *testing.T, url, prefix string, n int) []string {
	t.Helper()
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("%s%d@example.com", prefix, i)
		postGraphQL(t, url, nil, `mutation($e: String!) { register(email: $e, password: "password1") { accessToken } }`,
			map[string]any{"e": users[i]}).OK(t)
	}
	return users
}

// TestFaultPostgresBlip stops PostgreSQL for a few seconds under a load of
// logins, refreshes and logouts through the whole program (run, with its
// listener), then starts it again:
//   - every operation a client was told succeeded has its audit row, none
//     lost in the blip (the writer keeps them queued and retries);
//   - during the outage clients get SERVICE_UNAVAILABLE with retryAfter,
//     never INTERNAL_SERVER_ERROR;
//   - authql recovers by itself, without a restart.
func TestFaultPostgresBlip(t *testing.T) {
	pg := pgcluster.Start(t)
	logs := &syncBuffer{}
	url, stop := startRunLogging(t, map[string]string{
		"DATABASE_URL":    pg.DSN(),
		"AUTH_DB_TIMEOUT": "2s",
	}, logs)
	users := registerUsers(t, url, "blip", 8)

	a := newAnswered()
	cycles := make([]atomic.Int64, len(users))
	stopLoad := make(chan struct{})
	wg := signInLoad(t, url, users, a, stopLoad, cycles)
	defer func() {
		select {
		case <-stopLoad:
		default:
			close(stopLoad)
		}
		wg.Wait()
	}()
	waitCycles(t, cycles, make([]int64, len(users)), 3, 600, "before the blip", a)

	pg.Stop()
	time.Sleep(3 * time.Second) // the blip
	pg.Start()

	// Recovery without a restart of authql: every worker gets through
	// whole cycles again.
	waitCycles(t, cycles, snapshot(cycles), 3, 1200, "after the blip", a)
	close(stopLoad)
	wg.Wait()

	// A graceful shutdown writes what is still queued.
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	db, _, err := models.Open(pg.DSN(), models.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { sqlDB, _ := db.DB(); sqlDB.Close() }()
	missing, total := a.missing(t, db)
	t.Logf("%d successes answered; codes of failures %v; %d unanswered", total, a.codes, a.unanswered)
	if missing > 0 {
		t.Errorf("%d of %d answered operations have no audit row: events lost in the blip", missing, total)
	}
	if a.codes[models.ServiceUnavailable] == 0 {
		t.Errorf("no SERVICE_UNAVAILABLE during the outage (codes %v)", a.codes)
	}
	if a.codes[models.Internal] > 0 {
		t.Errorf("%d INTERNAL_SERVER_ERROR answers during the outage; want SERVICE_UNAVAILABLE", a.codes[models.Internal])
	}
	if a.noRetry > 0 {
		t.Errorf("%d SERVICE_UNAVAILABLE answers without retryAfter", a.noRetry)
	}
	if a.unanswered > 0 {
		t.Errorf("%d requests got no answer at all", a.unanswered)
	}
	if strings.Contains(logs.String(), "audit event not recorded") {
		t.Error("the log reports audit events not recorded")
	}
}
