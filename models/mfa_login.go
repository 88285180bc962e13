package models

import (
	"context"

	"gorm.io/gorm"
)

// CreateLoginChallenge stores login's second-factor challenge and, when
// newHash is set (the right password's hash was outdated), the user's new
// password hash, in one transaction. The rehash does not wait for the
// second factor: it only re-encodes the password just proven, and changes
// nothing about who may sign in.
func CreateLoginChallenge(ctx context.Context, db *gorm.DB, c *AuthChallenge, newHash string) (err error) {
	defer Wrap(&err, "CreateLoginChallenge")
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if newHash != "" && c.UserID != nil {
			if err := tx.Model(&User{}).Where("id = ?", *c.UserID).Update("password_hash", newHash).Error; err != nil {
				return err
			}
			if err := Publish(tx, Event{Kind: EventUserChanged, ID: *c.UserID}); err != nil {
				return err
			}
		}
		return tx.Create(c).Error
	})
}

// ConfirmedTotpFactors returns the user's confirmed TOTP factors, oldest
// first.
func ConfirmedTotpFactors(ctx context.Context, db *gorm.DB, userID string) (_ []MfaFactor, err error) {
	defer Wrap(&err, "ConfirmedTotpFactors(%q)", userID)
	var fs []MfaFactor
	err = db.WithContext(ctx).
		Where("user_id = ? AND type = ? AND confirmed_at IS NOT NULL", userID, FactorTOTP).
		Order("created_at, id").Find(&fs).Error
	return fs, err
}

// UnusedRecoveryCodes returns the user's recovery codes not used yet.
func UnusedRecoveryCodes(ctx context.Context, db *gorm.DB, userID string) (_ []RecoveryCode, err error) {
	defer Wrap(&err, "UnusedRecoveryCodes(%q)", userID)
	var rcs []RecoveryCode
	err = db.WithContext(ctx).Where("user_id = ? AND used_at IS NULL", userID).Order("id").Find(&rcs).Error
	return rcs, err
}
