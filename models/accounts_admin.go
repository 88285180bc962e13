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
// sessions and refresh tokens, their mailed requests, their mails in the
// outbox (queued or not: each holds their address), and their second
// factors, recovery codes, passkeys and pending challenges. Their sessions are
// revoked first, with revocations published to every replica, so their
// access tokens stop at once everywhere; the revoked sessions are returned
// for the caller's own memory. Audit events are not touched: they name
// users by id only.
//
// Two transactions, the revocation committed before the deletion: a
// refresh locks its token, then its session, so a transaction that held
// the sessions (to revoke them) and then deleted them with their tokens
// would deadlock with a refresh in flight, which a client looping on
// refresh (the user, or a thief of their token trying to keep the account)
// makes likely. Once the revocation has committed, no refresh of these
// sessions locks a token any more (see RotateRefreshToken), and the
// deletion deletes the tokens first, waiting for a refresh in flight. A
// session started in between by a sign-in is revoked by the deletion too;
// should it be refreshed in a loop meanwhile, the deletion may deadlock
// with a refresh, and is tried again (see transactRetrying).
//
// It returns NotFound for an unknown user and ErrLastAdminDelete for the
// last enabled admin.
func DeleteUser(ctx context.Context, db *gorm.DB, id string, r Revoke) (revoked []Revoked, err error) {
	defer Wrap(&err, "DeleteUser(%q)", id)
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := adminKept(tx, id, ErrLastAdminDelete); err != nil {
			return err
		}
		// The account is disabled with the revocation, so that it no
		// longer counts as an enabled admin: of two admins deleting each
		// other at once, the second is refused here, before it revokes
		// anything of the one who stays. (Counted as enabled until the
		// second transaction, both passed this check, and the loser of
		// the deletion had already ended the winner's sessions.) Should
		// the deletion then fail, the account stays disabled, which a
		// retry of the deletion finishes.
		res := tx.Model(&User{}).Where("id = ? AND disabled_at IS NULL", id).
			Updates(map[string]any{"disabled_at": r.At, "updated_at": r.At})
		if res.Error != nil {
			return res.Error
		}
		// A deletion ends the account as a disabling does, and is told
		// to its sockets and to other services the same way (there is
		// no event of its own): once, if it was not disabled already.
		if res.RowsAffected > 0 {
			if err := RecordLive(tx, NewLiveEvent(LiveAccountDisabled, id, "", nil)); err != nil {
				return err
			}
		}
		if err := Publish(tx, Event{Kind: EventUserChanged, ID: id}); err != nil {
			return err
		}
		revoked, err = revokeSessions(tx, tx.Where("user_id = ?", id), r)
		return err
	})
	if err != nil {
		return nil, err
	}
	err = transactRetrying(ctx, db, func(tx *gorm.DB) error {
		if _, err := adminKept(tx, id, ErrLastAdminDelete); err != nil {
			return err
		}
		if err := tx.Where("session_id IN (SELECT id FROM sessions WHERE user_id = ?)", id).Delete(&RefreshToken{}).Error; err != nil {
			return err
		}
		late, err := revokeSessions(tx, tx.Where("user_id = ?", id), r)
		if err != nil {
			return err
		}
		revoked = append(revoked, late...)
		return deleteUserRows(tx, id)
	})
	return revoked, err
}

// adminKept returns the user with the id, its row locked (see lockedUser),
// or refusal when it is the last enabled admin (see keepAnAdmin).
func adminKept(tx *gorm.DB, id string, refusal error) (*User, error) {
	u, err := lockedUser(tx, id)
	if err != nil {
		return nil, err
	}
	return u, keepAnAdmin(tx, u, refusal)
}

// deleteUserRows is the deletion of DeleteUser, once the user's sessions
// are revoked: the refresh tokens first, in the order a refresh locks
// them (see DeleteUser), then everything else of the user, and the user.
func deleteUserRows(tx *gorm.DB, id string) error {
	for _, del := range []struct {
		model any
		where string
	}{
		{&RefreshToken{}, "session_id IN (SELECT id FROM sessions WHERE user_id = ?)"},
		{&Session{}, "user_id = ?"},
		{&EmailRequest{}, "user_id = ?"},
		{&OutboxMail{}, "user_id = ?"},
		{&MfaFactor{}, "user_id = ?"},
		{&RecoveryCode{}, "user_id = ?"},
		{&Passkey{}, "user_id = ?"},
		{&AuthChallenge{}, "user_id = ?"},
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
		u, err := adminKept(tx, id, ErrLastAdminDisable)
		if err != nil {
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
		// Once, when the account becomes disabled: a new reason for a
		// disabled one changes nothing its sessions must learn of.
		if u.DisabledAt == nil {
			if err := RecordLive(tx, NewLiveEvent(LiveAccountDisabled, id, "", nil)); err != nil {
				return err
			}
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
