package auth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// Login with a second factor, verifyMfa and reauthenticate at the service
// level, on every database under test, with the injected clock (which
// starts on a TOTP step's first second). httpapi/mfa_login_test.go and
// httpapi/stepup_test.go follow them over HTTP.

// mfaUser is a user holding a confirmed TOTP factor and recovery codes.
type mfaUser struct {
	g     *Grant
	seed  []byte
	codes []string // as shown: XXXX-XXXX-XXXX-XXXX
}

func newMfaEnv(t *testing.T, dsn string) *mailEnv {
	return newMailEnv(t, dsn, withLimits(Limits{MfaAccount: DefaultLimits.MfaAccount}))
}

// withFactor gives g's user a confirmed TOTP factor and a batch of
// recovery codes, written directly (confirmTotp is another flow's).
func (e *mailEnv) withFactor(t *testing.T, g *Grant) *mfaUser {
	t.Helper()
	now := e.c.Now()
	u := &mfaUser{g: g, seed: newTotpSeed(), codes: newRecoveryCodes()}
	f := &models.MfaFactor{ID: uuid.NewString(), UserID: g.User.ID, Type: models.FactorTOTP, Label: "phone", CreatedAt: now, ConfirmedAt: &now}
	var err error
	if f.Secret, err = e.s.sealTotpSeed(f.ID, u.seed); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Create(f).Error; err != nil {
		t.Fatal(err)
	}
	for _, h := range e.s.hasher.hashRecoveryCodes(u.codes) {
		if err := e.db.Create(&models.RecoveryCode{ID: uuid.NewString(), UserID: g.User.ID, Hash: h, CreatedAt: now}).Error; err != nil {
			t.Fatal(err)
		}
	}
	return u
}

// mfaRegister signs a new user up and gives them a factor.
func (e *mailEnv) mfaRegister(t *testing.T) *mfaUser {
	t.Helper()
	return e.withFactor(t, e.register(t))
}

// code is the user's TOTP code now.
func (u *mfaUser) code(e *mailEnv) string { return totpCode(u.seed, totpStep(e.c.Now())) }

// challenge logs u in from ctx and returns the MFA_REQUIRED error.
func (e *mailEnv) challengeErr(t *testing.T, ctx context.Context, u *mfaUser) *models.Error {
	t.Helper()
	g, err := e.s.Login(ctx, u.g.User.Email, "password1")
	var me *models.Error
	if g != nil || !errors.As(err, &me) || me.Code != models.MfaRequired {
		t.Fatalf("login: %v, %v; want MFA_REQUIRED", g, err)
	}
	return me
}

// challenge is challengeErr's challenge id, logged in from e.ctx.
func (e *mailEnv) challenge(t *testing.T, u *mfaUser) string {
	t.Helper()
	id, _ := e.challengeErr(t, e.ctx, u).Extensions["challengeId"].(string)
	return id
}

// session reads the grant's session row.
func (e *mailEnv) session(t *testing.T, g *Grant) *models.Session {
	t.Helper()
	var s models.Session
	if err := e.db.Where("id = ?", g.SessionID).Take(&s).Error; err != nil {
		t.Fatal(err)
	}
	return &s
}

func (e *mailEnv) countSessions(t *testing.T, userID string) int64 {
	t.Helper()
	var n int64
	e.db.Model(&models.Session{}).Where("user_id = ?", userID).Count(&n)
	return n
}

func TestMfaLogin(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMfaEnv(t, dsn)
		t.Run("WithoutFactorAsBefore", func(t *testing.T) {
			g := e.register(t)
			if _, err := e.s.Login(e.ctx, g.User.Email, "password1"); err != nil {
				t.Fatalf("login of a user without factors: %v", err)
			}
		})
		t.Run("RequiredWithChallenge", func(t *testing.T) {
			u := e.mfaRegister(t)
			before := e.countSessions(t, u.g.User.ID)
			me := e.challengeErr(t, e.ctx, u)
			methods, _ := me.Extensions["methods"].([]string)
			if strings.Join(methods, " ") != "TOTP RECOVERY_CODE" {
				t.Errorf("methods %v, want TOTP RECOVERY_CODE", methods)
			}
			if got, want := me.Extensions["expiresAt"], e.c.Now().Add(5*time.Minute).Format(time.RFC3339); got != want {
				t.Errorf("expiresAt %v, want %s", got, want)
			}
			if _, ok := me.Extensions["webauthnOptions"]; ok {
				t.Error("webauthnOptions for a user without passkeys")
			}
			if e.countSessions(t, u.g.User.ID) != before {
				t.Error("a password alone started a session")
			}
			id, _ := me.Extensions["challengeId"].(string)
			var c models.AuthChallenge
			if err := e.db.Where("id = ?", hashRefreshToken(id)).Take(&c).Error; err != nil || c.Kind != models.ChallengeMfaLogin || *c.UserID != u.g.User.ID {
				t.Errorf("challenge stored as %+v (%v), want its hash, kind mfa_login, the user", c, err)
			}
			if e.user(t, u.g.User.ID).LastLoginAt != nil {
				t.Error("last login stamped before the second factor")
			}
		})
		t.Run("WrongPasswordAsToday", func(t *testing.T) {
			u := e.mfaRegister(t)
			_, err := e.s.Login(e.ctx, u.g.User.Email, "password2")
			if err != errBadCredentials {
				t.Errorf("wrong password: %v, want %v", err, errBadCredentials)
			}
		})
		t.Run("TotpSignsInAtLevel2", func(t *testing.T) {
			u := e.mfaRegister(t)
			g, err := e.s.VerifyMfa(e.ctx, e.challenge(t, u), MfaProof{TOTPCode: u.code(e)})
			if err != nil {
				t.Fatal(err)
			}
			if s := e.session(t, g); s.Aal != models.AalTwo || s.Amr != "pwd otp mfa" || !s.AuthTime.Equal(e.c.Now()) {
				t.Errorf("session aal %d amr %q auth_time %v, want 2, pwd otp mfa, now", s.Aal, s.Amr, s.AuthTime)
			}
			if at := e.user(t, u.g.User.ID).LastLoginAt; at == nil || !at.Equal(e.c.Now()) {
				t.Errorf("last login %v, want now", at)
			}
			e.principalOK(t, g)
		})
		t.Run("TotpReplayRefused", func(t *testing.T) {
			u := e.mfaRegister(t)
			code := u.code(e)
			if _, err := e.s.VerifyMfa(e.ctx, e.challenge(t, u), MfaProof{TOTPCode: code}); err != nil {
				t.Fatal(err)
			}
			_, err := e.s.VerifyMfa(e.ctx, e.challenge(t, u), MfaProof{TOTPCode: code})
			if !errors.Is(err, models.ErrMfaSpent) {
				t.Errorf("the same code again: %v, want %v", err, models.ErrMfaSpent)
			}
			e.c.Advance(30 * time.Second)
			if _, err := e.s.VerifyMfa(e.ctx, e.challenge(t, u), MfaProof{TOTPCode: u.code(e)}); err != nil {
				t.Errorf("the next step's code: %v", err)
			}
		})
		t.Run("ChallengeSingleUse", func(t *testing.T) {
			u := e.mfaRegister(t)
			id := e.challenge(t, u)
			if _, err := e.s.VerifyMfa(e.ctx, id, MfaProof{TOTPCode: u.code(e)}); err != nil {
				t.Fatal(err)
			}
			e.c.Advance(30 * time.Second)
			_, err := e.s.VerifyMfa(e.ctx, id, MfaProof{TOTPCode: u.code(e)})
			if !errors.Is(err, models.ErrChallengeInvalid) {
				t.Errorf("a used challenge: %v, want %v", err, models.ErrChallengeInvalid)
			}
		})
		t.Run("ChallengeExpires", func(t *testing.T) {
			u := e.mfaRegister(t)
			id := e.challenge(t, u)
			e.c.Advance(5*time.Minute + time.Second)
			_, err := e.s.VerifyMfa(e.ctx, id, MfaProof{TOTPCode: u.code(e)})
			if !errors.Is(err, models.ErrChallengeInvalid) {
				t.Errorf("after 5 minutes: %v, want %v", err, models.ErrChallengeInvalid)
			}
		})
		t.Run("FiveWrongAnswersEndIt", func(t *testing.T) {
			u := e.mfaRegister(t)
			id := e.challenge(t, u)
			for i := range models.MaxChallengeFailures {
				if _, err := e.s.VerifyMfa(e.ctx, id, MfaProof{TOTPCode: "000000"}); !errors.Is(err, models.ErrMfaSpent) {
					t.Fatalf("wrong answer %d: %v, want %v", i+1, err, models.ErrMfaSpent)
				}
			}
			_, err := e.s.VerifyMfa(e.ctx, id, MfaProof{TOTPCode: u.code(e)})
			if !errors.Is(err, models.ErrChallengeInvalid) {
				t.Errorf("the right code after 5 wrong: %v, want %v", err, models.ErrChallengeInvalid)
			}
			// The account's count was given back: a new challenge works.
			if _, err := e.s.VerifyMfa(e.ctx, e.challenge(t, u), MfaProof{TOTPCode: u.code(e)}); err != nil {
				t.Errorf("a new challenge: %v", err)
			}
		})
		t.Run("TenWrongPerAccountFromAnyAddress", func(t *testing.T) {
			u := e.mfaRegister(t)
			var id string
			for i := range 10 {
				ctx := withClient(context.Background(), "198.51.100."+string(rune('1'+i%9))+string(rune('0'+i)))
				if i%5 == 0 {
					id, _ = e.challengeErr(t, ctx, u).Extensions["challengeId"].(string)
				}
				if _, err := e.s.VerifyMfa(ctx, id, MfaProof{TOTPCode: "000000"}); !errors.Is(err, models.ErrMfaSpent) {
					t.Fatalf("wrong answer %d: %v", i+1, err)
				}
			}
			ctx := withClient(context.Background(), "203.0.113.9")
			_, err := e.s.VerifyMfa(ctx, e.challengeErr(t, ctx, u).Extensions["challengeId"].(string), MfaProof{TOTPCode: u.code(e)})
			var me *models.Error
			if !errors.As(err, &me) || me.Code != models.RateLimited || me.RetryAfter <= 0 {
				t.Fatalf("the right code after 10 wrong from 10 addresses: %v, want RATE_LIMITED with retryAfter", err)
			}
			e.c.Advance(15 * time.Minute)
			if _, err := e.s.VerifyMfa(ctx, e.challengeErr(t, ctx, u).Extensions["challengeId"].(string), MfaProof{TOTPCode: u.code(e)}); err != nil {
				t.Errorf("a quarter hour later: %v", err)
			}
		})
		t.Run("RecoveryCodeSingleUseNormalised", func(t *testing.T) {
			u := e.mfaRegister(t)
			typed := strings.ToLower(strings.ReplaceAll(u.codes[3], "-", " "))
			g, err := e.s.VerifyMfa(e.ctx, e.challenge(t, u), MfaProof{RecoveryCode: typed})
			if err != nil {
				t.Fatalf("recovery code %q: %v", typed, err)
			}
			if s := e.session(t, g); s.Aal != models.AalTwo || s.Amr != "pwd rc mfa" {
				t.Errorf("session aal %d amr %q, want 2, pwd rc mfa", s.Aal, s.Amr)
			}
			_, err = e.s.VerifyMfa(e.ctx, e.challenge(t, u), MfaProof{RecoveryCode: u.codes[3]})
			if !errors.Is(err, models.ErrMfaSpent) {
				t.Errorf("a used recovery code: %v, want %v", err, models.ErrMfaSpent)
			}
			me := e.challengeErr(t, e.ctx, u)
			if m, err := models.UserMfaMethods(e.ctx, e.db, u.g.User.ID); err != nil || m.RecoveryCodes != 9 {
				t.Errorf("recovery codes left %d (%v), want 9", m.RecoveryCodes, err)
			}
			if _, err := e.s.VerifyMfa(e.ctx, me.Extensions["challengeId"].(string), MfaProof{RecoveryCode: u.codes[4]}); err != nil {
				t.Errorf("another code of the batch: %v", err)
			}
		})
		t.Run("ExactlyOneProof", func(t *testing.T) {
			u := e.mfaRegister(t)
			id := e.challenge(t, u)
			for _, p := range []MfaProof{{}, {TOTPCode: u.code(e), RecoveryCode: u.codes[0]}} {
				if _, err := e.s.VerifyMfa(e.ctx, id, p); err != errOneProof {
					t.Errorf("%+v: %v, want %v", p, err, errOneProof)
				}
			}
			if _, err := e.s.VerifyMfa(e.ctx, "not-a-challenge", MfaProof{TOTPCode: u.code(e)}); !errors.Is(err, models.ErrChallengeInvalid) {
				t.Errorf("a malformed challenge id: %v", err)
			}
			token, _ := newRefreshToken()
			if _, err := e.s.VerifyMfa(e.ctx, token, MfaProof{TOTPCode: u.code(e)}); !errors.Is(err, models.ErrChallengeInvalid) {
				t.Errorf("an unknown challenge id: %v", err)
			}
		})
		t.Run("DisabledDuringChallenge", func(t *testing.T) {
			u := e.mfaRegister(t)
			id := e.challenge(t, u)
			if _, err := e.s.DisableUser(e.ctx, u.g.User.ID, nil); err != nil {
				t.Fatal(err)
			}
			_, err := e.s.VerifyMfa(e.ctx, id, MfaProof{TOTPCode: u.code(e)})
			wantCode(t, err, models.AccountDisabled, "verifyMfa of a disabled account")
		})
		t.Run("ResetKeepsMfa", func(t *testing.T) {
			u := e.mfaRegister(t)
			_, m := e.reset(t, u.g.User.Email)
			if err := e.s.ResetPassword(e.ctx, Proof{Token: m.token()}, "new password"); err != nil {
				t.Fatal(err)
			}
			_, err := e.s.Login(e.ctx, u.g.User.Email, "new password")
			wantCode(t, err, models.MfaRequired, "login after a reset")
			if m, _ := models.UserMfaMethods(e.ctx, e.db, u.g.User.ID); m.TOTP != 1 || m.RecoveryCodes != recoveryCodeCount {
				t.Errorf("after a reset: %+v, want the factor and every code", m)
			}
		})
	})
}

// principalOK authenticates g's access token and checks its claims.
func (e *mailEnv) principalOK(t *testing.T, g *Grant) {
	t.Helper()
	if _, err := e.s.Authenticate(e.ctx, g.AccessToken); err != nil {
		t.Errorf("Authenticate: %v", err)
	}
}

// race runs f twice at once, behind a start barrier, and returns both
// errors.
func race(f func() error) []error {
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			<-start
			errs[i] = f()
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// TestMfaRaces: two verifyMfa with one proof at one moment, each on a
// challenge of its own: exactly one signs in, on each database.
func TestMfaRaces(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMfaEnv(t, dsn)
		for _, tc := range []struct {
			name  string
			proof func(u *mfaUser) MfaProof
		}{
			{"SameTotpCode", func(u *mfaUser) MfaProof { return MfaProof{TOTPCode: u.code(e)} }},
			{"SameRecoveryCode", func(u *mfaUser) MfaProof { return MfaProof{RecoveryCode: u.codes[0]} }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for range 3 {
					u := e.mfaRegister(t)
					ids := make(chan string, 2)
					ids <- e.challenge(t, u)
					ids <- e.challenge(t, u)
					before := e.countSessions(t, u.g.User.ID)
					addrs := make(chan string, 2)
					addrs <- "192.0.2.1"
					addrs <- "192.0.2.2"
					// From two addresses: the hash pool lets one client
					// hash only so much at once (see hashPool).
					errs := race(func() error {
						_, err := e.s.VerifyMfa(withClient(context.Background(), <-addrs), <-ids, tc.proof(u))
						return err
					})
					var ok int
					for _, err := range errs {
						if err == nil {
							ok++
						} else if !errors.Is(err, models.ErrMfaSpent) {
							t.Errorf("the loser: %v, want %v", err, models.ErrMfaSpent)
						}
					}
					if ok != 1 {
						t.Fatalf("%d of 2 signed in (%v), want exactly 1", ok, errs)
					}
					if n := e.countSessions(t, u.g.User.ID) - before; n != 1 {
						t.Errorf("%d sessions started, want 1", n)
					}
				}
			})
		}
	})
}
