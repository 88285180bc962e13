package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/models"
)

// grantsOf returns a grants func backed by a role -> permissions map, as
// Service.Grants is.
func grantsOf(m map[string][]string) func(string) []string {
	return func(role string) []string { return m[role] }
}

// checkCode fails the test unless err carries the coded error code.
func checkCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("err = nil, want %s", code)
	}
	var e *models.Error
	if !errors.As(err, &e) {
		tb.Fatalf("err = %v (%T), want a *models.Error", err, err)
	}
	if got := models.ErrorCode(err); got != code {
		tb.Fatalf("ErrorCode(%v) = %s, want %s", err, got, code)
	}
}

func TestAuthorize(t *testing.T) {
	grants := grantsOf(map[string][]string{
		"admin":  {"users:read", "users:write"},
		"editor": {"posts:write"},
		"user":   {"posts:read"},
	})
	principal := func(roles ...string) *Principal {
		return &Principal{UserID: "user-1", SessionID: "sess-1", TokenID: "jti-1", Roles: roles}
	}

	t.Run("NilPrincipalReturnsAuthErr", func(t *testing.T) {
		authErr := models.Errorf(models.Unauthenticated, "access token expired")
		for _, rule := range []Rule{{}, {Role: "admin"}, {Permission: "posts:read"}} {
			if err := Authorize(nil, authErr, rule, grants); err != authErr {
				t.Errorf("Authorize(nil, authErr, %+v) = %v, want authErr", rule, err)
			}
		}
	})
	t.Run("NilPrincipalWithoutAuthErrUnauthenticated", func(t *testing.T) {
		for _, rule := range []Rule{{}, {Role: "admin"}, {Permission: "posts:read"}} {
			checkCode(t, Authorize(nil, nil, rule, grants), models.Unauthenticated)
		}
	})
	t.Run("EmptyRulePassesAnyPrincipal", func(t *testing.T) {
		for _, p := range []*Principal{principal(), principal("user"), principal("admin", "user")} {
			if err := Authorize(p, nil, Rule{}, grants); err != nil {
				t.Errorf("Authorize(roles %q, Rule{}) = %v, want nil", p.Roles, err)
			}
		}
	})
	t.Run("RoleMatched", func(t *testing.T) {
		if err := Authorize(principal("user", "admin"), nil, Rule{Role: "admin"}, grants); err != nil {
			t.Fatalf("Authorize = %v, want nil", err)
		}
	})
	t.Run("RoleCaseInsensitive", func(t *testing.T) {
		for _, role := range []string{"ADMIN", "Admin", "admin"} {
			if err := Authorize(principal("admin"), nil, Rule{Role: role}, grants); err != nil {
				t.Errorf("Authorize(roles [admin], Rule{Role: %q}) = %v, want nil", role, err)
			}
		}
	})
	t.Run("RoleMissingForbidden", func(t *testing.T) {
		checkCode(t, Authorize(principal("user"), nil, Rule{Role: "admin"}, grants), models.Forbidden)
	})
	t.Run("NoRolesForbidden", func(t *testing.T) {
		checkCode(t, Authorize(principal(), nil, Rule{Role: "user"}, grants), models.Forbidden)
	})
	t.Run("RolePrefixForbidden", func(t *testing.T) {
		checkCode(t, Authorize(principal("admins"), nil, Rule{Role: "admin"}, grants), models.Forbidden)
	})
	t.Run("PermissionGrantedByAnyRole", func(t *testing.T) {
		// Only the second role grants it.
		if err := Authorize(principal("user", "editor"), nil, Rule{Permission: "posts:write"}, grants); err != nil {
			t.Fatalf("Authorize = %v, want nil", err)
		}
	})
	t.Run("PermissionMissingForbidden", func(t *testing.T) {
		checkCode(t, Authorize(principal("user", "editor"), nil, Rule{Permission: "users:write"}, grants), models.Forbidden)
	})
	t.Run("PermissionUnknownRoleForbidden", func(t *testing.T) {
		checkCode(t, Authorize(principal("ghost"), nil, Rule{Permission: "posts:read"}, grants), models.Forbidden)
	})
	t.Run("PermissionNoRolesForbidden", func(t *testing.T) {
		checkCode(t, Authorize(principal(), nil, Rule{Permission: "posts:read"}, grants), models.Forbidden)
	})
	t.Run("RoleAndPermissionBothRequired", func(t *testing.T) {
		// editor has the permission but not the role; admin the role but
		// not the permission.
		rule := Rule{Role: "admin", Permission: "posts:write"}
		checkCode(t, Authorize(principal("editor"), nil, rule, grants), models.Forbidden)
		checkCode(t, Authorize(principal("admin"), nil, rule, grants), models.Forbidden)
		if err := Authorize(principal("admin", "editor"), nil, rule, grants); err != nil {
			t.Fatalf("Authorize(admin+editor) = %v, want nil", err)
		}
	})
}

func TestPrincipalFrom(t *testing.T) {
	t.Run("NoPrincipalUnauthenticated", func(t *testing.T) {
		p, err := PrincipalFrom(context.Background())
		if p != nil {
			t.Errorf("principal = %+v, want nil", p)
		}
		checkCode(t, err, models.Unauthenticated)
	})
	t.Run("WithPrincipal", func(t *testing.T) {
		want := &Principal{UserID: "user-1", SessionID: "sess-1", Roles: []string{"user"}}
		p, err := PrincipalFrom(WithPrincipal(context.Background(), want))
		if err != nil || p != want {
			t.Fatalf("PrincipalFrom = %+v, %v; want %+v, nil", p, err, want)
		}
		if !p.HasRole("user") || p.HasRole("admin") {
			t.Errorf("HasRole wrong for roles %q", p.Roles)
		}
	})
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		want         string
		wantOK       bool
	}{
		{"Bearer", "Bearer x", "x", true},
		{"LowerCaseScheme", "bearer x", "x", true},
		{"UpperCaseScheme", "BEARER x", "x", true},
		{"SurroundingSpaces", "Bearer   x  ", "x", true},
		{"JWT", "Bearer a.b.c", "a.b.c", true},
		{"Basic", "Basic x", "", false},
		{"SchemeOnly", "Bearer", "", false},
		{"SchemeAndSpaces", "Bearer   ", "", false},
		{"NoSpace", "Bearerx", "", false},
		{"Empty", "", "", false},
		{"TokenOnly", "x", "", false},
		{"LeadingSpace", " Bearer x", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := bearerToken(tc.header)
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("bearerToken(%q) = %q, %v; want %q, %v", tc.header, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func newRevocations() *revocations { return &revocations{ids: map[string]time.Time{}} }

func TestRevocations(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

	t.Run("AddThenRevoked", func(t *testing.T) {
		rv := newRevocations()
		if rv.revoked("sess-1") {
			t.Fatal("empty set revokes sess-1")
		}
		rv.add(now.Add(time.Minute), "sess-1", "jti-1")
		for _, ids := range [][]string{{"sess-1"}, {"jti-1"}, {"other", "jti-1"}, {"sess-1", "other"}} {
			if !rv.revoked(ids...) {
				t.Errorf("revoked(%q) = false, want true", ids)
			}
		}
		for _, ids := range [][]string{{}, {"other"}, {"sess-2", "jti-2"}, {""}} {
			if rv.revoked(ids...) {
				t.Errorf("revoked(%q) = true, want false", ids)
			}
		}
		if rv.len() != 2 {
			t.Errorf("len = %d, want 2", rv.len())
		}
	})
	t.Run("AddKeepsLaterExpiry", func(t *testing.T) {
		rv := newRevocations()
		early, late := now.Add(time.Minute), now.Add(time.Hour)
		rv.add(late, "a")
		rv.add(early, "a")
		rv.add(early, "b")
		rv.add(late, "b")
		for _, id := range []string{"a", "b"} {
			if got := rv.ids[id]; !got.Equal(late) {
				t.Errorf("ids[%q] = %v, want the later %v", id, got, late)
			}
		}
	})
	t.Run("MergeDropsExpired", func(t *testing.T) {
		rv := newRevocations()
		rv.add(now.Add(-time.Second), "old")
		rv.add(now.Add(time.Minute), "live")
		rv.merge(map[string]time.Time{
			"loaded-live":    now.Add(time.Minute),
			"loaded-expired": now.Add(-time.Minute),
			"loaded-now":     now, // expires at now: no token it matches is still valid
		}, now)
		want := map[string]bool{"live": true, "loaded-live": true}
		for _, id := range []string{"old", "live", "loaded-live", "loaded-expired", "loaded-now"} {
			if got := rv.revoked(id); got != want[id] {
				t.Errorf("after merge, revoked(%q) = %v, want %v", id, got, want[id])
			}
		}
		if rv.len() != len(want) {
			t.Errorf("len = %d, want %d", rv.len(), len(want))
		}
	})
	t.Run("MergeKeepsLaterExpiry", func(t *testing.T) {
		rv := newRevocations()
		rv.add(now.Add(2*time.Minute), "a")
		rv.add(now.Add(time.Minute), "b")
		rv.merge(map[string]time.Time{"a": now.Add(time.Minute), "b": now.Add(3 * time.Minute)}, now)
		if got, want := rv.ids["a"], now.Add(2*time.Minute); !got.Equal(want) {
			t.Errorf("ids[a] = %v, want %v (the later, held)", got, want)
		}
		if got, want := rv.ids["b"], now.Add(3*time.Minute); !got.Equal(want) {
			t.Errorf("ids[b] = %v, want %v (the later, loaded)", got, want)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		// For -race: the middleware reads while logouts and reloads write.
		rv := newRevocations()
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				for j := range 100 {
					id := fmt.Sprintf("s%d-%d", i, j)
					rv.add(now.Add(time.Minute), id)
					if !rv.revoked(id) {
						t.Errorf("revoked(%q) = false right after add", id)
					}
				}
			})
		}
		wg.Go(func() {
			for range 50 {
				rv.merge(map[string]time.Time{"loaded": now.Add(time.Minute)}, now)
			}
		})
		wg.Wait()
		if got, want := rv.len(), 4*100+1; got != want {
			t.Errorf("len = %d, want %d", got, want)
		}
	})
}
