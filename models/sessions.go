package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// ActiveSessions returns the user's sessions that are neither revoked nor
// expired at now, most recently used first. A session's ExpiresAt is its
// live refresh token's expiry: rotation moves both together.
func ActiveSessions(ctx context.Context, db *gorm.DB, userID string, now time.Time) (_ []*Session, err error) {
	defer Wrap(&err, "ActiveSessions(%q)", userID)
	var ss []*Session
	err = db.WithContext(ctx).
		Where("user_id = ? AND revoked_at IS NULL AND expires_at > ?", userID, now).
		Order("last_used_at DESC, id").
		Find(&ss).Error
	return ss, err
}

// ErrSessionNotFound is the one answer for a session id that is not the
// caller's: unknown, malformed or another user's alike, so that the answer
// does not tell which ids exist.
var ErrSessionNotFound = Errorf(NotFound, "session not found")

// RevokeSession revokes the user's session sessionID as RevokeSessions
// does, with a revocation (see Revoke) published to the other replicas.
// It returns true, with the revocation's end, when this call ended the
// session, false when it had already ended (revoked or expired), and
// NotFound when the user has no session with that id.
func RevokeSession(ctx context.Context, db *gorm.DB, userID, sessionID string, r Revoke) (revoked bool, until time.Time, err error) {
	defer Wrap(&err, "RevokeSession(%q)", userID)
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var s Session
		err := tx.Where("id = ? AND user_id = ?", sessionID, userID).Take(&s).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrSessionNotFound
		} else if err != nil {
			return err
		}
		if s.RevokedAt != nil || !s.ExpiresAt.After(r.At) {
			return nil
		}
		// Scoped to the revoked_at IS NULL rows again: of two concurrent
		// calls only one revokes.
		done, err := revokeSessions(tx, tx.Where("id = ?", s.ID), r)
		if len(done) > 0 {
			revoked, until = true, done[0].Until
		}
		return err
	})
	return revoked, until, err
}
