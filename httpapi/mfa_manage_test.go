package httpapi_test

// Managing second factors over real HTTP (issue 13), on SQLite and (with
// TEST_DATABASE_URL) PostgreSQL, with the injected clock and the mail
// delivered over SMTP: TOTP enrollment and confirmation, User.mfa for the
// user and for admins, recovery codes regenerated, a factor removed, and an
// admin's reset.

import (
	"strings"
	"testing"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/smtptest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

const (
	enrollTotpDoc  = `mutation($l: String) { enrollTotp(label: $l) { factorId secret otpauthUri qrCode expiresAt } }`
	confirmTotpDoc = `mutation($f: ID!, $c: String!) { confirmTotp(factorId: $f, code: $c) { factor { id type label } recoveryCodes session { ` + authtest.PayloadFields + ` } } }`
	regenerateDoc  = `mutation { regenerateRecoveryCodes }`
	removeFactDoc  = `mutation($id: ID!) { removeMfaFactor(id: $id) }`
	resetMfaDoc    = `mutation($u: ID!) { resetUserMfa(userId: $u) }`
	meMfaDoc       = `{ me { mfa { enabled factors { id label } passkeys { id } recoveryCodesRemaining } } }`
	usersMfaDoc    = `{ users { id mfa { enabled recoveryCodesRemaining } } }`

	subjMfaChanged = "The sign-in protection of your account changed"
	subjMfaReset   = "The second factors of your account were removed"
)

// enrollTotpHTTP enrolls and confirms a TOTP factor with token, and
// returns the confirmation's response and the factor's secret.
func enrollTotpHTTP(t *testing.T, ts *authtest.Server, c *authtest.Clock, token, label string) (authtest.Response, string) {
	t.Helper()
	en := ts.Do(t, token, enrollTotpDoc, map[string]any{"l": label}).OK(t)
	secret := en.Str("enrollTotp", "secret")
	code, err := auth.TOTPCodeAt(secret, c.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := ts.Do(t, token, confirmTotpDoc, map[string]any{"f": en.Str("enrollTotp", "factorId"), "c": code}).OK(t)
	return r, secret
}

func TestManageMfaOverHTTP(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		c := authtest.NewClock()
		smtp := smtptest.Start(t)
		ts := authtest.NewServer(t, dsn, c, authtest.WithMail(smtp.URL))
		ada := ts.Register(t, "ada@example.com", "password1")
		if ts.Do(t, ada.Access, meMfaDoc, nil).OK(t).Get("me", "mfa", "enabled") != false {
			t.Error("mfa enabled before any factor")
		}
		en := ts.Do(t, ada.Access, enrollTotpDoc, nil).OK(t)
		if qr := en.Str("enrollTotp", "qrCode"); !strings.HasPrefix(qr, "data:image/svg+xml;base64,") {
			t.Errorf("qrCode = %.40q", qr)
		}
		code, _ := auth.TOTPCodeAt(en.Str("enrollTotp", "secret"), c.Now())
		wrong := "123456"
		if wrong == code {
			wrong = "654321"
		}
		r := ts.Do(t, ada.Access, confirmTotpDoc, map[string]any{"f": en.Str("enrollTotp", "factorId"), "c": wrong})
		wantCode(t, "a wrong code", r, models.BadUserInput, "")

		r = ts.Do(t, ada.Access, confirmTotpDoc, map[string]any{"f": en.Str("enrollTotp", "factorId"), "c": code}).OK(t)
		codes, _ := r.Get("confirmTotp", "recoveryCodes").([]any)
		if len(codes) != 10 {
			t.Fatalf("recoveryCodes = %v, want 10", r.Get("confirmTotp", "recoveryCodes"))
		}
		ada2 := authtest.Tokens{Access: r.Str("confirmTotp", "session", "accessToken"), Refresh: r.Str("confirmTotp", "session", "refreshToken")}
		if cl := authtest.Claims(t, ada2.Access); cl["acr"] != "aal2" {
			t.Errorf("claims after confirm: %v", cl)
		}
		smtp.Wait(t, "ada@example.com", subjMfaChanged)

		// A second factor: no codes shown again.
		r2, _ := enrollTotpHTTP(t, ts, c, ada2.Access, "tablet")
		if got := r2.Get("confirmTotp", "recoveryCodes"); got != nil {
			t.Errorf("second factor's recoveryCodes = %v, want null", got)
		}
		ada3 := authtest.Tokens{Access: r2.Str("confirmTotp", "session", "accessToken")}
		me := ts.Do(t, ada3.Access, meMfaDoc, nil).OK(t)
		if me.Get("me", "mfa", "enabled") != true || len(me.Get("me", "mfa", "factors").([]any)) != 2 ||
			me.Get("me", "mfa", "recoveryCodesRemaining") != float64(10) {
			t.Errorf("me.mfa = %v", me.Get("me", "mfa"))
		}

		fresh := ts.Do(t, ada3.Access, regenerateDoc, nil).OK(t).Get("regenerateRecoveryCodes").([]any)
		if len(fresh) != 10 || fresh[0] == codes[0] {
			t.Errorf("regenerated %v", fresh)
		}
		wantCode(t, "remove an unknown factor", ts.Do(t, ada3.Access, removeFactDoc, map[string]any{"id": "00000000-0000-0000-0000-000000000000"}), models.NotFound, "")
		ts.Do(t, ada3.Access, removeFactDoc, map[string]any{"id": r2.Str("confirmTotp", "factor", "id")}).OK(t)

		// Admins see it; a reset removes everything and ends the sessions.
		admin := ts.Admin(t)
		users := ts.Do(t, admin.Access, usersMfaDoc, nil).OK(t).Get("users").([]any)
		seen := false
		for _, u := range users {
			u := u.(map[string]any)
			if u["id"] == ada.UserID {
				seen = u["mfa"].(map[string]any)["enabled"] == true
			}
		}
		if !seen {
			t.Errorf("the admin does not see ada's factor: %v", users)
		}
		wantCode(t, "a user resets", ts.Do(t, ada3.Access, resetMfaDoc, map[string]any{"u": admin.UserID}), models.Forbidden, "")
		ts.Do(t, admin.Access, resetMfaDoc, map[string]any{"u": ada.UserID}).OK(t)
		ts.WantUnauthenticated(t, ada3.Access, "ada's session after the reset")
		smtp.Wait(t, "ada@example.com", subjMfaReset)
		again := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1").OK(t), "login")
		if ts.Do(t, again.Access, meMfaDoc, nil).OK(t).Get("me", "mfa", "enabled") != false {
			t.Error("mfa still enabled after the reset")
		}
	})
}
