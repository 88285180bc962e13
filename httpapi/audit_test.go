package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/auth/keys"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// flushAudit waits until the audit events the server has recorded so far
// are in its database.
func flushAudit(tb testing.TB, ts *authtest.Server) {
	tb.Helper()
	if err := ts.Svc.FlushAudit(context.Background()); err != nil {
		tb.Fatal(err)
	}
}

// auditEvent is one event of auditLog; "" stands for null (authql never
// stores an empty string in the audit log).
type auditEvent struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	Type      string    `json:"type"`
	Outcome   string    `json:"outcome"`
	Reason    string    `json:"reason"`
	UserID    string    `json:"userId"`
	ActorID   string    `json:"actorId"`
	SessionID string    `json:"sessionId"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"userAgent"`
	Detail    string    `json:"detail"`
	Cursor    string    `json:"cursor"`
}

// what is e without its id, time and cursor, for comparison with what a
// test expects.
func (e auditEvent) what() auditEvent {
	e.ID, e.At, e.Cursor = "", time.Time{}, ""
	return e
}

func (e auditEvent) String() string {
	return fmt.Sprintf("{%s %s reason=%q user=%q actor=%q session=%q ip=%q ua=%q detail=%q}",
		e.Type, e.Outcome, e.Reason, e.UserID, e.ActorID, e.SessionID, e.IP, e.UserAgent, e.Detail)
}

const auditLogQuery = `query($first: Int, $after: String, $userId: ID, $type: AuditEventType) {
	auditLog(first: $first, after: $after, userId: $userId, type: $type) {
		id at type outcome reason userId actorId sessionId ip userAgent detail cursor
	}
}`

// auditLog returns one page of the audit log; userID and typ filter it
// when not empty.
func auditLog(tb testing.TB, ts *authtest.Server, token string, first int, after, userID, typ string) []auditEvent {
	tb.Helper()
	vars := map[string]any{"first": first}
	for k, v := range map[string]string{"after": after, "userId": userID, "type": typ} {
		if v != "" {
			vars[k] = v
		}
	}
	var out struct{ AuditLog []auditEvent }
	if err := authtest.PostLoad(http.DefaultClient, ts.URL, token, auditLogQuery, vars, &out); err != nil {
		tb.Fatalf("auditLog(first: %d, after: %q, userId: %q, type: %q): %v", first, after, userID, typ, err)
	}
	return out.AuditLog
}

// sameEvents reports the difference between the events got and want,
// compared without ids and times, in any order.
func sameEvents(tb testing.TB, got []auditEvent, want []auditEvent) {
	tb.Helper()
	left := make([]auditEvent, len(got))
	for i, e := range got {
		left[i] = e.what()
	}
	var missing []auditEvent
	for _, w := range want {
		if i := slices.Index(left, w); i >= 0 {
			left = slices.Delete(left, i, i+1)
		} else {
			missing = append(missing, w)
		}
	}
	for _, e := range missing {
		tb.Errorf("missing event %v", e)
	}
	for _, e := range left {
		tb.Errorf("unexpected event %v", e)
	}
}

// newestFirst fails unless events are in strictly descending (at, id)
// order: the order of the audit log, its ties broken by id.
func newestFirst(tb testing.TB, events []auditEvent) {
	tb.Helper()
	for i := 1; i < len(events); i++ {
		a, b := events[i-1], events[i]
		if c := a.At.Compare(b.At); c < 0 || (c == 0 && a.ID <= b.ID) {
			tb.Fatalf("events %d and %d out of order: %s %s before %s %s", i-1, i, a.At, a.ID, b.At, b.ID)
		}
	}
}

// TestAuditLog scripts one of every audited event through the API and the
// CLI and reads them back as an admin, then filters them.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, authtest.WithAlg(keys.AlgEdDSA),
			authtest.WithLimits(auth.Limits{LoginAccount: auth.Rate{N: 3, Per: time.Hour}}))
		sc := playAuditScenario(t, ts)
		got := auditLog(t, ts, sc.admin.Access, 500, "", "", "")
		newestFirst(t, got)
		want := sc.want(t)
		sameEvents(t, got, want)
		for _, e := range got {
			if e.Detail == "login-account (4 refused)" && !e.At.Equal(sc.lastRefusal) {
				t.Errorf("coalesced refusals recorded at %s, want the last one's time %s", e.At, sc.lastRefusal)
			}
		}
		var rows []models.AuditEvent
		if err := ts.DB.Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			for _, v := range []*string{r.Reason, r.UserID, r.ActorID, r.SessionID, r.IP, r.UserAgent, r.Detail} {
				if strings.Contains(deref(v), "hunter2") {
					t.Errorf("the email typed is in the audit log: %q", deref(v))
				}
			}
		}
		t.Run("Filters", func(t *testing.T) { auditLogFilters(t, ts, sc.admin.Access, sc.ada, want) })
		t.Run("NotAdmin", func(t *testing.T) {
			bob := ts.Register(t, "bob@example.com", "password1")
			if code := ts.Do(t, bob.Access, auditLogQuery, nil).Code(t); code != models.Forbidden {
				t.Errorf("non-admin: %s, want FORBIDDEN", code)
			}
			if code := ts.Do(t, "", auditLogQuery, nil).Code(t); code != models.Unauthenticated {
				t.Errorf("no token: %s, want UNAUTHENTICATED", code)
			}
		})
		t.Run("BadInput", func(t *testing.T) { auditLogBadInput(t, ts, sc.admin.Access, got[0].Cursor) })
	})
}

// auditScenario is what playAuditScenario did, for the events it expects.
type auditScenario struct {
	firstKID, rotatedKID string
	admin                authtest.Tokens
	ada                  string // the user id
	s1, s2, s3, s4       authtest.Tokens
	lastRefusal          time.Time
}

// playAuditScenario makes every kind of audited event happen once on ts,
// each with a user agent of its own.
func playAuditScenario(t *testing.T, ts *authtest.Server) auditScenario {
	t.Helper()
	sc := auditScenario{firstKID: ts.Svc.KeyID(), admin: ts.Admin(t)}
	as := func(token, ua, doc string, vars map[string]any) authtest.Response {
		t.Helper()
		return doAs(t, ts, token, ua, doc, vars)
	}
	login := func(ua, email, password string) authtest.Response {
		t.Helper()
		return as("", ua, authtest.LoginDoc, map[string]any{"e": email, "p": password})
	}

	sc.s1 = authtest.TokensOf(as("", "ua/register", authtest.RegisterDoc, map[string]any{"e": "ada@example.com", "p": "password1"}).OK(t), "register")
	sc.ada = sc.s1.UserID
	login("ua/wrong-password", "ada@example.com", "wrong-password").Code(t)
	// People type passwords into the email field: what was typed
	// must not be recorded (checked by TestAuditLog).
	login("ua/unknown-email", "hunter2-secret@example.com", "password1").Code(t)
	sc.s2 = authtest.TokensOf(login("ua/login", "ada@example.com", "password1").OK(t), "login")
	s2b := authtest.TokensOf(as("", "ua/refresh", authtest.RefreshDoc, map[string]any{"t": sc.s2.Refresh}).OK(t), "refresh")
	ts.Clock.Advance(11 * time.Second) // past the reuse interval
	// The successor used, the first token is superseded for good.
	as("", "ua/refresh-2", authtest.RefreshDoc, map[string]any{"t": s2b.Refresh}).OK(t)
	as("", "ua/reuse", authtest.RefreshDoc, map[string]any{"t": sc.s2.Refresh}).Code(t)
	as("", "ua/bad-refresh", authtest.RefreshDoc, map[string]any{"t": "not-a-refresh-token"}).Code(t)
	as(sc.s1.Access, "ua/logout", `mutation { logout }`, nil).OK(t)
	sc.s3 = authtest.TokensOf(login("ua/login-3", "ada@example.com", "password1").OK(t), "login")
	sc.s4 = authtest.TokensOf(login("ua/login-4", "ada@example.com", "password1").OK(t), "login")
	as(sc.s4.Access, "ua/revoke", `mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": authtest.SID(t, sc.s3.Access)}).OK(t)
	as(sc.s4.Access, "ua/revoke-other", `mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": authtest.SID(t, sc.admin.Access)}).Code(t)
	as(sc.s4.Access, "ua/logout-all", `mutation { logout(allSessions: true) }`, nil).OK(t)
	as(sc.admin.Access, "ua/roles", `mutation($id: ID!) { setUserRoles(userId: $id, roles: ["user", "Admin"]) { id } }`, map[string]any{"id": sc.ada}).OK(t)
	// Three failures, then five refused by the limit: one event at
	// once, the other four a minute on.
	for range 3 {
		if code := login("ua/flood", "victim@example.com", "guess").Code(t); code != models.Unauthenticated {
			t.Fatalf("login before the limit: %s", code)
		}
	}
	for range 5 {
		if code := login("ua/flood", "victim@example.com", "guess").Code(t); code != models.RateLimited {
			t.Fatalf("login past the limit: %s", code)
		}
	}
	sc.lastRefusal = ts.Clock.Now()
	ts.Clock.Advance(time.Minute)
	// As authql keys rotate does it, with no Service: the key store
	// records it.
	var err error
	if sc.rotatedKID, err = keys.Rotate(context.Background(), ts.DB, keys.Config{Alg: keys.AlgEdDSA}, 0, time.Now, nil); err != nil {
		t.Fatal(err)
	}
	return sc
}

// want returns the events the scenario should have recorded, oldest first.
func (sc auditScenario) want(t *testing.T) []auditEvent {
	const ip, goUA = "127.0.0.1", "Go-http-client/1.1"
	const unauth, limited = models.Unauthenticated, models.RateLimited
	ada, adminID, adminSID := sc.ada, sc.admin.UserID, authtest.SID(t, sc.admin.Access)
	sid1, sid2, sid3, sid4 := authtest.SID(t, sc.s1.Access), authtest.SID(t, sc.s2.Access), authtest.SID(t, sc.s3.Access), authtest.SID(t, sc.s4.Access)
	return []auditEvent{
		{Type: "KEY_ROTATED", Outcome: "SUCCESS", Detail: sc.firstKID},
		{Type: "REGISTER", Outcome: "SUCCESS", UserID: adminID, Detail: "admin,user"}, // AUTH_ADMIN_EMAIL: no client
		{Type: "LOGIN", Outcome: "SUCCESS", UserID: adminID, SessionID: adminSID, IP: ip, UserAgent: goUA},
		{Type: "REGISTER", Outcome: "SUCCESS", UserID: ada, SessionID: sid1, IP: ip, UserAgent: "ua/register"},
		{Type: "LOGIN", Outcome: "FAILURE", Reason: unauth, UserID: ada, IP: ip, UserAgent: "ua/wrong-password"},
		{Type: "LOGIN", Outcome: "FAILURE", Reason: unauth, IP: ip, UserAgent: "ua/unknown-email"},
		{Type: "LOGIN", Outcome: "SUCCESS", UserID: ada, SessionID: sid2, IP: ip, UserAgent: "ua/login"},
		{Type: "REFRESH", Outcome: "SUCCESS", UserID: ada, SessionID: sid2, IP: ip, UserAgent: "ua/refresh"},
		{Type: "REFRESH", Outcome: "SUCCESS", UserID: ada, SessionID: sid2, IP: ip, UserAgent: "ua/refresh-2"},
		{Type: "REFRESH_REUSE", Outcome: "FAILURE", Reason: unauth, UserID: ada, SessionID: sid2, IP: ip, UserAgent: "ua/reuse"},
		{Type: "REFRESH", Outcome: "FAILURE", Reason: unauth, IP: ip, UserAgent: "ua/bad-refresh"},
		{Type: "LOGOUT", Outcome: "SUCCESS", UserID: ada, SessionID: sid1, IP: ip, UserAgent: "ua/logout"},
		{Type: "LOGIN", Outcome: "SUCCESS", UserID: ada, SessionID: sid3, IP: ip, UserAgent: "ua/login-3"},
		{Type: "LOGIN", Outcome: "SUCCESS", UserID: ada, SessionID: sid4, IP: ip, UserAgent: "ua/login-4"},
		{Type: "SESSION_REVOKED", Outcome: "SUCCESS", UserID: ada, SessionID: sid3, IP: ip, UserAgent: "ua/revoke"},
		{Type: "SESSION_REVOKED", Outcome: "FAILURE", Reason: models.NotFound, UserID: ada, SessionID: adminSID, IP: ip, UserAgent: "ua/revoke-other"},
		{Type: "LOGOUT", Outcome: "SUCCESS", UserID: ada, SessionID: sid4, IP: ip, UserAgent: "ua/logout-all", Detail: "all"},
		{Type: "ROLES_CHANGED", Outcome: "SUCCESS", UserID: ada, ActorID: adminID, IP: ip, UserAgent: "ua/roles", Detail: "admin,user"},
		{Type: "LOGIN", Outcome: "FAILURE", Reason: unauth, IP: ip, UserAgent: "ua/flood"},
		{Type: "LOGIN", Outcome: "FAILURE", Reason: unauth, IP: ip, UserAgent: "ua/flood"},
		{Type: "LOGIN", Outcome: "FAILURE", Reason: unauth, IP: ip, UserAgent: "ua/flood"},
		{Type: "RATE_LIMITED", Outcome: "FAILURE", Reason: limited, IP: ip, UserAgent: "ua/flood", Detail: "login-account (1 refused)"},
		{Type: "RATE_LIMITED", Outcome: "FAILURE", Reason: limited, IP: ip, UserAgent: "ua/flood", Detail: "login-account (4 refused)"},
		{Type: "KEY_ROTATED", Outcome: "SUCCESS", Detail: sc.rotatedKID},
	}
}

// auditLogFilters checks auditLog's filters against the events want.
func auditLogFilters(t *testing.T, ts *authtest.Server, adminToken, ada string, want []auditEvent) {
	filter := func(f func(auditEvent) bool) []auditEvent {
		var out []auditEvent
		for _, w := range want {
			if f(w) {
				out = append(out, w)
			}
		}
		return out
	}
	sameEvents(t, auditLog(t, ts, adminToken, 500, "", ada, ""), filter(func(e auditEvent) bool { return e.UserID == ada }))
	sameEvents(t, auditLog(t, ts, adminToken, 500, "", "", "LOGIN"), filter(func(e auditEvent) bool { return e.Type == "LOGIN" }))
	sameEvents(t, auditLog(t, ts, adminToken, 500, "", ada, "LOGOUT"), filter(func(e auditEvent) bool { return e.UserID == ada && e.Type == "LOGOUT" }))
	// The same user in capitals: still that user.
	sameEvents(t, auditLog(t, ts, adminToken, 500, "", strings.ToUpper(ada), "LOGOUT"), filter(func(e auditEvent) bool { return e.UserID == ada && e.Type == "LOGOUT" }))
	for _, id := range []string{uuid.NewString(), "not-a-user", ""} {
		r := ts.Do(t, adminToken, auditLogQuery, map[string]any{"userId": id}).OK(t)
		if got, _ := r.Get("auditLog").([]any); len(got) != 0 {
			t.Errorf("userId %q: %d events, want none", id, len(got))
		}
	}
}

// auditLogBadInput checks that auditLog refuses bad pages and cursors
// (eventCursor is a real event's).
func auditLogBadInput(t *testing.T, ts *authtest.Server, adminToken, eventCursor string) {
	userCursor := users(t, ts, adminToken, 1, "")[0].Cursor
	for name, vars := range map[string]map[string]any{
		"FirstZero":      {"first": 0},
		"FirstNegative":  {"first": -1},
		"FirstTooLarge":  {"first": 501},
		"GarbageCursor":  {"after": "garbage"},
		"PaddedCursor":   {"after": eventCursor + "="},
		"TruncatedCusor": {"after": eventCursor[:len(eventCursor)-2]},
		"EmptyCursor":    {"after": ""},
	} {
		if code := ts.Do(t, adminToken, auditLogQuery, vars).Code(t); code != models.BadUserInput {
			t.Errorf("%s: %s, want BAD_USER_INPUT", name, code)
		}
	}
	if r := ts.Do(t, adminToken, auditLogQuery, map[string]any{"type": "NOPE"}); len(r.Errors) == 0 || r.Get("auditLog") != nil {
		t.Errorf("unknown type: %+v, want an error and no events", r)
	}
	// A user's cursor is a position like any other: accepted.
	ts.Do(t, adminToken, auditLogQuery, map[string]any{"after": userCursor}).OK(t)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestAuditLogPagination pages through more events than one page holds,
// most of them recorded at one instant, in pages whose edges fall inside
// that tie: every event must come exactly once, newest first, with and
// without filters.
func TestAuditLogPagination(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		admin := ts.Admin(t)
		// In 2020: older than the events of the admin's own sign-in.
		base := time.Date(2020, 1, 2, 3, 4, 5, 678_901_000, time.UTC)
		userA, userB := uuid.NewString(), uuid.NewString()
		types := []models.AuditEventType{models.AuditLogin, models.AuditSessionRevoked, models.AuditRefresh}
		var seeded []models.AuditEvent
		for i := range 600 {
			at := base
			if i%5 == 0 {
				at = base.Add(time.Duration(i-300) * time.Millisecond)
			}
			e := models.NewAuditEvent(at, types[i%3], models.AuditSuccess)
			e.UserID = models.Null([]string{userA, userB}[i%2])
			seeded = append(seeded, e)
		}
		for chunk := range slices.Chunk(seeded, 100) {
			if err := models.InsertAuditEvents(context.Background(), ts.DB, chunk); err != nil {
				t.Fatal(err)
			}
		}
		// The expected order, computed here: newest first, ties by id.
		slices.SortFunc(seeded, func(a, b models.AuditEvent) int {
			if c := b.At.Compare(a.At); c != 0 {
				return c
			}
			return strings.Compare(b.ID, a.ID)
		})
		flushAudit(t, ts) // the admin's own events, counted below
		var total int64
		if err := ts.DB.Model(&models.AuditEvent{}).Count(&total).Error; err != nil {
			t.Fatal(err)
		}

		for _, tc := range []struct {
			name, userID string
			typ          models.AuditEventType
		}{
			{name: "All"},
			{name: "OneUser", userID: userA},
			{name: "OneType", typ: models.AuditSessionRevoked},
			{name: "OneUserOneType", userID: userB, typ: models.AuditRefresh},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var want []string
				for _, e := range seeded {
					if (tc.userID == "" || *e.UserID == tc.userID) && (tc.typ == "" || e.Type == tc.typ) {
						want = append(want, e.ID)
					}
				}
				// 7 does not divide the tie, so page edges fall inside it.
				var all []auditEvent
				after := ""
				for {
					page := auditLog(t, ts, admin.Access, 7, after, tc.userID, string(tc.typ))
					all = append(all, page...)
					if len(page) < 7 {
						break
					}
					after = page[len(page)-1].Cursor
				}
				newestFirst(t, all) // strictly: no event twice
				var gotSeeded []string
				for _, e := range all {
					if e.At.Before(base.Add(time.Hour)) {
						gotSeeded = append(gotSeeded, e.ID)
					}
				}
				if !slices.Equal(gotSeeded, want) {
					t.Errorf("%d seeded events paged, want %d in order", len(gotSeeded), len(want))
				}
				if tc.name == "All" && int64(len(all)) != total {
					t.Errorf("%d events paged, the table has %d", len(all), total)
				}
			})
		}
	})
}

// TestAuditPurge: the purge deletes the events older than the retention
// and keeps the others; expired sessions go too.
func TestAuditPurge(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		for _, tc := range []struct {
			name      string
			retention time.Duration // 0: the default
			keep      time.Duration
		}{
			{"Default", 0, auth.DefaultAuditRetention},
			{"Configured", 24 * time.Hour, 24 * time.Hour},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ts := authtest.NewServer(t, dsn, nil, func(c *authtest.Config) { c.Auth.AuditRetention = tc.retention })
				ctx := context.Background()
				if err := ts.DB.Where("1 = 1").Delete(&models.AuditEvent{}).Error; err != nil {
					t.Fatal(err)
				}
				now := ts.Clock.Now()
				ages := map[string]time.Duration{
					"long gone": tc.keep + 24*time.Hour,
					"just gone": tc.keep + time.Second,
					"just kept": tc.keep - time.Second,
					"new":       0,
				}
				var events []models.AuditEvent
				for name, age := range ages {
					e := models.NewAuditEvent(now.Add(-age), models.AuditLogin, models.AuditSuccess)
					e.Detail = models.Null(name)
					events = append(events, e)
				}
				if err := models.InsertAuditEvents(ctx, ts.DB, events); err != nil {
					t.Fatal(err)
				}
				if err := ts.Svc.Purge(ctx); err != nil {
					t.Fatal(err)
				}
				var left []string
				if err := ts.DB.Model(&models.AuditEvent{}).Order("detail").Pluck("detail", &left).Error; err != nil {
					t.Fatal(err)
				}
				if want := []string{"just kept", "new"}; !slices.Equal(left, want) {
					t.Errorf("after purge: %q, want %q", left, want)
				}
			})
		}
	})
}

// TestPurgeExpiredSessions: sessions past their expiry (never revoked) are
// deleted with their refresh tokens; live ones stay.
func TestPurgeExpiredSessions(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, func(c *authtest.Config) { c.Auth.RefreshTTL = time.Hour })
		old := ts.Register(t, "ada@example.com", "password1")
		ts.Clock.Advance(30 * time.Minute)
		fresh := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1").OK(t), "login")
		ts.Clock.Advance(31 * time.Minute)
		if err := ts.Svc.Purge(context.Background()); err != nil {
			t.Fatal(err)
		}
		var ids []string
		ts.DB.Model(&models.Session{}).Pluck("id", &ids)
		if !slices.Equal(ids, []string{authtest.SID(t, fresh.Access)}) {
			t.Errorf("sessions after purge: %v, want only %s (%s expired)", ids, authtest.SID(t, fresh.Access), authtest.SID(t, old.Access))
		}
		var tokens []models.RefreshToken
		ts.DB.Find(&tokens)
		for _, rt := range tokens {
			if rt.SessionID != authtest.SID(t, fresh.Access) {
				t.Errorf("refresh token of purged session %s left", rt.SessionID)
			}
		}
		ts.Refresh(t, fresh.Refresh).OK(t)
	})
}
