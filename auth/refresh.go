package auth

import (
	"context"
	"time"

	"github.com/authql/authql/models"
)

// Refresh exchanges a refresh token for a new pair in the same session,
// with the user's current roles, and sets the refresh cookie when cookie
// sessions are on (as Register and Login do). An already rotated token
// presented again gets a new pair within the reuse interval (tabs), and
// later too when none of its successors was ever used (a retry after a
// lost answer: the unused successors are spent); any other presentation
// of a superseded token revokes the session (see
// models.RotateRefreshToken). A disabled account's token is refused. Every
// failure is Unauthenticated, except
// ServiceUnavailable while the audit log cannot take its record (see
// auditRoom) or the database is down.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (_ *Grant, err error) {
	if err := s.auditRoom(); err != nil {
		return nil, err
	}
	now := s.now()
	if _, err := s.take(ctx, now, []string{s.limitKey("refresh", ClientFrom(ctx).limitKey())}, []Rate{s.cfg.Limits.Refresh}); err != nil {
		return nil, err
	}
	var rot models.Rotation
	defer func() { s.auditRefresh(ctx, rot, err) }()
	if !wellFormedRefreshToken(refreshToken) {
		return nil, models.ErrInvalidRefresh
	}
	token, hash := newRefreshToken()
	// The rotation reads the clock itself, once it holds what it changes:
	// a refresh that waited for the database must not start its grace
	// interval, nor end its session, that much early.
	rot, err = models.RotateRefreshToken(ctx, s.db, models.Rotate{
		OldHash: hashRefreshToken(refreshToken), NewHash: hash, Now: s.now,
		TTL: s.cfg.RefreshTTL, AccessTTL: s.cfg.AccessTTL, ReuseInterval: s.cfg.ReuseInterval,
		Revoke: s.revocation(time.Time{}),
	})
	if err != nil {
		return nil, err
	}
	if rot.Reuse {
		// A superseded token presented again, neither concurrently with
		// its rotation nor as a retry, means two parties hold the
		// session's tokens: one of them stole it. Revoking the whole
		// session stops both, the thief included.
		s.revs.add(rot.RevokedUntil, rot.Session.ID)
		s.log.WarnContext(ctx, "refresh token reuse: session revoked", "session", rot.Session.ID, "ip", ClientFrom(ctx).IP)
		return nil, models.Unauthenticatedf(models.ReasonRefreshTokenReused, "refresh token already used; the session has been revoked")
	}
	u, err := s.user(ctx, rot.Session.UserID)
	if err != nil {
		return nil, err
	}
	if u.Disabled() {
		// Disabling revoked the session; this catches a rotation that
		// raced it, and any session a sign-in started meanwhile.
		return nil, errDisabled
	}
	return s.grant(ctx, u.User, rot.Session, token, rot.At)
}
