package models

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

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
	// Restart is the session to start instead, when the caller's cannot be
	// continued: a refresh of it was in flight (see ChangePassword).
	Restart *NewSession
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
// queues c.Mails. It returns the session the new token belongs to and the
// sessions revoked.
//
// The caller's session goes on unless a refresh of it is in flight at the
// very moment, holding a token this cannot wait for (see
// deleteTokensHeld): then the change is made again, ending the caller's
// session and starting c.Restart in its place, so that a client looping on
// refresh (a thief keeping the session) cannot hold the change off.
//
// It returns ErrPasswordChanged when the stored hash is no longer
// c.OldHash or the account was disabled meanwhile, and Unauthenticated
// when the caller's session ended meanwhile.
func ChangePassword(ctx context.Context, db *gorm.DB, c PasswordChange) (_ *Session, revoked []Revoked, err error) {
	defer Wrap(&err, "ChangePassword(%q)", c.UserID)
	var s *Session
	restart := false
	change := func(tx *gorm.DB) error {
		revoked = nil
		res := tx.Model(&User{}).Where("id = ? AND password_hash = ? AND disabled_at IS NULL", c.UserID, c.OldHash).
			Updates(map[string]any{"password_hash": c.NewHash, "updated_at": c.Revoke.At})
		if res.Error != nil {
			return res.Error
		} else if res.RowsAffected == 0 {
			return ErrPasswordChanged
		}
		if err := RecordLive(tx, NewLiveEvent(LivePasswordChanged, c.UserID, "", nil)); err != nil {
			return err
		}
		var err error
		if restart {
			s, revoked, err = restartSession(tx, c)
		} else {
			s, err = replaceSessionTokens(tx, c)
		}
		if err != nil {
			return err
		}
		if c.SignOutOthers {
			others, err := revokeSessions(tx, tx.Where("user_id = ? AND id NOT IN ?", c.UserID, []string{c.SessionID, s.ID}), c.Revoke)
			if err != nil {
				return err
			}
			revoked = append(revoked, others...)
		}
		if err := Publish(tx, Event{Kind: EventUserChanged, ID: c.UserID}); err != nil {
			return err
		}
		return EnqueueMail(tx, c.Mails...)
	}
	err = transactRetrying(ctx, db, change)
	if pgCode(err) == "55P03" { // lock_not_available: see deleteTokensHeld
		restart = true
		err = transactRetrying(ctx, db, change)
	}
	if err != nil {
		return nil, nil, err
	}
	return s, revoked, nil
}

// replaceSessionTokens is ChangePassword's work on the caller's session:
// it slides the session as a rotation does, and replaces its refresh
// tokens with c.TokenHash. The session must be the user's and live.
//
// The tokens are deleted first, then the session updated, in the order a
// refresh locks them, so that a refresh in flight is waited for rather
// than deadlocked with; the token it may have added meanwhile is deleted
// by a second pass once the session is held (see deleteTokensHeld).
func replaceSessionTokens(tx *gorm.DB, c PasswordChange) (*Session, error) {
	at := c.Revoke.At
	if err := tx.Where("session_id = ?", c.SessionID).Delete(&RefreshToken{}).Error; err != nil {
		return nil, err
	}
	accessExp := at.Add(c.AccessTTL)
	var s Session
	res := tx.Model(&s).Clauses(clause.Returning{}).
		Where("id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?", c.SessionID, c.UserID, at).
		Updates(map[string]any{
			"last_used_at": at, "expires_at": at.Add(c.TTL),
			"access_expires_at": gorm.Expr("CASE WHEN access_expires_at IS NULL OR access_expires_at < ? THEN ? ELSE access_expires_at END", accessExp, accessExp),
		})
	if res.Error != nil {
		return nil, res.Error
	} else if res.RowsAffected == 0 {
		return nil, errSessionEnded
	}
	if err := deleteTokensHeld(tx, c.SessionID); err != nil {
		return nil, err
	}
	return &s, tx.Create(&RefreshToken{ID: c.TokenHash, SessionID: c.SessionID, CreatedAt: at, ExpiresAt: s.ExpiresAt}).Error
}

// errSessionEnded: the session under a still valid access token has ended
// (logged out, revoked): the token is as good as revoked.
var errSessionEnded = Unauthenticatedf(ReasonTokenRevoked, "the session has ended")

// restartSession ends the caller's session, as a logout would (its tokens
// go on existing, but no refresh continues a revoked session, and its
// access tokens are refused), and starts c.Restart for the user. The
// caller's session must be live.
func restartSession(tx *gorm.DB, c PasswordChange) (*Session, []Revoked, error) {
	revoked, err := revokeSessions(tx, tx.Where("id = ? AND user_id = ? AND expires_at > ?", c.SessionID, c.UserID, c.Revoke.At), c.Revoke)
	if err != nil {
		return nil, nil, err
	} else if len(revoked) == 0 {
		return nil, nil, errSessionEnded
	}
	c.Restart.Session.UserID = c.UserID
	if _, err := createSession(tx, c.Restart); err != nil {
		return nil, nil, err
	}
	return c.Restart.Session, revoked, nil
}

// deleteTokensHeld deletes the refresh tokens of the session, in a
// transaction that holds it (has updated its row).
//
// A refresh locks its token, then its session. A first pass, before the
// session was locked, deleted its tokens, waiting for any refresh in
// flight; but the token such a refresh committed meanwhile was not yet
// visible to it. This second pass deletes that one. It must not wait: a
// client refreshing again at once may be presenting that very token,
// holding it and waiting for the session this transaction holds, a
// deadlock. On PostgreSQL the tokens are locked NOWAIT instead, and if one
// is held the transaction fails at once (lock_not_available, see
// ChangePassword). On SQLite every write transaction holds the database's
// write lock from BEGIN, so nothing is in flight.
func deleteTokensHeld(tx *gorm.DB, sessionID string) error {
	tokens := "SELECT id FROM refresh_tokens WHERE session_id = ?"
	if tx.Dialector.Name() == string(Postgres) {
		tokens += " FOR UPDATE NOWAIT"
	}
	return tx.Exec("DELETE FROM refresh_tokens WHERE id IN ("+tokens+")", sessionID).Error
}

// transactRetrying runs f in a transaction, and again (up to three times
// in all) when PostgreSQL aborted it to break a deadlock (see DeleteUser
// for the rare case left).
func transactRetrying(ctx context.Context, db *gorm.DB, f func(tx *gorm.DB) error) error {
	for attempt := 1; ; attempt++ {
		err := db.WithContext(ctx).Transaction(f)
		if attempt < 3 && pgCode(err) == "40P01" { // deadlock_detected
			continue
		}
		return err
	}
}

// pgCode is the SQLSTATE of a PostgreSQL error, or "".
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
