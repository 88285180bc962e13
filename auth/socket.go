package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/models"
)

// SocketPrincipal is the principal of a websocket: set when its
// connection_init is authenticated, replaced by authenticateSocket, and
// read by every operation the socket runs (PrincipalFrom). An HTTP
// request's principal is fixed for the request; a socket's changes while
// it is open, hence the holder.
type SocketPrincipal struct {
	mu      sync.RWMutex
	p       *Principal
	revoked func(ids ...string) bool
	// refusing reports whether the replica is out of sync (syncState).
	refusing func() bool
}

// Set makes p the socket's principal.
func (h *SocketPrincipal) Set(p *Principal) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.p = p
}

// Get returns the socket's principal, nil before its connection_init.
func (h *SocketPrincipal) Get() *Principal {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.p
}

// get is PrincipalFrom's view: a socket whose session or token was revoked
// since it authenticated is refused at its next operation, on this replica
// as soon as the revocation is applied, even before the socket is closed.
// While the replica is out of sync, every operation is refused as every
// request is (see Authenticate): a socket opened before must not run on
// what this replica cannot know was revoked elsewhere.
func (h *SocketPrincipal) get() (*Principal, error) {
	p := h.Get()
	if p == nil {
		return nil, errNoToken
	}
	if h.refusing != nil && h.refusing() {
		return nil, errUnsynced
	}
	if h.revoked != nil && h.revoked(p.SessionID, p.TokenID) {
		return nil, errTokenRevoked
	}
	return p, nil
}

// SocketContext returns the context of a websocket's upgrade request with
// an empty principal holder (see SocketPrincipal) and the request's client.
// Unlike Middleware it reads no Authorization header and no cookie: a
// socket's token comes only from its connection_init (a browser cannot set
// headers on a websocket, and a cookie would let any page the user visits
// open one in their name).
func (s *Service) SocketContext(r *http.Request) (context.Context, *SocketPrincipal) {
	h := &SocketPrincipal{revoked: s.revs.revoked, refusing: s.sync.refusing}
	ctx := context.WithValue(r.Context(), principalKey, h)
	ctx = context.WithValue(ctx, clientKey, &requestClient{r: r, trusted: s.cfg.TrustedProxies})
	return ctx, h
}

// BearerToken returns the token of an Authorization value "Bearer <token>".
func BearerToken(h string) (string, bool) { return bearerToken(h) }

// SessionAccessExpiry returns how long userID's session sessionID may be
// used with the access tokens issued for it: the latest expiry of one of
// them (see models.Session.AccessExpiresAt), moved on by each refresh. A
// session revoked, expired or unknown is Unauthenticated (TOKEN_REVOKED).
func (s *Service) SessionAccessExpiry(ctx context.Context, userID, sessionID string) (time.Time, error) {
	if s.revs.revoked(sessionID) {
		return time.Time{}, errTokenRevoked
	}
	sess, err := models.SessionOf(ctx, s.db, userID, sessionID)
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return time.Time{}, errTokenRevoked
	} else if err != nil {
		return time.Time{}, err
	}
	if sess.RevokedAt != nil || !sess.ExpiresAt.After(s.now()) || sess.AccessExpiresAt == nil {
		return time.Time{}, errTokenRevoked
	}
	return *sess.AccessExpiresAt, nil
}

// SocketRefusal names how a socket's token was refused: "revoked" (the
// session ended: the client must not retry with it), "unavailable" (this
// replica is out of sync: retry later), or "token" (missing, invalid or
// expired: refresh and reconnect).
func SocketRefusal(err error) string {
	switch {
	case models.Reason(err) == models.ReasonTokenRevoked, errors.Is(err, errDisabled):
		return "revoked"
	case errors.Is(err, errUnsynced):
		return "unavailable"
	}
	return "token"
}

// InitAuthorization finds the Authorization value of a connection_init
// payload; the key is case-insensitive, as an HTTP header name is.
func InitAuthorization(payload map[string]any) string {
	for k, v := range payload {
		if s, ok := v.(string); ok && strings.EqualFold(k, "authorization") {
			return s
		}
	}
	return ""
}
