package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// ErrChallengeInvalid is the one answer for a challenge or ceremony that
// cannot be answered: unknown, of another kind, spent, expired, or ended
// by too many wrong answers alike.
var ErrChallengeInvalid = Errorf(BadUserInput, "invalid or expired challenge")

// CreateChallenge stores a new challenge.
func CreateChallenge(ctx context.Context, db *gorm.DB, c *AuthChallenge) (err error) {
	defer Wrap(&err, "CreateChallenge(%s)", c.Kind)
	return db.WithContext(ctx).Create(c).Error
}

// LiveChallenge returns the challenge with the id (the hash) of the kind
// that can still be answered at now, or ErrChallengeInvalid.
func LiveChallenge(ctx context.Context, db *gorm.DB, id, kind string, now time.Time) (_ *AuthChallenge, err error) {
	defer Wrap(&err, "LiveChallenge(%s)", kind)
	var c AuthChallenge
	err = db.WithContext(ctx).
		Where("id = ? AND kind = ? AND used_at IS NULL AND expires_at > ? AND failures < ?", id, kind, now, MaxChallengeFailures).
		Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrChallengeInvalid
	}
	return &c, err
}

// CountChallengeAttempt counts an answer to the challenge before it is
// checked, so that concurrent answers cannot all slip under the bound: of
// MaxChallengeFailures+1 at once, one is refused. ErrChallengeInvalid when
// the challenge has no attempt left (or is spent or expired). A right
// answer spends the challenge (MfaUse.ChallengeID), so its count does not
// matter.
func CountChallengeAttempt(ctx context.Context, db *gorm.DB, id string, now time.Time) (err error) {
	defer Wrap(&err, "CountChallengeAttempt")
	res := db.WithContext(ctx).Model(&AuthChallenge{}).
		Where("id = ? AND used_at IS NULL AND expires_at > ? AND failures < ?", id, now, MaxChallengeFailures).
		Update("failures", gorm.Expr("failures + 1"))
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return ErrChallengeInvalid
	}
	return nil
}

// ErrMfaSpent refuses a proof that was spent meanwhile: a TOTP code
// accepted already (by a concurrent request), a used recovery code, a
// spent challenge, a passkey assertion whose counter went back.
var ErrMfaSpent = Errorf(BadUserInput, "invalid or already used code")

// MfaUse is what a sign-in or a step-up spends, in the transaction that
// signs in or raises the session: each part set is a conditional update,
// and when one finds nothing to update the transaction fails with
// ErrMfaSpent (or ErrChallengeInvalid). So of two requests with one code
// at one moment, exactly one succeeds, on either database.
type MfaUse struct {
	At time.Time
	// ChallengeID (the hash) is spent: it must be unused and unexpired.
	ChallengeID string
	// FactorID's LastStep becomes Step, only if it was before Step.
	FactorID string
	Step     int64
	// RecoveryCodeID is used, only if unused.
	RecoveryCodeID string
	// PasskeyID's counter becomes SignCount (only if it was below, or
	// both are zero), its backup state BackedUp.
	PasskeyID string
	SignCount int64
	BackedUp  bool
}

// spendMfa spends u in tx.
func spendMfa(tx *gorm.DB, u *MfaUse) error {
	if u.ChallengeID != "" {
		res := tx.Model(&AuthChallenge{}).Where("id = ? AND used_at IS NULL AND expires_at > ?", u.ChallengeID, u.At).Update("used_at", u.At)
		if res.Error != nil {
			return res.Error
		} else if res.RowsAffected == 0 {
			return ErrChallengeInvalid
		}
	}
	if u.FactorID != "" {
		res := tx.Model(&MfaFactor{}).Where("id = ? AND last_step < ? AND confirmed_at IS NOT NULL", u.FactorID, u.Step).
			Updates(map[string]any{"last_step": u.Step, "last_used_at": u.At})
		if err := spent(res); err != nil {
			return err
		}
	}
	if u.RecoveryCodeID != "" {
		res := tx.Model(&RecoveryCode{}).Where("id = ? AND used_at IS NULL", u.RecoveryCodeID).Update("used_at", u.At)
		if err := spent(res); err != nil {
			return err
		}
	}
	if u.PasskeyID != "" {
		res := tx.Model(&Passkey{}).Where("id = ? AND (sign_count < ? OR (sign_count = 0 AND ? = 0))", u.PasskeyID, u.SignCount, u.SignCount).
			Updates(map[string]any{"sign_count": u.SignCount, "backed_up": u.BackedUp, "last_used_at": u.At})
		if err := spent(res); err != nil {
			return err
		}
	}
	return nil
}

func spent(res *gorm.DB) error {
	if res.Error != nil {
		return res.Error
	} else if res.RowsAffected == 0 {
		return ErrMfaSpent
	}
	return nil
}

// PurgeChallenges deletes the challenges and ceremonies expired at now,
// answered or not, and the TOTP enrollments that lapsed unconfirmed. It
// returns how many rows it deleted.
func PurgeChallenges(ctx context.Context, db *gorm.DB, now time.Time) (n int64, err error) {
	defer Wrap(&err, "PurgeChallenges")
	db = db.WithContext(ctx)
	res := db.Where("expires_at <= ?", now).Delete(&AuthChallenge{})
	if res.Error != nil {
		return 0, res.Error
	}
	n = res.RowsAffected
	res = db.Where("confirmed_at IS NULL AND expires_at <= ?", now).Delete(&MfaFactor{})
	return n + res.RowsAffected, res.Error
}
