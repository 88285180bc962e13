package httpapi_test

// Attack tests of issue 10 §2 (nothing one account or one client does can
// starve the others) and §3's atomic register, over real HTTP on SQLite
// and (with TEST_DATABASE_URL) PostgreSQL. They assert counts of rows,
// events, answers and log lines, never times.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// withMaxSessions bounds each user's live sessions.
func withMaxSessions(n int) authtest.Option {
	return func(c *authtest.Config) { c.Auth.MaxSessions = n }
}

// liveSessions counts the user's sessions that are neither revoked nor
// expired, in the database.
func liveSessions(tb testing.TB, ts *authtest.Server, userID string) int64 {
	tb.Helper()
	var n int64
	if err := ts.DB.Model(&models.Session{}).Where("user_id = ? AND revoked_at IS NULL AND expires_at > ?", userID, ts.Clock.Now()).Count(&n).Error; err != nil {
		tb.Fatal(err)
	}
	return n
}

// auditRows returns the audit events of typ in the database, after
// writing those queued.
func auditRows(tb testing.TB, ts *authtest.Server, typ models.AuditEventType) []models.AuditEvent {
	tb.Helper()
	flushAudit(tb, ts)
	var rows []models.AuditEvent
	if err := ts.DB.Where("type = ?", typ).Order("at, id").Find(&rows).Error; err != nil {
		tb.Fatal(err)
	}
	return rows
}

// refusedCount sums the counts of coalesced RATE_LIMITED events of limit
// ("<limit> (<n> refused)"), and returns the events.
func refusedCount(tb testing.TB, ts *authtest.Server, limit string) (int, []models.AuditEvent) {
	tb.Helper()
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(limit) + ` \((\d+) refused\)$`)
	sum := 0
	var out []models.AuditEvent
	for _, e := range auditRows(tb, ts, models.AuditRateLimited) {
		m := re.FindStringSubmatch(deref(e.Detail))
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		sum += n
		out = append(out, e)
	}
	return sum, out
}

func TestSessionLimitEndsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, withMaxSessions(3))
		s1 := ts.Register(t, "ada@example.com", "password1")
		ts.Clock.Advance(time.Minute)
		s2 := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1").OK(t), "login")
		ts.Clock.Advance(time.Minute)
		s3 := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1").OK(t), "login")
		ts.Clock.Advance(time.Minute)
		// Using the oldest makes the second the least recently used.
		s1 = authtest.TokensOf(ts.Refresh(t, s1.Refresh).OK(t), "refresh")
		bob := ts.Register(t, "bob@example.com", "password1")
		ts.Clock.Advance(time.Minute)

		s4 := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1").OK(t), "login")
		if n := liveSessions(t, ts, s4.UserID); n != 3 {
			t.Errorf("live sessions after the 4th sign-in = %d, want 3", n)
		}
		if code := ts.Me(t, s2.Access).Code(t); code != models.Unauthenticated {
			t.Errorf("the ended session's access token: %s, want UNAUTHENTICATED at once", code)
		}
		if code := ts.Refresh(t, s2.Refresh).Code(t); code != models.Unauthenticated {
			t.Errorf("the ended session's refresh: %s, want UNAUTHENTICATED", code)
		}
		for _, tok := range []authtest.Tokens{s1, s3, s4, bob} {
			ts.Me(t, tok.Access).OK(t)
		}
		got := mySessions(t, ts, s4.Access)
		want := []string{authtest.SID(t, s4.Access), authtest.SID(t, s1.Access), authtest.SID(t, s3.Access)}
		if len(got) != len(want) {
			t.Fatalf("mySessions = %+v, want %v", got, want)
		}
		for i := range want {
			if got[i].ID != want[i] {
				t.Errorf("mySessions[%d] = %s, want %s", i, got[i].ID, want[i])
			}
		}
		// Ended as a logout ends it: a revocation row, for the replicas
		// and restarts.
		var revs int64
		ts.DB.Model(&models.Revocation{}).Where("id = ?", authtest.SID(t, s2.Access)).Count(&revs)
		if revs != 1 {
			t.Errorf("revocation rows of the ended session = %d, want 1", revs)
		}
		ended := auditRows(t, ts, models.AuditSessionRevoked)
		if len(ended) != 1 || deref(ended[0].SessionID) != authtest.SID(t, s2.Access) || deref(ended[0].UserID) != s4.UserID ||
			deref(ended[0].Detail) != "session limit" || ended[0].Outcome != models.AuditSuccess {
			t.Errorf("SESSION_REVOKED events = %+v, want one for %s with detail \"session limit\"", ended, authtest.SID(t, s2.Access))
		}

		t.Run("RegisterCountsToo", func(t *testing.T) {
			// A new account's first session is one of its three.
			u := ts.Register(t, "cy@example.com", "password1")
			for range 3 {
				ts.Clock.Advance(time.Second)
				ts.Login(t, "cy@example.com", "password1").OK(t)
			}
			if code := ts.Me(t, u.Access).Code(t); code != models.Unauthenticated {
				t.Errorf("registration's session after 3 more sign-ins: %s, want UNAUTHENTICATED", code)
			}
			if n := liveSessions(t, ts, u.UserID); n != 3 {
				t.Errorf("live sessions = %d, want 3", n)
			}
		})
	})
}

// TestSessionLimitConcurrentSignIns: sign-ins of one user at once, each
// from its own client, must not overshoot the bound: each counts the
// sessions under the user's lock.
func TestSessionLimitConcurrentSignIns(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		const max, logins = 4, 24
		ts := authtest.NewServer(t, dsn, nil, withMaxSessions(max), loopbackProxy)
		u := ts.Register(t, "ada@example.com", "password1")
		var wg sync.WaitGroup
		var ok atomic.Int64
		for i := range logins {
			wg.Go(func() {
				r := authtest.PostGraphQL(t, ts.URL, map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i+1)}, authtest.LoginDoc, authtest.Creds("ada@example.com"))
				if len(r.Errors) == 0 {
					ok.Add(1)
				} else {
					t.Errorf("login %d: %+v", i, r.Errors)
				}
			})
		}
		wg.Wait()
		if n := liveSessions(t, ts, u.UserID); n != max {
			t.Errorf("live sessions after %d concurrent sign-ins = %d, want %d", ok.Load(), n, max)
		}
		ended := 0
		for _, e := range auditRows(t, ts, models.AuditSessionRevoked) {
			if deref(e.Detail) == "session limit" && deref(e.UserID) == u.UserID {
				ended++
			}
		}
		if want := int(ok.Load()) + 1 - max; ended != want {
			t.Errorf("sessions ended for the limit = %d, want %d", ended, want)
		}
	})
}

// TestMySessionsBounded: a user who holds more sessions than the bound
// (it was lowered) is listed at most the bound, most recent first.
func TestMySessionsBounded(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		c := authtest.NewClock()
		before := authtest.NewServer(t, dsn, c, withMaxSessions(20))
		u := before.Register(t, "ada@example.com", "password1")
		for range 9 {
			c.Advance(time.Second)
			before.Login(t, "ada@example.com", "password1").OK(t)
		}
		after := authtest.NewServer(t, dsn, c, withMaxSessions(3))
		if got := mySessions(t, after, u.Access); len(got) != 3 || !got[0].LastUsedAt.Equal(c.Now()) {
			t.Errorf("mySessions of 10 live sessions with the bound at 3: %d sessions (%+v), want the 3 most recent", len(got), got)
		}
		if n := after.Svc.MaxSessions(); n != 3 {
			t.Errorf("MaxSessions = %d, want 3", n)
		}
		// The next sign-in brings the user down to the bound.
		c.Advance(time.Second)
		after.Login(t, "ada@example.com", "password1").OK(t)
		if n := liveSessions(t, after, u.UserID); n != 3 {
			t.Errorf("live sessions after a sign-in under the lowered bound = %d, want 3", n)
		}
	})
}

// TestHashPoolOneClientCannotStarveOthers floods logins from one address,
// many at once and with the right password, while another client signs
// in: the flood is refused past its share of the hash pool, and the other
// client is served after at most a couple of the flood's hashes, where
// without the share it would wait behind all of the flood's queue (and,
// with a shorter AUTH_HASH_WAIT, be refused). Counted, not timed: the
// flood logins served while the other client's login is in flight.
func TestHashPoolOneClientCannotStarveOthers(t *testing.T) {
	testdb.Long(t, "48 clients flood logins at a real argon2id cost for seconds")
	testdb.Each(t, func(t *testing.T, dsn string) {
		// Not parallel: the flood is meant to saturate the pool.
		ts := authtest.NewServer(t, dsn, nil, loopbackProxy, func(c *authtest.Config) {
			// A real cost, and a wait long enough that no login here
			// times out however loaded the machine: what is counted is
			// whose hashes ran, not how long anyone waited.
			c.Auth.Argon2 = auth.Argon2Params{Memory: 16 << 10, Time: 2, Threads: 1}
			c.Auth.HashWorkers, c.Auth.HashWait = 1, time.Minute
		})
		ts.Register(t, "flood@example.com", "password1")
		ts.Register(t, "victim@example.com", "password1")

		const flooders = 48
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: flooders}}
		defer client.CloseIdleConnections()
		stop := make(chan struct{})
		var served, refused, answers atomic.Int64
		var wg sync.WaitGroup
		for range flooders {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					code, err := loginCode(client, ts.URL, "203.0.113.66", "flood@example.com")
					answers.Add(1)
					switch {
					case err != nil:
						t.Errorf("flood login: %v", err)
						return
					case code == "":
						served.Add(1)
					case code == models.RateLimited:
						refused.Add(1)
					default:
						t.Errorf("flood login: %s", code)
						return
					}
				}
			})
		}
		// Once every flooder has had an answer, the flood is at full
		// strength: each has a request in flight from then on.
		authtest.WaitFor(t, "the flood to get going", func() bool { return answers.Load() >= flooders })
		victims, ahead := 0, int64(0)
		for i := range 5 {
			before := served.Load()
			code, err := loginCode(http.DefaultClient, ts.URL, "198.51.100.1", "victim@example.com")
			// Ahead of it in the pool: at most the flood's hash in
			// progress and one the flood had queued before it came. A few
			// more flood logins may end meanwhile whose database write or
			// answer overlaps this login's (the worker is free again while
			// this one writes). Without the share it would wait for the
			// whole queue: about one hash per flooder.
			if n := served.Load() - before; n > flooders/6 {
				t.Errorf("the other client's login %d waited for %d of the flood's logins, want at most %d", i+1, n, flooders/6)
			} else {
				ahead = max(ahead, n)
			}
			if err != nil || code != "" {
				t.Errorf("the other client's login %d during the flood: %q %v", i+1, code, err)
			} else {
				victims++
			}
		}
		close(stop)
		wg.Wait()
		t.Logf("flood: %d served, %d refused; the other client: %d of 5 served, behind at most %d flood logins", served.Load(), refused.Load(), victims, ahead)
		if refused.Load() == 0 {
			t.Error("no flood login was refused")
		}
		// Refusals are coalesced, not a LOGIN row each.
		ts.Clock.Advance(time.Minute) // due for recording
		if n, _ := refusedCount(t, ts, "hash-client"); n != int(refused.Load()) {
			t.Errorf("hash-client refusals recorded = %d, want %d", n, refused.Load())
		}
		for _, e := range auditRows(t, ts, models.AuditLogin) {
			if e.Outcome == models.AuditFailure {
				t.Errorf("a LOGIN failure event for a refused flood login: %+v", e)
				break
			}
		}
	})
}

// loginCode logs in over client as the client at ip (through the trusted
// loopback proxy) and returns the error code, "" for a success. Unlike
// authtest.PostGraphQL it returns transport errors, for load goroutines.
func loginCode(client *http.Client, url, ip, email string) (string, error) {
	body, _ := json.Marshal(map[string]any{"query": authtest.LoginDoc, "variables": authtest.Creds(email)})
	req, err := http.NewRequest(http.MethodPost, url+"/query", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", ip)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var r authtest.Response
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return "", err
	}
	if len(r.Errors) == 0 {
		if r.Str("login", "accessToken") == "" {
			return "", fmt.Errorf("login without an access token: %v", r.Data)
		}
		return "", nil
	}
	code, _ := r.Errors[0].Extensions["code"].(string)
	return code, nil
}

func TestFailedRevokeSessionLimitedPerUser(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, authtest.WithLimits(auth.Limits{Failures: auth.Rate{N: 5, Per: time.Minute}}))
		ada := ts.Register(t, "ada@example.com", "password1")
		bob := ts.Register(t, "bob@example.com", "password1")
		codes := map[string]int{}
		for range 50 {
			r := revokeSession(t, ts, ada.Access, uuid.NewString())
			code := r.Code(t)
			codes[code]++
			if code == models.RateLimited {
				if ra, _ := r.Errors[0].Extensions["retryAfter"].(float64); ra < 1 {
					t.Errorf("RATE_LIMITED without retryAfter: %+v", r.Errors[0])
				}
			}
		}
		if codes[models.NotFound] != 5 || codes[models.RateLimited] != 45 {
			t.Errorf("50 revokeSession of unknown ids: %v, want 5 NOT_FOUND then 45 RATE_LIMITED", codes)
		}
		// The other user is not affected, nor is ada's own use of the API.
		if code := revokeSession(t, ts, bob.Access, uuid.NewString()).Code(t); code != models.NotFound {
			t.Errorf("another user's revokeSession: %s, want NOT_FOUND", code)
		}
		ts.Me(t, ada.Access).OK(t)

		// One audit row per failure that ran, and the refusals coalesced
		// into RATE_LIMITED events naming the user.
		failed := 0
		for _, e := range auditRows(t, ts, models.AuditSessionRevoked) {
			if e.Outcome == models.AuditFailure && deref(e.UserID) == ada.UserID {
				failed++
			}
		}
		if failed != 5 {
			t.Errorf("SESSION_REVOKED failures of the user = %d, want 5", failed)
		}
		ts.Clock.Advance(time.Minute)
		n, events := refusedCount(t, ts, "user-failures")
		if n != 45 || len(events) > 2 {
			t.Errorf("user-failures refusals recorded = %d in %d events, want 45 in at most 2", n, len(events))
		}
		for _, e := range events {
			if deref(e.UserID) != ada.UserID {
				t.Errorf("RATE_LIMITED event %+v does not name the user", e)
			}
		}

		t.Run("SuccessesDoNotCount", func(t *testing.T) {
			// The minute has passed: a full budget again. Twenty
			// successful calls spend none of it.
			for i := range 20 {
				other := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1").OK(t), "login")
				if r := revokeSession(t, ts, ada.Access, authtest.SID(t, other.Access)); len(r.Errors) > 0 {
					t.Fatalf("revoke %d of an own session: %+v", i+1, r.Errors)
				}
			}
			for i := range 5 {
				if code := revokeSession(t, ts, ada.Access, "not-a-session").Code(t); code != models.NotFound {
					t.Errorf("failure %d after successes: %s, want NOT_FOUND", i+1, code)
				}
			}
		})
	})
}

func TestFailedSetUserRolesLimitedPerUser(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, authtest.WithLimits(auth.Limits{Failures: auth.Rate{N: 3, Per: time.Minute}}))
		admin := ts.Admin(t)
		u := ts.Register(t, "ada@example.com", "password1")
		codes := map[string]int{}
		for range 20 {
			r := ts.Do(t, admin.Access, `mutation($id: ID!) { setUserRoles(userId: $id, roles: ["no-such-role"]) { id } }`, map[string]any{"id": u.UserID})
			codes[r.Code(t)]++
		}
		if codes[models.BadUserInput] != 3 || codes[models.RateLimited] != 17 {
			t.Errorf("20 failing setUserRoles: %v, want 3 BAD_USER_INPUT then 17 RATE_LIMITED", codes)
		}
		if rows := auditRows(t, ts, models.AuditRolesChanged); len(rows) != 3 {
			t.Errorf("ROLES_CHANGED events = %d, want 3 (one per call that ran)", len(rows))
		}
	})
}

// TestFailedFactorChangesLimitedPerUser: the second-factor mutations whose
// every failure is an audit row are limited per user like revokeSession:
// a script looping on unknown ids gets RATE_LIMITED unrun past the limit.
func TestFailedFactorChangesLimitedPerUser(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		for _, tc := range []struct {
			name, doc string
			vars      func() map[string]any
			audit     models.AuditEventType
			failure   string
		}{
			{"RemoveMfaFactor", `mutation($id: ID!) { removeMfaFactor(id: $id) }`,
				func() map[string]any { return map[string]any{"id": uuid.NewString()} }, models.AuditMfaRemoved, models.NotFound},
			{"DeletePasskey", `mutation($id: ID!) { deletePasskey(id: $id) }`,
				func() map[string]any { return map[string]any{"id": uuid.NewString()} }, models.AuditPasskeyRemoved, models.NotFound},
			{"FinishPasskeyRegistration", `mutation($id: ID!) { finishPasskeyRegistration(ceremonyId: $id, credential: "{}") { id } }`,
				func() map[string]any { return map[string]any{"id": uuid.NewString()} }, models.AuditPasskeyAdded, models.BadUserInput},
			{"ConfirmTotp", `mutation($id: ID!) { confirmTotp(factorId: $id, code: "123456") { recoveryCodes } }`,
				func() map[string]any { return map[string]any{"id": uuid.NewString()} }, models.AuditMfaEnrolled, models.BadUserInput},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ts := authtest.NewServer(t, dsn, nil, authtest.WithLimits(auth.Limits{Failures: auth.Rate{N: 3, Per: time.Minute}}))
				ada := ts.Register(t, uuid.NewString()+"@example.com", "password1")
				codes := map[string]int{}
				for range 20 {
					codes[ts.Do(t, ada.Access, tc.doc, tc.vars()).Code(t)]++
				}
				if codes[tc.failure] != 3 || codes[models.RateLimited] != 17 {
					t.Errorf("20 failing calls: %v, want 3 %s then 17 RATE_LIMITED", codes, tc.failure)
				}
				if rows := auditRows(t, ts, tc.audit); len(rows) > 3 {
					t.Errorf("%s events = %d, want at most 3 (one per call that ran)", tc.audit, len(rows))
				}
			})
		}
	})
}

// BenchmarkLoginSessionLimit is what the session limit adds to a login:
// below the bound (a count of the user's sessions) and at it (every login
// also ends the least recently used session: a revocation row and, on
// PostgreSQL, its notification). argon2id is cheap here, so that the
// database's share shows.
func BenchmarkLoginSessionLimit(b *testing.B) {
	eachBenchDB(b, func(b *testing.B, dsn string) {
		for _, tc := range []struct {
			name string
			max  int
		}{{"BelowBound", 500}, {"AtBound", 5}} {
			b.Run(tc.name, func(b *testing.B) {
				ts := authtest.NewServer(b, dsn, nil, withMaxSessions(tc.max))
				email := uuid.NewString() + "@example.com"
				ts.Register(b, email, "password1")
				for range 5 {
					ts.Login(b, email, "password1").OK(b)
				}
				n := 0
				for b.Loop() {
					if n++; tc.max > 5 && n%400 == 0 {
						// Stay below the bound: end them all now and then.
						b.StopTimer()
						ts.DB.Exec("UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL AND user_id = (SELECT id FROM users WHERE email = ?)", ts.Clock.Now(), email)
						b.StartTimer()
					}
					ts.Login(b, email, "password1").OK(b)
				}
			})
		}
	})
}
