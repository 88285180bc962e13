package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// SessionAuthn returns how the user's live session last authenticated: its
// Aal, Amr, AuthTime and CreatedAt (the other fields are zero). It returns
// Unauthenticated when the session is not the user's or has ended.
func SessionAuthn(ctx context.Context, db *gorm.DB, userID, sessionID string, now time.Time) (_ *Session, err error) {
	defer Wrap(&err, "SessionAuthn(%q)", sessionID)
	var s Session
	err = db.WithContext(ctx).Select("id", "aal", "amr", "auth_time", "created_at").
		Where("id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?", sessionID, userID, now).
		Take(&s).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errSessionEnded
	}
	return &s, err
}

// MfaMethods are the second factors a user has.
type MfaMethods struct {
	TOTP          int // confirmed TOTP factors
	Passkeys      int
	RecoveryCodes int // unused
}

// Any reports whether the user has a second factor: a confirmed TOTP
// factor or a passkey. Recovery codes alone are not one: they exist only
// beside a factor, to replace it when lost.
func (m MfaMethods) Any() bool { return m.TOTP > 0 || m.Passkeys > 0 }

// UserMfaMethods counts the user's second factors, in one statement.
func UserMfaMethods(ctx context.Context, db *gorm.DB, userID string) (_ MfaMethods, err error) {
	defer Wrap(&err, "UserMfaMethods(%q)", userID)
	var m MfaMethods
	row := db.WithContext(ctx).Raw(`SELECT
		(SELECT COUNT(*) FROM mfa_factors WHERE user_id = ? AND confirmed_at IS NOT NULL),
		(SELECT COUNT(*) FROM passkeys WHERE user_id = ?),
		(SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL)`, userID, userID, userID).Row()
	if err := row.Scan(&m.TOTP, &m.Passkeys, &m.RecoveryCodes); err != nil {
		return MfaMethods{}, err
	}
	return m, nil
}
