package main

import (
	"bytes"
	"context"
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
	"github.com/authql/authql/internal/testdb"
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
	noRetry     int // SERVICE_UNAVAILABLE or RATE_LIMITED without retryAfter or Retry-After
	unanswered  int // transport errors
	lastFailure string
}

func newAnswered() *answered {
	return &answered{successes: map[[2]string]int{}, codes: map[string]int{}}
}

// verify fails t unless what clients were told during fault holds: every
// answered operation has its audit row in db, and the outage was told as
// SERVICE_UNAVAILABLE with when to retry (in extensions and the header),
// never as an internal error.
func (a *answered) verify(t *testing.T, db *gorm.DB, fault string) {
	t.Helper()
	missing, total := a.missing(t, db)
	t.Logf("%d successes answered; codes of failures %v; %d unanswered", total, a.codes, a.unanswered)
	if missing > 0 {
		t.Errorf("%d of %d answered operations have no audit row: events lost to %s", missing, total, fault)
	}
	if a.codes[models.ServiceUnavailable] == 0 {
		t.Errorf("no SERVICE_UNAVAILABLE during %s (codes %v)", fault, a.codes)
	}
	if a.codes[models.Internal] > 0 {
		t.Errorf("%d INTERNAL_SERVER_ERROR answers during %s; want SERVICE_UNAVAILABLE", a.codes[models.Internal], fault)
	}
	if a.noRetry > 0 {
		t.Errorf("%d SERVICE_UNAVAILABLE answers without retryAfter or a Retry-After header", a.noRetry)
	}
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
		// The error says when to retry, and so does the HTTP header (for
		// clients and proxies that read only that).
		if ra, _ := r.Errors[0].Extensions["retryAfter"].(float64); (ra < 1 || r.Header.Get("Retry-After") == "") &&
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
	testdb.Long(t, "a PostgreSQL cluster of its own, restarted under load for seconds")
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
	a.verify(t, db, "the blip")
	if a.unanswered > 0 {
		t.Errorf("%d requests got no answer at all", a.unanswered)
	}
	if strings.Contains(logs.String(), "audit event not recorded") {
		t.Error("the log reports audit events not recorded")
	}
	// The cause is logged, coalesced: not a line per failed request.
	causes := strings.Count(logs.String(), `"msg":"database unavailable"`)
	if failures := a.codes[models.ServiceUnavailable]; causes == 0 || failures >= 20 && causes*2 > failures {
		t.Errorf("%d \"database unavailable\" lines for %d SERVICE_UNAVAILABLE answers; want the cause logged, a line for many failures",
			causes, a.codes[models.ServiceUnavailable])
	}
}

// TestFaultPostgresFreezeRefresh freezes PostgreSQL (SIGSTOP: connections
// hang rather than fail) for longer than the HTTP server's write timeout
// while clients refresh in a loop, each holding one session. A client
// whose refresh got no answer, or SERVICE_UNAVAILABLE, retries with the
// token it still holds, after the reuse interval has passed: no session
// may be revoked for it. Two fixes make it hold: AUTH_DB_TIMEOUT ends the
// frozen requests (and rolls their transactions back) before the write
// timeout, so they are answered; and a rotation that did commit without
// its answer reaching the client (the COMMIT in flight at the freeze) is
// a retry, not theft (the refresh retry rule).
func TestFaultPostgresFreezeRefresh(t *testing.T) {
	testdb.Long(t, "a PostgreSQL cluster of its own, frozen for seconds under refreshes")
	pg := pgcluster.Start(t)
	c := newClock()
	ts := newTestServer(t, pg.DSN(), c, withPool(models.Options{Timeout: time.Second}),
		func(cfg *testConfig) { cfg.WriteTimeout = 3 * time.Second })
	const sessions = 16
	toks := make([]string, sessions)
	for i := range toks {
		toks[i] = ts.register(t, fmt.Sprintf("freeze%d@example.com", i), "password1").Refresh
	}

	var (
		refreshed = make([]atomic.Int64, sessions)
		revoked   atomic.Int64
		codes     sync.Map // code -> *atomic.Int64
	)
	count := func(code string) {
		n, _ := codes.LoadOrStore(code, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	stopLoad := make(chan struct{})
	client := &http.Client{Timeout: time.Minute}
	var wg sync.WaitGroup
	for i := range sessions {
		wg.Go(func() {
			tok := toks[i]
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				r, err := tryGraphQL(client, ts.URL, "", `mutation($t: String!) { refresh(refreshToken: $t) { refreshToken } }`,
					map[string]any{"t": tok})
				switch {
				case err != nil:
					count("no answer") // retried with the same token
				case len(r.Errors) > 0:
					code, _ := r.Errors[0].Extensions["code"].(string)
					count(code)
					if code == models.Unauthenticated {
						revoked.Add(1)
						return
					}
				default:
					tok = r.Str("refresh", "refreshToken")
					refreshed[i].Add(1)
				}
			}
		})
	}
	defer func() {
		select {
		case <-stopLoad:
		default:
			close(stopLoad)
		}
		wg.Wait()
	}()
	waitFor := func(what string, n int64) {
		from := snapshot(refreshed)
		for range 1200 {
			if revoked.Load() > 0 {
				return // reported below
			}
			done := true
			for i := range refreshed {
				if refreshed[i].Load() < from[i]+n {
					done = false
				}
			}
			if done {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		summary := map[string]int64{}
		codes.Range(func(k, v any) bool { summary[k.(string)] = v.(*atomic.Int64).Load(); return true })
		t.Fatalf("%s: the clients did not refresh %d more times each (refreshed %v, failures %v)", what, n, snapshot(refreshed), summary)
	}
	waitFor("before the freeze", 5)

	// Frozen for longer than the write timeout. Half-way, once every
	// client has a refresh hanging, the reuse interval passes: a retry
	// of a refresh that did commit is then outside the grace interval,
	// and counts as theft unless the retry rule applies.
	pg.Freeze()
	time.Sleep(1500 * time.Millisecond)
	c.Advance(time.Minute)
	time.Sleep(2500 * time.Millisecond)
	pg.Thaw()

	waitFor("after the freeze", 5)
	close(stopLoad)
	wg.Wait()
	summary := map[string]int64{}
	codes.Range(func(k, v any) bool { summary[k.(string)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("failures during the freeze: %v", summary)
	if n := revoked.Load(); n > 0 {
		t.Errorf("%d of %d sessions revoked after the freeze: a client retrying a refresh it got no answer to lost its session", n, sessions)
	}
	var reuse int64
	if err := ts.DB.Model(&models.AuditEvent{}).Where("type = ?", models.AuditRefreshReuse).Count(&reuse).Error; err != nil {
		t.Fatal(err)
	}
	if reuse > 0 {
		t.Errorf("%d REFRESH_REUSE events after the freeze", reuse)
	}
}

// TestFaultClientGone: a request whose client gives up while the database
// is frozen is logged as what the client got (status 499, outcome
// CLIENT_CLOSED), not as a 200, and signs nobody in: its context ends
// with the client, and with it the database work.
func TestFaultClientGone(t *testing.T) {
	testdb.Long(t, "a PostgreSQL cluster of its own, frozen while a client gives up")
	pg := pgcluster.Start(t)
	logs := &syncBuffer{}
	url, _ := startRunLogging(t, map[string]string{"DATABASE_URL": pg.DSN(), "AUTH_DB_TIMEOUT": "3s"}, logs)
	users := registerUsers(t, url, "gone", 1)

	pg.Freeze()
	impatient := &http.Client{Timeout: 300 * time.Millisecond}
	_, err := tryGraphQL(impatient, url, "", `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }`,
		map[string]any{"e": users[0], "p": "password1"})
	if err == nil {
		t.Fatal("login answered while the database was frozen")
	}
	// The server's line for it, once it has noticed the client left.
	var line map[string]any
	for range 100 {
		for _, l := range logLines(t, logs.String()) {
			if l["msg"] == "request" && l["operation"] == "login" {
				line = l
			}
		}
		if line != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	pg.Thaw()
	if line == nil {
		t.Fatal("no log line for the abandoned login")
	}
	if line["status"] != float64(statusClientClosed) || line["outcome"] != outcomeClientClosed {
		t.Errorf("abandoned login logged with status %v outcome %v; want %d %s", line["status"], line["outcome"], statusClientClosed, outcomeClientClosed)
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `authql_graphql_requests_total{operation="login",outcome="CLIENT_CLOSED"} 1`; !strings.Contains(string(metrics), want) {
		t.Errorf("metrics lack %s", want)
	}
	db, _, err := models.Open(pg.DSN(), models.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { sqlDB, _ := db.DB(); sqlDB.Close() }()
	var n int64
	if err := db.Model(&models.Session{}).Joins("JOIN users ON users.id = sessions.user_id").
		Where("users.email = ?", users[0]).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 1 { // the one register started
		t.Errorf("%d sessions for the user after an abandoned login, want 1 (register's)", n)
	}
}

// TestFaultSQLiteFullDisk fills SQLite's disk under a load of logins,
// refreshes and logouts (the server's connections may not grow the file
// past max_page_count, and the test fills it up to that from a connection
// of its own), then gives the space back:
//   - clients get SERVICE_UNAVAILABLE with retryAfter, not
//     INTERNAL_SERVER_ERROR;
//   - /readyz fails while writes fail, and passes again once they succeed;
//   - every operation a client was told succeeded has its audit row once
//     space is back.
func TestFaultSQLiteFullDisk(t *testing.T) {
	testdb.Long(t, "fills 12 MB of SQLite under a load of logins and refreshes")
	file := testdb.SQLite(t)
	const maxPages = 3000 // 12 MB of 4 KiB pages
	ts := newTestServer(t, fmt.Sprintf("%s?_pragma=max_page_count(%d)", file, maxPages), nil)
	users := registerUsers(t, ts.URL, "full", 8)

	filler, _, err := models.Open(file, models.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { sqlDB, _ := filler.DB(); sqlDB.Close() }()
	ready := func() int {
		resp, err := http.Get(ts.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := ready(); got != http.StatusOK {
		t.Fatalf("/readyz before the disk fills: %d", got)
	}

	a := newAnswered()
	cycles := make([]atomic.Int64, len(users))
	stopLoad := make(chan struct{})
	wg := signInLoad(t, ts.URL, users, a, stopLoad, cycles)
	defer func() {
		select {
		case <-stopLoad:
		default:
			close(stopLoad)
		}
		wg.Wait()
	}()
	waitCycles(t, cycles, make([]int64, len(users)), 3, 600, "before the disk fills", a)

	// Fill the file up to the server's limit.
	if err := filler.Exec("CREATE TABLE filler (b BLOB)").Error; err != nil {
		t.Fatal(err)
	}
	for {
		var pages int
		if err := filler.Raw("PRAGMA page_count").Scan(&pages).Error; err != nil {
			t.Fatal(err)
		}
		if pages >= maxPages {
			break
		}
		if err := filler.Exec("INSERT INTO filler VALUES (zeroblob(?))", min(maxPages-pages, 64)*4096).Error; err != nil {
			t.Fatal(err)
		}
	}
	notReady := false
	for range 600 {
		if ready() == http.StatusServiceUnavailable {
			notReady = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !notReady {
		t.Error("/readyz kept answering 200 while the disk was full")
	}
	// Requests' own writes fail too once their tables need a new page.
	for range 600 {
		a.mu.Lock()
		n := a.codes[models.ServiceUnavailable] + a.codes[models.Internal]
		a.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Space comes back.
	if err := filler.Exec("DROP TABLE filler").Error; err != nil {
		t.Fatal(err)
	}
	waitCycles(t, cycles, snapshot(cycles), 3, 1200, "after space came back", a)
	close(stopLoad)
	wg.Wait()
	readyAgain := false
	for range 600 {
		if ready() == http.StatusOK {
			readyAgain = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !readyAgain {
		t.Error("/readyz did not pass again once space was back")
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ts.Svc.FlushAudit(ctx); err != nil {
		t.Fatal(err)
	}
	a.verify(t, ts.DB, "the full disk")
}
