package models

import "github.com/go-gormigrate/gormigrate/v2"

// MigrateInitial exposes the first migration to the tests of package
// models_test, which build databases the way authql did before versioned
// migrations with it.
var MigrateInitial = migrateInitial

// AppendMigration adds m to the migrations until the returned function is
// called. Tests using it must not run in parallel with others.
func AppendMigration(m *gormigrate.Migration) (restore func()) {
	saved := migrations
	migrations = append(migrations[:len(migrations):len(migrations)], m)
	return func() { migrations = saved }
}
