package httpapi_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

func TestHotPathDoesNoSQL(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		admin := ts.Admin(t)
		user := ts.Register(t, "user@example.com", "password1")
		queries := map[string]struct {
			token, doc string
		}{
			"Me":                   {user.Access, `{ me { id email roles createdAt } }`},
			"RoleGatedField":       {admin.Access, `{ me { id lastLoginAt } }`},
			"RoleGatedFieldDenied": {user.Access, `{ me { id lastLoginAt } }`},
		}
		// Warm up: the first request of each user loads it.
		for _, q := range queries {
			ts.Do(t, q.token, q.doc, nil)
		}
		// The logins' audit events are written in the background: now,
		// not while statements are counted.
		flushAudit(t, ts)
		sql := testdb.CountSQL(t, ts.DB)
		for name, q := range queries {
			t.Run(name, func(t *testing.T) {
				before := sql.N.Load()
				for range 20 {
					ts.Do(t, q.token, q.doc, nil)
				}
				if n := sql.N.Load() - before; n != 0 {
					t.Errorf("%d SQL statements for 20 requests, want 0", n)
				}
			})
		}
		t.Run("WriteDropsTheEntry", func(t *testing.T) {
			// A login writes the user (its last login): the next me
			// reads it once, then it is cached again.
			ts.Login(t, "user@example.com", "password1").OK(t)
			flushAudit(t, ts)
			before := sql.N.Load()
			ts.Me(t, user.Access).OK(t)
			loaded := sql.N.Load()
			ts.Me(t, user.Access).OK(t)
			if loaded == before {
				t.Error("me after a write ran no SQL: the cached entry was not dropped")
			}
			if n := sql.N.Load() - loaded; n != 0 {
				t.Errorf("the second me ran %d statements, want 0", n)
			}
		})
	})
}

func TestRoleChangeAppliesAtNextRequest(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		admin := ts.Admin(t)
		second := ts.Register(t, "second@example.com", "password1")
		setRoles := func(id string, roles ...string) {
			ts.Do(t, admin.Access, `mutation($id: ID!, $r: [String!]!) { setUserRoles(userId: $id, roles: $r) { id } }`,
				map[string]any{"id": id, "r": roles}).OK(t)
		}
		if code := ts.Do(t, second.Access, `{ users { id } }`, nil).Code(t); code != models.Forbidden {
			t.Fatalf("before the grant: code = %s, want FORBIDDEN", code)
		}
		setRoles(second.UserID, "admin", "user")
		ts.Do(t, second.Access, `{ users { id } }`, nil).OK(t)
		// The token still claims only "user" (for other services, until its
		// next refresh); authql itself decides by the current roles.
		if got := fmt.Sprint(authtest.Claims(t, second.Access)["roles"]); got != "[user]" {
			t.Errorf("token roles = %s", got)
		}
		setRoles(second.UserID, "user")
		if code := ts.Do(t, second.Access, `{ users { id } }`, nil).Code(t); code != models.Forbidden {
			t.Errorf("after the removal: code = %s, want FORBIDDEN at the very next request", code)
		}
		if code := ts.Do(t, second.Access, `{ roles { name } }`, nil).Code(t); code != models.Forbidden {
			t.Errorf("permission gate after the removal: code = %s, want FORBIDDEN", code)
		}
	})
}

func TestVerifiedTokenStillExpires(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil)
	u := ts.Register(t, "a@example.com", "password1")
	ts.Me(t, u.Access).OK(t) // verified and remembered
	ts.Clock.Advance(15*time.Minute + 30*time.Second)
	ts.Me(t, u.Access).OK(t) // within the 30 s leeway
	ts.Clock.Advance(time.Second)
	r := ts.Me(t, u.Access)
	if code := r.Code(t); code != models.Unauthenticated || r.Errors[0].Message != "access token expired" {
		t.Errorf("after expiry: %+v, want UNAUTHENTICATED access token expired", r.Errors)
	}
}
