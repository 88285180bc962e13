package auth

import (
	"context"
	"sync"
	"time"

	"github.com/authql/authql/models"
)

// Principal is the authenticated caller of a request: the subject of a
// valid, unrevoked access token.
type Principal struct {
	UserID    string
	SessionID string
	TokenID   string
	Roles     []string
	ExpiresAt time.Time
}

// Client describes where a request came from; it is recorded on sessions.
type Client struct {
	IP        string
	UserAgent string
}

type ctxKey int

const (
	principalKey ctxKey = iota
	clientKey
	cookieKey
)

// authResult is what the middleware learned about the request's token.
type authResult struct {
	principal *Principal
	err       error // why there is no principal
}

// errNoToken is the reason given when a request carries no access token.
var errNoToken = models.Unauthenticatedf(models.ReasonNoToken, "authentication required")

// PrincipalFrom returns the request's principal or, when there is none, an
// Unauthenticated error saying why.
func PrincipalFrom(ctx context.Context) (*Principal, error) {
	// A type switch on the value: the HTTP path stays as it was (no
	// allocation, no lock); a socket's holder is read under its lock.
	switch r := ctx.Value(principalKey).(type) {
	case authResult:
		return r.principal, r.err
	case *SocketPrincipal:
		return r.get()
	}
	return nil, errNoToken
}

// ClientFrom returns the request's client, or the zero Client.
func ClientFrom(ctx context.Context) Client {
	switch c := ctx.Value(clientKey).(type) {
	case *requestClient:
		return c.get()
	case Client:
		return c
	}
	return Client{}
}

// revocations is the in-memory set of revoked session and token ids, each
// kept until every access token it could match has expired. Checking it
// costs no database round trip.
type revocations struct {
	mu  sync.RWMutex
	ids map[string]time.Time
}

func (rv *revocations) revoked(ids ...string) bool {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	for _, id := range ids {
		if _, ok := rv.ids[id]; ok {
			return true
		}
	}
	return false
}

func (rv *revocations) add(until time.Time, ids ...string) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	for _, id := range ids {
		if until.After(rv.ids[id]) {
			rv.ids[id] = until
		}
	}
}

// merge adds the loaded revocations and drops those expired by now.
func (rv *revocations) merge(loaded map[string]time.Time, now time.Time) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	for id, until := range loaded {
		if until.After(rv.ids[id]) {
			rv.ids[id] = until
		}
	}
	for id, until := range rv.ids {
		if !until.After(now) {
			delete(rv.ids, id)
		}
	}
}

func (rv *revocations) len() int {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	return len(rv.ids)
}
