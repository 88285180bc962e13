package auth

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

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

// HasRole reports whether the principal has the (lower-case) role.
func (p *Principal) HasRole(role string) bool {
	for _, r := range p.Roles {
		if r == role {
			return true
		}
	}
	return false
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
var errNoToken = models.Errorf(models.Unauthenticated, "authentication required")

// PrincipalFrom returns the request's principal or, when there is none, an
// Unauthenticated error saying why.
func PrincipalFrom(ctx context.Context) (*Principal, error) {
	r, ok := ctx.Value(principalKey).(authResult)
	if !ok {
		return nil, errNoToken
	}
	return r.principal, r.err
}

// WithPrincipal returns ctx carrying p (for callers outside HTTP, such as
// tests and jobs).
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey, authResult{principal: p})
}

// ClientFrom returns the request's client, or the zero Client.
func ClientFrom(ctx context.Context) Client {
	c, _ := ctx.Value(clientKey).(Client)
	return c
}

// Middleware authenticates the bearer token of each request and records the
// outcome in the request context. It never rejects a request: a missing,
// expired or invalid token fails only the fields that require
// authentication (through the @auth directive), so that public operations
// such as login and refresh keep working for a client holding a stale
// token, which is how it recovers. With cookie sessions on it also reads
// the refresh cookie and checks the request's Origin, once per request.
func (s *Service) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var res authResult
		if token, ok := bearerToken(r.Header.Get("Authorization")); ok {
			res.principal, res.err = s.Authenticate(token)
		} else if r.Header.Get("Authorization") != "" {
			res.err = models.Errorf(models.Unauthenticated, "malformed Authorization header: expected \"Bearer <token>\"")
		} else {
			res.err = errNoToken
		}
		ctx = context.WithValue(ctx, principalKey, res)
		ctx = context.WithValue(ctx, clientKey, Client{IP: clientIP(r, s.cfg.TrustedProxies), UserAgent: truncate(r.UserAgent(), 512)})
		if s.cfg.RefreshCookie {
			ctx = context.WithValue(ctx, cookieKey, s.readCookie(w, r))
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header; the scheme is case-insensitive (RFC 9110 §11.1).
func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// truncate returns a header's value as it may be stored or logged: valid
// UTF-8 of at most n bytes, cut between characters, never inside one, with
// bytes that are not UTF-8 and control characters (NUL among them) each
// replaced by U+FFFD. A client chooses these bytes: PostgreSQL refuses
// invalid UTF-8 and NUL in text, which failed the sign-in with an internal
// error after its password had been checked.
func truncate(s string, n int) string {
	if len(s) > 4*n {
		s = s[:4*n] // bounds the work below; the cut tail goes anyway
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return utf8.RuneError
		}
		return r // including the RuneError of each invalid byte
	}, s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
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
