package auth

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/authql/authql/models"
)

// Rule is the requirement of one @auth directive: any authenticated caller
// when all are empty, else the role and/or the permission, and how the
// caller's session must have authenticated: at level AAL (2: a second
// factor, when the user has one) and at most MaxAge ago (0: any time).
type Rule struct {
	Role       string
	Permission string
	AAL        int
	MaxAge     time.Duration
}

// Authorize decides a Rule for the principal (nil when the request is not
// authenticated, with authErr saying why) with the principal's Roles; grants
// returns the permissions of a role. It returns Unauthenticated without a
// principal and Forbidden when the principal lacks the role or permission.
// It is the one rule engine: Service.Authorize, the @auth directive's
// check, calls it with the roles production trusts, the user's current ones.
func Authorize(p *Principal, authErr error, rule Rule, grants func(role string) []string) error {
	if p == nil {
		if authErr == nil {
			authErr = errNoToken
		}
		return authErr
	}
	return rule.check(p.Roles, grants)
}

// check decides the role and permission of the rule for a caller with the
// (lower-case) roles.
func (rule Rule) check(roles []string, grants func(role string) []string) error {
	if rule.Role != "" && !slices.Contains(roles, strings.ToLower(rule.Role)) {
		return models.Errorf(models.Forbidden, "requires the role %q", strings.ToLower(rule.Role))
	}
	if rule.Permission != "" && !anyGrants(roles, rule.Permission, grants) {
		return models.Errorf(models.Forbidden, "requires the permission %q", rule.Permission)
	}
	return nil
}

func anyGrants(roles []string, permission string, grants func(string) []string) bool {
	for _, r := range roles {
		for _, g := range grants(r) {
			if g == permission {
				return true
			}
		}
	}
	return false
}

// Authorize decides rule for the request in ctx: it is the @auth
// directive's check, made by the one rule engine, the pure Authorize. A
// role or permission is checked against the user's current roles (from the
// user cache), not the token's roles claim, so that a role granted or
// removed applies to the very next request rather than at the next
// refresh.
//
// Every rule looks the user up (from the cache: no SQL in the steady
// state), so that a disabled or deleted account's access tokens are
// refused (Unauthenticated) at their very next request, on every replica
// (each drops the user from its cache when the change is published), and
// not only once its revoked sessions' events arrive.
func (s *Service) Authorize(ctx context.Context, rule Rule) error {
	p, err := PrincipalFrom(ctx)
	if p != nil {
		u, err := s.user(ctx, p.UserID)
		if err != nil {
			return err
		}
		if u.Disabled() {
			return errDisabled
		}
		if rule.Role != "" || rule.Permission != "" {
			current := *p // the request's principal stays as its token says
			current.Roles = u.roles
			p = &current
		}
	}
	if err := Authorize(p, err, rule, s.Grants); err != nil {
		return err
	}
	if rule.AAL > models.AalOne || rule.MaxAge > 0 {
		return s.stepUp(ctx, p, rule)
	}
	return nil
}
