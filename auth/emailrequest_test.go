package auth

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/internal/testclock"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// The mailed requests at the service level, on every database under test,
// with the injected clock: the mail is read from its queued outbox row (no
// Sealer, so in clear). httpapi/accounts_mail_test.go follows the same
// flows over HTTP with the mail delivered by SMTP.

// mailEnv is a Service that mails, on a fresh database.
type mailEnv struct {
	s   *Service
	db  *gorm.DB
	c   *testclock.Clock
	ctx context.Context
	n   int
}

func newMailEnv(t testing.TB, dsn string, opts ...func(*Config)) *mailEnv {
	t.Helper()
	c := testclock.New(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	db := testdb.Open(t, dsn)
	return &mailEnv{s: newMailEnvOn(t, db, c, opts...), db: db, c: c, ctx: withClient(context.Background(), "192.0.2.7")}
}

// newMailEnvOn is the Service of newMailEnv on db.
func newMailEnvOn(t testing.TB, db *gorm.DB, c *testclock.Clock, opts ...func(*Config)) *Service {
	t.Helper()
	composer, err := mail.NewComposer(mail.Config{From: "authql <no-reply@authql.test>", AppURL: "http://app.test", Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Issuer: "authql", Audience: "authql", AccessTTL: 15 * time.Minute, RefreshTTL: 720 * time.Hour, ReuseInterval: 10 * time.Second,
		Signup: true, Argon2: Argon2Params{Memory: 64, Time: 1, Threads: 1}, Now: c.Now, Mail: composer,
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := NewService(context.Background(), db, []byte(strings.Repeat("k", 32)), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func mustCodeKey(t *testing.T, s *Service) []byte {
	t.Helper()
	k, err := s.codeKey.get(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func withLimits(l Limits) func(*Config) { return func(c *Config) { c.Limits = l } }

func requireVerified(c *Config) { c.RequireVerifiedEmail = true }

// register signs a new user up and returns its grant.
func (e *mailEnv) register(t testing.TB) *Grant {
	t.Helper()
	e.n++
	return registerNth(t, e.s, e.ctx, e.n)
}

// sent is one queued mail, its message decoded.
type sent struct {
	row  models.OutboxMail
	text string
}

var (
	tokenRE = regexp.MustCompile(`#token=([A-Za-z0-9_-]+)`)
	codeRE  = regexp.MustCompile(`code in the app: ([A-Z0-9]{8})`)
)

func (m sent) token() string { return submatch(tokenRE, m.text) }
func (m sent) code() string  { return submatch(codeRE, m.text) }

func submatch(re *regexp.Regexp, s string) string {
	if m := re.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

// lastMail returns the mail of kind queued to the address (the latest, for
// mails queued at different times).
func (e *mailEnv) lastMail(t *testing.T, to string, kind mail.Kind) sent {
	t.Helper()
	return e.readMail(t, e.db.Where(`"to" = ? AND kind = ?`, to, string(kind)).Order("created_at DESC, id"))
}

// readMail returns the one mail q selects, decoded.
func (e *mailEnv) readMail(t *testing.T, q *gorm.DB) sent {
	t.Helper()
	var row models.OutboxMail
	if err := q.Take(&row).Error; err != nil {
		t.Fatalf("no such mail: %v", err)
	}
	text, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(row.Message)))
	if err != nil {
		t.Fatal(err)
	}
	return sent{row: row, text: string(text)}
}

// mails counts the mails of kind queued to the address.
func (e *mailEnv) mails(t *testing.T, to string, kind mail.Kind) int64 {
	t.Helper()
	var n int64
	if err := e.db.Model(&models.OutboxMail{}).Where(`"to" = ? AND kind = ?`, to, string(kind)).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *mailEnv) user(t *testing.T, id string) *models.User {
	t.Helper()
	u, err := models.UserByID(e.ctx, e.db, id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// reset asks for a reset of email and returns the request and its mail.
func (e *mailEnv) reset(t *testing.T, email string) (*models.EmailRequest, sent) {
	t.Helper()
	r, err := e.s.RequestPasswordReset(e.ctx, email)
	if err != nil {
		t.Fatalf("RequestPasswordReset: %v", err)
	}
	m := e.mailOf(t, r.ID)
	if m.row.To != email || m.row.Kind != string(mail.KindReset) {
		t.Fatalf("request %s mailed %s to %q", r.ID, m.row.Kind, m.row.To)
	}
	return r, m
}

// mailOf returns the mail that carries request id's secrets.
func (e *mailEnv) mailOf(t *testing.T, id string) sent {
	t.Helper()
	return e.readMail(t, e.db.Where("request_id = ? AND kind <> ?", id, string(mail.KindEmailChangeNotice)))
}

func wantCode(t *testing.T, err error, code, what string) {
	t.Helper()
	if got := models.ErrorCode(err); got != code {
		t.Errorf("%s: err = %v, want %s", what, err, code)
	}
}

func TestPasswordReset(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn)
		t.Run("ByLink", func(t *testing.T) {
			g := e.register(t)
			other, err := e.s.Login(e.ctx, g.User.Email, "password1")
			if err != nil {
				t.Fatal(err)
			}
			r, m := e.reset(t, g.User.Email)
			if !r.ExpiresAt.Equal(e.c.Now().Add(DefaultResetTTL)) {
				t.Errorf("expiresAt %s, want 15 minutes on", r.ExpiresAt)
			}
			if !strings.Contains(m.text, "http://app.test/reset#token="+m.token()) || len(m.token()) < 43 || len(m.code()) != 8 {
				t.Fatalf("mail without a link to /reset and a code:\n%s", m.text)
			}
			if err := e.s.ResetPassword(e.ctx, Proof{Token: m.token()}, "new password"); err != nil {
				t.Fatalf("ResetPassword: %v", err)
			}
			for _, s := range []*Grant{g, other} {
				if _, err := e.s.Authenticate(e.ctx, s.AccessToken); models.ErrorCode(err) != models.Unauthenticated {
					t.Errorf("a session's access token after the reset: %v, want UNAUTHENTICATED", err)
				}
				refuseRefresh(t, e.s, s.RefreshToken, "refresh after the reset")
			}
			_, err = e.s.Login(e.ctx, g.User.Email, "password1")
			wantCode(t, err, models.Unauthenticated, "login with the old password")
			if _, err := e.s.Login(e.ctx, g.User.Email, "new password"); err != nil {
				t.Errorf("login with the new password: %v", err)
			}
			if !e.user(t, g.User.ID).EmailVerified {
				t.Error("the reset did not mark the email verified")
			}
			if n := e.mails(t, g.User.Email, mail.KindPasswordChanged); n != 1 {
				t.Errorf("%d password-changed notices, want 1", n)
			}
			wantCode(t, e.s.ResetPassword(e.ctx, Proof{Token: m.token()}, "third password"), models.BadUserInput, "the token used twice")
			wantCode(t, e.s.ResetPassword(e.ctx, Proof{RequestID: r.ID, Code: m.code()}, "third password"), models.BadUserInput, "the code of a used request")
		})
		t.Run("ConcurrentUsesOneWins", func(t *testing.T) {
			g := e.register(t)
			_, m := e.reset(t, g.User.Email)
			errs := make(chan error, 8)
			var wg sync.WaitGroup
			for i := range 8 {
				// A client each: one client's hashes in flight are bounded
				// (see hashPool), which is not what this tests.
				ctx := withClient(context.Background(), fmt.Sprintf("192.0.2.%d", 10+i))
				wg.Go(func() { errs <- e.s.ResetPassword(ctx, Proof{Token: m.token()}, fmt.Sprintf("password %d", i)) })
			}
			wg.Wait()
			close(errs)
			won := 0
			for err := range errs {
				if err == nil {
					won++
				} else {
					wantCode(t, err, models.BadUserInput, "a concurrent use that lost")
				}
			}
			if won != 1 {
				t.Errorf("%d concurrent uses of one token succeeded, want 1", won)
			}
		})
		t.Run("TwoReadersOneUse", func(t *testing.T) {
			// Two uses that both read the request pending, as concurrent
			// ones do: the transaction's conditional UPDATE lets one win.
			g := e.register(t)
			_, m := e.reset(t, g.User.Email)
			var read [2]*models.EmailRequest
			for i := range read {
				r, err := models.PendingRequestByToken(e.ctx, e.db, models.RequestReset, hashRefreshToken(m.token()), e.c.Now())
				if err != nil {
					t.Fatal(err)
				}
				read[i] = r
			}
			for i, r := range read {
				notice, err := e.s.cfg.Mail.Compose(mail.KindPasswordChanged, g.User.Email, mail.Vars{})
				if err != nil {
					t.Fatal(err)
				}
				_, err = models.ResetPassword(e.ctx, e.db, models.PasswordReset{Request: r, Hash: "x", Revoke: e.s.revocation(e.c.Now()), Notice: notice})
				if i == 0 && err != nil {
					t.Fatalf("first use: %v", err)
				}
				if i == 1 && err != models.ErrRequestSpent && models.ErrorCode(err) != models.BadUserInput {
					t.Errorf("second use: %v, want ErrRequestSpent", err)
				}
			}
		})
		t.Run("ByCode", func(t *testing.T) {
			g := e.register(t)
			r, m := e.reset(t, g.User.Email)
			typed := strings.ToLower(m.code()[:4]) + "-" + m.code()[4:] // as a person types it
			if err := e.s.ResetPassword(e.ctx, Proof{RequestID: r.ID, Code: typed}, "new password"); err != nil {
				t.Fatalf("ResetPassword by code: %v", err)
			}
			if _, err := e.s.Login(e.ctx, g.User.Email, "new password"); err != nil {
				t.Errorf("login with the new password: %v", err)
			}
			wantCode(t, e.s.ResetPassword(e.ctx, Proof{Token: m.token()}, "third password"), models.BadUserInput, "the token of a request used by code")
		})
		t.Run("OtherPendingResetsDie", func(t *testing.T) {
			g := e.register(t)
			_, first := e.reset(t, g.User.Email)
			_, second := e.reset(t, g.User.Email)
			if err := e.s.ResetPassword(e.ctx, Proof{Token: second.token()}, "new password"); err != nil {
				t.Fatal(err)
			}
			wantCode(t, e.s.ResetPassword(e.ctx, Proof{Token: first.token()}, "attacker's one"), models.BadUserInput, "an older reset after a reset")
		})
		t.Run("Expires", func(t *testing.T) {
			g := e.register(t)
			r, m := e.reset(t, g.User.Email)
			e.c.Advance(DefaultResetTTL + time.Second)
			wantCode(t, e.s.ResetPassword(e.ctx, Proof{Token: m.token()}, "new password"), models.BadUserInput, "an expired token")
			wantCode(t, e.s.ResetPassword(e.ctx, Proof{RequestID: r.ID, Code: m.code()}, "new password"), models.BadUserInput, "an expired code")
		})
		t.Run("WeakPasswordSpendsNothing", func(t *testing.T) {
			g := e.register(t)
			_, m := e.reset(t, g.User.Email)
			wantCode(t, e.s.ResetPassword(e.ctx, Proof{Token: m.token()}, "short"), models.BadUserInput, "a short password")
			if err := e.s.ResetPassword(e.ctx, Proof{Token: m.token()}, "long enough"); err != nil {
				t.Errorf("the token after a refused password: %v", err)
			}
		})
		t.Run("ProofShape", func(t *testing.T) {
			g := e.register(t)
			r, m := e.reset(t, g.User.Email)
			for name, p := range map[string]Proof{
				"None":         {},
				"TokenAndCode": {Token: m.token(), RequestID: r.ID, Code: m.code()},
				"CodeAlone":    {Code: m.code()},
				"IDAlone":      {RequestID: r.ID},
				"BadToken":     {Token: "not-a-token"},
				"BadID":        {RequestID: "nope", Code: m.code()},
			} {
				wantCode(t, e.s.ResetPassword(e.ctx, p, "new password"), models.BadUserInput, name)
			}
			if err := e.s.ResetPassword(e.ctx, Proof{Token: m.token()}, "new password"); err != nil {
				t.Errorf("the token after malformed proofs: %v", err)
			}
		})
		t.Run("AdminSend", func(t *testing.T) {
			g := e.register(t)
			r, err := e.s.SendPasswordReset(e.ctx, g.User.ID)
			if err != nil {
				t.Fatal(err)
			}
			m := e.lastMail(t, g.User.Email, mail.KindReset)
			if *m.row.RequestID != r.ID {
				t.Fatal("no mail of the admin's request")
			}
			if err := e.s.ResetPassword(e.ctx, Proof{RequestID: r.ID, Code: m.code()}, "new password"); err != nil {
				t.Errorf("reset by the admin's mail: %v", err)
			}
			_, err = e.s.SendPasswordReset(e.ctx, "00000000-0000-0000-0000-000000000000")
			wantCode(t, err, models.NotFound, "an unknown user")
		})
	})
}

// TestResetClearsLoginLimit: locked out by failed logins, the owner resets
// the password and can sign in at once from the client that reset it.
func TestResetClearsLoginLimit(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn, withLimits(Limits{LoginAccount: Rate{N: 3, Per: 15 * time.Minute}}))
		g := e.register(t)
		for range 3 {
			_, err := e.s.Login(e.ctx, g.User.Email, "wrong password")
			wantCode(t, err, models.Unauthenticated, "a wrong password")
		}
		_, err := e.s.Login(e.ctx, g.User.Email, "password1")
		wantCode(t, err, models.RateLimited, "the right password past the limit")
		_, m := e.reset(t, g.User.Email)
		if err := e.s.ResetPassword(e.ctx, Proof{Token: m.token()}, "new password"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Login(e.ctx, g.User.Email, "new password"); err != nil {
			t.Errorf("login after the reset: %v", err)
		}
	})
}

// TestEmailVerification: by code, by link, and only for the address the
// request was mailed to.
func TestEmailVerification(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn)
		g := e.register(t)
		p := &Principal{UserID: g.User.ID, SessionID: g.SessionID}
		if e.user(t, g.User.ID).EmailVerified {
			t.Fatal("a new account is verified")
		}
		r, err := e.s.SendEmailVerification(e.ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if !r.ExpiresAt.Equal(e.c.Now().Add(DefaultVerifyTTL)) {
			t.Errorf("expiresAt %s, want 24 hours on", r.ExpiresAt)
		}
		m := e.lastMail(t, g.User.Email, mail.KindVerify)
		if !strings.Contains(m.text, "http://app.test/verify#token=") {
			t.Errorf("no /verify link in:\n%s", m.text)
		}
		if err := e.s.VerifyEmail(e.ctx, Proof{RequestID: r.ID, Code: m.code()}); err != nil {
			t.Fatalf("VerifyEmail by code: %v", err)
		}
		if !e.user(t, g.User.ID).EmailVerified {
			t.Error("not verified")
		}
		wantCode(t, e.s.VerifyEmail(e.ctx, Proof{Token: m.token()}), models.BadUserInput, "the token after the code")
		_, err = e.s.SendEmailVerification(e.ctx, p)
		wantCode(t, err, models.BadUserInput, "a verified address")

		t.Run("OnlyTheAddressMailed", func(t *testing.T) {
			g := e.register(t)
			p := &Principal{UserID: g.User.ID, SessionID: g.SessionID}
			if _, err := e.s.SendEmailVerification(e.ctx, p); err != nil {
				t.Fatal(err)
			}
			old := e.lastMail(t, g.User.Email, mail.KindVerify)
			if _, err := e.s.RequestEmailChange(e.ctx, p, "moved@example.com", "password1"); err != nil {
				t.Fatal(err)
			}
			if err := e.s.ConfirmEmailChange(e.ctx, Proof{Token: e.lastMail(t, "moved@example.com", mail.KindEmailChange).token()}); err != nil {
				t.Fatal(err)
			}
			wantCode(t, e.s.VerifyEmail(e.ctx, Proof{Token: old.token()}), models.BadUserInput, "verifying the old address")
			wantCode(t, e.s.VerifyEmail(e.ctx, Proof{RequestID: *old.row.RequestID, Code: old.code()}), models.BadUserInput, "the old address by code")
			// The code was right: its failed use is not a wrong code.
			var r models.EmailRequest
			if err := e.db.Where("id = ?", *old.row.RequestID).Take(&r).Error; err != nil || r.FailedCodes != 0 {
				t.Errorf("failed_codes %d after a right code, want 0 (%v)", r.FailedCodes, err)
			}
		})
	})
}

// TestEmailChange: the password is required, the address must be free at
// the request and again at the confirmation, and both addresses are
// mailed.
func TestEmailChange(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn)
		g := e.register(t)
		p := &Principal{UserID: g.User.ID, SessionID: g.SessionID}
		taken := e.register(t)
		_, err := e.s.RequestEmailChange(e.ctx, p, "new@example.com", "wrong password")
		wantCode(t, err, models.BadUserInput, "a wrong current password")
		_, err = e.s.RequestEmailChange(e.ctx, p, strings.ToUpper(taken.User.Email), "password1")
		wantCode(t, err, models.BadUserInput, "an address with an account")
		_, err = e.s.RequestEmailChange(e.ctx, p, g.User.Email, "password1")
		wantCode(t, err, models.BadUserInput, "the current address")
		r, err := e.s.RequestEmailChange(e.ctx, p, "New@Example.com", "password1")
		if err != nil {
			t.Fatal(err)
		}
		confirm := e.lastMail(t, "new@example.com", mail.KindEmailChange)
		notice := e.lastMail(t, g.User.Email, mail.KindEmailChangeNotice)
		if !strings.Contains(confirm.text, "http://app.test/confirm-email#token=") || confirm.code() == "" {
			t.Errorf("confirmation without a link and code:\n%s", confirm.text)
		}
		if !strings.Contains(notice.text, "new@example.com") || !strings.Contains(notice.text, "192.0.2.7") || notice.token() != "" || notice.code() != "" {
			t.Errorf("the notice to the old address should name the new one and the client, and hold no secret:\n%s", notice.text)
		}
		if u := e.user(t, g.User.ID); u.Email != g.User.Email {
			t.Fatal("the email changed before the confirmation")
		}
		if err := e.s.ConfirmEmailChange(e.ctx, Proof{RequestID: r.ID, Code: confirm.code()}); err != nil {
			t.Fatalf("ConfirmEmailChange: %v", err)
		}
		if u := e.user(t, g.User.ID); u.Email != "new@example.com" || !u.EmailVerified {
			t.Errorf("after the confirmation: email %q verified %v", u.Email, u.EmailVerified)
		}
		if _, err := e.s.Login(e.ctx, "new@example.com", "password1"); err != nil {
			t.Errorf("login with the new address: %v", err)
		}

		t.Run("TakenMeanwhile", func(t *testing.T) {
			g := e.register(t)
			p := &Principal{UserID: g.User.ID, SessionID: g.SessionID}
			if _, err := e.s.RequestEmailChange(e.ctx, p, "contested@example.com", "password1"); err != nil {
				t.Fatal(err)
			}
			m := e.lastMail(t, "contested@example.com", mail.KindEmailChange)
			if _, err := e.s.Register(e.ctx, "contested@example.com", "password1"); err != nil {
				t.Fatal(err)
			}
			wantCode(t, e.s.ConfirmEmailChange(e.ctx, Proof{Token: m.token()}), models.BadUserInput, "an address taken meanwhile")
			if u := e.user(t, g.User.ID); u.Email != g.User.Email {
				t.Errorf("email %q, want %q", u.Email, g.User.Email)
			}
			var r models.EmailRequest
			if err := e.db.Where("id = ?", *m.row.RequestID).Take(&r).Error; err != nil || r.UsedAt == nil {
				t.Errorf("the request is not spent: %v %+v", err, r)
			}
		})
		t.Run("ResetSpendsIt", func(t *testing.T) {
			// Whoever held the password asked for the change; the owner
			// resets the password, and the change must not go through.
			g := e.register(t)
			p := &Principal{UserID: g.User.ID, SessionID: g.SessionID}
			if _, err := e.s.RequestEmailChange(e.ctx, p, "attacker@example.com", "password1"); err != nil {
				t.Fatal(err)
			}
			m := e.lastMail(t, "attacker@example.com", mail.KindEmailChange)
			_, reset := e.reset(t, g.User.Email)
			if err := e.s.ResetPassword(e.ctx, Proof{Token: reset.token()}, "new password"); err != nil {
				t.Fatal(err)
			}
			wantCode(t, e.s.ConfirmEmailChange(e.ctx, Proof{Token: m.token()}), models.BadUserInput, "an email change asked before a reset")
		})
	})
}

// TestRequireVerifiedEmail: with AUTH_REQUIRE_VERIFIED_EMAIL, register
// answers alike for a new and a taken address, and login waits for the
// verification.
func TestRequireVerifiedEmail(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn, requireVerified)
		_, err := e.s.Register(e.ctx, "Anna@example.com", "password1")
		wantCode(t, err, models.EmailNotVerified, "register")
		u, err := models.UserByEmail(e.ctx, e.db, "anna@example.com")
		if err != nil {
			t.Fatalf("the account was not created: %v", err)
		}
		var sessions int64
		e.db.Model(&models.Session{}).Where("user_id = ?", u.ID).Count(&sessions)
		if sessions != 0 {
			t.Errorf("%d sessions, want none", sessions)
		}
		verify := e.lastMail(t, "anna@example.com", mail.KindVerify)

		_, err = e.s.Register(e.ctx, "anna@example.com", "another password")
		wantCode(t, err, models.EmailNotVerified, "register of a taken address")
		if n := e.mails(t, "anna@example.com", mail.KindSignupAttempt); n != 1 {
			t.Errorf("%d signup-attempt mails to the owner, want 1", n)
		}
		if n := e.mails(t, "anna@example.com", mail.KindVerify); n != 1 {
			t.Errorf("%d verification mails, want 1 (the second register is not a verification)", n)
		}

		_, err = e.s.Login(e.ctx, "anna@example.com", "wrong password")
		wantCode(t, err, models.Unauthenticated, "login with a wrong password")
		_, err = e.s.Login(e.ctx, "anna@example.com", "password1")
		wantCode(t, err, models.EmailNotVerified, "login before verifying")
		if err := e.s.VerifyEmail(e.ctx, Proof{Token: verify.token()}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Login(e.ctx, "anna@example.com", "password1"); err != nil {
			t.Errorf("login after verifying: %v", err)
		}

		t.Run("Off", func(t *testing.T) {
			e := newMailEnv(t, dsn)
			g := e.register(t)
			if g.User.EmailVerified || g.AccessToken == "" {
				t.Errorf("register: verified %v, token %q", g.User.EmailVerified, g.AccessToken)
			}
			if _, err := e.s.Login(e.ctx, g.User.Email, "password1"); err != nil {
				t.Errorf("login unverified: %v", err)
			}
		})
	})
}

// TestPurgeEmailRequests: spent and expired requests go; pending ones stay.
func TestPurgeEmailRequests(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn)
		a, b := e.register(t), e.register(t)
		_, used := e.reset(t, a.User.Email)
		if err := e.s.ResetPassword(e.ctx, Proof{Token: used.token()}, "new password"); err != nil {
			t.Fatal(err)
		}
		e.reset(t, b.User.Email)
		e.c.Advance(10 * time.Minute)
		pending, _ := e.reset(t, b.User.Email)
		e.c.Advance(6 * time.Minute) // the second one has expired
		if err := e.s.Purge(e.ctx); err != nil {
			t.Fatal(err)
		}
		var ids []string
		e.db.Model(&models.EmailRequest{}).Pluck("id", &ids)
		if len(ids) != 1 || ids[0] != pending.ID {
			t.Errorf("requests left %q, want only %s", ids, pending.ID)
		}
	})
}

// TestCodeKeyStoredSealed: the codes' key is a setting of its own, made at
// the first request, stored encrypted under AUTH_ENCRYPTION_KEY, and read
// back alike by a second service on the database (a replica, or the CLI
// mailing a reset), whose MAC of a code is the same.
func TestCodeKeyStoredSealed(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		enc := func(c *Config) { c.Encryption = secret.Keys{Current: bytes.Repeat([]byte{7}, secret.KeySize)} }
		e := newMailEnv(t, dsn, enc)
		g := e.register(t)
		r, m := e.reset(t, g.User.Email)
		var v string
		if err := e.db.Model(&models.Setting{}).Where("name = ?", codeKeySetting).Pluck("value", &v).Error; err != nil || !strings.HasPrefix(v, "enc:v1:") {
			t.Fatalf("the code key is stored as %q (%v), want sealed", v, err)
		}
		other := &mailEnv{s: newMailEnvOn(t, e.db, e.c, enc), db: e.db, c: e.c, ctx: e.ctx}
		mac, err := other.s.codeMAC(e.ctx, r.ID, m.code())
		if err != nil || mac != r.CodeMAC {
			t.Errorf("a second service MACs the code otherwise (%v)", err)
		}
		if string(e.s.limitSecret) == string(mustCodeKey(t, e.s)) {
			t.Error("the code key is the rate-limit key")
		}
	})
}
