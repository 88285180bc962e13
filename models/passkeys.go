package models

import (
	"context"
	"errors"

	"gorm.io/gorm"
)

// MaxPasskeys bounds the passkeys of one user.
const MaxPasskeys = 10

// ErrTooManyPasskeys refuses a passkey past MaxPasskeys.
var ErrTooManyPasskeys = Errorf(BadUserInput, "an account has at most 10 passkeys; delete one first")

// ErrPasskeyNotFound is the answer for a passkey that is not the caller's,
// whether or not it exists.
var ErrPasskeyNotFound = Errorf(NotFound, "passkey not found")

// UserPasskeys returns the user's passkeys, oldest first.
func UserPasskeys(ctx context.Context, db *gorm.DB, userID string) (_ []*Passkey, err error) {
	defer Wrap(&err, "UserPasskeys(%q)", userID)
	var ps []*Passkey
	err = db.WithContext(ctx).Where("user_id = ?", userID).Order("created_at, id").Limit(MaxPasskeys + 1).Find(&ps).Error
	return ps, err
}

// UserByWebAuthnID returns the user whose passkeys' user handle is handle
// (base64url), or NotFound.
func UserByWebAuthnID(ctx context.Context, db *gorm.DB, handle string) (_ *User, err error) {
	defer Wrap(&err, "UserByWebAuthnID")
	return takeUser(db.WithContext(ctx).Where("web_authn_id = ?", handle))
}

// EnsureWebAuthnID gives the user the user handle candidate unless they
// have one, and returns the one they have. A conditional update, so that
// two first registrations at once agree on one handle.
func EnsureWebAuthnID(ctx context.Context, db *gorm.DB, userID, candidate string) (_ string, err error) {
	defer Wrap(&err, "EnsureWebAuthnID(%q)", userID)
	db = db.WithContext(ctx)
	if err := db.Model(&User{}).Where("id = ? AND web_authn_id IS NULL", userID).
		Update("web_authn_id", candidate).Error; err != nil {
		return "", err
	}
	var u User
	err = db.Select("id", "web_authn_id").Where("id = ?", userID).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && u.WebAuthnID == nil) {
		return "", Errorf(NotFound, "user not found")
	} else if err != nil {
		return "", err
	}
	return *u.WebAuthnID, nil
}

// AddPasskey stores p, spending the registration ceremony challengeID
// (single use: of two finishes of one ceremony, one stores its passkey)
// in the same transaction. The bound of MaxPasskeys is checked again
// there, under the user's lock, so that concurrent registrations cannot
// pass it together. mails are queued with it. It returns
// ErrChallengeInvalid, ErrTooManyPasskeys, or BadUserInput when the
// credential is registered already.
func AddPasskey(ctx context.Context, db *gorm.DB, p *Passkey, challengeID string, mails []*OutboxMail) (err error) {
	defer Wrap(&err, "AddPasskey(%q)", p.UserID)
	return transactRetrying(ctx, db, func(tx *gorm.DB) error {
		res := tx.Model(&AuthChallenge{}).
			Where("id = ? AND used_at IS NULL AND expires_at > ?", challengeID, p.CreatedAt).
			Update("used_at", p.CreatedAt)
		if res.Error != nil {
			return res.Error
		} else if res.RowsAffected == 0 {
			return ErrChallengeInvalid
		}
		// The user's row locked on PostgreSQL; on SQLite the transaction
		// holds the write lock from BEGIN.
		if _, err := lockedUser(tx, p.UserID); err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&Passkey{}).Where("user_id = ?", p.UserID).Count(&n).Error; err != nil {
			return err
		}
		if n >= MaxPasskeys {
			return ErrTooManyPasskeys
		}
		if err := tx.Create(p).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return Errorf(BadUserInput, "this passkey is registered already")
			}
			return err
		}
		if err := factorsChanged(tx, p.UserID); err != nil {
			return err
		}
		return EnqueueMail(tx, mails...)
	})
}

// RenamePasskey sets the label of the user's passkey id and returns it, or
// ErrPasskeyNotFound.
func RenamePasskey(ctx context.Context, db *gorm.DB, userID, id, label string) (_ *Passkey, err error) {
	defer Wrap(&err, "RenamePasskey(%q)", id)
	db = db.WithContext(ctx)
	res := db.Model(&Passkey{}).Where("id = ? AND user_id = ?", id, userID).Update("label", label)
	if res.Error != nil {
		return nil, res.Error
	} else if res.RowsAffected == 0 {
		return nil, ErrPasskeyNotFound
	}
	var p Passkey
	if err := db.Where("id = ? AND user_id = ?", id, userID).Take(&p).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrPasskeyNotFound
		}
		return nil, err
	}
	return &p, nil
}

// DeletePasskey deletes the user's passkey id, or returns
// ErrPasskeyNotFound. When it was the user's last second factor (no
// confirmed TOTP factor and no passkey left), their recovery codes go with
// it in the same transaction: they exist only to replace a lost factor.
// mails are queued with it. It returns whether the recovery codes went.
func DeletePasskey(ctx context.Context, db *gorm.DB, userID, id string, mails []*OutboxMail) (codesDeleted bool, err error) {
	defer Wrap(&err, "DeletePasskey(%q)", id)
	err = transactRetrying(ctx, db, func(tx *gorm.DB) error {
		codesDeleted = false
		// Locked first, so that an enrollment of another factor at the
		// same moment is not left without its recovery codes.
		if _, err := lockedUser(tx, userID); err != nil {
			return err
		}
		res := tx.Where("id = ? AND user_id = ?", id, userID).Delete(&Passkey{})
		if res.Error != nil {
			return res.Error
		} else if res.RowsAffected == 0 {
			return ErrPasskeyNotFound
		}
		var err error
		if codesDeleted, err = dropOrphanRecoveryCodes(tx, userID); err != nil {
			return err
		}
		if err := factorsChanged(tx, userID); err != nil {
			return err
		}
		return EnqueueMail(tx, mails...)
	})
	return codesDeleted, err
}
