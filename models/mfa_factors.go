package models

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// MaxTotpFactors bounds the confirmed TOTP factors of a user: enough for
// an app on each of a few devices, few enough that the factor list stays
// readable and a script cannot fill the table.
const MaxTotpFactors = 5

// Refusals of the TOTP factor flows.
var (
	ErrTooManyFactors    = Errorf(BadUserInput, "at most %d authenticator apps per account", MaxTotpFactors)
	ErrEnrollmentInvalid = Errorf(BadUserInput, "invalid or expired enrollment")
	ErrFactorNotFound    = Errorf(NotFound, "factor not found")
	ErrNoSecondFactor    = Errorf(BadUserInput, "no second factor to recover")
)

// confirmedTotp selects the confirmed TOTP factors of a user.
func confirmedTotp(tx *gorm.DB, userID string) *gorm.DB {
	return tx.Model(&MfaFactor{}).Where("user_id = ? AND type = ? AND confirmed_at IS NOT NULL", userID, FactorTOTP)
}

// EnrollTotp stores f, a pending TOTP factor (ConfirmedAt nil, ExpiresAt
// set), in place of the user's earlier pending ones: one enrollment at a
// time, so that abandoned ones do not pile up. ErrTooManyFactors when the
// user has MaxTotpFactors confirmed already.
func EnrollTotp(ctx context.Context, db *gorm.DB, f *MfaFactor) (err error) {
	defer Wrap(&err, "EnrollTotp(%q)", f.UserID)
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := confirmedTotp(tx, f.UserID).Count(&n).Error; err != nil {
			return err
		}
		if n >= MaxTotpFactors {
			return ErrTooManyFactors
		}
		if err := tx.Where("user_id = ? AND confirmed_at IS NULL", f.UserID).Delete(&MfaFactor{}).Error; err != nil {
			return err
		}
		return tx.Create(f).Error
	})
}

// PendingTotp returns the user's pending TOTP factor with the id, unexpired
// at now, or ErrEnrollmentInvalid (the same answer for another user's id,
// an unknown one, a confirmed or a lapsed one).
func PendingTotp(ctx context.Context, db *gorm.DB, userID, id string, now time.Time) (_ *MfaFactor, err error) {
	defer Wrap(&err, "PendingTotp(%q)", id)
	if _, perr := uuid.Parse(id); perr != nil {
		return nil, ErrEnrollmentInvalid
	}
	var f MfaFactor
	err = db.WithContext(ctx).
		Where("id = ? AND user_id = ? AND type = ? AND confirmed_at IS NULL AND expires_at > ?", id, userID, FactorTOTP, now).
		Take(&f).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrEnrollmentInvalid
	}
	return &f, err
}

// TotpConfirmation confirms a pending factor (ConfirmTotp).
type TotpConfirmation struct {
	UserID, FactorID string
	// Step is the step of the confirming code, which counts as used.
	Step int64
	At   time.Time
	// RecoveryHashes are the hashes of a new batch of recovery codes,
	// stored only when the factor is the user's first.
	RecoveryHashes []string
}

// ConfirmTotp confirms the pending factor in tx, conditionally (still
// pending and unexpired: ErrEnrollmentInvalid otherwise, so of two
// confirmations one wins), and reports whether it is the user's first
// factor (no confirmed TOTP factor nor passkey before it), in which case
// c.RecoveryHashes replace the user's recovery codes. A first factor with
// no hashes (the caller saw another factor, removed since) gets none: the
// user can generate them. ErrTooManyFactors past MaxTotpFactors.
func ConfirmTotp(tx *gorm.DB, c TotpConfirmation) (first bool, err error) {
	defer Wrap(&err, "ConfirmTotp(%q)", c.FactorID)
	var m MfaMethods
	row := tx.Raw(`SELECT
		(SELECT COUNT(*) FROM mfa_factors WHERE user_id = ? AND type = ? AND confirmed_at IS NOT NULL),
		(SELECT COUNT(*) FROM passkeys WHERE user_id = ?)`, c.UserID, FactorTOTP, c.UserID).Row()
	if err := row.Scan(&m.TOTP, &m.Passkeys); err != nil {
		return false, err
	}
	if m.TOTP >= MaxTotpFactors {
		return false, ErrTooManyFactors
	}
	res := tx.Model(&MfaFactor{}).
		Where("id = ? AND user_id = ? AND confirmed_at IS NULL AND expires_at > ?", c.FactorID, c.UserID, c.At).
		Updates(map[string]any{"confirmed_at": c.At, "expires_at": nil, "last_step": c.Step})
	if res.Error != nil {
		return false, res.Error
	} else if res.RowsAffected == 0 {
		return false, ErrEnrollmentInvalid
	}
	if err := factorsChanged(tx, c.UserID); err != nil {
		return false, err
	}
	first = !m.Any()
	if first && len(c.RecoveryHashes) > 0 {
		return true, replaceRecoveryCodes(tx, c.UserID, c.RecoveryHashes, c.At)
	}
	return first, nil
}

// replaceRecoveryCodes replaces every recovery code of the user, used or
// not, with the batch of hashes.
func replaceRecoveryCodes(tx *gorm.DB, userID string, hashes []string, at time.Time) error {
	if err := tx.Where("user_id = ?", userID).Delete(&RecoveryCode{}).Error; err != nil {
		return err
	}
	codes := make([]RecoveryCode, len(hashes))
	for i, h := range hashes {
		codes[i] = RecoveryCode{ID: uuid.NewString(), UserID: userID, Hash: h, CreatedAt: at}
	}
	return tx.Create(&codes).Error
}

// RegenerateRecoveryCodes replaces the user's recovery codes with the batch
// of hashes and queues the mails, in one transaction. ErrNoSecondFactor
// when the user has neither a confirmed TOTP factor nor a passkey: codes
// exist only to stand in for a factor.
func RegenerateRecoveryCodes(ctx context.Context, db *gorm.DB, userID string, hashes []string, at time.Time, mails ...*OutboxMail) (err error) {
	defer Wrap(&err, "RegenerateRecoveryCodes(%q)", userID)
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		m, err := UserMfaMethods(ctx, tx, userID)
		if err != nil {
			return err
		}
		if !m.Any() {
			return ErrNoSecondFactor
		}
		if err := replaceRecoveryCodes(tx, userID, hashes, at); err != nil {
			return err
		}
		if err := RecordLive(tx, NewLiveEvent(LiveMfaChanged, userID, "", nil)); err != nil {
			return err
		}
		return EnqueueMail(tx, mails...)
	})
}

// RemoveTotpFactor deletes the user's confirmed TOTP factor with the id and
// queues the mails, in one transaction; with it the user's last factor
// (no TOTP factor nor passkey left), the recovery codes go too. NotFound
// (ErrFactorNotFound) for an id that is not one of the user's confirmed
// factors, whoever's it is.
func RemoveTotpFactor(ctx context.Context, db *gorm.DB, userID, id string, mails ...*OutboxMail) (err error) {
	defer Wrap(&err, "RemoveTotpFactor(%q)", id)
	if _, perr := uuid.Parse(id); perr != nil {
		return ErrFactorNotFound
	}
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := confirmedTotp(tx, userID).Where("id = ?", id).Delete(&MfaFactor{})
		if res.Error != nil {
			return res.Error
		} else if res.RowsAffected == 0 {
			return ErrFactorNotFound
		}
		if _, err := dropOrphanRecoveryCodes(tx, userID); err != nil {
			return err
		}
		if err := factorsChanged(tx, userID); err != nil {
			return err
		}
		return EnqueueMail(tx, mails...)
	})
}

// factorsChanged records, in tx, that the user's second factors changed:
// the MFA_CHANGED live event, and the user's change to the replicas, which
// cache whether a user has a factor (for the aal_max claim) and drop it
// with the user's entry.
func factorsChanged(tx *gorm.DB, userID string) error {
	if err := RecordLive(tx, NewLiveEvent(LiveMfaChanged, userID, "", nil)); err != nil {
		return err
	}
	return Publish(tx, Event{Kind: EventUserChanged, ID: userID})
}

// dropOrphanRecoveryCodes deletes the user's recovery codes in tx when the
// user has no second factor left (no confirmed TOTP factor, no passkey),
// and reports whether it deleted any: a code must not outlive the factors
// it stands in for, or it would be a second factor of its own. For the
// flows that remove a factor.
func dropOrphanRecoveryCodes(tx *gorm.DB, userID string) (bool, error) {
	res := tx.Where(`user_id = ?
		AND NOT EXISTS (SELECT 1 FROM mfa_factors WHERE user_id = ? AND confirmed_at IS NOT NULL)
		AND NOT EXISTS (SELECT 1 FROM passkeys WHERE user_id = ?)`, userID, userID, userID).
		Delete(&RecoveryCode{})
	return res.RowsAffected > 0, res.Error
}

// UserFactors returns the user's confirmed TOTP factors and passkeys,
// oldest first.
func UserFactors(ctx context.Context, db *gorm.DB, userID string) (factors []*MfaFactor, passkeys []*Passkey, err error) {
	defer Wrap(&err, "UserFactors(%q)", userID)
	db = db.WithContext(ctx)
	if err := confirmedTotp(db, userID).Order("created_at, id").Find(&factors).Error; err != nil {
		return nil, nil, err
	}
	if err := db.Where("user_id = ?", userID).Order("created_at, id").Find(&passkeys).Error; err != nil {
		return nil, nil, err
	}
	return factors, passkeys, nil
}

// ResetMfa removes every second factor of the user (TOTP factors, pending
// or not, passkeys, recovery codes) and their pending challenges, revokes
// all their sessions and queues the mails, in one transaction, and returns
// the sessions revoked. NotFound for an unknown user.
func ResetMfa(ctx context.Context, db *gorm.DB, userID string, r Revoke, mails ...*OutboxMail) (revoked []Revoked, err error) {
	defer Wrap(&err, "ResetMfa(%q)", userID)
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := lockedUser(tx, userID); err != nil {
			return err
		}
		for _, model := range []any{&MfaFactor{}, &RecoveryCode{}, &Passkey{}, &AuthChallenge{}} {
			if err := tx.Where("user_id = ?", userID).Delete(model).Error; err != nil {
				return err
			}
		}
		// MFA_CHANGED before the sessions' SESSION_REVOKED: a socket
		// closes after its own session's.
		if err := factorsChanged(tx, userID); err != nil {
			return err
		}
		revoked, err = revokeSessions(tx, tx.Where("user_id = ?", userID), r)
		if err != nil {
			return err
		}
		return EnqueueMail(tx, mails...)
	})
	return revoked, err
}
