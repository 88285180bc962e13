package models_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// liveCounts returns how many live events of each type db holds.
func liveCounts(tb testing.TB, db *gorm.DB) map[string]int {
	tb.Helper()
	var rows []struct {
		Type string
		N    int
	}
	if err := db.Raw("SELECT type, COUNT(*) AS n FROM live_events GROUP BY type").Scan(&rows).Error; err != nil {
		tb.Fatal(err)
	}
	m := map[string]int{}
	for _, r := range rows {
		m[r.Type] = r.N
	}
	return m
}

func newTestUser(tb testing.TB, db *gorm.DB, email string, roles ...string) *models.User {
	tb.Helper()
	now := models.Now()
	u := &models.User{ID: uuid.NewString(), Email: email, PasswordHash: "x", CreatedAt: now, UpdatedAt: now}
	if err := models.CreateUser(context.Background(), db, u, roles, nil); err != nil {
		tb.Fatal(err)
	}
	return u
}

// A live event exists, and reaches this process's sink, only if its
// transaction commits.
func TestRecordLiveRollback(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := testdb.Open(t, dsn)
		ctx := context.Background()
		var mu sync.Mutex
		var delivered []models.LiveEvent
		models.OnLiveCommit(db, func(es []models.LiveEvent) {
			mu.Lock()
			delivered = append(delivered, es...)
			mu.Unlock()
		})
		u := newTestUser(t, db, "rollback@example.com", models.RoleAdmin)

		boom := errors.New("boom")
		err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if err := models.RecordLive(tx, models.NewLiveEvent(models.LiveMfaChanged, u.ID, "", nil)); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("transaction: %v", err)
		}
		// A real change refused half-way: the last admin keeps the role.
		if _, err := models.SetUserRoles(ctx, db, u.ID, []string{models.RoleUser}); models.ErrorCode(err) != models.BadUserInput {
			t.Fatalf("SetUserRoles of the last admin: %v, want BAD_USER_INPUT", err)
		}
		if n := liveCounts(t, db); len(n) != 0 {
			t.Errorf("live events after rolled-back changes: %v, want none", n)
		}

		if _, err := models.SetUserRoles(ctx, db, newTestUser(t, db, "other@example.com").ID, []string{models.RoleUser}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(delivered) != 1 || delivered[0].Type != models.LiveRolesChanged || !slices.Equal(delivered[0].RoleList(), []string{models.RoleUser}) {
			t.Errorf("delivered after commit: %+v, want one ROLES_CHANGED [user]", delivered)
		}
	})
}

// SetUserRoles records ROLES_CHANGED when the roles change, not when
// they are set to what they were.
func TestSetUserRolesRecordsChange(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := testdb.Open(t, dsn)
		ctx := context.Background()
		u := newTestUser(t, db, "roles@example.com", models.RoleUser)
		for _, roles := range [][]string{{"user"}, {"user", "service"}, {"service", "user"}} {
			if _, err := models.SetUserRoles(ctx, db, u.ID, roles); err != nil {
				t.Fatal(err)
			}
		}
		events, err := models.LiveEventsAfter(ctx, db, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 1 || events[0].UserID != u.ID || !slices.Equal(events[0].RoleList(), []string{"service", "user"}) {
			t.Errorf("events = %+v, want one ROLES_CHANGED [service user]", events)
		}
	})
}

// The live migration grants events:read to an admin role that holds every
// earlier permission, once, and tells each admin (ROLES_CHANGED); an
// admin role an operator narrowed is left alone; a start with nothing to
// migrate records nothing.
func TestMigrateLiveGrantsAdmin(t *testing.T) {
	t.Parallel()
	for name, narrowed := range map[string]bool{"Kept": false, "Narrowed": true} {
		t.Run(name, func(t *testing.T) { testMigrateLive(t, narrowed) })
	}
}

func testMigrateLive(t *testing.T, narrowed bool) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := testdb.Open(t, dsn)
		ctx := context.Background()
		admin := newTestUser(t, db, "admin@example.com", models.RoleAdmin, models.RoleUser)
		newTestUser(t, db, "plain@example.com", models.RoleUser)
		// The database as the version before the live migration
		// left it.
		for _, q := range []string{
			"DELETE FROM role_permissions WHERE permission_name = 'events:read'",
			"DELETE FROM schema_migrations WHERE id = '202612150001_live'",
		} {
			if err := db.Exec(q).Error; err != nil {
				t.Fatal(err)
			}
		}
		if narrowed {
			if err := db.Exec("DELETE FROM role_permissions WHERE permission_name = 'users:write'").Error; err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			if err := models.Migrate(ctx, db); err != nil {
				t.Fatal(err)
			}
		}
		roles, err := models.Roles(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		granted := slices.Contains(roles[0].PermissionNames(), models.PermEventsRead)
		events, err := models.LiveEventsAfter(ctx, db, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if narrowed {
			if granted || len(events) != 0 {
				t.Errorf("narrowed admin role: granted=%v, events %+v; want neither", granted, events)
			}
			return
		}
		if !granted {
			t.Errorf("admin role %v lacks events:read", roles[0].PermissionNames())
		}
		if len(events) != 1 || events[0].Type != models.LiveRolesChanged || events[0].UserID != admin.ID ||
			!slices.Equal(events[0].RoleList(), []string{models.RoleAdmin, models.RoleUser}) {
			t.Errorf("events = %+v, want one ROLES_CHANGED [admin user] for the admin", events)
		}
	})
}

// TestLiveEventsCommittedLate: an event whose transaction took its id
// before another's but committed after it is not "after" the other's id,
// and a reader that resumes from the other's id gets it from
// LiveEventsCommittedLate. On PostgreSQL the two transactions interleave
// for real; SQLite serialises them, so there the earlier event simply
// committed first, and is still resent.
func TestLiveEventsCommittedLate(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := testdb.Open(t, dsn)
		ctx := context.Background()
		u := newTestUser(t, db, "late@example.com")
		record := func(tx *gorm.DB) int64 {
			e := models.NewLiveEvent(models.LivePasswordChanged, u.ID, "", nil)
			if err := models.RecordLive(tx, e); err != nil {
				t.Fatal(err)
			}
			var id int64
			if err := tx.Raw("SELECT MAX(id) FROM live_events").Scan(&id).Error; err != nil {
				t.Fatal(err)
			}
			return id
		}
		var early, later int64
		if db.Dialector.Name() == "postgres" {
			slow := db.WithContext(ctx).Begin()
			early = record(slow)
			later = record(db.WithContext(ctx))
			if err := slow.Commit().Error; err != nil {
				t.Fatal(err)
			}
		} else {
			early = record(db.WithContext(ctx))
			later = record(db.WithContext(ctx))
		}
		if early >= later {
			t.Fatalf("ids %d, %d: want the slow transaction's first", early, later)
		}
		after, err := models.LiveEventsAfter(ctx, db, later, 10)
		if err != nil || len(after) != 0 {
			t.Fatalf("LiveEventsAfter(%d) = %v, %v; want none", later, after, err)
		}
		late, err := models.LiveEventsCommittedLate(ctx, db, later, 10)
		if err != nil || !slices.ContainsFunc(late, func(e models.LiveEvent) bool { return e.ID == early }) {
			t.Errorf("LiveEventsCommittedLate(%d) = %v, %v; want event %d among them", later, late, err, early)
		}
		if none, err := models.LiveEventsCommittedLate(ctx, db, later+1000, 10); err != nil || len(none) != 0 {
			t.Errorf("LiveEventsCommittedLate of an unknown id = %v, %v; want none", none, err)
		}
	})
}
