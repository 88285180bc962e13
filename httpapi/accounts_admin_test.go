package httpapi_test

// The account flows of issue 12 that change or end an account: change
// password, deletion (by the owner and by an admin), disabling and
// enabling, and the last-admin rule. Over real HTTP, on SQLite and (with
// TEST_DATABASE_URL) PostgreSQL.

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/smtptest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

const (
	changePasswordDoc = `mutation($c: String!, $n: String!, $o: Boolean) {
		changePassword(currentPassword: $c, newPassword: $n, signOutOtherSessions: $o) { ` + authtest.PayloadFields + ` } }`
	deleteAccountDoc = `mutation($p: String!) { deleteAccount(password: $p) }`
	deleteUserDoc    = `mutation($id: ID!) { deleteUser(userId: $id) }`
	disableUserDoc   = `mutation($id: ID!, $r: String) { disableUser(userId: $id, reason: $r) { id disabled } }`
	enableUserDoc    = `mutation($id: ID!) { enableUser(userId: $id) { id disabled } }`
)

// changePassword calls changePassword with token; others nil leaves the
// argument at its default.
func changePassword(tb testing.TB, ts *authtest.Server, token, current, next string, others *bool) authtest.Response {
	tb.Helper()
	vars := map[string]any{"c": current, "n": next}
	if others != nil {
		vars["o"] = *others
	}
	return ts.Do(tb, token, changePasswordDoc, vars)
}

// wantCode fails the test unless r failed with code and, when msg is not
// empty, a message containing it.
func wantCode(tb testing.TB, what string, r authtest.Response, code, msg string) {
	tb.Helper()
	if len(r.Errors) != 1 {
		tb.Errorf("%s: errors %+v (data %v), want one %s", what, r.Errors, r.Data, code)
		return
	}
	if got := r.Code(tb); got != code || !strings.Contains(r.Errors[0].Message, msg) {
		tb.Errorf("%s: %s %q, want %s %q", what, got, r.Errors[0].Message, code, msg)
	}
}

// countRows counts the rows of table matching where.
func countRows(tb testing.TB, ts *authtest.Server, table, where string, args ...any) int64 {
	tb.Helper()
	var n int64
	if err := ts.DB.Table(table).Where(where, args...).Count(&n).Error; err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		user := ts.Register(t, "ada@example.com", "password1")
		other := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1").OK(t), "login")

		t.Run("Refusals", func(t *testing.T) {
			for _, tc := range []struct{ name, current, next, msg string }{
				{"WrongCurrent", "password2", "new-password", "current password is wrong"},
				{"SamePassword", "password1", "password1", "must differ"},
				{"SameInAnotherForm", "caf\u00e9-au-lait", "cafe\u0301-au-lait", "must differ"},
				{"TooShort", "password1", "short", "at least 8"},
				{"TooLong", "password1", strings.Repeat("x", auth.MaxPasswordBytes+1), "at most"},
			} {
				wantCode(t, tc.name, changePassword(t, ts, user.Access, tc.current, tc.next, nil), models.BadUserInput, tc.msg)
			}
			wantCode(t, "NoToken", changePassword(t, ts, "", "password1", "new-password", nil), models.Unauthenticated, "")
			ts.Me(t, other.Access).OK(t) // nothing changed
		})

		r := changePassword(t, ts, user.Access, "password1", "new-password", nil).OK(t)
		fresh := authtest.TokensOf(r, "changePassword")
		if authtest.SID(t, fresh.Access) != authtest.SID(t, user.Access) {
			t.Error("the new pair is of another session, want the caller's")
		}
		if fresh.Refresh == user.Refresh || fresh.UserID != user.UserID {
			t.Errorf("changePassword returned %+v", fresh)
		}
		ts.Me(t, user.Access).OK(t) // the caller's session goes on
		ts.Me(t, fresh.Access).OK(t)
		wantCode(t, "the session's old refresh token", ts.Refresh(t, user.Refresh), models.Unauthenticated, "invalid or expired")
		ts.WantUnauthenticated(t, other.Access, "another session's access token")
		wantCode(t, "another session's refresh token", ts.Refresh(t, other.Refresh), models.Unauthenticated, "")
		// The old refresh token presented did not end the session as a
		// reuse would have: the new one still works.
		next := authtest.TokensOf(ts.Refresh(t, fresh.Refresh).OK(t), "refresh")
		ts.Me(t, next.Access).OK(t)
		wantCode(t, "login with the old password", ts.Login(t, "ada@example.com", "password1"), models.Unauthenticated, "")
		ts.Login(t, "ada@example.com", "new-password").OK(t)

		events := auditRows(t, ts, models.AuditPasswordChanged)
		var ok, failed int
		for _, e := range events {
			if deref(e.UserID) != user.UserID && e.UserID != nil {
				t.Errorf("PASSWORD_CHANGED of user %s, want %s", deref(e.UserID), user.UserID)
			}
			if e.Outcome == models.AuditSuccess {
				ok++
				if deref(e.Detail) != "1 other sessions ended" || deref(e.SessionID) != authtest.SID(t, user.Access) {
					t.Errorf("success event %+v, want detail \"1 other sessions ended\" and the caller's session", e)
				}
			} else {
				failed++
			}
		}
		if ok != 1 || failed != 5 {
			t.Errorf("PASSWORD_CHANGED: %d successes, %d failures; want 1 and 5", ok, failed)
		}
	})
}

// TestChangePasswordKeepingOtherSessions: signOutOtherSessions false ends
// no other session; the caller's own old refresh token stops all the same.
func TestChangePasswordKeepingOtherSessions(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		user := ts.Register(t, "ada@example.com", "password1")
		other := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1").OK(t), "login")
		keep := false
		fresh := authtest.TokensOf(changePassword(t, ts, user.Access, "password1", "new-password", &keep).OK(t), "changePassword")
		ts.Me(t, other.Access).OK(t)
		ts.Refresh(t, other.Refresh).OK(t)
		wantCode(t, "the caller's old refresh token", ts.Refresh(t, user.Refresh), models.Unauthenticated, "")
		ts.Refresh(t, fresh.Refresh).OK(t)
	})
}

// TestChangePasswordCountsAsFailedLogin: a wrong current password counts
// against the account's login limit, shared with the login form, so a
// stolen access token is no faster way to guess the password; past it,
// even the right password is refused.
func TestChangePasswordCountsAsFailedLogin(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		limits := auth.Limits{LoginAccount: auth.Rate{N: 3, Per: time.Hour}}
		ts := authtest.NewServer(t, dsn, nil, authtest.WithLimits(limits))
		user := ts.Register(t, "ada@example.com", "password1")
		for i := range 2 {
			wantCode(t, fmt.Sprintf("wrong password %d", i), changePassword(t, ts, user.Access, "guess-"+fmt.Sprint(i), "new-password", nil), models.BadUserInput, "wrong")
		}
		wantCode(t, "a failed login", ts.Login(t, "ada@example.com", "guess-2"), models.Unauthenticated, "")
		r := changePassword(t, ts, user.Access, "password1", "new-password", nil)
		wantCode(t, "the right password past the limit", r, models.RateLimited, "")
		if _, ok := r.Errors[0].Extensions["retryAfter"]; !ok {
			t.Errorf("RATE_LIMITED without retryAfter: %+v", r.Errors)
		}
		wantCode(t, "deleteAccount past the limit", ts.Do(t, user.Access, deleteAccountDoc, map[string]any{"p": "password1"}), models.RateLimited, "")
		ts.Me(t, user.Access).OK(t)
	})
}

// seedPending gives the user a mailed request and a queued mail, as the
// request flows would.
func seedPending(tb testing.TB, ts *authtest.Server, userID, email string) {
	tb.Helper()
	now := ts.Clock.Now()
	if err := ts.DB.Create(&models.EmailRequest{
		ID: uuid.NewString(), Kind: models.RequestReset, UserID: &userID, Email: email,
		TokenHash: uuid.NewString(), CodeMAC: "x", CreatedAt: now, ExpiresAt: now.Add(time.Hour),
	}).Error; err != nil {
		tb.Fatal(err)
	}
	if err := models.EnqueueMail(ts.DB, &models.OutboxMail{
		ID: uuid.NewString(), CreatedAt: now, Kind: "reset", Status: models.MailQueued, UserID: &userID,
		To: email, Message: "queued", NextAttemptAt: now,
	}); err != nil {
		tb.Fatal(err)
	}
}

// wantGone fails the test unless nothing of the user is left but audit
// events that name them by id only.
func wantGone(tb testing.TB, ts *authtest.Server, userID, email string) {
	tb.Helper()
	for _, c := range []struct{ table, where string }{
		{"users", "id = ?"},
		{"user_roles", "user_id = ?"},
		{"sessions", "user_id = ?"},
		{"refresh_tokens", "session_id IN (SELECT id FROM sessions WHERE user_id = ?)"},
		{"email_requests", "user_id = ?"},
		{"outbox_mails", "user_id = ?"},
	} {
		if n := countRows(tb, ts, c.table, c.where, userID); n != 0 {
			tb.Errorf("%d rows of the deleted user in %s", n, c.table)
		}
	}
	if n := countRows(tb, ts, "refresh_tokens", "session_id NOT IN (SELECT id FROM sessions)"); n != 0 {
		tb.Errorf("%d refresh tokens of sessions that no longer exist", n)
	}
	flushAudit(tb, ts)
	var events []models.AuditEvent
	if err := ts.DB.Where("user_id = ?", userID).Find(&events).Error; err != nil {
		tb.Fatal(err)
	}
	deleted := 0
	for _, e := range events {
		if strings.Contains(fmt.Sprint(e.Detail, e.Reason, e.UserAgent), email) {
			tb.Errorf("audit event %+v holds the email", e)
		}
		if e.Type == models.AuditAccountDeleted && e.Outcome == models.AuditSuccess {
			deleted++
		}
	}
	if len(events) < 2 || deleted != 1 {
		tb.Errorf("%d audit events name the user, %d ACCOUNT_DELETED; want their history and one deletion", len(events), deleted)
	}
}

func TestDeleteAccount(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		user := ts.Register(t, "ada@example.com", "password1")
		other := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1").OK(t), "login")
		bystander := ts.Register(t, "bob@example.com", "password1")
		seedPending(t, ts, user.UserID, "ada@example.com")
		seedPending(t, ts, bystander.UserID, "bob@example.com")

		wantCode(t, "wrong password", ts.Do(t, user.Access, deleteAccountDoc, map[string]any{"p": "password2"}), models.BadUserInput, "wrong password")
		wantCode(t, "no token", ts.Do(t, "", deleteAccountDoc, map[string]any{"p": "password1"}), models.Unauthenticated, "")
		if r := ts.Do(t, user.Access, deleteAccountDoc, map[string]any{"p": "password1"}).OK(t); r.Get("deleteAccount") != true {
			t.Fatalf("deleteAccount = %v", r.Data)
		}
		for _, tok := range []authtest.Tokens{user, other} {
			ts.WantUnauthenticated(t, tok.Access, "a deleted account's access token")
			wantCode(t, "a deleted account's refresh token", ts.Refresh(t, tok.Refresh), models.Unauthenticated, "")
		}
		wantCode(t, "login", ts.Login(t, "ada@example.com", "password1"), models.Unauthenticated, "invalid email or password")
		wantGone(t, ts, user.UserID, "ada@example.com")
		// Nothing of anyone else went with it.
		ts.Me(t, bystander.Access).OK(t)
		if n := countRows(t, ts, "email_requests", "user_id = ?", bystander.UserID) + countRows(t, ts, "outbox_mails", "user_id = ?", bystander.UserID); n != 2 {
			t.Errorf("the bystander has %d requests and mails, want 2", n)
		}
		// The address is free again.
		ts.Register(t, "ada@example.com", "password1")
	})
}

func TestDeleteUser(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		admin := ts.Admin(t)
		user := ts.Register(t, "ada@example.com", "password1")
		seedPending(t, ts, user.UserID, "ada@example.com")
		del := func(token, id string) authtest.Response {
			return ts.Do(t, token, deleteUserDoc, map[string]any{"id": id})
		}
		wantCode(t, "by a user", del(user.Access, user.UserID), models.Forbidden, "admin")
		wantCode(t, "unknown id", del(admin.Access, uuid.NewString()), models.NotFound, "user not found")
		wantCode(t, "not an id", del(admin.Access, "nobody"), models.NotFound, "user not found")
		wantCode(t, "the last admin itself", del(admin.Access, admin.UserID), models.Forbidden, "the last admin cannot be deleted")
		if r := del(admin.Access, user.UserID).OK(t); r.Get("deleteUser") != true {
			t.Fatalf("deleteUser = %v", r.Data)
		}
		ts.WantUnauthenticated(t, user.Access, "a deleted user's access token")
		wantCode(t, "a deleted user's refresh token", ts.Refresh(t, user.Refresh), models.Unauthenticated, "")
		wantGone(t, ts, user.UserID, "ada@example.com")
		wantCode(t, "again", del(admin.Access, user.UserID), models.NotFound, "")
		for _, e := range auditRows(t, ts, models.AuditAccountDeleted) {
			if deref(e.ActorID) != admin.UserID {
				t.Errorf("ACCOUNT_DELETED %+v without the admin as actor", e)
			}
		}
	})
}

func TestDisableUser(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		admin := ts.Admin(t)
		user := ts.Register(t, "ada@example.com", "password1")
		other := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1").OK(t), "login")
		disable := func(token, id string, reason any) authtest.Response {
			return ts.Do(t, token, disableUserDoc, map[string]any{"id": id, "r": reason})
		}
		wantCode(t, "by a user", disable(user.Access, user.UserID, nil), models.Forbidden, "admin")
		wantCode(t, "unknown id", disable(admin.Access, uuid.NewString(), nil), models.NotFound, "")
		wantCode(t, "reason too long", disable(admin.Access, user.UserID, strings.Repeat("é", auth.MaxDisableReason+1)), models.BadUserInput, "at most")
		wantCode(t, "the last admin", disable(admin.Access, admin.UserID, nil), models.Forbidden, "the last admin cannot be disabled")
		ts.Me(t, user.Access).OK(t)

		r := disable(admin.Access, user.UserID, "  spam  ").OK(t)
		if r.Get("disableUser", "disabled") != true {
			t.Fatalf("disableUser = %v", r.Data)
		}
		for _, tok := range []authtest.Tokens{user, other} {
			ts.WantUnauthenticated(t, tok.Access, "a disabled user's access token")
			wantCode(t, "a disabled user's refresh token", ts.Refresh(t, tok.Refresh), models.Unauthenticated, "")
		}
		wantCode(t, "login with the right password", ts.Login(t, "ada@example.com", "password1"), models.AccountDisabled, "disabled")
		wantCode(t, "login with a wrong password", ts.Login(t, "ada@example.com", "password2"), models.Unauthenticated, "invalid email or password")
		var stored models.User
		if err := ts.DB.Where("id = ?", user.UserID).Take(&stored).Error; err != nil || stored.DisabledAt == nil || deref(stored.DisabledReason) != "spam" {
			t.Errorf("stored %+v (%v), want disabled with the reason \"spam\"", stored, err)
		}
		if n := liveSessions(t, ts, user.UserID); n != 0 {
			t.Errorf("%d live sessions of the disabled user", n)
		}

		r = ts.Do(t, admin.Access, enableUserDoc, map[string]any{"id": user.UserID}).OK(t)
		if r.Get("enableUser", "disabled") != false {
			t.Fatalf("enableUser = %v", r.Data)
		}
		back := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1").OK(t), "login")
		ts.Me(t, back.Access).OK(t)
		ts.WantUnauthenticated(t, user.Access, "a token from before the disabling, once enabled")
		wantCode(t, "a refresh token from before, once enabled", ts.Refresh(t, other.Refresh), models.Unauthenticated, "")
		// disabled is for admins only.
		me := ts.Do(t, back.Access, `{ me { id disabled } }`, nil)
		if me.Code(t) != models.Forbidden || me.Str("me", "id") != user.UserID {
			t.Errorf("me { disabled } as the user: %+v, want the field nulled by FORBIDDEN", me)
		}

		events := append(auditRows(t, ts, models.AuditAccountDisabled), auditRows(t, ts, models.AuditAccountEnabled)...)
		var got []string
		for _, e := range events {
			got = append(got, fmt.Sprintf("%s %s %s actor=%v detail=%q", e.Type, e.Outcome, deref(e.Reason), deref(e.ActorID) == admin.UserID, deref(e.Detail)))
		}
		want := []string{
			"ACCOUNT_DISABLED FAILURE NOT_FOUND actor=true detail=\"\"",
			"ACCOUNT_DISABLED FAILURE BAD_USER_INPUT actor=true detail=\"\"",
			"ACCOUNT_DISABLED FAILURE FORBIDDEN actor=true detail=\"\"",
			"ACCOUNT_DISABLED SUCCESS  actor=true detail=\"spam\"",
			"ACCOUNT_ENABLED SUCCESS  actor=true detail=\"\"",
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("audit events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// TestLastAdminIsAnEnabledOne: a disabled admin does not count, so the
// one enabled admin left can be neither deleted, disabled nor lose the
// role; once another is enabled, each can go.
func TestLastAdminIsAnEnabledOne(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		root := ts.Admin(t)
		second := ts.Register(t, "second@example.com", "password1")
		ts.Do(t, root.Access, `mutation($id: ID!) { setUserRoles(userId: $id, roles: ["admin", "user"]) { id } }`, map[string]any{"id": second.UserID}).OK(t)
		ts.Do(t, root.Access, disableUserDoc, map[string]any{"id": second.UserID}).OK(t)
		wantCode(t, "delete", ts.Do(t, root.Access, deleteUserDoc, map[string]any{"id": root.UserID}), models.Forbidden, "last admin")
		wantCode(t, "disable", ts.Do(t, root.Access, disableUserDoc, map[string]any{"id": root.UserID}), models.Forbidden, "last admin")
		wantCode(t, "remove the role", ts.Do(t, root.Access, `mutation($id: ID!) { setUserRoles(userId: $id, roles: ["user"]) { id } }`, map[string]any{"id": root.UserID}), models.BadUserInput, "last admin")
		// The disabled admin itself may go.
		ts.Do(t, root.Access, deleteUserDoc, map[string]any{"id": second.UserID}).OK(t)
		third := ts.Register(t, "third@example.com", "password1")
		ts.Do(t, root.Access, `mutation($id: ID!) { setUserRoles(userId: $id, roles: ["admin"]) { id } }`, map[string]any{"id": third.UserID}).OK(t)
		ts.Do(t, root.Access, deleteUserDoc, map[string]any{"id": root.UserID}).OK(t)
		ts.WantUnauthenticated(t, root.Access, "the deleted admin's token")
		third = authtest.TokensOf(ts.Login(t, "third@example.com", "password1").OK(t), "login")
		wantCode(t, "deleteAccount of the last admin", ts.Do(t, third.Access, deleteAccountDoc, map[string]any{"p": "password1"}), models.Forbidden, "last admin")
	})
}

// TestAdminsDeletingEachOtherLeaveOne: two admins deleting, disabling or
// demoting each other at the same moment: one wins, the other is refused
// as the last admin, every time.
func TestAdminsDeletingEachOtherLeaveOne(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		root := ts.Admin(t)
		for round := range 12 {
			a := ts.Register(t, fmt.Sprintf("a%d@example.com", round), "password1")
			b := ts.Register(t, fmt.Sprintf("b%d@example.com", round), "password1")
			for _, id := range []string{a.UserID, b.UserID} {
				ts.Do(t, root.Access, `mutation($id: ID!) { setUserRoles(userId: $id, roles: ["admin"]) { id } }`, map[string]any{"id": id}).OK(t)
			}
			// Root steps aside (disabled), so that a and b are the only
			// enabled admins; whoever survives enables it again.
			ts.Do(t, a.Access, disableUserDoc, map[string]any{"id": root.UserID}).OK(t)
			doc := []string{
				deleteUserDoc,
				`mutation($id: ID!) { disableUser(userId: $id) { id } }`,
				`mutation($id: ID!) { setUserRoles(userId: $id, roles: ["user"]) { id } }`,
			}[round%3]
			var wg sync.WaitGroup
			var ra, rb authtest.Response
			start := make(chan struct{})
			wg.Add(2)
			go func() { defer wg.Done(); <-start; ra = ts.Do(t, a.Access, doc, map[string]any{"id": b.UserID}) }()
			go func() { defer wg.Done(); <-start; rb = ts.Do(t, b.Access, doc, map[string]any{"id": a.UserID}) }()
			close(start)
			wg.Wait()
			if (len(ra.Errors) == 0) == (len(rb.Errors) == 0) {
				t.Fatalf("round %d: a: %+v; b: %+v; want exactly one to succeed", round, ra.Errors, rb.Errors)
			}
			survivor, loser := a, rb
			if len(ra.Errors) > 0 {
				survivor, loser = b, ra
			}
			if code := loser.Code(t); code != models.Forbidden && code != models.Unauthenticated && code != models.BadUserInput {
				// FORBIDDEN (BAD_USER_INPUT for setUserRoles) as the
				// last admin, or UNAUTHENTICATED (FORBIDDEN for
				// setUserRoles) when the winner's change had committed
				// before the loser's request was authorized.
				t.Fatalf("round %d: the loser got %s %q", round, code, loser.Errors[0].Message)
			}
			if n := countRows(t, ts, "user_roles JOIN users ON users.id = user_roles.user_id", "role_name = ? AND disabled_at IS NULL", models.RoleAdmin); n != 1 {
				t.Fatalf("round %d: %d enabled admins, want 1", round, n)
			}
			// Root back, and the survivor gone: the next round starts
			// with root the only admin again.
			ts.Do(t, survivor.Access, enableUserDoc, map[string]any{"id": root.UserID}).OK(t)
			root = authtest.TokensOf(ts.Login(t, "admin@example.com", "admin-password").OK(t), "login")
			ts.Do(t, root.Access, deleteUserDoc, map[string]any{"id": survivor.UserID}).OK(t)
		}
	})
}

// TestAdminFailuresLimited: an admin's script failing in a loop on
// deleteUser, disableUser or enableUser is slowed by the failures limit,
// and its refusals coalesced, as setUserRoles' are.
func TestAdminFailuresLimited(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, authtest.WithLimits(auth.Limits{Failures: auth.Rate{N: 3, Per: time.Hour}}))
		admin := ts.Admin(t)
		user := ts.Register(t, "ada@example.com", "password1")
		// Successes are not counted.
		for range 5 {
			ts.Do(t, admin.Access, disableUserDoc, map[string]any{"id": user.UserID}).OK(t)
			ts.Do(t, admin.Access, enableUserDoc, map[string]any{"id": user.UserID}).OK(t)
		}
		for i, doc := range []string{deleteUserDoc, disableUserDoc, enableUserDoc} {
			wantCode(t, fmt.Sprint("failure ", i), ts.Do(t, admin.Access, doc, map[string]any{"id": uuid.NewString()}), models.NotFound, "")
		}
		for _, doc := range []string{deleteUserDoc, disableUserDoc, enableUserDoc} {
			wantCode(t, "past the limit", ts.Do(t, admin.Access, doc, map[string]any{"id": uuid.NewString()}), models.RateLimited, "")
		}
		ts.Clock.Advance(time.Minute) // the coalesced refusals are due
		n, events := refusedCount(t, ts, "user-failures")
		if n != 3 || len(events) > 2 {
			t.Errorf("RATE_LIMITED events count %d refusals in %d events, want 3 in at most 2", n, len(events))
		}
		for _, e := range events {
			if deref(e.UserID) != admin.UserID {
				t.Errorf("RATE_LIMITED event %+v does not name the admin", e)
			}
		}
	})
}

// TestChangePasswordMailsNotice: the "your password was changed" notice
// reaches the account's address over SMTP, saying when and from where,
// with the way to reset the password if it was not the owner; a refused
// change mails nothing.
func TestChangePasswordMailsNotice(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		srv := smtptest.Start(t)
		ts := authtest.NewServer(t, dsn, nil, authtest.WithMail(srv.URL))
		user := ts.Register(t, "ada@example.com", "password1")
		wantCode(t, "wrong current password", changePassword(t, ts, user.Access, "password2", "new-password", nil), models.BadUserInput, "")
		changePassword(t, ts, user.Access, "password1", "new-password", nil).OK(t)
		m := srv.Wait(t, "ada@example.com", "password")
		for _, want := range []string{"ada@example.com", "was changed", "127.0.0.1", authtest.MailAppURL + "/forgot"} {
			if !strings.Contains(m.Text, want) {
				t.Errorf("the notice does not say %q:\n%s", want, m.Text)
			}
		}
		if m.Link() != "" || m.Code() != "" {
			t.Errorf("the notice carries a link %q or code %q: it has no secret to carry", m.Link(), m.Code())
		}
		flushAudit(t, ts)
		authtest.WaitFor(t, "the notice marked sent", func() bool {
			return countRows(t, ts, "outbox_mails", "user_id = ? AND status = ?", user.UserID, models.MailSent) == 1
		})
		if n := srv.Count("ada@example.com"); n != 1 {
			t.Errorf("%d mails to the owner, want the one notice", n)
		}
	})
}

// TestCookieChangePasswordAndDeleteAccount: with cookie sessions, the
// browser's refresh cookie follows the password change (the old one stops
// working) and is cleared by the account's deletion.
func TestCookieChangePasswordAndDeleteAccount(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, withCookies(authtest.AppOrigin))
		r := browser(t, ts, authtest.AppOrigin, "", authtest.RegisterDoc, authtest.Creds("ada@example.com")).OK(t)
		old, _ := authtest.SetCookie(t, r)
		access := r.Str("register", "accessToken")
		r = browser(t, ts, authtest.AppOrigin, access, changePasswordDoc, map[string]any{"c": "password1", "n": "new-password"}, old.Value).OK(t)
		next, _ := authtest.SetCookie(t, r)
		if next.Value != r.Str("changePassword", "refreshToken") || next.Value == old.Value {
			t.Errorf("cookie after changePassword %q, want the new refresh token %q", next.Value, r.Str("changePassword", "refreshToken"))
		}
		wantCode(t, "refresh with the old cookie", browser(t, ts, authtest.AppOrigin, "", authtest.RefreshCookieDoc, nil, old.Value), models.Unauthenticated, "")
		r = browser(t, ts, authtest.AppOrigin, "", authtest.RefreshCookieDoc, nil, next.Value).OK(t)
		next, _ = authtest.SetCookie(t, r)
		r = browser(t, ts, authtest.AppOrigin, r.Str("refresh", "accessToken"), deleteAccountDoc, map[string]any{"p": "new-password"}, next.Value).OK(t)
		if gone, _ := authtest.SetCookie(t, r); gone.Value != "" || gone.MaxAge >= 0 {
			t.Errorf("cookie after deleteAccount %+v, want it cleared", gone)
		}
		wantCode(t, "refresh after deleteAccount", browser(t, ts, authtest.AppOrigin, "", authtest.RefreshCookieDoc, nil, next.Value), models.Unauthenticated, "")
	})
}
