package httpapi_test

// The mailed requests of issue 12 over real HTTP, on SQLite and (with
// TEST_DATABASE_URL) PostgreSQL, with the mail delivered over real SMTP
// (internal/smtptest) by the server's sender: password reset, email
// verification, email change, AUTH_REQUIRE_VERIFIED_EMAIL, and the attacks
// on them. Each test follows the link's token and the code read from the
// delivered mail.

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/smtptest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

const (
	requestResetDoc = `mutation($e: String!) { requestPasswordReset(email: $e) { requestId expiresAt } }`
	resetDoc        = `mutation($t: String, $id: ID, $c: String, $p: String!) { resetPassword(token: $t, requestId: $id, code: $c, newPassword: $p) }`
	sendResetDoc    = `mutation($u: ID!) { sendPasswordReset(userId: $u) { requestId expiresAt } }`
	sendVerifyDoc   = `mutation { sendEmailVerification { requestId expiresAt } }`
	verifyDoc       = `mutation($t: String, $id: ID, $c: String) { verifyEmail(token: $t, requestId: $id, code: $c) }`
	changeEmailDoc  = `mutation($e: String!, $p: String!) { requestEmailChange(newEmail: $e, currentPassword: $p) { requestId expiresAt } }`
	confirmDoc      = `mutation($t: String, $id: ID, $c: String) { confirmEmailChange(token: $t, requestId: $id, code: $c) }`
	meMailDoc       = `{ me { email emailVerified } }`
)

// Subjects of the mails (mail/templates/*.subject.txt).
const (
	subjReset         = "Reset your password"
	subjVerify        = "Verify your email"
	subjChange        = "Confirm your new email address"
	subjChangeNotice  = "A change of your email address was requested"
	subjChanged       = "Your password was changed"
	subjSignupAttempt = "Someone tried to sign up"
)

// mailServer is a test server that mails to its own SMTP server.
func mailServer(t *testing.T, dsn string, opts ...authtest.Option) (*authtest.Server, *smtptest.Server) {
	t.Helper()
	smtp := smtptest.Start(t)
	return authtest.NewServer(t, dsn, nil, append([]authtest.Option{authtest.WithMail(smtp.URL)}, opts...)...), smtp
}

func requireVerifiedEmail(c *authtest.Config) { c.Auth.RequireVerifiedEmail = true }

// nthMail waits for the n-th mail (from 1) to the address whose subject
// holds subject.
func nthMail(t *testing.T, smtp *smtptest.Server, to, subject string, n int) smtptest.Mail {
	t.Helper()
	var found []smtptest.Mail
	authtest.WaitFor(t, fmt.Sprintf("mail %d %q to %s", n, subject, to), func() bool {
		found = found[:0]
		for _, m := range smtp.Mails() {
			if strings.Contains(m.Subject, subject) && strings.Contains(strings.Join(m.To, ","), to) {
				found = append(found, m)
			}
		}
		return len(found) >= n
	})
	return found[n-1]
}

// byToken and byCode are the variables of a proof.
func byToken(m smtptest.Mail) map[string]any { return map[string]any{"t": m.Token()} }
func byCode(id string, m smtptest.Mail) map[string]any {
	return map[string]any{"id": id, "c": m.Code()}
}

func withPassword(v map[string]any, p string) map[string]any { v["p"] = p; return v }

func wantErrCode(t *testing.T, r authtest.Response, code, what string) {
	t.Helper()
	if len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != code {
		t.Errorf("%s: errors %+v, want %s", what, r.Errors, code)
	}
}

func TestPasswordResetOverSMTP(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts, smtp := mailServer(t, dsn)
		first := ts.Register(t, "rita@example.com", "password1")
		second := authtest.TokensOf(ts.Login(t, "rita@example.com", "password1").OK(t), "login")
		r := ts.Do(t, "", requestResetDoc, map[string]any{"e": "Rita@Example.com"}).OK(t)
		id := r.Str("requestPasswordReset", "requestId")
		m := smtp.Wait(t, "rita@example.com", subjReset)
		link, err := url.Parse(m.Link())
		if err != nil || link.Host != "app.test" || link.Path != "/reset" || link.RawQuery != "" || !strings.HasPrefix(link.Fragment, "token=") {
			t.Fatalf("link %q: want http://app.test/reset with the token in the fragment only", m.Link())
		}
		if len(m.Code()) != 8 {
			t.Fatalf("no code in the mail:\n%s", m.Text)
		}

		ts.Do(t, "", resetDoc, withPassword(byToken(m), "brand new pass")).OK(t)
		for _, s := range []authtest.Tokens{first, second} {
			ts.WantUnauthenticated(t, s.Access, "an access token of a session ended by the reset")
			wantErrCode(t, ts.Refresh(t, s.Refresh), models.Unauthenticated, "a refresh token of a session ended by the reset")
		}
		wantErrCode(t, ts.Login(t, "rita@example.com", "password1"), models.Unauthenticated, "the old password")
		s := authtest.TokensOf(ts.Login(t, "rita@example.com", "brand new pass").OK(t), "login")
		if v, _ := ts.Do(t, s.Access, meMailDoc, nil).OK(t).Get("me", "emailVerified").(bool); !v {
			t.Error("the reset did not mark the email verified")
		}
		smtp.Wait(t, "rita@example.com", subjChanged)

		t.Run("TokenUsedTwice", func(t *testing.T) {
			wantErrCode(t, ts.Do(t, "", resetDoc, withPassword(byToken(m), "attacker pass")), models.BadUserInput, "the token again")
			wantErrCode(t, ts.Do(t, "", resetDoc, withPassword(byCode(id, m), "attacker pass")), models.BadUserInput, "its code after the token")
		})
		t.Run("ByCode", func(t *testing.T) {
			id := ts.Do(t, "", requestResetDoc, map[string]any{"e": "rita@example.com"}).OK(t).Str("requestPasswordReset", "requestId")
			m := nthMail(t, smtp, "rita@example.com", subjReset, 2)
			ts.Do(t, "", resetDoc, withPassword(byCode(id, m), "third password")).OK(t)
			ts.Login(t, "rita@example.com", "third password").OK(t)
		})
		t.Run("AdminSends", func(t *testing.T) {
			admin := ts.Admin(t)
			u := ts.Register(t, "sam@example.com", "password1")
			id := ts.Do(t, admin.Access, sendResetDoc, map[string]any{"u": u.UserID}).OK(t).Str("sendPasswordReset", "requestId")
			m := smtp.Wait(t, "sam@example.com", subjReset)
			ts.Do(t, "", resetDoc, withPassword(byCode(id, m), "set by mail")).OK(t)
			s := authtest.TokensOf(ts.Login(t, "sam@example.com", "set by mail").OK(t), "login")
			wantErrCode(t, ts.Do(t, s.Access, sendResetDoc, map[string]any{"u": u.UserID}), models.Forbidden, "sendPasswordReset by a user")
		})
	})
}

// TestScannerGETConsumesNothing: a mail scanner fetches links. The link's
// secret is in the fragment, which no GET sends, and the link's page is the
// app's, not authql's; whatever a scanner GETs of authql (the page's path
// with the token as a query, or a GraphQL GET carrying the mutation),
// nothing is consumed: the POSTed token works afterwards.
func TestScannerGETConsumesNothing(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts, smtp := mailServer(t, dsn)
		ts.Register(t, "scan@example.com", "password1")
		ts.Do(t, "", requestResetDoc, map[string]any{"e": "scan@example.com"}).OK(t)
		m := smtp.Wait(t, "scan@example.com", subjReset)
		token := m.Token()
		q := url.Values{
			"query":     {resetDoc},
			"variables": {fmt.Sprintf(`{"t": %q, "p": "scanner pass"}`, token)},
		}
		for _, u := range []string{
			ts.URL + "/reset#token=" + token,
			ts.URL + "/reset?token=" + token,
			ts.URL + "/example/reset?token=" + token,
			ts.URL + "/query?" + q.Encode(),
		} {
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.HasPrefix(u, ts.URL+"/query") {
				t.Errorf("GET %s: 200, want the GET transport refused", u)
			}
		}
		ts.Do(t, "", resetDoc, withPassword(byToken(m), "owner's pass")).OK(t)
		ts.Login(t, "scan@example.com", "owner's pass").OK(t)
	})
}

func TestVerifyEmailOverSMTP(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts, smtp := mailServer(t, dsn)
		for i, follow := range []string{"code", "link"} {
			email := fmt.Sprintf("vera%d@example.com", i)
			s := ts.Register(t, email, "password1")
			if v, _ := ts.Do(t, s.Access, meMailDoc, nil).OK(t).Get("me", "emailVerified").(bool); v {
				t.Fatal("a new account is verified")
			}
			id := ts.Do(t, s.Access, sendVerifyDoc, nil).OK(t).Str("sendEmailVerification", "requestId")
			m := smtp.Wait(t, email, subjVerify)
			if !strings.HasPrefix(m.Link(), authtest.MailAppURL+"/verify#token=") {
				t.Errorf("link %q", m.Link())
			}
			vars := byToken(m)
			if follow == "code" {
				vars = byCode(id, m)
			}
			ts.Do(t, "", verifyDoc, vars).OK(t)
			if v, _ := ts.Do(t, s.Access, meMailDoc, nil).OK(t).Get("me", "emailVerified").(bool); !v {
				t.Errorf("by %s: not verified", follow)
			}
			wantErrCode(t, ts.Do(t, "", verifyDoc, vars), models.BadUserInput, "the "+follow+" again")
			wantErrCode(t, ts.Do(t, s.Access, sendVerifyDoc, nil), models.BadUserInput, "sendEmailVerification when verified")
		}
		wantErrCode(t, ts.Do(t, "", sendVerifyDoc, nil), models.Unauthenticated, "sendEmailVerification without a token")
	})
}

func TestEmailChangeOverSMTP(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts, smtp := mailServer(t, dsn)
		s := ts.Register(t, "old@example.com", "password1")
		ts.Register(t, "other@example.com", "password1")
		wantErrCode(t, ts.Do(t, s.Access, changeEmailDoc, map[string]any{"e": "new@example.com", "p": "wrong password"}), models.BadUserInput, "a wrong current password")
		wantErrCode(t, ts.Do(t, s.Access, changeEmailDoc, map[string]any{"e": "Other@example.com", "p": "password1"}), models.BadUserInput, "an address with an account")
		wantErrCode(t, ts.Do(t, "", changeEmailDoc, map[string]any{"e": "new@example.com", "p": "password1"}), models.Unauthenticated, "without a token")

		id := ts.Do(t, s.Access, changeEmailDoc, map[string]any{"e": "New@Example.com", "p": "password1"}).OK(t).Str("requestEmailChange", "requestId")
		confirm := smtp.Wait(t, "new@example.com", subjChange)
		notice := smtp.Wait(t, "old@example.com", subjChangeNotice)
		if !strings.HasPrefix(confirm.Link(), authtest.MailAppURL+"/confirm-email#token=") || confirm.Code() == "" {
			t.Errorf("confirmation mail without link and code:\n%s", confirm.Text)
		}
		if !strings.Contains(notice.Text, "new@example.com") || !strings.Contains(notice.Text, "127.0.0.1") || notice.Token() != "" {
			t.Errorf("notice should name the new address and the client, and hold no link:\n%s", notice.Text)
		}
		if got := ts.Do(t, s.Access, meMailDoc, nil).OK(t).Str("me", "email"); got != "old@example.com" {
			t.Fatalf("email %q before the confirmation", got)
		}
		ts.Do(t, "", confirmDoc, byCode(id, confirm)).OK(t)
		me := ts.Do(t, s.Access, meMailDoc, nil).OK(t)
		if me.Str("me", "email") != "new@example.com" || me.Get("me", "emailVerified") != true {
			t.Errorf("after the confirmation: %v", me.Data)
		}
		ts.Login(t, "new@example.com", "password1").OK(t)
		wantErrCode(t, ts.Login(t, "old@example.com", "password1"), models.Unauthenticated, "login with the old address")
		wantErrCode(t, ts.Do(t, "", confirmDoc, byToken(confirm)), models.BadUserInput, "the link after the code")

		t.Run("TakenMeanwhile", func(t *testing.T) {
			s := ts.Register(t, "mover@example.com", "password1")
			ts.Do(t, s.Access, changeEmailDoc, map[string]any{"e": "wanted@example.com", "p": "password1"}).OK(t)
			m := smtp.Wait(t, "wanted@example.com", subjChange)
			ts.Register(t, "wanted@example.com", "password1")
			wantErrCode(t, ts.Do(t, "", confirmDoc, byToken(m)), models.BadUserInput, "an address taken meanwhile")
			if got := ts.Do(t, s.Access, meMailDoc, nil).OK(t).Str("me", "email"); got != "mover@example.com" {
				t.Errorf("email %q, want mover@example.com", got)
			}
			wantErrCode(t, ts.Do(t, "", confirmDoc, byToken(m)), models.BadUserInput, "the spent request again")
		})
	})
}

func TestRequireVerifiedEmailOverSMTP(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts, smtp := mailServer(t, dsn, requireVerifiedEmail)
		r := ts.Do(t, "", authtest.RegisterDoc, authtest.Creds("una@example.com"))
		wantErrCode(t, r, models.EmailNotVerified, "register")
		if r.Get("register") != nil {
			t.Errorf("register returned %v", r.Get("register"))
		}
		verify := smtp.Wait(t, "una@example.com", subjVerify)
		again := ts.Do(t, "", authtest.RegisterDoc, map[string]any{"e": "UNA@example.com", "p": "another password"})
		wantErrCode(t, again, models.EmailNotVerified, "register of a taken address")
		if r.Errors[0].Message != again.Errors[0].Message {
			t.Errorf("messages differ: %q and %q", r.Errors[0].Message, again.Errors[0].Message)
		}
		smtp.Wait(t, "una@example.com", subjSignupAttempt)
		wantErrCode(t, ts.Login(t, "una@example.com", "wrong password"), models.Unauthenticated, "login with a wrong password")
		wantErrCode(t, ts.Login(t, "una@example.com", "password1"), models.EmailNotVerified, "login before verifying")
		ts.Do(t, "", verifyDoc, byToken(verify)).OK(t)
		s := authtest.TokensOf(ts.Login(t, "una@example.com", "password1").OK(t), "login")
		if v, _ := ts.Do(t, s.Access, meMailDoc, nil).OK(t).Get("me", "emailVerified").(bool); !v {
			t.Error("not verified after the link")
		}

		t.Run("ResetVerifiesToo", func(t *testing.T) {
			// The owner who lost the verification mail resets the
			// password: that mail proves the address as well.
			wantErrCode(t, ts.Do(t, "", authtest.RegisterDoc, authtest.Creds("lost@example.com")), models.EmailNotVerified, "register")
			ts.Do(t, "", requestResetDoc, map[string]any{"e": "lost@example.com"}).OK(t)
			ts.Do(t, "", resetDoc, withPassword(byToken(smtp.Wait(t, "lost@example.com", subjReset)), "found again")).OK(t)
			ts.Login(t, "lost@example.com", "found again").OK(t)
		})
		t.Run("Off", func(t *testing.T) {
			ts, _ := mailServer(t, dsn)
			s := ts.Register(t, "free@example.com", "password1")
			if v, _ := ts.Do(t, s.Access, meMailDoc, nil).OK(t).Get("me", "emailVerified").(bool); v {
				t.Error("verified without a mail")
			}
			ts.Login(t, "free@example.com", "password1").OK(t)
		})
	})
}

// TestMailedCodeGuessing: wrong codes sent in parallel over HTTP cannot
// pass a request's 5 or an account's 10 an hour; past the account's, the
// answer is RATE_LIMITED with retryAfter, for the right code too.
func TestMailedCodeGuessing(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts, smtp := mailServer(t, dsn, authtest.WithLimits(auth.Limits{CodeAccount: auth.Rate{N: 10, Per: time.Hour}}))
		ts.Register(t, "gus@example.com", "password1")
		var ids []string
		var mails []smtptest.Mail
		for i := range 4 {
			ids = append(ids, ts.Do(t, "", requestResetDoc, map[string]any{"e": "gus@example.com"}).OK(t).Str("requestPasswordReset", "requestId"))
			mails = append(mails, nthMail(t, smtp, "gus@example.com", subjReset, i+1))
		}
		guess := func(id string, i int) authtest.Response {
			return ts.Do(t, "", resetDoc, map[string]any{"id": id, "c": guessCode(i), "p": "guessed pass"})
		}
		got := map[string]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				r := guess(ids[i%2], i)
				mu.Lock()
				defer mu.Unlock()
				if len(r.Errors) == 1 {
					got[fmt.Sprint(r.Errors[0].Extensions["code"])]++
				} else {
					got["success"]++
				}
			})
		}
		wg.Wait()
		if got["success"] > 0 || got[models.RateLimited] == 0 {
			t.Fatalf("answers %v, want no success and some RATE_LIMITED", got)
		}
		var checked int
		ts.DB.Model(&models.EmailRequest{}).Where("id IN ?", ids).Select("COALESCE(SUM(failed_codes), 0)").Scan(&checked)
		if checked > 10 {
			t.Errorf("%d codes checked, want at most 10 an hour for the account", checked)
		}
		// Whatever the race gave back, wrong codes in sequence reach the
		// account's limit; then the right code of a fresh request is
		// refused too, and those of the requests guessed at never work.
		for i := 0; i < 20 && guess(ids[2], 100+i).Errors[0].Extensions["code"] != models.RateLimited; i++ {
		}
		r := ts.Do(t, "", resetDoc, withPassword(byCode(ids[3], mails[3]), "right code"))
		wantErrCode(t, r, models.RateLimited, "the right code past the account's limit")
		if len(r.Errors) == 1 && r.Errors[0].Extensions["retryAfter"] == nil {
			t.Errorf("RATE_LIMITED without retryAfter: %+v", r.Errors[0])
		}
		for i := range 2 {
			if r := ts.Do(t, "", resetDoc, withPassword(byCode(ids[i], mails[i]), "right code")); len(r.Errors) != 1 {
				t.Errorf("request %d: its right code worked after the guesses", i)
			}
		}
		ts.DB.Model(&models.EmailRequest{}).Where("id IN ?", ids).Select("COALESCE(SUM(failed_codes), 0)").Scan(&checked)
		if checked != 10 {
			t.Errorf("%d codes checked in all, want 10", checked)
		}
		// The link is no code: it still works.
		ts.Do(t, "", resetDoc, withPassword(byToken(mails[3]), "by the link")).OK(t)
	})
}

// guessCode is the i-th of a guesser's codes, well formed (a malformed code
// is refused without counting as a guess).
func guessCode(i int) string {
	const alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
	c := []byte("ZZZZ")
	for range 4 {
		c = append(c, alphabet[i%32])
		i /= 32
	}
	return string(c)
}

// TestResetUnknownEmailOverHTTP: a reset for an address without an account
// gets the same answer, writes the same rows, and meets the mail limit
// exactly as one with an account; only no mail goes out.
func TestResetUnknownEmailOverHTTP(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts, smtp := mailServer(t, dsn, authtest.WithLimits(auth.Limits{MailAddress: auth.Rate{N: 3, Per: time.Hour}, MailClient: auth.Rate{N: 100, Per: time.Hour}}))
		ts.Register(t, "kim@example.com", "password1")
		// The first reset makes the codes' key and the client's counter.
		ts.Do(t, "", requestResetDoc, map[string]any{"e": "first@example.com"}).OK(t)
		rows := func() map[string]int64 {
			n := map[string]int64{}
			// Not audit_events: the sender records MAIL_SENT for the known
			// address's mail whenever it goes out, after the request (the
			// request's own audit rows: TestResetUnknownEmailIndistinguishable).
			for _, table := range []string{"users", "sessions", "refresh_tokens", "email_requests", "outbox_mails", "settings", "rate_limits"} {
				var c int64
				ts.DB.Table(table).Count(&c)
				n[table] = c
			}
			return n
		}
		answers, writes := map[string]string{}, map[string]string{}
		for _, email := range []string{"kim@example.com", "nobody@example.com"} {
			before := rows()
			r := ts.Do(t, "", requestResetDoc, map[string]any{"e": email}).OK(t)
			after := rows()
			var d []string
			for k, v := range after {
				if v != before[k] {
					d = append(d, fmt.Sprintf("%s+%d", k, v-before[k]))
				}
			}
			writes[email] = fmt.Sprint(sortedStrings(d))
			req := r.Get("requestPasswordReset").(map[string]any)
			expires, err := time.Parse(time.RFC3339, req["expiresAt"].(string))
			if err != nil || !expires.Equal(ts.Clock.Now().Add(auth.DefaultResetTTL)) || len(req["requestId"].(string)) != 36 || len(req) != 2 {
				t.Errorf("%s: answer %v", email, req)
			}
			answers[email] = fmt.Sprint(len(req), expires.Sub(ts.Clock.Now()))
		}
		if writes["kim@example.com"] != writes["nobody@example.com"] {
			t.Errorf("rows written: known %s, unknown %s", writes["kim@example.com"], writes["nobody@example.com"])
		}
		if answers["kim@example.com"] != answers["nobody@example.com"] {
			t.Errorf("answers: known %s, unknown %s", answers["kim@example.com"], answers["nobody@example.com"])
		}
		limited := map[string]string{}
		for _, email := range []string{"kim@example.com", "nobody@example.com"} {
			for range 2 {
				ts.Do(t, "", requestResetDoc, map[string]any{"e": email}).OK(t)
			}
			r := ts.Do(t, "", requestResetDoc, map[string]any{"e": email})
			wantErrCode(t, r, models.RateLimited, email+": the fourth reset in the hour")
			if len(r.Errors) == 1 {
				limited[email] = fmt.Sprint(r.Errors[0].Message, r.Errors[0].Extensions["retryAfter"], r.Header.Get("Retry-After"))
			}
		}
		if limited["kim@example.com"] != limited["nobody@example.com"] {
			t.Errorf("limit answers: known %s, unknown %s", limited["kim@example.com"], limited["nobody@example.com"])
		}
		nthMail(t, smtp, "kim@example.com", subjReset, 3)
		if n := smtp.Count("nobody@example.com"); n != 0 {
			t.Errorf("%d mails to the address without an account", n)
		}
	})
}

func sortedStrings(s []string) []string {
	slices.Sort(s)
	return s
}
