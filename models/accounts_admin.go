package models

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Refusals of the last-admin rule: nobody could administer the service
// after either (an operator would have to edit the database by hand).
var (
	ErrLastAdminDelete  = Errorf(Forbidden, "the last admin cannot be deleted")
	ErrLastAdminDisable = Errorf(Forbidden, "the last admin cannot be disabled")
)

// adminsLockKey is the PostgreSQL advisory lock that serializes the
// changes that can take away an admin (deleting or disabling a user,
// removing the admin role). The value is arbitrary but must never change:
// replicas of different versions must take the same lock.
const adminsLockKey int64 = 0x61_64_6d_69_6e_73_00_01

// keepAnAdmin returns refusal when u is the last enabled admin, after
// taking the lock that makes the count trustworthy.
//
// Two admins deleting (or disabling) each other at once must leave one:
// each transaction counts two admins, so without a lock both would go
// ahead. On PostgreSQL a transaction-level advisory lock serializes them,
// and under READ COMMITTED the count that follows the lock sees every
// change committed before it was granted. On SQLite every write
// transaction holds the database's write lock from BEGIN (see
// immediateDriver), so they are serialized anyway.
func keepAnAdmin(tx *gorm.DB, u *User, refusal error) error {
	if tx.Dialector.Name() == string(Postgres) {
		if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", adminsLockKey).Error; err != nil {
			return err
		}
	}
	if !u.HasRole(RoleAdmin) || u.Disabled() {
		return nil
	}
	var admins int64
	if err := tx.Table("user_roles").Joins("JOIN users ON users.id = user_roles.user_id").
		Where("user_roles.role_name = ? AND users.disabled_at IS NULL", RoleAdmin).
		Count(&admins).Error; err != nil {
		return err
	}
	if admins <= 1 {
		return refusal
	}
	return nil
}

// lockedUser returns the user with the id and its roles, its row locked
// until tx ends on PostgreSQL (a sign-in stamping it, a password change,
// waits), or NotFound.
func lockedUser(tx *gorm.DB, id string) (*User, error) {
	q := tx.Where("id = ?", id)
	if tx.Dialector.Name() == string(Postgres) {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return takeUser(q)
}

// DeleteUser deletes the user with the id and everything of theirs: their
// sessions and refresh tokens, their mailed requests and their mails in the
// outbox (queued or not: each holds their address). Their sessions are
// revoked first, in the same transaction, with revocations published to
// every replica, so their access tokens stop at once everywhere; the
// revoked sessions are returned for the caller's own memory. Audit events
// are not touched: they name users by id only.
//
// It returns NotFound for an unknown user and ErrLastAdminDelete for the
// last enabled admin.
func DeleteUser(ctx context.Context, db *gorm.DB, id string, r Revoke) (revoked []Revoked, err error) {
	defer Wrap(&err, "DeleteUser(%q)", id)
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		u, err := lockedUser(tx, id)
		if err != nil {
			return err
		}
		if err := keepAnAdmin(tx, u, ErrLastAdminDelete); err != nil {
			return err
		}
		// Refresh tokens before sessions: a refresh locks its token, then
		// its session, and taking them in the same order cannot deadlock
		// with one in flight (this waits for it to commit instead).
		sessions := tx.Model(&Session{}).Select("id").Where("user_id = ?", id)
		if err := tx.Where("session_id IN (?)", sessions).Delete(&RefreshToken{}).Error; err != nil {
			return err
		}
		if revoked, err = revokeSessions(tx, tx.Where("user_id = ?", id), r); err != nil {
			return err
		}
		for _, del := range []struct {
			model any
			where string
		}{
			// Again: a refresh that committed while the first delete
			// waited for it added a token.
			{&RefreshToken{}, "session_id IN (SELECT id FROM sessions WHERE user_id = ?)"},
			{&Session{}, "user_id = ?"},
			{&EmailRequest{}, "user_id = ?"},
			{&OutboxMail{}, "user_id = ?"},
		} {
			if err := tx.Where(del.where, id).Delete(del.model).Error; err != nil {
				return err
			}
		}
		if err := tx.Exec("DELETE FROM user_roles WHERE user_id = ?", id).Error; err != nil {
			return err
		}
		if err := tx.Where("id = ?", id).Delete(&User{}).Error; err != nil {
			return err
		}
		return Publish(tx, Event{Kind: EventUserChanged, ID: id})
	})
	return revoked, err
}

// DisableUser disables the user with the id, with the admin's reason (nil
// for none): every session of theirs is revoked in the same transaction,
// with revocations published to every replica, as is the change of the
// user, so that their tokens are refused at their next request
// everywhere. A user disabled already keeps the time it was disabled at,
// and gets the new reason. It returns the user and the sessions revoked
// now; NotFound for an unknown user and ErrLastAdminDisable for the last
// enabled admin.
func DisableUser(ctx context.Context, db *gorm.DB, id string, reason *string, r Revoke) (_ *User, revoked []Revoked, err error) {
	defer Wrap(&err, "DisableUser(%q)", id)
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		u, err := lockedUser(tx, id)
		if err != nil {
			return err
		}
		if err := keepAnAdmin(tx, u, ErrLastAdminDisable); err != nil {
			return err
		}
		at := r.At
		if u.DisabledAt != nil {
			at = *u.DisabledAt
		}
		if err := tx.Model(&User{}).Where("id = ?", id).
			Updates(map[string]any{"disabled_at": at, "disabled_reason": reason, "updated_at": r.At}).Error; err != nil {
			return err
		}
		if revoked, err = revokeSessions(tx, tx.Where("user_id = ?", id), r); err != nil {
			return err
		}
		return Publish(tx, Event{Kind: EventUserChanged, ID: id})
	})
	if err != nil {
		return nil, nil, err
	}
	u, err := UserByID(ctx, db, id)
	return u, revoked, err
}

// EnableUser lets the disabled user with the id sign in again (its
// sessions stay ended), publishing the change, and returns the user; it
// changes nothing for a user that is not disabled. NotFound for an
// unknown user.
func EnableUser(ctx context.Context, db *gorm.DB, id string, at time.Time) (_ *User, err error) {
	defer Wrap(&err, "EnableUser(%q)", id)
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&User{}).Where("id = ? AND disabled_at IS NOT NULL", id).
			Updates(map[string]any{"disabled_at": nil, "disabled_reason": nil, "updated_at": at})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		return Publish(tx, Event{Kind: EventUserChanged, ID: id})
	})
	if err != nil {
		return nil, err
	}
	return UserByID(ctx, db, id)
}

// PasswordChange is a change of a signed-in user's password, made from
// one of their sessions.
type PasswordChange struct {
	UserID, SessionID string
	// OldHash is the stored hash the current password was checked
	// against: the change applies only while it is still the stored one,
	// so that of two concurrent changes the second, checked against the
	// replaced password, fails.
	OldHash, NewHash string
	// TokenHash is the session's new refresh token (see RefreshToken);
	// every other token of the session is deleted.
	TokenHash string
	// TTL and AccessTTL are the lifetimes of the new refresh token (the
	// session slides, as in a rotation) and of the access token issued
	// with it.
	TTL, AccessTTL time.Duration
	// SignOutOthers revokes the user's other sessions; Revoke says when
	// and for how long (its At is the change's time).
	SignOutOthers bool
	Revoke        Revoke
	// Mails are queued with the change (the notice to the owner).
	Mails []*OutboxMail
}

// ErrPasswordChanged refuses a password change checked against a password
// that another change replaced meanwhile.
var ErrPasswordChanged = Errorf(BadUserInput, "the password was changed meanwhile; try again with the new one")

// ChangePassword stores a new password hash and, in the same transaction:
// gives the caller's session a new refresh token in place of all its
// others (the old ones stop working, so that whoever else held one is
// out), revokes the user's other sessions when asked to (revocations
// published to every replica), publishes the change of the user, and
// queues c.Mails. It returns the caller's session as it now is and the
// sessions revoked.
//
// It returns ErrPasswordChanged when the stored hash is no longer
// c.OldHash or the account was disabled meanwhile, and Unauthenticated
// when the caller's session ended meanwhile.
func ChangePassword(ctx context.Context, db *gorm.DB, c PasswordChange) (_ *Session, revoked []Revoked, err error) {
	defer Wrap(&err, "ChangePassword(%q)", c.UserID)
	at := c.Revoke.At
	var s Session
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&User{}).Where("id = ? AND password_hash = ? AND disabled_at IS NULL", c.UserID, c.OldHash).
			Updates(map[string]any{"password_hash": c.NewHash, "updated_at": at})
		if res.Error != nil {
			return res.Error
		} else if res.RowsAffected == 0 {
			return ErrPasswordChanged
		}
		if err := replaceSessionTokens(tx, c, &s); err != nil {
			return err
		}
		if c.SignOutOthers {
			var err error
			if revoked, err = revokeSessions(tx, tx.Where("user_id = ? AND id <> ?", c.UserID, c.SessionID), c.Revoke); err != nil {
				return err
			}
		}
		if err := Publish(tx, Event{Kind: EventUserChanged, ID: c.UserID}); err != nil {
			return err
		}
		return EnqueueMail(tx, c.Mails...)
	})
	if err != nil {
		return nil, nil, err
	}
	return &s, revoked, nil
}

// replaceSessionTokens is ChangePassword's work on the caller's session:
// it slides the session as a rotation does, and replaces its refresh
// tokens with c.TokenHash. The session must be the user's and live.
//
// The tokens are deleted first, then the session updated, in the order a
// refresh locks them, so that a refresh in flight is waited for rather
// than deadlocked with; the token it may have added meanwhile is deleted
// by the second pass, once the session row is held.
func replaceSessionTokens(tx *gorm.DB, c PasswordChange, s *Session) error {
	at := c.Revoke.At
	if err := tx.Where("session_id = ?", c.SessionID).Delete(&RefreshToken{}).Error; err != nil {
		return err
	}
	accessExp := at.Add(c.AccessTTL)
	res := tx.Model(s).Clauses(clause.Returning{}).
		Where("id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?", c.SessionID, c.UserID, at).
		Updates(map[string]any{
			"last_used_at": at, "expires_at": at.Add(c.TTL),
			"access_expires_at": gorm.Expr("CASE WHEN access_expires_at IS NULL OR access_expires_at < ? THEN ? ELSE access_expires_at END", accessExp, accessExp),
		})
	if res.Error != nil {
		return res.Error
	} else if res.RowsAffected == 0 {
		return Errorf(Unauthenticated, "the session has ended")
	}
	if err := tx.Where("session_id = ?", c.SessionID).Delete(&RefreshToken{}).Error; err != nil {
		return err
	}
	return tx.Create(&RefreshToken{ID: c.TokenHash, SessionID: c.SessionID, CreatedAt: at, ExpiresAt: s.ExpiresAt}).Error
}
