package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/smtptest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// TestCLIUserDisableEnableDelete: the operator's disable, enable and
// delete, on a database a server uses: a disabled user's sign-ins fail
// with ACCOUNT_DISABLED at once, enabling lets them in, deletion asks for
// the email unless --yes, and the last admin is kept as the API keeps it.
func TestCLIUserDisableEnableDelete(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		env := map[string]string{"DATABASE_URL": dsn}
		root := strings.TrimSpace(runCLI(t, env, "root-password\n", "user", "add", "--email", "root@example.com", "--password-stdin", "--role", "admin,user").ok(t))
		ada := strings.TrimSpace(runCLI(t, env, "password1\n", "user", "add", "--email", "ada@example.com", "--password-stdin").ok(t))
		ts := newTestServer(t, dsn, nil)
		login := func(email, password string) gqlResponse {
			return ts.Login(t, email, password)
		}
		login("ada@example.com", "password1").OK(t)

		if out := runCLI(t, env, "", "user", "disable", "--email", "ADA@example.com", "--reason", "chargeback").ok(t); out != "disabled "+ada+"\n" {
			t.Errorf("user disable printed %q", out)
		}
		if code := login("ada@example.com", "password1").Code(t); code != models.AccountDisabled {
			t.Errorf("login after user disable: %s, want ACCOUNT_DISABLED", code)
		}
		var u models.User
		if err := testdb.OpenAsIs(t, dsn).Where("id = ?", ada).Take(&u).Error; err != nil || u.DisabledReason == nil || *u.DisabledReason != "chargeback" {
			t.Errorf("stored %+v (%v), want disabled for the reason given", u, err)
		}
		if out := runCLI(t, env, "", "user", "enable", "--email", "ada@example.com").ok(t); out != "enabled "+ada+"\n" {
			t.Errorf("user enable printed %q", out)
		}
		login("ada@example.com", "password1").OK(t)

		// Not confirmed: nothing is deleted.
		for _, stdin := range []string{"", "\n", "bob@example.com\n", "yes\n"} {
			r := runCLI(t, env, stdin, "user", "delete", "--email", "ada@example.com")
			if r.Err == nil || !strings.Contains(r.Err.Error(), "not confirmed") || r.Stdout != "" {
				t.Errorf("delete confirmed with %q: %v, stdout %q", stdin, r.Err, r.Stdout)
			}
			if !strings.Contains(r.Stderr, "Type the email to confirm") {
				t.Errorf("delete did not ask: stderr %q", r.Stderr)
			}
		}
		login("ada@example.com", "password1").OK(t)
		// The email typed is read as the API reads emails.
		if out := runCLI(t, env, " Ada@Example.COM \n", "user", "delete", "--email", "ada@example.com").ok(t); out != "deleted "+ada+"\n" {
			t.Errorf("user delete printed %q", out)
		}
		if code := login("ada@example.com", "password1").Code(t); code != models.Unauthenticated {
			t.Errorf("login after user delete: %s, want UNAUTHENTICATED", code)
		}

		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"user", "disable", "--email", "root@example.com"}, "user disable: the last admin cannot be disabled"},
			{[]string{"user", "delete", "--yes", "--email", "root@example.com"}, "user delete: the last admin cannot be deleted"},
			{[]string{"user", "enable", "--email", "ada@example.com"}, `no user has the email "ada@example.com"`},
			{[]string{"user", "delete", "--yes", "--email", "ada@example.com"}, `no user has the email "ada@example.com"`},
			{[]string{"user", "disable"}, "--email is required"},
			{[]string{"user", "enable", "--email", "root@example.com", "--reason", "x"}, "flag provided but not defined: -reason"},
			{[]string{"user", "disable", "--email", "root@example.com", "--reason", strings.Repeat("x", 300)}, "the reason must be at most 256 characters"},
			{[]string{"user", "reset", "--email", "nobody@example.com"}, `no user has the email "nobody@example.com"`},
		} {
			r := runCLI(t, env, "", tc.args...)
			if r.Err == nil || !strings.Contains(r.Err.Error(), tc.want) || r.Stdout != "" {
				t.Errorf("%s: %v (stdout %q), want an error saying %q", strings.Join(tc.args, " "), r.Err, r.Stdout, tc.want)
			}
		}
		login("root@example.com", "root-password").OK(t)

		// What the commands did is in the audit log, with no actor: an
		// operator at the command line.
		if err := ts.Svc.FlushAudit(t.Context()); err != nil {
			t.Fatal(err)
		}
		var events []models.AuditEvent
		testdb.OpenAsIs(t, dsn).Where("type IN ?", []models.AuditEventType{models.AuditAccountDisabled, models.AuditAccountEnabled, models.AuditAccountDeleted}).
			Order("at, id").Find(&events)
		var got []string
		for _, e := range events {
			got = append(got, fmt.Sprintf("%s %s %s %v", e.Type, e.Outcome, deref(e.UserID), e.ActorID))
		}
		want := []string{
			"ACCOUNT_DISABLED SUCCESS " + ada + " <nil>",
			"ACCOUNT_ENABLED SUCCESS " + ada + " <nil>",
			"ACCOUNT_DELETED SUCCESS " + ada + " <nil>",
			"ACCOUNT_DISABLED FAILURE " + root + " <nil>",
			"ACCOUNT_DELETED FAILURE " + root + " <nil>",
			"ACCOUNT_DISABLED FAILURE " + root + " <nil>",
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("audit events:\n got %q\nwant %q", got, want)
		}
	})
}

// deref is *s, or "" for nil.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func TestCLIUserAccountHelp(t *testing.T) {
	for _, cmd := range []string{"reset", "disable", "enable", "delete"} {
		// No database configured: help must not touch one.
		r := runCLI(t, map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}, "", "user", cmd, "--help")
		if out := r.ok(t); !strings.HasPrefix(out, "Usage") || !strings.Contains(out, "authql user "+cmd+" --email EMAIL") {
			t.Errorf("user %s --help printed %q, want the usage naming it", cmd, out)
		}
	}
	if out := runCLI(t, nil, "", "--help").ok(t); !strings.Contains(out, "authql user reset|disable|enable|delete") {
		t.Errorf("authql --help does not list the account commands:\n%s", out)
	}
}

// TestCLIUserReset: authql user reset queues the reset mail the API's
// sendPasswordReset sends; a server on the database delivers it, and its
// code resets the password.
func TestCLIUserReset(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		srv := smtptest.Start(t)
		env := map[string]string{"DATABASE_URL": dsn, "AUTH_SMTP_URL": srv.URL, "AUTH_APP_URL": "http://app.test"}
		ada := strings.TrimSpace(runCLI(t, env, "password1\n", "user", "add", "--email", "ada@example.com", "--password-stdin").ok(t))
		r := runCLI(t, env, "", "user", "reset", "--email", "ADA@example.com")
		var id, expires string
		if _, err := fmt.Sscanf(r.ok(t), "request %s expires at %s\n", &id, &expires); err != nil {
			t.Fatalf("user reset printed %q: %v", r.Stdout, err)
		}
		if !strings.Contains(r.Stderr, "queued") {
			t.Errorf("user reset did not say the mail waits for a server: stderr %q", r.Stderr)
		}
		var req models.EmailRequest
		if err := testdb.OpenAsIs(t, dsn).Where("id = ?", id).Take(&req).Error; err != nil {
			t.Fatalf("the request printed: %v", err)
		}
		if req.Kind != models.RequestReset || deref(req.UserID) != ada || req.ExpiresAt.UTC().Format(time.RFC3339) != expires {
			t.Errorf("request %+v, want ada's reset expiring at %s", req, expires)
		}

		url, _ := startRun(t, env)
		m := srv.Wait(t, "ada@example.com", "")
		if !strings.HasPrefix(m.Link(), "http://app.test/reset#token=") || m.Code() == "" {
			t.Fatalf("the mail has link %q and code %q", m.Link(), m.Code())
		}
		gql(t, url, "", fmt.Sprintf(`mutation { resetPassword(requestId: %q, code: %q, newPassword: "new-password") }`, id, m.Code())).OK(t)
		gql(t, url, "", `mutation { login(email: "ada@example.com", password: "new-password") { accessToken } }`).OK(t)
	})
}

// TestCLIUserMfaReset: authql user mfa reset removes every second factor of
// the user (factors, recovery codes, passkeys), ends their sessions and
// queues the mfa_reset notice, as the API's resetUserMfa does; the audit
// log names no actor.
func TestCLIUserMfaReset(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		srv := smtptest.Start(t)
		env := map[string]string{"DATABASE_URL": dsn, "AUTH_SMTP_URL": srv.URL, "AUTH_APP_URL": "http://app.test"}
		ada := strings.TrimSpace(runCLI(t, env, "password1\n", "user", "add", "--email", "ada@example.com", "--password-stdin").ok(t))
		ts := newTestServer(t, dsn, nil)
		session := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1").OK(t), "login")

		// Factors as enrollment leaves them (the rows alone: the seed is
		// never read here).
		db := testdb.OpenAsIs(t, dsn)
		now := time.Now().UTC()
		rows := []any{
			&models.MfaFactor{ID: uuid.NewString(), UserID: ada, Type: models.FactorTOTP, Label: "phone", Secret: "x", CreatedAt: now, ConfirmedAt: &now},
			&models.RecoveryCode{ID: uuid.NewString(), UserID: ada, Hash: "x", CreatedAt: now},
			&models.Passkey{ID: uuid.NewString(), UserID: ada, CredentialID: "cred", PublicKey: []byte{1}, Label: "key", CreatedAt: now},
		}
		for _, r := range rows {
			if err := db.Create(r).Error; err != nil {
				t.Fatal(err)
			}
		}

		r := runCLI(t, env, "", "user", "mfa", "reset", "--email", "ADA@example.com")
		if out := r.ok(t); out != "reset the second factors of "+ada+"\n" {
			t.Errorf("user mfa reset printed %q", out)
		}
		m, err := models.UserMfaMethods(t.Context(), db, ada)
		if err != nil || m != (models.MfaMethods{}) {
			t.Errorf("after the reset: %+v, %v", m, err)
		}
		if code := ts.Refresh(t, session.Refresh).Code(t); code != models.Unauthenticated {
			t.Errorf("refresh after the reset: %s, want UNAUTHENTICATED", code)
		}
		var mails int64
		db.Model(&models.OutboxMail{}).Where(`"to" = ? AND kind = ?`, "ada@example.com", "mfa_reset").Count(&mails)
		if mails != 1 {
			t.Errorf("%d mfa_reset mails queued, want 1", mails)
		}
		ts.Login(t, "ada@example.com", "password1").OK(t)

		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"user", "mfa", "reset", "--email", "nobody@example.com"}, `no user has the email "nobody@example.com"`},
			{[]string{"user", "mfa", "reset"}, "--email is required"},
			{[]string{"user", "mfa", "remove", "--email", "ada@example.com"}, "the only command is reset"},
		} {
			r := runCLI(t, env, "", tc.args...)
			if r.Err == nil || !strings.Contains(r.Err.Error(), tc.want) || r.Stdout != "" {
				t.Errorf("%s: %v (stdout %q), want an error saying %q", strings.Join(tc.args, " "), r.Err, r.Stdout, tc.want)
			}
		}
		if err := ts.Svc.FlushAudit(t.Context()); err != nil {
			t.Fatal(err)
		}
		var e models.AuditEvent
		if err := db.Where("type = ?", models.AuditMfaReset).Take(&e).Error; err != nil || deref(e.UserID) != ada || e.ActorID != nil || e.Outcome != models.AuditSuccess {
			t.Errorf("audit event %+v (%v), want ada's MFA_RESET without an actor", e, err)
		}
	})
}
