package auth

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/authql/authql/models"
)

// CookieName is the name of the refresh cookie of browser sessions.
const CookieName = "authql_refresh"

// CookiePath is the refresh cookie's Path: the browser sends it to the API
// only, never to pages or other paths of the same host.
const CookiePath = "/query"

// OriginAllowed reports whether origin (an Origin header) is one of
// Config.AllowedOrigins. The one list decides both CORS and which requests
// may use the refresh cookie, so the two cannot disagree.
func (s *Service) OriginAllowed(origin string) bool {
	return origin != "" && s.origins[strings.ToLower(origin)]
}

// cookieState is one request's refresh cookie: what the middleware read and
// decided about it, and the way resolvers set or clear it. Resolvers may run
// concurrently (several fields in one document), hence the mutex. gqlgen
// writes the response only after every resolver has returned, so headers
// set here are still in time.
type cookieState struct {
	w        http.ResponseWriter
	origin   string // the request's Origin header
	originOK bool   // the request's Origin is allowed
	token    string // the cookie's value, when usable
	err      error  // why there is no usable cookie

	mu   sync.Mutex
	sent string // the Set-Cookie value this request added, if any
}

// readCookie reads the refresh cookie of r once, for the whole request.
func (s *Service) readCookie(w http.ResponseWriter, r *http.Request) *cookieState {
	origin := r.Header.Get("Origin")
	c := &cookieState{w: w, origin: origin, originOK: s.OriginAllowed(origin)}
	cookies := r.CookiesNamed(CookieName)
	switch {
	case len(cookies) == 0:
		c.err = errNoCookie
	case origin == "":
		// A browser sends Origin with every cross-origin request and every
		// POST; without one we cannot tell a forged request from a real one,
		// so the cookie, which the browser attaches on its own, is not
		// trusted (CSRF).
		c.err = models.Errorf(models.Forbidden, "refresh by cookie refused: the request has no Origin header")
	case !c.originOK:
		// Any page can make the browser send a request that carries the
		// cookie; only the listed frontends may use it (CSRF).
		c.err = models.Errorf(models.Forbidden, "refresh by cookie refused: the request's Origin is not allowed")
	case len(cookies) > 1:
		// Only ours is host-only at Path=/query; another one was planted by
		// a sibling domain (cookie tossing) to swap in its own session.
		// Refuse rather than guess which is ours.
		c.err = models.Unauthenticatedf(models.ReasonRefreshTokenInvalid, "several refresh cookies; sign in again")
	default:
		c.token = cookies[0].Value
	}
	return c
}

var errNoCookie = models.Unauthenticatedf(models.ReasonRefreshTokenInvalid, "no refresh cookie; sign in again")

func cookieFrom(ctx context.Context) *cookieState {
	c, _ := ctx.Value(cookieKey).(*cookieState)
	return c
}

// set adds ck to the response, replacing what this request set before, so
// that a document with several aliased mutations answers with one
// Set-Cookie: the last one's.
func (c *cookieState) set(ck *http.Cookie) {
	line := ck.String()
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.w.Header()
	if c.sent != "" {
		h["Set-Cookie"] = slices.DeleteFunc(h["Set-Cookie"], func(v string) bool { return v == c.sent })
	}
	h.Add("Set-Cookie", line)
	c.sent = line
}

// refreshCookie is the cookie carrying value for maxAge seconds (negative:
// delete it now).
func (s *Service) refreshCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:  CookieName,
		Value: value,
		Path:  CookiePath,
		// No Domain: the cookie is host-only, so sibling subdomains never
		// receive it.
		MaxAge: maxAge,
		// Out of reach of page scripts, so that an XSS cannot read it.
		HttpOnly: true,
		// Over TLS only, unless explicitly turned off for local http.
		Secure: !s.cfg.CookieInsecure,
		// Browsers do not attach it to requests started by other sites: the
		// first defence against CSRF, before the Origin check.
		SameSite: http.SameSiteStrictMode,
	}
}

// setRefreshCookie hands token to the browser when cookie sessions are on.
// Only for an allowed Origin: a page elsewhere that got a login through
// would otherwise plant its own account's session in the victim's browser
// (login CSRF), and a client without Origin is no browser.
func (s *Service) setRefreshCookie(ctx context.Context, token string) {
	if c := cookieFrom(ctx); c != nil && c.originOK {
		c.set(s.refreshCookie(token, int(s.cfg.RefreshTTL/time.Second)))
	}
}

// clearRefreshCookie tells the browser to delete the refresh cookie when
// cookie sessions are on. Deleting grants nothing, so any Origin may.
func (s *Service) clearRefreshCookie(ctx context.Context) {
	if c := cookieFrom(ctx); c != nil {
		c.set(s.refreshCookie("", -1))
	}
}

// RefreshFromCookie is Refresh with the token of the request's refresh
// cookie. It returns BadUserInput when cookie sessions are off,
// Unauthenticated without a usable cookie or when Refresh refuses it (the
// cookie is then cleared), and Forbidden when the request's Origin is
// missing or not allowed; a refused request rotates nothing.
func (s *Service) RefreshFromCookie(ctx context.Context) (*Grant, error) {
	if !s.cfg.RefreshCookie {
		return nil, models.Errorf(models.BadUserInput, "refreshToken is required")
	}
	c := cookieFrom(ctx)
	if c == nil {
		return nil, errNoCookie
	}
	if c.err != nil {
		// Counted as a refresh before the Origin is looked at, as Refresh
		// counts the others: a flood of forged or misdirected requests is
		// bounded by the refresh limit too, and past it costs neither a
		// log line nor more than the coalesced RATE_LIMITED event.
		if _, err := s.take(ctx, s.now(), []string{s.limitKey("refresh", ClientFrom(ctx).limitKey())}, []Rate{s.cfg.Limits.Refresh}); err != nil {
			return nil, err
		}
		if models.ErrorCode(c.err) == models.Forbidden {
			s.warnOrigin(ctx, c.origin)
		}
		return nil, c.err
	}
	g, err := s.Refresh(ctx, c.token)
	if models.ErrorCode(err) == models.Unauthenticated {
		// Spent, expired or revoked: the browser should stop sending it.
		s.clearRefreshCookie(ctx)
	}
	return g, err
}

// warnOrigin logs a refresh by cookie refused for its Origin: a forged
// request, or a frontend missing from AUTH_CORS_ORIGINS; either way the
// operator should know, but a flood must not become a flood of log lines.
// The refusals of one client are coalesced as the audit log coalesces
// those of a rate limit (rateAudits, with its bound on the clients it
// tracks): the first is logged at once, later ones as one line a minute
// at most, with their count and the latest origin.
func (s *Service) warnOrigin(ctx context.Context, origin string) {
	c := ClientFrom(ctx)
	if r, ok := s.originWarnings.refused(s.limitKey("cookie-origin", c.limitKey()), s.now(), c, "", truncate(origin, 256)); ok {
		s.logOrigin(ctx, r)
	}
}

// logOrigin writes the log line of refused cookie origins r stands for.
func (s *Service) logOrigin(ctx context.Context, r rateEvent) {
	s.log.WarnContext(ctx, "refresh by cookie refused for its Origin", "origin", r.note, "ip", r.client.IP, "refused", r.n)
}
