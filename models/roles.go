package models

import (
	"context"
	"maps"
	"slices"
	"sort"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// defaultRoles are seeded by Migrate (see seedRoles). Seeding never removes a permission an
// operator added, and never re-adds one an operator removed from a role
// that already existed.
var defaultRoles = map[string][]string{
	RoleAdmin:   {"users:read", "users:write", "roles:read", PermEventsRead},
	RoleUser:    {},
	RoleService: {PermEventsRead},
}

// PermEventsRead lets its holder read the revocation feed (GET /events):
// every user's session events, for services that verify authql's tokens.
const PermEventsRead = "events:read"

// seedRoles creates the built-in roles that do not exist, publishing
// EventRolesChanged if it created one. ApplyMigrations runs it after the
// migrations, under their lock, so that new databases and upgraded ones
// alike have the roles.
func seedRoles(db *gorm.DB) (err error) {
	defer Wrap(&err, "seedRoles")
	return db.Transaction(func(tx *gorm.DB) error {
		created := false
		// In one order everywhere: two transactions inserting the same
		// rows in different orders can deadlock.
		for _, name := range slices.Sorted(maps.Keys(defaultRoles)) {
			perms := defaultRoles[name]
			res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&Role{Name: name})
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				continue // the role exists: its permissions are the operator's
			}
			created = true
			for _, p := range perms {
				if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&Permission{Name: p}).Error; err != nil {
					return err
				}
				if err := tx.Exec("INSERT INTO role_permissions (role_name, permission_name) VALUES (?, ?)", name, p).Error; err != nil {
					return err
				}
			}
		}
		if created {
			// Replicas already running (an upgrade rolling out) learn of
			// the new role's permissions.
			return Publish(tx, Event{Kind: EventRolesChanged})
		}
		return nil
	})
}

func orderByName(db *gorm.DB) *gorm.DB { return db.Order("name") }

// Roles returns every role with its permissions, by name.
func Roles(ctx context.Context, db *gorm.DB) (_ []*Role, err error) {
	defer Wrap(&err, "Roles")
	var rs []*Role
	err = db.WithContext(ctx).Preload("Permissions", orderByName).Order("name").Find(&rs).Error
	return rs, err
}

// SetUserRoles replaces the roles of the user. It returns NotFound for an
// unknown user, and BadUserInput for an unknown role or for taking the admin
// role from the last enabled admin (which would leave nobody able to
// administer).
// It publishes EventUserChanged and, when the roles changed, records a live
// ROLES_CHANGED carrying the user's roles now.
func SetUserRoles(ctx context.Context, db *gorm.DB, userID string, roles []string) (_ *User, err error) {
	defer Wrap(&err, "SetUserRoles(%q)", userID)
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		u, err := takeUser(tx.Where("id = ?", userID))
		if err != nil {
			return err
		}
		rs, err := findRoles(tx, roles)
		if err != nil {
			return err
		}
		if !containsRole(rs, RoleAdmin) {
			// The last enabled admin: a disabled one cannot administer.
			if err := keepAnAdmin(tx, u, Errorf(BadUserInput, "cannot remove the admin role from the last admin")); err != nil {
				return err
			}
		}
		before := roleNames(u.Roles)
		if err := tx.Model(u).Omit("Roles.*").Association("Roles").Replace(rs); err != nil {
			return err
		}
		if err := tx.Model(u).Update("updated_at", Now()).Error; err != nil {
			return err
		}
		if err := Publish(tx, Event{Kind: EventUserChanged, ID: userID}); err != nil {
			return err
		}
		if now := roleNames(rs); !slices.Equal(before, now) {
			return RecordLive(tx, NewLiveEvent(LiveRolesChanged, userID, "", now))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return UserByID(ctx, db, userID)
}

// findRoles loads the named roles, deduplicated, or returns BadUserInput
// naming the first unknown one.
func findRoles(tx *gorm.DB, names []string) ([]Role, error) {
	seen := map[string]bool{}
	var want []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			want = append(want, n)
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	var rs []Role
	if err := tx.Where("name IN ?", want).Order("name").Find(&rs).Error; err != nil {
		return nil, err
	}
	if len(rs) != len(want) {
		found := map[string]bool{}
		for _, r := range rs {
			found[r.Name] = true
		}
		sort.Strings(want)
		for _, n := range want {
			if !found[n] {
				return nil, Errorf(BadUserInput, "unknown role %q", n)
			}
		}
	}
	return rs, nil
}

// roleNames returns the names of rs, sorted, never nil (a user left with
// no role has the empty list, not none).
func roleNames(rs []Role) []string {
	names := make([]string, 0, len(rs))
	for _, r := range rs {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	return names
}

func containsRole(rs []Role, name string) bool {
	for _, r := range rs {
		if r.Name == name {
			return true
		}
	}
	return false
}
