package auth

import (
	"maps"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/internal/softkey"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// liveSince counts, by type, the live events recorded after id, and returns
// the highest id among them (id when none).
func liveSince(t *testing.T, db *gorm.DB, id int64) (map[string]int, int64) {
	t.Helper()
	var events []models.LiveEvent
	if err := db.Where("id > ?", id).Order("id").Find(&events).Error; err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, e := range events {
		n[e.Type]++
		id = e.ID
	}
	return n, id
}

// Each flow records exactly its live events: counted by type, flow by
// flow, on every database under test.
func TestFlowsRecordLiveEvents(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn)
		var last int64
		step := func(name string, want map[string]int, f func()) {
			t.Helper()
			f()
			var got map[string]int
			got, last = liveSince(t, e.db, last)
			if !maps.Equal(got, want) {
				t.Errorf("%s recorded %v, want %v", name, got, want)
			}
		}
		const (
			created  = models.LiveSessionCreated
			revoked  = models.LiveSessionRevoked
			roles    = models.LiveRolesChanged
			password = models.LivePasswordChanged
			email    = models.LiveEmailChanged
			mfa      = models.LiveMfaChanged
			disabled = models.LiveAccountDisabled
		)
		var g, g2 *Grant
		step("register", map[string]int{created: 1}, func() { g = e.register(t) })
		step("login", map[string]int{created: 1}, func() { g2 = e.login(t, g) })
		step("logout", map[string]int{revoked: 1}, func() {
			if err := e.s.Logout(e.ctx, e.principalOf(t, g2), false); err != nil {
				t.Fatal(err)
			}
		})
		step("two logins", map[string]int{created: 2}, func() { g2 = e.login(t, g); e.login(t, g) })
		step("logout of all sessions", map[string]int{revoked: 3}, func() {
			if err := e.s.Logout(e.ctx, e.principalOf(t, g2), true); err != nil {
				t.Fatal(err)
			}
		})
		g = e.login(t, g)
		g2 = e.login(t, g)
		_, last = liveSince(t, e.db, last)
		step("revokeSession", map[string]int{revoked: 1}, func() {
			if ok, err := e.s.RevokeSession(e.ctx, e.principalOf(t, g), g2.SessionID); err != nil || !ok {
				t.Fatalf("RevokeSession: %v, %v", ok, err)
			}
		})
		old := g.RefreshToken
		step("refresh", map[string]int{}, func() { g = mustRefresh(t, e.s, g.RefreshToken) })
		g = mustRefresh(t, e.s, g.RefreshToken)
		step("refresh-token reuse", map[string]int{revoked: 1}, func() {
			e.c.Advance(11 * time.Second) // past the reuse interval
			if _, err := e.s.Refresh(e.ctx, old); models.ErrorCode(err) != models.Unauthenticated {
				t.Fatalf("reuse: %v", err)
			}
		})
		g = e.login(t, g)
		e.login(t, g)
		_, last = liveSince(t, e.db, last)
		step("changePassword signing out the others", map[string]int{password: 1, revoked: 1}, func() {
			var err error
			if g, err = e.s.ChangePassword(e.ctx, e.principalOf(t, g), "password1", "password2", true); err != nil {
				t.Fatal(err)
			}
		})
		step("password reset", map[string]int{password: 1, revoked: 1}, func() {
			_, m := e.reset(t, g.User.Email)
			if err := e.s.ResetPassword(e.ctx, Proof{Token: m.token()}, "password1"); err != nil {
				t.Fatal(err)
			}
		})
		g = e.login(t, g)
		_, last = liveSince(t, e.db, last)
		step("email change", map[string]int{email: 1}, func() {
			r, err := e.s.RequestEmailChange(e.ctx, e.principalOf(t, g), "moved@example.com", "password1")
			if err != nil {
				t.Fatal(err)
			}
			if err := e.s.ConfirmEmailChange(e.ctx, Proof{Token: e.mailOf(t, r.ID).token()}); err != nil {
				t.Fatal(err)
			}
		})
		g.User.Email = "moved@example.com"
		e.login(t, g)
		_, last = liveSince(t, e.db, last)
		var m *MfaEnrollment
		step("first factor confirmed, others signed out", map[string]int{mfa: 1, revoked: 1}, func() {
			p, en := e.enroll(t, g)
			m = e.confirm(t, p, en, true)
		})
		g = m.Session
		step("recovery codes regenerated", map[string]int{mfa: 1}, func() {
			if _, err := e.s.RegenerateRecoveryCodes(e.ctx, e.principalOf(t, g)); err != nil {
				t.Fatal(err)
			}
		})
		step("factor removed", map[string]int{mfa: 1}, func() {
			if _, err := e.s.RemoveMfaFactor(e.ctx, e.principalOf(t, g), m.Factor.ID); err != nil {
				t.Fatal(err)
			}
		})
		admin := e.register(t)
		_, last = liveSince(t, e.db, last)
		step("setUserRoles", map[string]int{roles: 1}, func() {
			if _, err := e.s.SetUserRoles(e.ctx, admin.User.ID, []string{models.RoleAdmin}); err != nil {
				t.Fatal(err)
			}
		})
		step("setUserRoles to the same roles", map[string]int{}, func() {
			if _, err := e.s.SetUserRoles(e.ctx, admin.User.ID, []string{models.RoleAdmin}); err != nil {
				t.Fatal(err)
			}
		})
		e.addTotp(t, e.login(t, g))
		_, last = liveSince(t, e.db, last)
		step("admin MFA reset", map[string]int{mfa: 1, revoked: 2}, func() {
			if _, err := e.s.ResetUserMfa(e.ctx, e.principalOf(t, admin), g.User.ID); err != nil {
				t.Fatal(err)
			}
		})
		e.login(t, g)
		e.login(t, g)
		_, last = liveSince(t, e.db, last)
		step("disable", map[string]int{disabled: 1, revoked: 2}, func() {
			if _, err := e.s.DisableUser(e.ctx, g.User.ID, nil); err != nil {
				t.Fatal(err)
			}
		})
		step("disable again", map[string]int{}, func() {
			if _, err := e.s.DisableUser(e.ctx, g.User.ID, nil); err != nil {
				t.Fatal(err)
			}
		})
		step("enable", map[string]int{}, func() {
			if _, err := e.s.EnableUser(e.ctx, g.User.ID); err != nil {
				t.Fatal(err)
			}
		})
		e.login(t, g)
		_, last = liveSince(t, e.db, last)
		step("delete", map[string]int{disabled: 1, revoked: 1}, func() {
			if err := e.s.DeleteUser(e.ctx, g.User.ID); err != nil {
				t.Fatal(err)
			}
		})

		capped := newMailEnv(t, dsn, func(c *Config) { c.MaxSessions = 2 })
		u := capped.register(t)
		capped.login(t, u)
		_, capLast := liveSince(t, capped.db, 0)
		capped.login(t, u)
		if got, _ := liveSince(t, capped.db, capLast); !maps.Equal(got, map[string]int{created: 1, revoked: 1}) {
			t.Errorf("a sign-in past the session cap recorded %v, want one SESSION_CREATED and one SESSION_REVOKED", got)
		}
	})
}

// Passkeys: added and deleted (MFA_CHANGED), and a passkey sign-in
// (SESSION_CREATED).
func TestPasskeyFlowsRecordLiveEvents(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newPasskeyEnv(t, dsn)
		g := e.register(t)
		a := softkey.New()
		_, last := liveSince(t, e.s.db, 0)
		check := func(name string, want map[string]int) {
			t.Helper()
			var got map[string]int
			got, last = liveSince(t, e.s.db, last)
			if !maps.Equal(got, want) {
				t.Errorf("%s recorded %v, want %v", name, got, want)
			}
		}
		pk := e.addPasskey(t, g, a)
		check("passkey added", map[string]int{models.LiveMfaChanged: 1})
		if _, err := e.passkeyLogin(t, g.User.Email, a); err != nil {
			t.Fatal(err)
		}
		check("passkey sign-in", map[string]int{models.LiveSessionCreated: 1})
		if _, err := e.s.DeletePasskey(e.ctx, e.principal(t, g), pk.ID); err != nil {
			t.Fatal(err)
		}
		check("passkey deleted", map[string]int{models.LiveMfaChanged: 1})
	})
}
