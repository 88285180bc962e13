package auth

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/authql/authql/auth/keys"
	"github.com/authql/authql/models"
)

// DefaultMaxSessions is the bound on a user's live sessions when
// Config.MaxSessions is zero.
const DefaultMaxSessions = 50

// MaxSessions is the bound on a user's live sessions, and on the sessions
// Sessions returns. The server reads it from its configuration: this
// exists for the HTTP scenario tests (package httpapi_test), which an
// export_test.go in auth cannot serve.
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

// Grant is what a successful register, login or refresh returns.
type Grant struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    int // seconds until the access token expires
	User         *models.User
	SessionID    string
}

// sessionID is g's session, or "" for no grant.
func (g *Grant) sessionID() string {
	if g == nil {
		return ""
	}
	return g.SessionID
}

// startSession creates a session for u and signs it in; login, when set,
// is stamped on the user in the same transaction. Past Config.MaxSessions
// the user's least recently used sessions end in that transaction too.
func (s *Service) startSession(ctx context.Context, u *models.User, login *models.LoginStamp) (*Grant, error) {
	ns, token := s.newSession(ctx, login)
	ns.Session.UserID = u.ID
	evicted, err := models.CreateSession(ctx, s.db, ns)
	if err != nil {
		return nil, err
	}
	s.sessionsEvicted(ctx, u.ID, evicted)
	return s.grant(ctx, u, ns.Session, token, ns.Session.CreatedAt)
}

// newSession returns the rows of a new session starting now for the
// request's client (its UserID left for the caller) and its refresh token.
func (s *Service) newSession(ctx context.Context, login *models.LoginStamp) (*models.NewSession, string) {
	now, c := s.now(), ClientFrom(ctx)
	token, hash := newRefreshToken()
	accessExp := now.Add(s.cfg.AccessTTL)
	// A password session until the caller says otherwise (see
	// startSession's callers for second factors and passkeys).
	sess := &models.Session{
		ID:        uuid.NewString(),
		CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL),
		UserAgent: c.UserAgent, IP: c.IP,
		AccessExpiresAt: &accessExp,
		Aal:             models.AalOne, Amr: models.AmrPassword, AuthTime: &now,
	}
	rt := &models.RefreshToken{ID: hash, SessionID: sess.ID, CreatedAt: now, ExpiresAt: sess.ExpiresAt}
	return &models.NewSession{Session: sess, Token: rt, Login: login, Max: s.cfg.MaxSessions, Revoke: s.revocation(now)}, token
}

// sessionsEvicted finishes what ending the user's sessions for the session
// limit began in the database: their access tokens are refused here at
// once (the other replicas learn of it from the revocations' events), and
// each is audited, as revokeSession would, with the reason in the detail.
func (s *Service) sessionsEvicted(ctx context.Context, userID string, evicted []models.Revoked) {
	for _, r := range evicted {
		s.revs.add(r.Until, r.ID)
		s.audit(ctx, event{typ: models.AuditSessionRevoked, userID: userID, sessionID: r.ID, detail: "session limit"})
	}
}

// grant signs u's session in: a new access token, issued at `at` (the time
// its session recorded, see models.Session's AccessExpiresAt), with the
// refresh token, which also goes into the refresh cookie when cookie
// sessions are on.
func (s *Service) grant(ctx context.Context, u *models.User, sess *models.Session, refreshToken string, at time.Time) (*Grant, error) {
	sub, err := s.subject(ctx, u, sess)
	if err != nil {
		return nil, err
	}
	access, _, err := s.signer.IssueAt(at, sub, s.cfg.AccessTTL)
	if err != nil {
		return nil, err
	}
	s.setRefreshCookie(ctx, refreshToken)
	return &Grant{AccessToken: access, RefreshToken: refreshToken, ExpiresIn: int(s.cfg.AccessTTL / time.Second), User: u, SessionID: sess.ID}, nil
}

// subject is whom the access tokens of u's session sess are for, with how
// the session last authenticated, the client, the user's permissions as
// scope and whether the user has a second factor (aal_max).
func (s *Service) subject(ctx context.Context, u *models.User, sess *models.Session) (keys.Subject, error) {
	aalMax, err := s.aalMax(ctx, u.ID, sess)
	if err != nil {
		return keys.Subject{}, err
	}
	return keys.Subject{
		UserID: u.ID, SessionID: sess.ID, Roles: u.RoleNames(),
		ACR: acr(sess.Aal), AMR: sess.Methods(), AuthTime: sess.AuthenticatedAt(),
		ClientID: s.clientID(), Scope: strings.Join(s.Permissions(u), " "), AalMax: aalMax,
	}, nil
}

// clientID is the access tokens' client_id: Config.ClientID, else the
// issuer (one authql serves one client of its own).
func (s *Service) clientID() string {
	if s.cfg.ClientID != "" {
		return s.cfg.ClientID
	}
	return s.cfg.Issuer
}

// aalMax is the aal_max claim: "aal2" when the user has a second factor.
// A session at level 2 proves one without a query (should the user have
// removed every factor since, the claim says aal2 of a session that is at
// level 2 anyway: a downstream @auth(aal: 2) lets it through either way).
// Otherwise the user cache knows once it has asked, so that a refresh, the
// hot path, pays no query in the steady state; a change of factors drops
// the entry here and, published in its transaction, on every replica
// (models.ConfirmTotp and the other flows that add or remove one).
//
// The entry is taken before the query: a change committing meanwhile drops
// it after its commit, so a stale answer stored into it is dropped too.
func (s *Service) aalMax(ctx context.Context, userID string, sess *models.Session) (string, error) {
	if sess.Aal >= models.AalTwo {
		return "aal2", nil
	}
	cu := s.users.get(userID)
	if cu != nil {
		switch cu.mfa.Load() {
		case mfaSome:
			return "aal2", nil
		case mfaNone:
			return "aal1", nil
		}
	}
	m, err := models.UserMfaMethods(ctx, s.db, userID)
	if err != nil {
		return "", err
	}
	state, claim := mfaNone, "aal1"
	if m.Any() {
		state, claim = mfaSome, "aal2"
	}
	if cu != nil {
		cu.mfa.Store(state)
	}
	return claim, nil
}

// acr is the "acr" claim of a session at level aal.
func acr(aal int) string {
	if aal >= models.AalTwo {
		return "aal2"
	}
	return "aal1"
}

// revocation describes a revocation made now: it lasts until every access
// token of the session has expired, clock skew included. The session
// records the latest expiry it issued; the current lifetime (now +
// AccessTTL) is the least, for sessions that recorded none (made before
// it was recorded, or by an older replica) and for a token issued by a
// rotation racing the revocation; a token issued under a longer lifetime
// before a restart must stay refused as long as it lives.
func (s *Service) revocation(now time.Time) models.Revoke {
	return models.Revoke{At: now, For: s.cfg.AccessTTL + MaxClockSkew, Skew: MaxClockSkew}
}

// revokeUntil is how long a revocation made now must be kept when nothing
// is known of the session's tokens: an event from a replica that did not
// say.
func (s *Service) revokeUntil(now time.Time) time.Time {
	return s.revocation(now).Until(nil)
}

// revokeOwn is how long the request's own session is refused here when
// its revocation was not made by this call (it had ended already): at
// least as long as the principal's token lives.
func (s *Service) revokeOwn(now time.Time, p *Principal) time.Time {
	exp := p.ExpiresAt
	return s.revocation(now).Until(&exp)
}

// Logout revokes the principal's session, or every session of its user,
// with their refresh and access tokens, and clears the refresh cookie when
// cookie sessions are on.
func (s *Service) Logout(ctx context.Context, p *Principal, allSessions bool) (err error) {
	now := s.now()
	sessionID, detail := p.SessionID, ""
	if allSessions {
		sessionID, detail = "", "all"
	}
	defer func() {
		s.audit(ctx, event{typ: models.AuditLogout, err: err, userID: p.UserID, sessionID: p.SessionID, detail: detail})
	}()
	revoked, err := models.RevokeSessions(ctx, s.db, p.UserID, sessionID, s.revocation(now))
	if err != nil {
		return err
	}
	for _, r := range revoked {
		s.revs.add(r.Until, r.ID)
	}
	// The caller's own session is revoked even if it was already, so that
	// its access token stops working on this replica at once.
	s.revs.add(s.revokeOwn(now, p), p.SessionID)
	s.clearRefreshCookie(ctx)
	return nil
}
