package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// Raise is a step-up of a live session: a reauthentication, or the first
// factor confirmed from it.
type Raise struct {
	UserID, SessionID string
	// Aal, Amr and At are what the session proved now: its level becomes
	// the higher of Aal and its own (800-63B §4.2.3: a reauthentication of
	// a level-2 session may use one factor), its methods Amr, its
	// auth_time At.
	Aal int
	Amr string
	At  time.Time
	// TokenHash is the session's new refresh token: every other token of
	// the session is deleted, so that one copied before the step-up does
	// not continue the raised session.
	TokenHash      string
	TTL, AccessTTL time.Duration
	// Mfa, when set, is spent in the same transaction.
	Mfa *MfaUse
	// SignOutOthers revokes the user's other sessions (Revoke says for how
	// long; its At is the raise's time).
	SignOutOthers bool
	Revoke        Revoke
	// Apply, when set, makes further changes in the same transaction (the
	// factor confirmed, the recovery codes stored).
	Apply func(tx *gorm.DB) error
	// Mails are queued with the change.
	Mails []*OutboxMail
}

// errSessionBusy refuses a raise while a refresh of the session holds its
// token (see deleteTokensHeld), a few times in a row.
var errSessionBusy = &Error{Code: RateLimited, Message: "the session is being refreshed; try again", RetryAfter: time.Second}

// RaiseSession applies r in one transaction and returns the session as it
// now is, with the sessions revoked. It returns Unauthenticated when the
// session ended, ErrMfaSpent or ErrChallengeInvalid when r.Mfa was spent
// meanwhile, and RateLimited while a refresh of the session holds its
// token.
func RaiseSession(ctx context.Context, db *gorm.DB, r Raise) (_ *Session, revoked []Revoked, err error) {
	defer Wrap(&err, "RaiseSession(%q)", r.SessionID)
	var s *Session
	raise := func(tx *gorm.DB) error {
		revoked = nil
		if r.Mfa != nil {
			if err := spendMfa(tx, r.Mfa); err != nil {
				return err
			}
		}
		if r.Apply != nil {
			if err := r.Apply(tx); err != nil {
				return err
			}
		}
		// The session's tokens replaced, as a password change replaces
		// them (and in the same lock order as a refresh).
		var err error
		s, err = replaceSessionTokens(tx, PasswordChange{
			UserID: r.UserID, SessionID: r.SessionID, TokenHash: r.TokenHash,
			TTL: r.TTL, AccessTTL: r.AccessTTL, Revoke: Revoke{At: r.At},
		})
		if err != nil {
			return err
		}
		aal := max(s.Aal, r.Aal)
		if err := tx.Model(&Session{}).Where("id = ?", s.ID).
			Updates(map[string]any{"aal": aal, "amr": r.Amr, "auth_time": r.At}).Error; err != nil {
			return err
		}
		s.Aal, s.Amr, s.AuthTime = aal, r.Amr, &r.At
		if r.SignOutOthers {
			others, err := revokeSessions(tx, tx.Where("user_id = ? AND id <> ?", r.UserID, r.SessionID), r.Revoke)
			if err != nil {
				return err
			}
			revoked = others
		}
		return EnqueueMail(tx, r.Mails...)
	}
	for range 3 {
		err = transactRetrying(ctx, db, raise)
		if pgCode(err) != "55P03" { // lock_not_available: see deleteTokensHeld
			break
		}
	}
	if pgCode(err) == "55P03" {
		return nil, nil, errSessionBusy
	}
	if err != nil {
		return nil, nil, err
	}
	return s, revoked, nil
}
