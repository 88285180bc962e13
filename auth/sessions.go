package auth

import (
	"context"

	"github.com/google/uuid"

	"github.com/authql/authql/models"
)

// DefaultMaxSessions is the bound on a user's live sessions when
// Config.MaxSessions is zero.
const DefaultMaxSessions = 50

// MaxSessions is the bound on a user's live sessions, and on the sessions
// Sessions returns.
func (s *Service) MaxSessions() int { return s.cfg.MaxSessions }

// Sessions returns the principal's active sessions (neither revoked nor
// expired), most recently used first: at most MaxSessions, so that the
// list's cost is bounded even for a user who held more before the bound
// was lowered.
func (s *Service) Sessions(ctx context.Context, p *Principal) ([]*models.Session, error) {
	return models.ActiveSessions(ctx, s.db, p.UserID, s.now(), s.cfg.MaxSessions)
}

// RevokeSession ends the principal's session id as Logout ends one: its
// refresh tokens stop working, and its access tokens are refused at once
// here and, through the revocation's notification, on the other replicas.
// It returns true when this call ended the session and false when it had
// ended already; NotFound when id is not one of the principal's sessions.
// Revoking the session of the request itself is a logout: the refresh
// cookie is cleared too.
func (s *Service) RevokeSession(ctx context.Context, p *Principal, id string) (revoked bool, err error) {
	// Every failure is an audit row: a script trying ids in a loop is
	// limited per user, and its refusals coalesced (see limitFailures).
	done, err := s.limitFailures(ctx, p.UserID)
	if err != nil {
		return false, err
	}
	defer func() { done(err) }()
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
