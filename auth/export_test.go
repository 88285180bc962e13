// Names exported for auth's own tests only.

package auth

import (
	"context"
	"slices"
)

// Synced reports whether the service holds every change other replicas
// committed: always, unless its listening connection (see Listen) dropped
// and it has not yet re-read what it may have missed.
func (s *Service) Synced() bool { return s.sync.staleSince.Load() == 0 }

// VerifyDummy spends the time of one Verify against a hash that no password
// matches.
func (h *Hasher) VerifyDummy(password string) {
	h.Verify(h.dummy, password)
}

// WithPrincipal returns ctx carrying p, as the middleware's does.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey, authResult{principal: p})
}

// HasRole reports whether the principal has the (lower-case) role.
func (p *Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }
