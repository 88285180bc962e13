package models_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// mfaUser stores a user with a confirmed TOTP factor (LastStep 100) and a
// recovery code, and returns the user's id, the factor's and the code's.
func mfaUser(t *testing.T, db *gorm.DB, now time.Time) (userID, factorID, codeID string) {
	t.Helper()
	u := &models.User{ID: uuid.NewString(), Email: uuid.NewString() + "@example.com", PasswordHash: "x", CreatedAt: now, UpdatedAt: now}
	f := &models.MfaFactor{ID: uuid.NewString(), UserID: u.ID, Type: models.FactorTOTP, Label: "app", Secret: "s", CreatedAt: now, ConfirmedAt: &now, LastStep: 100}
	rc := &models.RecoveryCode{ID: uuid.NewString(), UserID: u.ID, Hash: "h", CreatedAt: now}
	for _, row := range []any{u, f, rc} {
		if err := db.Create(row).Error; err != nil {
			t.Fatal(err)
		}
	}
	return u.ID, f.ID, rc.ID
}

// newSession is a session of the user starting at now, spending use.
func newSession(userID string, now time.Time, use *models.MfaUse) *models.NewSession {
	s := &models.Session{ID: uuid.NewString(), UserID: userID, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour), Aal: models.AalTwo, Amr: "pwd otp mfa", AuthTime: &now}
	return &models.NewSession{Session: s, Token: &models.RefreshToken{ID: uuid.NewString(), SessionID: s.ID, CreatedAt: now, ExpiresAt: s.ExpiresAt}, Mfa: use}
}

// TestMfaSpentOnce: a TOTP step, a recovery code and a challenge each sign
// in once; of concurrent sign-ins with the same proof exactly one
// succeeds, and the losers leave no session behind.
func TestMfaSpentOnce(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := testdb.Open(t, dsn)
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Second)
		userID, factorID, codeID := mfaUser(t, db, now)
		for _, tc := range []struct {
			name string
			use  func(challenge string) *models.MfaUse
			want error
		}{
			{"TOTPStep", func(c string) *models.MfaUse {
				return &models.MfaUse{At: now, ChallengeID: c, FactorID: factorID, Step: 101}
			}, models.ErrMfaSpent},
			{"RecoveryCode", func(c string) *models.MfaUse { return &models.MfaUse{At: now, ChallengeID: c, RecoveryCodeID: codeID} }, models.ErrMfaSpent},
			{"Challenge", func(string) *models.MfaUse { return &models.MfaUse{At: now, ChallengeID: "shared"} }, models.ErrChallengeInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) {
				// Each racer has a challenge of its own (but the last case's
				// shared one), so that only the proof decides.
				for _, id := range []string{tc.name + "1", tc.name + "2", "shared"} {
					db.Create(&models.AuthChallenge{ID: id, Kind: models.ChallengeMfaLogin, UserID: &userID, CreatedAt: now, ExpiresAt: now.Add(time.Minute)})
				}
				var wg sync.WaitGroup
				start := make(chan struct{})
				errs := make([]error, 2)
				for i := range errs {
					wg.Go(func() {
						<-start
						_, errs[i] = models.CreateSession(ctx, db, newSession(userID, now, tc.use(tc.name+string(rune('1'+i)))))
					})
				}
				close(start)
				wg.Wait()
				won := 0
				for _, err := range errs {
					switch {
					case err == nil:
						won++
					case !errors.Is(err, tc.want):
						t.Errorf("loser's error = %v, want %v", err, tc.want)
					}
				}
				if won != 1 {
					t.Errorf("%d sign-ins succeeded with one proof, want 1 (%v)", won, errs)
				}
			})
		}
		var sessions int64
		db.Model(&models.Session{}).Where("user_id = ?", userID).Count(&sessions)
		if sessions != 3 {
			t.Errorf("%d sessions, want 3 (one per proof)", sessions)
		}
		// An older step than the last accepted is spent too.
		if _, err := models.CreateSession(ctx, db, newSession(userID, now, &models.MfaUse{At: now, FactorID: factorID, Step: 100})); !errors.Is(err, models.ErrMfaSpent) {
			t.Errorf("an old step: %v, want ErrMfaSpent", err)
		}
	})
}

// TestPurgeChallenges: expired challenges and lapsed enrollments go; live
// ones and confirmed factors stay.
func TestPurgeChallenges(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := testdb.Open(t, dsn)
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Second)
		userID, factorID, _ := mfaUser(t, db, now)
		past, future := now.Add(-time.Second), now.Add(time.Minute)
		rows := []any{
			&models.AuthChallenge{ID: "expired", Kind: models.ChallengeMfaLogin, CreatedAt: now, ExpiresAt: past},
			&models.AuthChallenge{ID: "live", Kind: models.ChallengeMfaLogin, CreatedAt: now, ExpiresAt: future},
			&models.MfaFactor{ID: uuid.NewString(), UserID: userID, Type: models.FactorTOTP, Label: "lapsed", Secret: "s", CreatedAt: now, ExpiresAt: &past},
			&models.MfaFactor{ID: uuid.NewString(), UserID: userID, Type: models.FactorTOTP, Label: "pending", Secret: "s", CreatedAt: now, ExpiresAt: &future},
		}
		for _, r := range rows {
			if err := db.Create(r).Error; err != nil {
				t.Fatal(err)
			}
		}
		n, err := models.PurgeChallenges(ctx, db, now)
		if err != nil || n != 2 {
			t.Fatalf("purged %d, %v; want 2", n, err)
		}
		var challenges []string
		db.Model(&models.AuthChallenge{}).Pluck("id", &challenges)
		var labels []string
		db.Model(&models.MfaFactor{}).Order("label").Pluck("label", &labels)
		if len(challenges) != 1 || challenges[0] != "live" || len(labels) != 2 || labels[0] != "app" || labels[1] != "pending" {
			t.Errorf("left: challenges %q, factors %q (confirmed %s)", challenges, labels, factorID)
		}
	})
}
