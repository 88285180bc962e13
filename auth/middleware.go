package auth

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/authql/authql/auth/keys"
	"github.com/authql/authql/models"
)

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
			res.principal, res.err = s.Authenticate(ctx, token)
		} else if r.Header.Get("Authorization") != "" {
			res.err = models.Unauthenticatedf(models.ReasonTokenInvalid, "malformed Authorization header: expected \"Bearer <token>\"")
		} else {
			res.err = errNoToken
		}
		ctx = context.WithValue(ctx, principalKey, res)
		ctx = context.WithValue(ctx, clientKey, &requestClient{r: r, trusted: s.cfg.TrustedProxies})
		if s.cfg.RefreshCookie {
			ctx = context.WithValue(ctx, cookieKey, s.readCookie(w, r))
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// requestClient is a request's Client, worked out at its first use: most
// requests (`me` above all) never ask where they came from, and parsing
// X-Forwarded-For and cleaning the User-Agent on each was a few percent of
// their CPU. Root fields resolve concurrently, hence the Once.
type requestClient struct {
	r       *http.Request
	trusted []netip.Prefix
	once    sync.Once
	c       Client
}

func (rc *requestClient) get() Client {
	rc.once.Do(func() {
		rc.c = Client{IP: clientIP(rc.r, rc.trusted), UserAgent: truncate(rc.r.UserAgent(), 512)}
	})
	return rc.c
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

// Authenticate verifies an access token and returns its principal. It
// returns Unauthenticated for an invalid, expired or revoked token, and
// ServiceUnavailable for every token while the service has been out of
// sync with other replicas for longer than Config.SyncTimeout. ctx is the
// request's; the reload of the key store that an unknown key id triggers
// keeps its values but is not cancelled with it (see keys.Signer.Verify).
func (s *Service) Authenticate(ctx context.Context, token string) (*Principal, error) {
	if s.sync.refusing() {
		// Another replica may have revoked this token, or changed its
		// user's roles, and this one cannot know: better no answer than
		// one that ignores a logout made elsewhere.
		return nil, errUnsynced
	}
	keyVersion := s.signer.Keys().Version()
	v, ok := s.tokens.get(token, keyVersion)
	if !ok {
		c, err := s.signer.Verify(ctx, token)
		if errors.Is(err, keys.ErrTokenExpired) {
			return nil, errTokenExpired
		} else if err != nil {
			return nil, errTokenInvalid
		}
		v = verifiedToken{
			p:          &Principal{UserID: c.Subject, SessionID: c.SessionID, TokenID: c.ID, Roles: c.Roles, ExpiresAt: c.ExpiresAt.Time},
			keyVersion: keyVersion,
			keyUntil:   c.KeyUntil(),
		}
		s.tokens.put(token, v)
	} else if now := s.now(); now.After(v.p.ExpiresAt.Add(MaxClockSkew)) {
		// The same expiry, with the same leeway, that Verify applies.
		return nil, errTokenExpired
	} else if !v.keyUntil.IsZero() && now.After(v.keyUntil) {
		return nil, errTokenInvalid
	}
	p := v.p
	if s.revs.revoked(p.SessionID, p.TokenID) {
		return nil, errTokenRevoked
	}
	return p, nil
}

var (
	errTokenExpired = models.Unauthenticatedf(models.ReasonTokenExpired, "access token expired")
	errTokenInvalid = models.Unauthenticatedf(models.ReasonTokenInvalid, "invalid access token")
	errTokenRevoked = models.Unauthenticatedf(models.ReasonTokenRevoked, "access token revoked")
)
