package httpapi_test

// One account through every second factor over real HTTP, with the mail
// delivered over SMTP: the notices each change mails, a passkey as the
// second factor of a password login (MFA_REQUIRED's webauthnOptions
// answered through verifyMfa) and as a step-up, and the audit event of
// every step.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/smtptest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

func TestMfaNoticesAndPasskeySecondFactor(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		c := authtest.NewClock()
		smtp := smtptest.Start(t)
		ts := authtest.NewServer(t, dsn, c, authtest.WithMail(smtp.URL))
		const email = "noa@example.com"
		user := ts.Register(t, email, "password1")
		confirmed, secret := enrollTotpHTTP(t, ts, c, user.Access, "phone")
		codes := confirmed.Get("confirmTotp", "recoveryCodes").([]any)
		smtp.Wait(t, email, subjMfaChanged)

		// A recovery code, typed loosely, signs in and mails how many are left.
		ext := mfaChallenge(t, ts, nil, email)
		if got := fmt.Sprint(ext["methods"]); got != "[TOTP RECOVERY_CODE]" {
			t.Errorf("methods = %s", got)
		}
		typed := strings.ToLower(strings.ReplaceAll(codes[0].(string), "-", " "))
		r := ts.Do(t, "", verifyMfaDoc, map[string]any{"c": ext["challengeId"], "p": map[string]any{"recoveryCode": typed}}).OK(t)
		tok := authtest.TokensOf(r, "verifyMfa")
		if amr := fmt.Sprint(authtest.Claims(t, tok.Access)["amr"]); amr != "[pwd rc mfa]" {
			t.Errorf("amr after a recovery code = %s", amr)
		}
		if m := smtp.Wait(t, email, "recovery code"); !strings.Contains(m.Text, "9") {
			t.Errorf("the notice does not say 9 codes are left:\n%s", m.Text)
		}

		// A wrong code is refused (and audited).
		ext = mfaChallenge(t, ts, nil, email)
		bad := "000000"
		if code, _ := auth.TOTPCodeAt(secret, c.Now()); code == bad {
			bad = "111111"
		}
		wrong := ts.Do(t, "", verifyMfaDoc, map[string]any{"c": ext["challengeId"], "p": map[string]any{"totpCode": bad}})
		wantCode(t, "a wrong code", wrong, models.BadUserInput, "")

		// A passkey, registered from that fresh level-2 session, mails a notice.
		a := authtest.NewAuthenticator()
		passkeyID := registerPasskey(t, ts, tok.Access, a, "laptop")
		waitText(t, smtp, email, "a passkey was added")

		// The password login now offers the passkey too, and it answers.
		ext = mfaChallenge(t, ts, nil, email)
		methods := fmt.Sprint(ext["methods"])
		if !strings.Contains(methods, "WEBAUTHN") {
			t.Fatalf("methods = %s, want WEBAUTHN among them", methods)
		}
		options, _ := ext["webauthnOptions"].(string)
		assertion, err := a.Get(options)
		if err != nil {
			t.Fatalf("the authenticator refused MFA_REQUIRED's webauthnOptions %q: %v", options, err)
		}
		r = ts.Do(t, "", verifyMfaDoc, map[string]any{"c": ext["challengeId"], "p": map[string]any{"webauthnResponse": assertion}}).OK(t)
		tok = authtest.TokensOf(r, "verifyMfa")
		claims := authtest.Claims(t, tok.Access)
		amr, _ := claims["amr"].([]any)
		if claims["acr"] != "aal2" || !slices.Contains(amr, any("pwd")) || !slices.Contains(amr, any("user")) || !slices.Contains(amr, any("mfa")) {
			t.Errorf("claims after a passkey as second factor: acr %v amr %v", claims["acr"], amr)
		}
		// The same assertion again: the challenge is spent.
		again := ts.Do(t, "", verifyMfaDoc, map[string]any{"c": ext["challengeId"], "p": map[string]any{"webauthnResponse": assertion}})
		wantCode(t, "an assertion replayed", again, models.BadUserInput, "")

		// Five minutes on, deleting the passkey asks for a fresh sign-in;
		// the passkey itself gives it, through a sign-in ceremony.
		c.Advance(301 * time.Second)
		r = ts.Do(t, tok.Access, deletePassDoc, map[string]any{"id": passkeyID})
		wantCode(t, "a stale session deleting a passkey", r, models.InsufficientUserAuthentication, "")
		if r.Errors[0].Extensions["maxAge"] != float64(300) {
			t.Errorf("extensions = %v, want maxAge 300", r.Errors[0].Extensions)
		}
		// Another account's passkey does not step this one up.
		other := ts.Register(t, "eve@example.com", "password1")
		b := authtest.NewAuthenticator()
		registerPasskey(t, ts, other.Access, b, "eve's")
		begin := ts.Do(t, "", beginLogDoc, nil).OK(t)
		foreign, err := b.Get(begin.Str("beginPasskeyLogin", "options"))
		if err != nil {
			t.Fatal(err)
		}
		wantCode(t, "a step-up with another's passkey", ts.Do(t, tok.Access, reauthDoc, map[string]any{"p": map[string]any{"webauthnResponse": foreign}}), models.BadUserInput, "")
		begin = ts.Do(t, "", beginLogDoc, nil).OK(t)
		assertion, err = a.Get(begin.Str("beginPasskeyLogin", "options"))
		if err != nil {
			t.Fatal(err)
		}
		reauth := ts.Do(t, tok.Access, reauthDoc, map[string]any{"p": map[string]any{"webauthnResponse": assertion}}).OK(t)
		if amr := fmt.Sprint(authtest.Claims(t, reauth.Str("reauthenticate", "accessToken"))["amr"]); amr != "[hwk user mfa]" {
			t.Errorf("amr after a passkey step-up = %s", amr)
		}
		wantCode(t, "the step-up's assertion again", ts.Do(t, tok.Access, reauthDoc, map[string]any{"p": map[string]any{"webauthnResponse": assertion}}), models.BadUserInput, "")
		// A passkey sign-in, then the passkey and the factor go, new
		// codes are made, and an admin resets what is left.
		passkeySignIn(t, ts, email, a).OK(t)
		ts.Do(t, tok.Access, deletePassDoc, map[string]any{"id": passkeyID}).OK(t)
		waitText(t, smtp, email, "a passkey was removed")
		ts.Do(t, tok.Access, regenerateDoc, nil).OK(t)
		ts.Do(t, tok.Access, removeFactDoc, map[string]any{"id": confirmed.Str("confirmTotp", "factor", "id")}).OK(t)
		second, _ := enrollTotpHTTP(t, ts, c, tok.Access, "tablet")
		admin := ts.Admin(t)
		ts.Do(t, admin.Access, resetMfaDoc, map[string]any{"u": user.UserID}).OK(t)
		if second.Get("confirmTotp", "recoveryCodes") == nil {
			t.Error("a first factor again (after the removal) came without recovery codes")
		}

		// Each step is in the audit log, the refusals too.
		want := []string{"MFA_ENROLLED SUCCESS", "MFA_CHALLENGE SUCCESS", "MFA_VERIFIED SUCCESS", "MFA_VERIFIED FAILURE",
			"RECOVERY_CODE_USED SUCCESS", "PASSKEY_ADDED SUCCESS", "STEP_UP SUCCESS", "STEP_UP FAILURE", "PASSKEY_LOGIN SUCCESS",
			"PASSKEY_REMOVED SUCCESS", "RECOVERY_CODES_GENERATED SUCCESS", "MFA_REMOVED SUCCESS", "MFA_RESET SUCCESS"}
		var seen map[string]bool
		waitUntil(t, func() bool {
			seen = map[string]bool{}
			for _, e := range auditLog(t, ts, admin.Access, 500, "", user.UserID, "") {
				seen[e.Type+" "+e.Outcome] = true
			}
			for _, w := range want {
				if !seen[w] {
					return false
				}
			}
			return true
		})
		for _, w := range want {
			if !seen[w] {
				t.Errorf("no %s event; the user's events: %v", w, seen)
			}
		}
	})
}

// waitText waits for a mail to `to` whose text has want.
func waitText(t *testing.T, smtp *smtptest.Server, to, want string) {
	t.Helper()
	authtest.WaitFor(t, "a mail saying "+want, func() bool {
		for _, m := range smtp.Mails() {
			if strings.Contains(strings.Join(m.To, ","), to) && strings.Contains(m.Text, want) {
				return true
			}
		}
		return false
	})
}

// waitUntil waits a while for cond, and returns when it holds or the wait
// is over: the caller tells what is missing.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for range 100 {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSignInAnswerShowsOwnMfa: the answer of a sign-in shows the signed-in
// user's own mfa, though the request carried no token of theirs, or
// another's (the non-null field refused would take the tokens down with
// it). Others' stay hidden: TestUserMfaVisibility.
func TestSignInAnswerShowsOwnMfa(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		const fields = `accessToken user { email mfa { enabled recoveryCodesRemaining } }`
		reg := ts.Do(t, "", `mutation { register(email: "una@example.com", password: "password1") { `+fields+` } }`, nil).OK(t)
		if reg.Get("register", "user", "mfa", "enabled") != false || reg.Str("register", "accessToken") == "" {
			t.Errorf("register's answer: %v", reg.Get("register"))
		}
		other := ts.Register(t, "vic@example.com", "password1")
		// A stranger's token on the request does not change whose answer it is.
		login := ts.Do(t, other.Access, `mutation { login(email: "una@example.com", password: "password1") { `+fields+` } }`, nil).OK(t)
		if login.Get("login", "user", "mfa", "enabled") != false || login.Str("login", "accessToken") == "" {
			t.Errorf("login's answer: %v", login.Get("login"))
		}
	})
}
