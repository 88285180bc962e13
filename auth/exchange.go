package auth

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/authql/authql/models"
)

// DefaultExchangeTTL is the longest an exchanged token lives
// (AUTH_EXCHANGE_TTL): short, since a downstream service holds it where
// authql cannot see, and the caller can always exchange again.
const DefaultExchangeTTL = 5 * time.Minute

// Bounds of exchangeToken's arguments: every request's cost is bounded.
const (
	maxExchangeScopes   = 256
	maxScopeLen         = 128
	maxAudienceLen      = 256
	exchangeAuditDetail = 1024
)

// Exchanged is a token for one downstream audience.
type Exchanged struct {
	AccessToken string
	ExpiresIn   int // seconds
	Audience    string
	Scope       []string // sorted
}

// ExchangeToken issues the principal a short-lived access token for one
// downstream audience (RFC 8693 in spirit), so that a token held by one
// service is refused by every other, authql included (its aud is not
// authql's). The token has the caller's sub and sid (revoking the session
// revokes it), the user's current roles, how the session authenticated
// (acr, amr, auth_time as the session is now), client_id, scope (scope
// given, or all the user's current permissions when nil), a new jti, and
// expires with the caller's token or after Config.ExchangeTTL, whichever
// is first.
//
// BadUserInput for an audience not in Config.Audiences (authql's own
// among them) or arguments past their bounds; Forbidden naming the first
// permission of scope the user lacks; Unauthenticated (TOKEN_REVOKED) when
// the session has ended or the account is gone or disabled; RateLimited
// past Limits.Refresh per user (each call signs a token and writes an
// audit row).
func (s *Service) ExchangeToken(ctx context.Context, p *Principal, audience string, scope []string) (x *Exchanged, err error) {
	if err := s.checkExchange(audience, scope); err != nil {
		return nil, err
	}
	now := s.now()
	if _, err := s.takeFor(ctx, now, p.UserID, []string{s.limitKey("exchange", p.UserID)}, []Rate{s.cfg.Limits.Refresh}); err != nil {
		return nil, err
	}
	defer func() {
		detail := "audience " + audience
		if x != nil {
			detail += " scope " + strings.Join(x.Scope, " ")
		}
		s.audit(ctx, event{typ: models.AuditTokenExchanged, err: err, userID: p.UserID, sessionID: p.SessionID, detail: truncate(detail, exchangeAuditDetail)})
	}()
	u, err := s.user(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	if u.Disabled() {
		return nil, errDisabled
	}
	granted, err := s.grantedScope(u.User, scope)
	if err != nil {
		return nil, err
	}
	// Read, not taken from the token: the session must still be live, and
	// its level is what it is now (a reauthenticate raised it, say).
	sess, err := models.SessionAuthn(ctx, s.db, p.UserID, p.SessionID, now)
	if err != nil {
		return nil, err
	}
	sub, err := s.subject(ctx, u.User, sess)
	if err != nil {
		return nil, err
	}
	sub.Audience, sub.Scope = audience, strings.Join(granted, " ")
	// At most the caller's own token's life: an exchange must not extend
	// what the caller holds. On a socket p.ExpiresAt is the exp of the
	// token the socket itself proved, never the session's (which the
	// victim's refreshes over HTTP move on): a stolen token must not act
	// past its exp through a socket those refreshes keep alive.
	ttl := min(p.ExpiresAt.Sub(now.Truncate(time.Second)), s.exchangeTTL())
	if ttl <= 0 {
		return nil, errTokenExpired
	}
	token, _, err := s.signer.IssueAt(now, sub, ttl)
	if err != nil {
		return nil, err
	}
	return &Exchanged{AccessToken: token, ExpiresIn: int(ttl / time.Second), Audience: audience, Scope: granted}, nil
}

// checkExchange refuses, before anything is counted or read, arguments
// past their bounds and an audience not allowed.
func (s *Service) checkExchange(audience string, scope []string) error {
	switch {
	case len(audience) > maxAudienceLen:
		return models.Errorf(models.BadUserInput, "audience is over %d bytes", maxAudienceLen)
	case len(scope) > maxExchangeScopes:
		return models.Errorf(models.BadUserInput, "scope lists over %d permissions", maxExchangeScopes)
	case audience == s.cfg.Audience || !slices.Contains(s.cfg.Audiences, audience):
		// authql's own audience is never one: a token exchanged for
		// authql would be a second access token outside the session's
		// rotation, for as long as the caller's.
		return models.Errorf(models.BadUserInput, "audience not allowed: it must be one of AUTH_AUDIENCES")
	}
	for _, p := range scope {
		if len(p) > maxScopeLen || p == "" || strings.ContainsAny(p, " \t\r\n") {
			return models.Errorf(models.BadUserInput, "scope holds a value that is not a permission name")
		}
	}
	return nil
}

// grantedScope is scope, sorted and without duplicates, when the user's
// current roles grant every permission of it (all of them when scope is
// nil), or Forbidden naming the first one they do not.
func (s *Service) grantedScope(u *models.User, scope []string) ([]string, error) {
	held := s.Permissions(u)
	if scope == nil {
		return held, nil
	}
	want := slices.Clone(scope)
	slices.Sort(want)
	want = slices.Compact(want)
	for _, p := range want {
		if _, ok := slices.BinarySearch(held, p); !ok {
			return nil, models.Errorf(models.Forbidden, "the permission %q is not yours to grant", p)
		}
	}
	return want, nil
}

// exchangeTTL is Config.ExchangeTTL or its default.
func (s *Service) exchangeTTL() time.Duration {
	if s.cfg.ExchangeTTL > 0 {
		return s.cfg.ExchangeTTL
	}
	return DefaultExchangeTTL
}
