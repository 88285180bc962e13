package authz

import (
	"testing"
	"time"
)

// TestStepUp: @auth(aal, maxAge) decided from the token's claims with
// authql's rule and extensions: level 2 only of users with a second factor
// (aal_max), maxAge from auth_time.
func TestStepUp(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v := newTestVerifier(func() time.Time { return now })
	v.feed = nil // no feed: nothing to fail closed on
	recent, old := now.Add(-time.Minute), now.Add(-time.Hour)
	for _, c := range []struct {
		name     string
		p        Principal
		rule     Rule
		wantCode string
		wantExt  map[string]any
	}{
		{"NoFactorPassesAAL2", Principal{ACR: "aal1", AalMax: "aal1"}, Rule{AAL: 2}, "", nil},
		{"FactorNotUsed", Principal{ACR: "aal1", AalMax: "aal2"}, Rule{AAL: 2}, CodeInsufficientUserAuthentication, map[string]any{"acrValues": "aal2"}},
		{"FactorUsed", Principal{ACR: "aal2", AalMax: "aal2"}, Rule{AAL: 2}, "", nil},
		{"NoAalMaxClaimRequiresFactor", Principal{ACR: "aal1"}, Rule{AAL: 2}, CodeInsufficientUserAuthentication, map[string]any{"acrValues": "aal2"}},
		{"RecentSignIn", Principal{AuthTime: recent}, Rule{MaxAge: 5 * time.Minute}, "", nil},
		{"OldSignIn", Principal{AuthTime: old}, Rule{MaxAge: 5 * time.Minute}, CodeInsufficientUserAuthentication, map[string]any{"maxAge": 300}},
		{"NoAuthTime", Principal{}, Rule{MaxAge: 5 * time.Minute}, CodeInsufficientUserAuthentication, map[string]any{"maxAge": 300}},
		{"Both", Principal{ACR: "aal1", AalMax: "aal2", AuthTime: old}, Rule{AAL: 2, MaxAge: 5 * time.Minute}, CodeInsufficientUserAuthentication, map[string]any{"maxAge": 300, "acrValues": "aal2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := c.p
			p.ExpiresAt, p.IssuedAt = now.Add(time.Minute), now.Add(-time.Minute)
			err := v.authorize(&p, c.rule)
			if c.wantCode == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || err.code != c.wantCode {
				t.Fatalf("got %v, want %s", err, c.wantCode)
			}
			g := err.gql()
			for k, want := range c.wantExt {
				if g.Extensions[k] != want {
					t.Errorf("extensions[%s] = %v, want %v", k, g.Extensions[k], want)
				}
			}
			if len(g.Extensions) != len(c.wantExt)+1 {
				t.Errorf("extensions %v, want code and %v", g.Extensions, c.wantExt)
			}
		})
	}
}

// TestStaleScope: after a ROLES_CHANGED the token's roles give way to the
// event's, and a permission (the token's scope, possibly stale) asks the
// client to refresh: TOKEN_EXPIRED, never a grant.
func TestStaleScope(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v := newTestVerifier(func() time.Time { return now })
	v.feed = nil // no feed: nothing to fail closed on
	p := &Principal{UserID: "u", SessionID: "s", Roles: []string{"admin"}, Scope: []string{"roles:read"},
		IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Minute)}
	if err := v.authorize(p, Rule{Role: "admin", Permission: "roles:read"}); err != nil {
		t.Fatalf("before the change: %v", err)
	}
	v.revs.setRoles("u", now.Add(-time.Second), []string{"user"})
	if err := v.authorize(p, Rule{Role: "Admin"}); err == nil || err.code != CodeForbidden {
		t.Errorf("role removed: %v, want FORBIDDEN", err)
	}
	if err := v.authorize(p, Rule{Permission: "roles:read"}); err == nil || err.reason != ReasonTokenExpired {
		t.Errorf("stale scope: %v, want UNAUTHENTICATED TOKEN_EXPIRED", err)
	}
	fresh := *p
	fresh.IssuedAt = now
	if err := v.authorize(&fresh, Rule{Permission: "roles:read"}); err != nil {
		t.Errorf("a token issued after the change: %v", err)
	}
}
