package auth

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// The TOTP enrollment and the management of second factors at the service
// level, on every database under test, with the injected clock.

// enroll begins a TOTP factor for g's user.
func (e *mailEnv) enroll(t *testing.T, g *Grant) (*Principal, *TotpEnrollment) {
	t.Helper()
	p := e.principalOf(t, g)
	en, err := e.s.EnrollTotp(e.ctx, p, "")
	if err != nil {
		t.Fatalf("EnrollTotp: %v", err)
	}
	return p, en
}

// confirm confirms en with the code of now.
func (e *mailEnv) confirm(t *testing.T, p *Principal, en *TotpEnrollment, signOutOthers bool) *MfaEnrollment {
	t.Helper()
	m, err := e.s.ConfirmTotp(e.ctx, p, en.FactorID, e.code(t, en.Secret), signOutOthers)
	if err != nil {
		t.Fatalf("ConfirmTotp: %v", err)
	}
	return m
}

// addTotp enrolls and confirms a factor for g's user, and returns the new
// grant of g's session.
func (e *mailEnv) addTotp(t *testing.T, g *Grant) (*MfaEnrollment, *TotpEnrollment) {
	t.Helper()
	p, en := e.enroll(t, g)
	return e.confirm(t, p, en, false), en
}

func (e *mailEnv) code(t *testing.T, secret string) string {
	t.Helper()
	c, err := TOTPCodeAt(secret, e.c.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *mailEnv) principalOf(t *testing.T, g *Grant) *Principal {
	t.Helper()
	p, err := e.s.Authenticate(e.ctx, g.AccessToken)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return p
}

func (e *mailEnv) methods(t *testing.T, userID string) models.MfaMethods {
	t.Helper()
	m, err := models.UserMfaMethods(e.ctx, e.db, userID)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *mailEnv) recoveryCodes(t *testing.T, userID string) []models.RecoveryCode {
	t.Helper()
	var rcs []models.RecoveryCode
	if err := e.db.Where("user_id = ?", userID).Find(&rcs).Error; err != nil {
		t.Fatal(err)
	}
	return rcs
}

func TestTotpEnrollment(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn)
		g := e.register(t)
		other, err := e.s.Login(e.ctx, g.User.Email, "password1")
		if err != nil {
			t.Fatal(err)
		}
		p, en := e.enroll(t, g)
		if !strings.HasPrefix(en.URI, "otpauth://totp/authql:userb@example.com?") || !strings.Contains(en.URI, "secret="+en.Secret) {
			t.Errorf("URI = %q", en.URI)
		}
		svg, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(en.QRCode, "data:image/svg+xml;base64,"))
		if err != nil || !strings.HasPrefix(en.QRCode, "data:image/svg+xml;base64,") || !bytes.HasPrefix(svg, []byte("<svg ")) {
			t.Errorf("QRCode = %.60q (%v)", en.QRCode, err)
		}
		if want := e.c.Now().Add(10 * time.Minute); !en.ExpiresAt.Equal(want) {
			t.Errorf("ExpiresAt = %v, want %v", en.ExpiresAt, want)
		}
		if e.methods(t, g.User.ID).Any() {
			t.Error("a pending enrollment counts as a factor")
		}

		wrong := "000000"
		if wrong == e.code(t, en.Secret) {
			wrong = "111111"
		}
		_, err = e.s.ConfirmTotp(e.ctx, p, en.FactorID, wrong, true)
		wantCode(t, err, models.BadUserInput, "a wrong code")

		m := e.confirm(t, p, en, true)
		if len(m.RecoveryCodes) != 10 || len(distinct(m.RecoveryCodes)) != 10 {
			t.Errorf("recovery codes = %q, want 10 distinct", m.RecoveryCodes)
		}
		if m.Factor.ID != en.FactorID || m.Factor.Label != "Authenticator app" || m.Factor.ConfirmedAt == nil {
			t.Errorf("factor = %+v", m.Factor)
		}
		sess, err := models.SessionAuthn(e.ctx, e.db, g.User.ID, g.SessionID, e.c.Now())
		if err != nil || sess.Aal != models.AalTwo || sess.Amr != "pwd otp mfa" {
			t.Errorf("session after confirm: %+v, %v", sess, err)
		}
		if m.Session.SessionID != g.SessionID || m.Session.RefreshToken == g.RefreshToken {
			t.Error("the session was not kept with a new refresh token")
		}
		if _, err := e.s.Refresh(e.ctx, g.RefreshToken); err == nil {
			t.Error("the refresh token from before the step-up still works")
		}
		e.refusedGrant(t, other, "the other session after the first factor")
		if n := e.mails(t, g.User.Email, mail.KindMfaChanged); n != 1 {
			t.Errorf("%d mfa_changed mails, want 1", n)
		}
		if got := e.lastMail(t, g.User.Email, mail.KindMfaChanged).text; !strings.Contains(got, changeTotpAdded) {
			t.Errorf("notice does not say what changed:\n%s", got)
		}

		// The confirming code counts as used: login's check of the same
		// code finds its step spent, and so does the transaction.
		f := e.factor(t, en.FactorID)
		seed, err := e.s.openTotpSeed(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := totpMatch(seed, e.code(t, en.Secret), e.c.Now(), f.LastStep); ok {
			t.Error("the confirming code matches again")
		}
		_, _, err = models.RaiseSession(e.ctx, e.db, models.Raise{
			UserID: g.User.ID, SessionID: g.SessionID, Aal: 2, Amr: "otp mfa", At: e.c.Now(), TokenHash: "x",
			TTL: time.Hour, AccessTTL: time.Minute, Mfa: &models.MfaUse{At: e.c.Now(), FactorID: f.ID, Step: totpStep(e.c.Now())},
		})
		if !errors.Is(err, models.ErrMfaSpent) {
			t.Errorf("spending the confirming step again: %v, want ErrMfaSpent", err)
		}

		// A second factor: no recovery codes, and the other sessions kept
		// when asked.
		m2, _ := e.addTotp(t, m.Session)
		if m2.RecoveryCodes != nil {
			t.Errorf("second factor returned recovery codes %q", m2.RecoveryCodes)
		}
		if got := e.methods(t, g.User.ID); got.TOTP != 2 || got.RecoveryCodes != 10 {
			t.Errorf("methods = %+v, want 2 TOTP and the 10 first codes", got)
		}
	})
}

// refusedGrant fails unless g's access token is refused.
func (e *mailEnv) refusedGrant(t *testing.T, g *Grant, what string) {
	t.Helper()
	if _, err := e.s.Authenticate(e.ctx, g.AccessToken); models.ErrorCode(err) != models.Unauthenticated {
		t.Errorf("%s: Authenticate err = %v, want UNAUTHENTICATED", what, err)
	}
}

func (e *mailEnv) factor(t *testing.T, id string) *models.MfaFactor {
	t.Helper()
	var f models.MfaFactor
	if err := e.db.Where("id = ?", id).Take(&f).Error; err != nil {
		t.Fatal(err)
	}
	return &f
}

func distinct(ss []string) map[string]bool {
	m := map[string]bool{}
	for _, s := range ss {
		m[s] = true
	}
	return m
}

func TestTotpEnrollmentLapses(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn)
		g := e.register(t)
		p, en := e.enroll(t, g)
		e.c.Advance(10*time.Minute + time.Second)
		_, err := e.s.ConfirmTotp(e.ctx, p, en.FactorID, e.code(t, en.Secret), true)
		wantCode(t, err, models.BadUserInput, "a lapsed enrollment")

		// A new enrollment replaces the pending one.
		_, first := e.enroll(t, g)
		_, second := e.enroll(t, g)
		_, err = e.s.ConfirmTotp(e.ctx, p, first.FactorID, e.code(t, first.Secret), true)
		wantCode(t, err, models.BadUserInput, "a replaced enrollment")
		var pending int64
		e.db.Model(&models.MfaFactor{}).Where("user_id = ?", g.User.ID).Count(&pending)
		if pending != 1 { // the lapsed one went with the first
			t.Errorf("%d factor rows, want 1", pending)
		}
		e.confirm(t, p, second, false)

		// Someone else's enrollment is not found either.
		h := e.register(t)
		_, theirs := e.enroll(t, h)
		_, err = e.s.ConfirmTotp(e.ctx, p, theirs.FactorID, e.code(t, theirs.Secret), true)
		wantCode(t, err, models.BadUserInput, "another user's enrollment")
	})
}

func TestTotpLabelsAndLimit(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn)
		g := e.register(t)
		p := e.principalOf(t, g)
		for _, bad := range []string{strings.Repeat("é", 65), "a\nb", "a\x1b[31m", "\xff"} {
			_, err := e.s.EnrollTotp(e.ctx, p, bad)
			wantCode(t, err, models.BadUserInput, "label "+bad)
		}
		en, err := e.s.EnrollTotp(e.ctx, p, "  "+strings.Repeat("é", 64)+" ")
		if err != nil {
			t.Fatal(err)
		}
		m := e.confirm(t, p, en, false)
		if m.Factor.Label != strings.Repeat("é", 64) {
			t.Errorf("label = %q", m.Factor.Label)
		}
		for range 4 {
			en, err := e.s.EnrollTotp(e.ctx, p, "phone")
			if err != nil {
				t.Fatal(err)
			}
			e.confirm(t, p, en, false)
		}
		_, err = e.s.EnrollTotp(e.ctx, p, "phone")
		wantCode(t, err, models.BadUserInput, "a sixth factor")
	})
}

// Two confirmations of one enrollment at once, from two sessions of the
// user: exactly one succeeds.
func TestTotpConfirmRace(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn)
		g := e.register(t)
		g2, err := e.s.Login(e.ctx, g.User.Email, "password1")
		if err != nil {
			t.Fatal(err)
		}
		p, en := e.enroll(t, g)
		p2 := e.principalOf(t, g2)
		code := e.code(t, en.Secret)
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, pr := range []*Principal{p, p2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = e.s.ConfirmTotp(e.ctx, pr, en.FactorID, code, false)
			}()
		}
		close(start)
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("errors %v and %v: want exactly one success", errs[0], errs[1])
		}
		if got := e.methods(t, g.User.ID); got.TOTP != 1 || got.RecoveryCodes != 10 {
			t.Errorf("methods = %+v, want one factor and 10 codes", got)
		}
	})
}

func TestRecoveryCodesRegenerate(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn)
		g := e.register(t)
		_, err := e.s.RegenerateRecoveryCodes(e.ctx, e.principalOf(t, g))
		wantCode(t, err, models.BadUserInput, "codes without a factor")

		m, _ := e.addTotp(t, g)
		p := e.principalOf(t, m.Session)
		e.c.Advance(time.Second) // the notice after the enrollment's
		codes, err := e.s.RegenerateRecoveryCodes(e.ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(distinct(codes)) != 10 {
			t.Fatalf("codes = %q", codes)
		}
		stored := e.recoveryCodes(t, g.User.ID)
		if len(stored) != 10 {
			t.Fatalf("%d stored codes, want 10", len(stored))
		}
		for _, old := range m.RecoveryCodes {
			canon, _ := normalizeRecoveryCode(old)
			if matchRecoveryCode(stored, canon) != "" {
				t.Errorf("old code %s still matches", old)
			}
		}
		canon, _ := normalizeRecoveryCode(strings.ToLower(codes[3]))
		if matchRecoveryCode(stored, canon) == "" {
			t.Error("a new code does not match")
		}
		if got := e.lastMail(t, g.User.Email, mail.KindMfaChanged).text; !strings.Contains(got, changeRecoveryCodes) {
			t.Errorf("no notice of the new codes:\n%s", got)
		}
	})
}

func TestRemoveMfaFactor(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn)
		g := e.register(t)
		m, first := e.addTotp(t, g)
		m2, second := e.addTotp(t, m.Session)
		p := e.principalOf(t, m2.Session)

		h := e.register(t)
		hm, theirs := e.addTotp(t, h)
		for _, id := range []string{theirs.FactorID, "not-a-uuid", "00000000-0000-0000-0000-000000000000"} {
			_, err := e.s.RemoveMfaFactor(e.ctx, p, id)
			wantCode(t, err, models.NotFound, "remove "+id)
		}
		// A pending enrollment is not a factor to remove.
		_, pending := e.enroll(t, m2.Session)
		_, err := e.s.RemoveMfaFactor(e.ctx, p, pending.FactorID)
		wantCode(t, err, models.NotFound, "remove a pending enrollment")

		if ok, err := e.s.RemoveMfaFactor(e.ctx, p, first.FactorID); err != nil || !ok {
			t.Fatalf("RemoveMfaFactor: %v, %v", ok, err)
		}
		if got := e.methods(t, g.User.ID); got.TOTP != 1 || got.RecoveryCodes != 10 {
			t.Errorf("after removing one of two: %+v", got)
		}
		e.c.Advance(time.Second) // the notice after the others
		if _, err := e.s.RemoveMfaFactor(e.ctx, p, second.FactorID); err != nil {
			t.Fatal(err)
		}
		if got := e.methods(t, g.User.ID); got.Any() || len(e.recoveryCodes(t, g.User.ID)) != 0 {
			t.Errorf("after removing the last: %+v, %d codes", got, len(e.recoveryCodes(t, g.User.ID)))
		}
		if got := e.lastMail(t, g.User.Email, mail.KindMfaChanged).text; !strings.Contains(got, changeTotpRemoved) {
			t.Errorf("no notice of the removal:\n%s", got)
		}
		if got := e.methods(t, hm.Session.User.ID); got.TOTP != 1 || got.RecoveryCodes != 10 {
			t.Errorf("the other user's factors changed: %+v", got)
		}
	})
}

func TestUserMfaVisibility(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn)
		g := e.register(t)
		m, _ := e.addTotp(t, g)
		self := e.principalOf(t, m.Session)
		st, err := e.s.UserMfa(e.ctx, self, g.User.ID)
		if err != nil || !st.Enabled || len(st.Factors) != 1 || st.RecoveryCodesRemaining != 10 || len(st.Passkeys) != 0 {
			t.Fatalf("own status %+v, %v", st, err)
		}
		// A pending enrollment is not listed.
		e.enroll(t, m.Session)
		if st, _ := e.s.UserMfa(e.ctx, self, g.User.ID); len(st.Factors) != 1 {
			t.Errorf("%d factors listed, want the confirmed one", len(st.Factors))
		}

		other := e.register(t)
		_, err = e.s.UserMfa(e.ctx, e.principalOf(t, other), g.User.ID)
		wantCode(t, err, models.Forbidden, "another user's status")

		// Roles as they are now, not as the token says.
		if _, err := e.s.SetUserRoles(e.ctx, other.User.ID, []string{models.RoleAdmin, models.RoleUser}); err != nil {
			t.Fatal(err)
		}
		if st, err := e.s.UserMfa(e.ctx, e.principalOf(t, other), g.User.ID); err != nil || !st.Enabled {
			t.Errorf("admin's view: %+v, %v", st, err)
		}
	})
}

func TestResetUserMfa(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn)
		g := e.register(t)
		m, _ := e.addTotp(t, g)
		e.enroll(t, m.Session) // a pending one goes too
		admin := e.register(t)
		if _, err := e.s.SetUserRoles(e.ctx, admin.User.ID, []string{models.RoleAdmin}); err != nil {
			t.Fatal(err)
		}
		ap := e.principalOf(t, admin)
		_, err := e.s.ResetUserMfa(e.ctx, e.principalOf(t, m.Session), admin.User.ID)
		wantCode(t, err, models.Forbidden, "a non-admin's reset")
		_, err = e.s.ResetUserMfa(e.ctx, ap, "00000000-0000-0000-0000-000000000000")
		wantCode(t, err, models.NotFound, "an unknown user")

		if ok, err := e.s.ResetUserMfa(e.ctx, ap, g.User.ID); err != nil || !ok {
			t.Fatalf("ResetUserMfa: %v, %v", ok, err)
		}
		var rows int64
		e.db.Model(&models.MfaFactor{}).Where("user_id = ?", g.User.ID).Count(&rows)
		if got := e.methods(t, g.User.ID); got != (models.MfaMethods{}) || rows != 0 {
			t.Errorf("after reset: %+v, %d factor rows", got, rows)
		}
		e.refusedGrant(t, m.Session, "the user's session after the reset")
		if n := e.mails(t, g.User.Email, mail.KindMfaReset); n != 1 {
			t.Errorf("%d mfa_reset mails, want 1", n)
		}
		// The admin's own session is not touched.
		e.principalOf(t, admin)

		// An operator's reset (no principal) works too.
		m, _ = e.addTotp(t, e.login(t, g))
		if _, err := e.s.ResetUserMfa(e.ctx, nil, g.User.ID); err != nil {
			t.Fatal(err)
		}
		e.refusedGrant(t, m.Session, "the session after the operator's reset")
	})
}

func (e *mailEnv) login(t *testing.T, g *Grant) *Grant {
	t.Helper()
	l, err := e.s.Login(e.ctx, g.User.Email, "password1")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A TOTP seed is stored sealed under AUTH_ENCRYPTION_KEY: the row does not
// hold it in base32; without the key it is stored as it is.
func TestTotpSeedAtRest(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		enc := func(c *Config) { c.Encryption = secret.Keys{Current: bytes.Repeat([]byte{7}, secret.KeySize)} }
		for _, sealed := range []bool{false, true} { // the key added to a database without
			var opts []func(*Config)
			if sealed {
				opts = append(opts, enc)
			}
			e := newMailEnv(t, dsn, opts...)
			if sealed {
				e.n = 5 // on the same database: another user
			}
			_, en := e.enroll(t, e.register(t))
			row := e.factor(t, en.FactorID).Secret
			if has := strings.Contains(row, en.Secret); has == sealed {
				t.Errorf("sealed %v: stored %q for seed %s", sealed, row, en.Secret)
			}
		}
	})
}

// Deleting an account deletes its factors, recovery codes, passkeys and
// challenges with it.
func TestDeleteUserDeletesMfa(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn)
		g := e.register(t)
		m, _ := e.addTotp(t, g)
		e.enroll(t, m.Session)
		h := e.register(t)
		e.addTotp(t, h)
		if err := e.db.Create(&models.AuthChallenge{ID: "c", Kind: models.ChallengeMfaLogin, UserID: &g.User.ID, CreatedAt: e.c.Now(), ExpiresAt: e.c.Now().Add(time.Minute)}).Error; err != nil {
			t.Fatal(err)
		}
		if err := e.db.Create(&models.Passkey{ID: g.User.ID, UserID: g.User.ID, CredentialID: "cred", PublicKey: []byte{1}, Label: "key", CreatedAt: e.c.Now()}).Error; err != nil {
			t.Fatal(err)
		}
		if err := e.s.DeleteUser(e.ctx, g.User.ID); err != nil {
			t.Fatal(err)
		}
		for _, model := range []any{&models.MfaFactor{}, &models.RecoveryCode{}, &models.Passkey{}, &models.AuthChallenge{}} {
			var n int64
			e.db.Model(model).Where("user_id = ?", g.User.ID).Count(&n)
			if n != 0 {
				t.Errorf("%T: %d rows left", model, n)
			}
		}
		if got := e.methods(t, h.User.ID); got.TOTP != 1 || got.RecoveryCodes != 10 {
			t.Errorf("the other user's factors: %+v", got)
		}
	})
}

// Wrong enrollment codes count against the account's second-factor limit;
// a right one gives its attempt back.
func TestConfirmTotpLimited(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		lim := DefaultLimits
		lim.MfaAccount = Rate{N: 3, Per: 15 * time.Minute}
		e := newMailEnv(t, dsn, withLimits(lim))
		g := e.register(t)
		p, en := e.enroll(t, g)
		wrong := "000000"
		if wrong == e.code(t, en.Secret) {
			wrong = "111111"
		}
		// Two wrong, one right (given back), one wrong: within 3.
		for range 2 {
			_, err := e.s.ConfirmTotp(e.ctx, p, en.FactorID, wrong, false)
			wantCode(t, err, models.BadUserInput, "a wrong code")
		}
		m := e.confirm(t, p, en, false)
		p, en = e.enroll(t, m.Session)
		_, err := e.s.ConfirmTotp(e.ctx, p, en.FactorID, wrong, false)
		wantCode(t, err, models.BadUserInput, "the third wrong code")
		_, err = e.s.ConfirmTotp(e.ctx, p, en.FactorID, e.code(t, en.Secret), false)
		wantCode(t, err, models.RateLimited, "past the limit, even the right code")
	})
}

// TestRecoveryCodesRegenerateLimited: each batch costs ten hashes, so a
// user makes Limits.RecoveryCodes of them an hour.
func TestRecoveryCodesRegenerateLimited(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn, withLimits(Limits{RecoveryCodes: Rate{N: 2, Per: time.Hour}}))
		g := e.register(t)
		m, _ := e.addTotp(t, g)
		p := e.principalOf(t, m.Session)
		for i := range 2 {
			if _, err := e.s.RegenerateRecoveryCodes(e.ctx, p); err != nil {
				t.Fatalf("batch %d: %v", i+1, err)
			}
		}
		_, err := e.s.RegenerateRecoveryCodes(e.ctx, p)
		wantCode(t, err, models.RateLimited, "a third batch in the hour")
		e.c.Advance(31 * time.Minute)
		if _, err := e.s.RegenerateRecoveryCodes(e.ctx, p); err != nil {
			t.Errorf("after half an hour: %v", err)
		}
	})
}
