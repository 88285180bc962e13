package auth

import (
	"context"

	"github.com/google/uuid"

	"github.com/authql/authql/models"
)

// Sessions returns the principal's active sessions (neither revoked nor
// expired), most recently used first.
func (s *Service) Sessions(ctx context.Context, p *Principal) ([]*models.Session, error) {
	return models.ActiveSessions(ctx, s.db, p.UserID, s.now())
}

// RevokeSession ends the principal's session id as Logout ends one: its
// refresh tokens stop working, and its access tokens are refused at once
// here and, through the revocation's notification, on the other replicas.
// It returns true when this call ended the session and false when it had
// ended already; NotFound when id is not one of the principal's sessions.
// Revoking the session of the request itself is a logout: the refresh
// cookie is cleared too.
func (s *Service) RevokeSession(ctx context.Context, p *Principal, id string) (revoked bool, err error) {
	parsed, perr := uuid.Parse(id)
	if perr != nil {
		// Not a session id at all; nothing of it is worth recording.
		s.audit(ctx, event{typ: models.AuditSessionRevoked, err: models.ErrSessionNotFound, userID: p.UserID})
		return false, models.ErrSessionNotFound
	}
	id = parsed.String()
	now := s.now()
	revoked, until, err := models.RevokeSession(ctx, s.db, p.UserID, id, s.revocation(now))
	if err != nil {
		s.audit(ctx, event{typ: models.AuditSessionRevoked, err: err, userID: p.UserID, sessionID: id})
		return false, err
	}
	if revoked {
		s.revs.add(until, id)
	}
	if id == p.SessionID {
		// As Logout: the caller's own session is refused here at once
		// even if it had been revoked already elsewhere.
		s.revs.add(s.revokeOwn(now, p), id)
	}
	if revoked {
		s.audit(ctx, event{typ: models.AuditSessionRevoked, userID: p.UserID, sessionID: id})
	}
	if id == p.SessionID {
		s.clearRefreshCookie(ctx)
	}
	return revoked, nil
}
