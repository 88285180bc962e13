package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// ErrRequestSpent is the answer for a mailed request that cannot be used:
// unknown, expired, used already (perhaps by a concurrent call that won),
// dead after too many wrong codes, or no longer matching its account. One
// answer for all, so that it tells nothing of which.
var ErrRequestSpent = Errorf(BadUserInput, "invalid or expired link or code")

// CreateEmailRequest inserts r and the mails that carry its secrets in one
// transaction: a request is pending if and only if its mail is queued.
func CreateEmailRequest(ctx context.Context, db *gorm.DB, r *EmailRequest, mails ...*OutboxMail) (err error) {
	defer Wrap(&err, "CreateEmailRequest(%s)", r.ID)
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(r).Error; err != nil {
			return err
		}
		return EnqueueMail(tx, mails...)
	})
}

// CreateUnverifiedUser inserts u with roles, without a session, together
// with the verification request r and its mail: an account created while
// verified emails are required is never left without its verification
// mail. ErrEmailTaken when the email has an account.
func CreateUnverifiedUser(ctx context.Context, db *gorm.DB, u *User, roles []string, r *EmailRequest, mails ...*OutboxMail) (err error) {
	defer Wrap(&err, "CreateUnverifiedUser(%s)", u.ID)
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := insertUser(tx, u, roles); err != nil {
			return err
		}
		if err := tx.Create(r).Error; err != nil {
			return err
		}
		return EnqueueMail(tx, mails...)
	})
}

// QueueMail queues mails that belong to no request (notices) in a
// transaction of their own.
func QueueMail(ctx context.Context, db *gorm.DB, mails ...*OutboxMail) (err error) {
	defer Wrap(&err, "QueueMail")
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return EnqueueMail(tx, mails...) })
}

// PendingRequestByToken returns the pending request of kind whose token
// hashes to tokenHash, or ErrRequestSpent. A request without a user (a
// reset asked for an email without an account) is never returned.
func PendingRequestByToken(ctx context.Context, db *gorm.DB, kind, tokenHash string, now time.Time) (_ *EmailRequest, err error) {
	defer Wrap(&err, "PendingRequestByToken")
	return takeRequest(db.WithContext(ctx).
		Where("token_hash = ? AND kind = ? AND user_id IS NOT NULL", tokenHash, kind), now)
}

// PendingRequest returns the pending request of kind with the id (one of
// its users' or not), or ErrRequestSpent.
func PendingRequest(ctx context.Context, db *gorm.DB, kind, id string, now time.Time) (_ *EmailRequest, err error) {
	defer Wrap(&err, "PendingRequest(%q)", id)
	return takeRequest(db.WithContext(ctx).Where("id = ? AND kind = ?", id, kind), now)
}

func takeRequest(q *gorm.DB, now time.Time) (*EmailRequest, error) {
	var r EmailRequest
	err := q.Where("used_at IS NULL AND expires_at > ?", now).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrRequestSpent
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// CountCodeAttempt counts one attempt at the code of request id, before
// the code is compared, and reports whether the attempt may be checked: a
// request takes at most maxAttempts (then it is dead), and only while it
// is pending. One conditional UPDATE, so that concurrent guesses cannot
// all pass the bound: each one that may be checked has incremented the
// count first.
func CountCodeAttempt(ctx context.Context, db *gorm.DB, id string, maxAttempts int, now time.Time) (ok bool, err error) {
	defer Wrap(&err, "CountCodeAttempt(%q)", id)
	res := db.WithContext(ctx).Model(&EmailRequest{}).
		Where("id = ? AND failed_codes < ? AND used_at IS NULL AND expires_at > ?", id, maxAttempts, now).
		Update("failed_codes", gorm.Expr("failed_codes + 1"))
	return res.RowsAffected == 1, res.Error
}

// UncountCodeAttempt gives back the attempt CountCodeAttempt counted for a
// code that was right, so that failed_codes counts wrong codes only: a
// right code whose use then fails (a busy hashing pool, an outage) must
// not bring its request closer to death.
func UncountCodeAttempt(ctx context.Context, db *gorm.DB, id string) (err error) {
	defer Wrap(&err, "UncountCodeAttempt(%q)", id)
	return db.WithContext(ctx).Model(&EmailRequest{}).Where("id = ? AND failed_codes > 0", id).
		Update("failed_codes", gorm.Expr("failed_codes - 1")).Error
}

// useRequest spends request id in tx, or returns ErrRequestSpent when it
// is no longer pending. Conditional on used_at IS NULL, so that of two
// concurrent uses only one wins: the other's UPDATE waits for the first
// to commit and then matches nothing.
func useRequest(tx *gorm.DB, id string, now time.Time) error {
	res := tx.Model(&EmailRequest{}).
		Where("id = ? AND used_at IS NULL AND expires_at > ?", id, now).
		Update("used_at", now)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != 1 {
		return ErrRequestSpent
	}
	return nil
}

// PasswordReset is what ResetPassword changes.
type PasswordReset struct {
	Request *EmailRequest
	Hash    string // the new password's
	Revoke  Revoke // its At is now
	Notice  *OutboxMail
}

// ResetPassword spends the reset request, sets the user's password and
// marks the email verified (the request was mailed there), spends the
// user's other pending resets and email changes, ends every session of the
// user and queues the notice, all in one transaction; the session and user
// changes are published to the other replicas. ErrRequestSpent when the
// request was spent concurrently or the user's email is no longer the one
// it was mailed to.
func ResetPassword(ctx context.Context, db *gorm.DB, p PasswordReset) (revoked []Revoked, err error) {
	r, now := p.Request, p.Revoke.At
	defer Wrap(&err, "ResetPassword(%s)", r.ID)
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := useRequest(tx, r.ID, now); err != nil {
			return err
		}
		res := tx.Model(&User{}).Where("id = ? AND email = ?", *r.UserID, r.Email).
			Updates(map[string]any{"password_hash": p.Hash, "email_verified": true, "updated_at": now})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrRequestSpent
		}
		if err := RecordLive(tx, NewLiveEvent(LivePasswordChanged, *r.UserID, "", nil)); err != nil {
			return err
		}
		// A reset answers a lost or stolen password: every other way in
		// that a mail opened before it would give ends with it, an email
		// change asked for by whoever held the password among them.
		if err := tx.Model(&EmailRequest{}).
			Where("user_id = ? AND kind IN ? AND used_at IS NULL", *r.UserID, []string{RequestReset, RequestEmailChange}).
			Update("used_at", now).Error; err != nil {
			return err
		}
		if revoked, err = revokeSessions(tx, tx.Where("user_id = ?", *r.UserID), p.Revoke); err != nil {
			return err
		}
		if err := Publish(tx, Event{Kind: EventUserChanged, ID: *r.UserID}); err != nil {
			return err
		}
		return EnqueueMail(tx, p.Notice)
	})
	return revoked, err
}

// VerifyEmail spends the verification request and marks the user's email
// verified, if it is still the address the request was mailed to
// (otherwise ErrRequestSpent), publishing the change.
func VerifyEmail(ctx context.Context, db *gorm.DB, r *EmailRequest, now time.Time) (err error) {
	defer Wrap(&err, "VerifyEmail(%s)", r.ID)
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := useRequest(tx, r.ID, now); err != nil {
			return err
		}
		res := tx.Model(&User{}).Where("id = ? AND email = ?", *r.UserID, r.Email).
			Updates(map[string]any{"email_verified": true, "updated_at": now})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrRequestSpent
		}
		return Publish(tx, Event{Kind: EventUserChanged, ID: *r.UserID})
	})
}

// ChangeEmail spends the email-change request and sets the user's email to
// the request's, verified, publishing the change. When the address was
// taken meanwhile the request is spent all the same and ErrEmailTaken is
// returned: the request named an address that can no longer be had.
func ChangeEmail(ctx context.Context, db *gorm.DB, r *EmailRequest, now time.Time) (err error) {
	defer Wrap(&err, "ChangeEmail(%s)", r.ID)
	var taken bool
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := useRequest(tx, r.ID, now); err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&User{}).Where("email = ? AND id <> ?", r.Email, *r.UserID).Count(&n).Error; err != nil {
			return err
		}
		if taken = n > 0; taken {
			return nil // commit the spending alone
		}
		res := tx.Model(&User{}).Where("id = ?", *r.UserID).
			Updates(map[string]any{"email": r.Email, "email_verified": true, "updated_at": now})
		if errors.Is(res.Error, gorm.ErrDuplicatedKey) {
			// Taken by a registration that committed after the count:
			// the unique index has the last word. The transaction is
			// rolled back, so this request stays pending, and will find
			// the address taken when tried again.
			return ErrEmailTaken
		} else if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrRequestSpent // the account was deleted
		}
		if err := RecordLive(tx, NewLiveEvent(LiveEmailChanged, *r.UserID, "", nil)); err != nil {
			return err
		}
		return Publish(tx, Event{Kind: EventUserChanged, ID: *r.UserID})
	})
	if err == nil && taken {
		err = ErrEmailTaken
	}
	return err
}

// PurgeEmailRequests deletes the requests that can no longer be used:
// expired or spent. It returns how many it deleted.
func PurgeEmailRequests(ctx context.Context, db *gorm.DB, now time.Time) (n int64, err error) {
	defer Wrap(&err, "PurgeEmailRequests")
	res := db.WithContext(ctx).Where("expires_at <= ? OR used_at IS NOT NULL", now).Delete(&EmailRequest{})
	return res.RowsAffected, res.Error
}

// MailUser returns the id and email of the user with the (normalized)
// email, without its roles, or a NotFound error. One query whether or not
// the user exists, so that a flow asked about an email without an account
// takes the time of one with (UserByEmail loads roles in a second query,
// only when the user exists).
func MailUser(ctx context.Context, db *gorm.DB, email string) (_ *User, err error) {
	defer Wrap(&err, "MailUser")
	var u User
	err = db.WithContext(ctx).Select("id", "email").Where("email = ?", email).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, Errorf(NotFound, "user not found")
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}
