package auth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/internal/softkey"
	"github.com/authql/authql/internal/testclock"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// Passkeys at the service level, on every database under test, with the
// injected clock and a software authenticator (internal/softkey).

type passkeyEnv struct {
	*flowEnv
}

func newPasskeyEnv(t *testing.T, dsn string) *passkeyEnv {
	t.Helper()
	c := testclock.New(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	s, err := NewService(context.Background(), testdb.Open(t, dsn), []byte(strings.Repeat("k", 32)), Config{
		Issuer: "authql", Audience: "authql", AccessTTL: 15 * time.Minute, RefreshTTL: 720 * time.Hour,
		Signup: true, Argon2: Argon2Params{Memory: 64, Time: 1, Threads: 1}, Now: c.Now,
		WebAuthnRPID: softkey.RPID, WebAuthnOrigins: []string{softkey.Origin},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return &passkeyEnv{&flowEnv{s: s, c: c, ctx: context.Background()}}
}

// beginReg begins a registration of g's user.
func (e *passkeyEnv) beginReg(t *testing.T, g *Grant) *Ceremony {
	t.Helper()
	c, err := e.s.BeginPasskeyRegistration(e.ctx, e.principal(t, g), "")
	if err != nil {
		t.Fatalf("BeginPasskeyRegistration: %v", err)
	}
	return c
}

// addPasskey registers a passkey of a on g's user.
func (e *passkeyEnv) addPasskey(t *testing.T, g *Grant, a *softkey.Authenticator) *models.Passkey {
	t.Helper()
	c := e.beginReg(t, g)
	pk, err := e.s.FinishPasskeyRegistration(e.ctx, e.principal(t, g), c.ID, mustAnswer(t, a.Create, c.Options))
	if err != nil {
		t.Fatalf("FinishPasskeyRegistration: %v", err)
	}
	return pk
}

// passkeyLogin begins a sign-in with email and answers it with a.
func (e *passkeyEnv) passkeyLogin(t *testing.T, email string, a *softkey.Authenticator) (*Grant, error) {
	t.Helper()
	c, err := e.s.BeginPasskeyLogin(e.ctx, email)
	if err != nil {
		t.Fatalf("BeginPasskeyLogin: %v", err)
	}
	return e.s.FinishPasskeyLogin(e.ctx, c.ID, mustAnswer(t, a.Get, c.Options))
}

func mustAnswer(t *testing.T, f func(string) (string, error), options string) string {
	t.Helper()
	s, err := f(options)
	if err != nil {
		t.Fatalf("authenticator: %v", err)
	}
	return s
}

func TestPasskeyRegisterThenLogin(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newPasskeyEnv(t, dsn)
		for _, tc := range []struct {
			name   string
			be, bs bool
			amr    string
		}{
			{"DeviceBound", false, false, "hwk user mfa"},
			{"Synced", true, true, "swk user mfa"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				g := e.register(t)
				a := softkey.New()
				a.BE, a.BS = tc.be, tc.bs
				pk := e.addPasskey(t, g, a)
				if pk.Label != "Passkey" || pk.BackedUp != tc.bs || pk.BackupEligible != tc.be || pk.SignCount != 0 {
					t.Errorf("passkey = %+v", pk)
				}
				for _, email := range []string{"", g.User.Email} {
					l, err := e.passkeyLogin(t, email, a)
					if err != nil {
						t.Fatalf("FinishPasskeyLogin(%q): %v", email, err)
					}
					if l.User.ID != g.User.ID {
						t.Fatalf("signed in %s, want %s", l.User.ID, g.User.ID)
					}
					sess, err := models.SessionAuthn(e.ctx, e.s.db, g.User.ID, l.SessionID, e.c.Now())
					if err != nil {
						t.Fatal(err)
					}
					if sess.Aal != models.AalTwo || sess.Amr != tc.amr {
						t.Errorf("session aal %d amr %q, want 2 %q", sess.Aal, sess.Amr, tc.amr)
					}
					if p := e.principal(t, l); p.UserID != g.User.ID {
						t.Errorf("principal %s", p.UserID)
					}
				}
				u, err := models.UserByID(e.ctx, e.s.db, g.User.ID)
				if err != nil {
					t.Fatal(err)
				}
				if u.LastLoginAt == nil || !u.LastLoginAt.Equal(e.c.Now()) {
					t.Errorf("last login %v, want %v", u.LastLoginAt, e.c.Now())
				}
				if u.WebAuthnID == nil || len(*u.WebAuthnID) != 43 || strings.Contains(*u.WebAuthnID, u.ID) {
					t.Errorf("user handle %v: want 32 random bytes, base64url", u.WebAuthnID)
				}
			})
		}
	})
}

func TestPasskeyUserVerificationRequired(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newPasskeyEnv(t, dsn)
		g := e.register(t)
		a := softkey.New()
		a.UV = false
		c := e.beginReg(t, g)
		if !strings.Contains(c.Options, `"userVerification":"required"`) || !strings.Contains(c.Options, `"residentKey":"required"`) {
			t.Errorf("creation options %s: want UV and resident key required", c.Options)
		}
		_, err := e.s.FinishPasskeyRegistration(e.ctx, e.principal(t, g), c.ID, mustAnswer(t, a.Create, c.Options))
		wantCode(t, err, models.BadUserInput, "registration without UV")
		if err != nil && err.Error() != errPasskeyUnverified.Error() {
			t.Errorf("err %q, want the one answer %q", err, errPasskeyUnverified)
		}
		a.UV = true
		e.addPasskey(t, g, a)
		a.UV = false
		_, err = e.passkeyLogin(t, "", a)
		wantCode(t, err, models.BadUserInput, "sign-in without UV")
	})
}

func TestPasskeyCounterMustRise(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newPasskeyEnv(t, dsn)
		g := e.register(t)
		a := softkey.New()
		e.addPasskey(t, g, a)
		for range 2 {
			if _, err := e.passkeyLogin(t, "", a); err != nil {
				t.Fatal(err)
			}
		}
		// A clone of the authenticator made before the last sign-in
		// shows a counter that did not rise.
		a.Credentials[0].SignCount = 1
		_, err := e.passkeyLogin(t, "", a)
		wantCode(t, err, models.BadUserInput, "counter gone back")
		if _, err := e.passkeyLogin(t, "", a); err != nil { // now 3: above 2
			t.Fatalf("counter risen again: %v", err)
		}
	})
}

func TestPasskeyZeroCounter(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newPasskeyEnv(t, dsn)
		g := e.register(t)
		a := softkey.New()
		a.NoCounter = true
		e.addPasskey(t, g, a)
		for range 2 {
			if _, err := e.passkeyLogin(t, "", a); err != nil {
				t.Fatalf("a counter that stays zero: %v", err)
			}
		}
	})
}

func TestPasskeyBackupEligibilityFixed(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newPasskeyEnv(t, dsn)
		g := e.register(t)
		a := softkey.New()
		e.addPasskey(t, g, a)
		a.BE = true
		_, err := e.passkeyLogin(t, "", a)
		wantCode(t, err, models.BadUserInput, "BE changed")
	})
}

func TestPasskeyCeremonySingleUse(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newPasskeyEnv(t, dsn)
		g := e.register(t)
		a := softkey.New()
		e.addPasskey(t, g, a)

		// Two answers of one ceremony at once (the second with a higher
		// counter, so only the ceremony can refuse it): one signs in.
		c, err := e.s.BeginPasskeyLogin(e.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		answers := []string{mustAnswer(t, a.Get, c.Options), mustAnswer(t, a.Get, c.Options)}
		errs := make([]error, 2)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range answers {
			wg.Go(func() {
				<-start
				_, errs[i] = e.s.FinishPasskeyLogin(e.ctx, c.ID, answers[i])
			})
		}
		close(start)
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("two answers of one ceremony: %v, %v; want exactly one sign-in", errs[0], errs[1])
		}

		// A registration's ceremony too: its passkey is stored once.
		r := e.beginReg(t, g)
		b := softkey.New()
		answer := mustAnswer(t, b.Create, r.Options)
		if _, err := e.s.FinishPasskeyRegistration(e.ctx, e.principal(t, g), r.ID, answer); err != nil {
			t.Fatal(err)
		}
		_, err = e.s.FinishPasskeyRegistration(e.ctx, e.principal(t, g), r.ID, answer)
		wantCode(t, err, models.BadUserInput, "registration ceremony again")
	})
}

func TestPasskeyCeremonyExpires(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newPasskeyEnv(t, dsn)
		g := e.register(t)
		a := softkey.New()
		r := e.beginReg(t, g)
		e.c.Advance(5*time.Minute + time.Second)
		_, err := e.s.FinishPasskeyRegistration(e.ctx, e.principal(t, g), r.ID, mustAnswer(t, a.Create, r.Options))
		if !errors.Is(err, models.ErrChallengeInvalid) {
			t.Fatalf("registration after 5 min: %v, want %v", err, models.ErrChallengeInvalid)
		}
		e.addPasskey(t, g, a)
		c, err := e.s.BeginPasskeyLogin(e.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		e.c.Advance(5*time.Minute + time.Second)
		if _, err := e.s.FinishPasskeyLogin(e.ctx, c.ID, mustAnswer(t, a.Get, c.Options)); !errors.Is(err, models.ErrChallengeInvalid) {
			t.Fatalf("sign-in after 5 min: %v, want %v", err, models.ErrChallengeInvalid)
		}
	})
}

func TestPasskeyAtMostTen(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newPasskeyEnv(t, dsn)
		g := e.register(t)
		// Two ceremonies begun at nine: only one may finish.
		for range 9 {
			e.addPasskey(t, g, softkey.New())
		}
		c1, c2 := e.beginReg(t, g), e.beginReg(t, g)
		if _, err := e.s.FinishPasskeyRegistration(e.ctx, e.principal(t, g), c1.ID, mustAnswer(t, softkey.New().Create, c1.Options)); err != nil {
			t.Fatal(err)
		}
		_, err := e.s.FinishPasskeyRegistration(e.ctx, e.principal(t, g), c2.ID, mustAnswer(t, softkey.New().Create, c2.Options))
		if !errors.Is(err, models.ErrTooManyPasskeys) {
			t.Fatalf("11th at finish: %v, want %v", err, models.ErrTooManyPasskeys)
		}
		_, err = e.s.BeginPasskeyRegistration(e.ctx, e.principal(t, g), "")
		if !errors.Is(err, models.ErrTooManyPasskeys) {
			t.Fatalf("11th at begin: %v, want %v", err, models.ErrTooManyPasskeys)
		}
	})
}

func TestPasskeyWrongOriginOrRP(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newPasskeyEnv(t, dsn)
		g := e.register(t)
		for _, tc := range []struct {
			name string
			set  func(a *softkey.Authenticator)
		}{
			{"Origin", func(a *softkey.Authenticator) { a.Origin = "https://evil.test" }},
			{"SubdomainNotListed", func(a *softkey.Authenticator) { a.Origin = "https://x.app.test" }},
			{"RPID", func(a *softkey.Authenticator) { a.RPID = "evil.test" }},
			{"Type", func(a *softkey.Authenticator) { a.Type = "webauthn.get" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := softkey.New()
				tc.set(a)
				c := e.beginReg(t, g)
				_, err := e.s.FinishPasskeyRegistration(e.ctx, e.principal(t, g), c.ID, mustAnswer(t, a.Create, c.Options))
				wantCode(t, err, models.BadUserInput, "registration")

				good := softkey.New()
				e.addPasskey(t, g, good)
				tc.set(good)
				if tc.name == "Type" {
					good.Type = "webauthn.create"
				}
				_, err = e.passkeyLogin(t, "", good)
				wantCode(t, err, models.BadUserInput, "sign-in")
			})
		}
	})
}

func TestPasskeyLoginWithEmail(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newPasskeyEnv(t, dsn)
		g, other := e.register(t), e.register(t)
		a := softkey.New()
		e.addPasskey(t, g, a)

		// Begun for another account: g's passkey does not finish it.
		_, err := e.passkeyLogin(t, other.User.Email, a)
		wantCode(t, err, models.BadUserInput, "another account's ceremony")

		// An unknown email gets a ceremony like a known one's, which no
		// passkey finishes.
		known, err := e.s.BeginPasskeyLogin(e.ctx, g.User.Email)
		if err != nil {
			t.Fatal(err)
		}
		unknown, err := e.s.BeginPasskeyLogin(e.ctx, "nobody@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if k, u := optionKeys(t, known.Options), optionKeys(t, unknown.Options); k != u || strings.Contains(k, "allowCredentials") {
			t.Errorf("options of a known email %s, of an unknown one %s: want alike, without allowCredentials", k, u)
		}
		if len(known.ID) != len(unknown.ID) || !known.ExpiresAt.Equal(unknown.ExpiresAt) {
			t.Errorf("ceremonies differ: %+v, %+v", known, unknown)
		}
		_, err = e.s.FinishPasskeyLogin(e.ctx, unknown.ID, mustAnswer(t, a.Get, unknown.Options))
		wantCode(t, err, models.BadUserInput, "unknown email's ceremony")
	})
}

// optionKeys is the sorted member names of options (JSON), with the
// values of those that are not random.
func optionKeys(t *testing.T, options string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(options), &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "challenge")
	b, _ := json.Marshal(m) // sorted keys
	return string(b)
}

func TestPasskeyRenameDeleteOwnOnly(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newPasskeyEnv(t, dsn)
		g, other := e.register(t), e.register(t)
		pk := e.addPasskey(t, g, softkey.New())

		_, err := e.s.RenamePasskey(e.ctx, e.principal(t, other), pk.ID, "mine now")
		wantCode(t, err, models.NotFound, "rename another's")
		_, err = e.s.DeletePasskey(e.ctx, e.principal(t, other), pk.ID)
		wantCode(t, err, models.NotFound, "delete another's")
		_, err = e.s.RenamePasskey(e.ctx, e.principal(t, g), pk.ID, "bad\x07label")
		wantCode(t, err, models.BadUserInput, "control character")
		_, err = e.s.RenamePasskey(e.ctx, e.principal(t, g), pk.ID, strings.Repeat("é", 65))
		wantCode(t, err, models.BadUserInput, "65 characters")

		renamed, err := e.s.RenamePasskey(e.ctx, e.principal(t, g), pk.ID, "  Laptop  ")
		if err != nil || renamed.Label != "Laptop" {
			t.Fatalf("rename: %+v, %v", renamed, err)
		}
		if ok, err := e.s.DeletePasskey(e.ctx, e.principal(t, g), pk.ID); !ok || err != nil {
			t.Fatalf("delete: %v, %v", ok, err)
		}
		_, err = e.s.DeletePasskey(e.ctx, e.principal(t, g), pk.ID)
		wantCode(t, err, models.NotFound, "delete again")
		if m, _ := models.UserMfaMethods(e.ctx, e.s.db, g.User.ID); m.Any() {
			t.Errorf("methods after delete: %+v", m)
		}
	})
}

func TestPasskeyDeleteLastFactorDeletesRecoveryCodes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newPasskeyEnv(t, dsn)
		g := e.register(t)
		pk1, pk2 := e.addPasskey(t, g, softkey.New()), e.addPasskey(t, g, softkey.New())
		if err := e.s.db.Create(&models.RecoveryCode{ID: "c1", UserID: g.User.ID, Hash: "h", CreatedAt: e.c.Now()}).Error; err != nil {
			t.Fatal(err)
		}
		codes := func() int {
			m, err := models.UserMfaMethods(e.ctx, e.s.db, g.User.ID)
			if err != nil {
				t.Fatal(err)
			}
			return m.RecoveryCodes
		}
		if _, err := e.s.DeletePasskey(e.ctx, e.principal(t, g), pk1.ID); err != nil {
			t.Fatal(err)
		}
		if n := codes(); n != 1 {
			t.Fatalf("a passkey left: %d recovery codes, want 1", n)
		}
		if _, err := e.s.DeletePasskey(e.ctx, e.principal(t, g), pk2.ID); err != nil {
			t.Fatal(err)
		}
		if n := codes(); n != 0 {
			t.Fatalf("last factor gone: %d recovery codes, want 0", n)
		}
	})
}

// The hooks login's second factor calls: an assertion of one of the
// user's passkeys, named in allowCredentials.
func TestPasskeySecondFactorHooks(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newPasskeyEnv(t, dsn)
		g, other := e.register(t), e.register(t)
		a, b := softkey.New(), softkey.New()
		pk := e.addPasskey(t, g, a)
		e.addPasskey(t, other, b)
		u, err := models.UserByID(e.ctx, e.s.db, g.User.ID)
		if err != nil {
			t.Fatal(err)
		}
		options, session, err := e.s.passkeyAssertion(e.ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(options, pk.CredentialID) || !strings.Contains(options, `"userVerification":"required"`) {
			t.Errorf("options %s: want g's passkey allowed, UV required", options)
		}
		// Another account's passkey, with the challenge of g's options.
		stolen, err := b.Assert(b.Credentials[0], challengeOf(t, options), softkey.RPID)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = e.s.checkPasskeyAssertion(e.ctx, g.User.ID, session, stolen)
		wantCode(t, err, models.BadUserInput, "another's passkey")

		use, amr, err := e.s.checkPasskeyAssertion(e.ctx, g.User.ID, session, mustAnswer(t, a.Get, options))
		if err != nil {
			t.Fatal(err)
		}
		if use.PasskeyID != pk.ID || use.SignCount != 1 || use.BackedUp || strings.Join(amr, " ") != "hwk user" {
			t.Errorf("use %+v amr %v", use, amr)
		}
	})
}

func challengeOf(t *testing.T, options string) string {
	var o struct{ Challenge string }
	if err := json.Unmarshal([]byte(options), &o); err != nil {
		t.Fatal(err)
	}
	return o.Challenge
}
