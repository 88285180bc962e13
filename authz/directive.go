package authz

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// Rule is the requirement of one @auth: any authenticated caller when all
// are empty, else the role and/or the permission, and how the session must
// have authenticated: at level AAL (2: a second factor, when the user has
// one) and at most MaxAge ago (0: any time). It is authql's auth.Rule.
type Rule struct {
	Role       string
	Permission string
	AAL        int
	MaxAge     time.Duration
}

// Directive is gqlgen's @auth(role, permission, aal, maxAge) with authql's
// semantics and codes: wire it as cfg.Directives.Auth = v.Directive. The
// field resolves only when the request's principal satisfies the rule;
// otherwise it is null with the error of Authorize at its path.
func (v *Verifier) Directive(ctx context.Context, _ any, next graphql.Resolver, role, permission *string, aal, maxAge *int) (any, error) {
	var rule Rule
	if role != nil {
		rule.Role = *role
	}
	if permission != nil {
		rule.Permission = *permission
	}
	if aal != nil {
		rule.AAL = *aal
	}
	if maxAge != nil {
		rule.MaxAge = time.Duration(*maxAge) * time.Second
	}
	if err := v.Authorize(ctx, rule); err != nil {
		return nil, err
	}
	return next(ctx)
}

// Authorize decides rule for the principal in ctx. Errors (*gqlerror.Error
// with extensions): UNAUTHENTICATED with the reason there is no principal,
// or TOKEN_REVOKED / TOKEN_EXPIRED when the token was revoked or expired
// since it was verified (a socket's); FORBIDDEN when a role or permission
// is missing; UNAUTHENTICATED TOKEN_EXPIRED when a permission is asked of
// a token whose user's roles changed after its issue (its scope is stale:
// refreshing gives a current one); INSUFFICIENT_USER_AUTHENTICATION with
// acrValues "aal2" and/or maxAge; SERVICE_UNAVAILABLE with retryAfter
// while the feed is down.
//
// Roles are the token's, or those of the user's last ROLES_CHANGED event
// when it came after the token's issue (authql decides with the user's
// current roles too). Permissions are the token's scope.
func (v *Verifier) Authorize(ctx context.Context, rule Rule) error {
	p, err := PrincipalFrom(ctx)
	if p == nil {
		return err
	}
	if e := v.authorize(p, rule); e != nil {
		return e.gql()
	}
	return nil
}

func (v *Verifier) authorize(p *Principal, rule Rule) *authError {
	// Checked again at each decision: a socket's principal was verified
	// once, when it connected.
	switch {
	case v.feedDown():
		return errFeedDown
	case v.revs.refused(p.SessionID, p.UserID, p.IssuedAt):
		return errTokenRevoked
	case v.expired(p):
		return errTokenExpired
	}
	roles, stale := v.revs.rolesSince(p.UserID, p.IssuedAt)
	if !stale {
		roles = p.Roles
	}
	if r := strings.ToLower(rule.Role); r != "" && !slices.Contains(roles, r) {
		return forbidden("requires the role %q", r)
	}
	if rule.Permission != "" {
		// A role removed may have taken this permission away, and the
		// token cannot say: never grant more than authql would.
		if stale {
			return errStaleScope
		}
		if !slices.Contains(p.Scope, rule.Permission) {
			return forbidden("requires the permission %q", rule.Permission)
		}
	}
	if rule.AAL > 1 || rule.MaxAge > 0 {
		return v.stepUp(p, rule)
	}
	return nil
}

// stepUp decides aal and maxAge from the token's claims, as authql's
// auth/stepup.go decides them from the session: aal 2 is required only
// of users who have a second factor (aal_max other than "aal1"); maxAge counts from
// auth_time (absent: not met). Unlike authql, which reads the session as
// it is now, the token says how the session was when it was issued: after
// a reauthenticate the client refreshes to carry the new level here.
func (v *Verifier) stepUp(p *Principal, rule Rule) *authError {
	ext := map[string]any{}
	var msg string
	if rule.MaxAge > 0 && (p.AuthTime.IsZero() || v.cfg.Now().Sub(p.AuthTime) > rule.MaxAge) {
		ext["maxAge"] = int(rule.MaxAge / time.Second)
		msg = fmt.Sprintf("this operation requires a sign-in within the last %d seconds", int(rule.MaxAge/time.Second))
	}
	// A token without aal_max (from an authql before it) cannot say the
	// user lacks a second factor: required, the safe side.
	if rule.AAL >= 2 && p.AalMax != "aal1" && p.ACR != "aal2" {
		ext["acrValues"] = "aal2"
		msg = "this operation requires a second factor"
	}
	if len(ext) == 0 {
		return nil
	}
	if len(ext) == 2 {
		msg = fmt.Sprintf("this operation requires a second factor within the last %d seconds", int(rule.MaxAge/time.Second))
	}
	return &authError{code: CodeInsufficientUserAuthentication, msg: msg + ": call reauthenticate, then retry", ext: ext}
}
