package testdb

import (
	"context"
	"testing"

	"gorm.io/gorm"

	"github.com/authql/authql/models"
)

// Open opens the database of dsn (from SQLite or Postgres), migrates it,
// and closes it when the test ends.
func Open(tb testing.TB, dsn string) *gorm.DB {
	tb.Helper()
	db := OpenAsIs(tb, dsn)
	if err := models.Migrate(context.Background(), db); err != nil {
		tb.Fatal(err)
	}
	return db
}

// OpenAsIs opens the database of dsn without migrating it, and closes it
// when the test ends: for the tests of migrations, and for looking into
// what the program under test wrote.
func OpenAsIs(tb testing.TB, dsn string) *gorm.DB {
	tb.Helper()
	db, _, err := models.Open(dsn, models.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	sqlDB, _ := db.DB()
	tb.Cleanup(func() { sqlDB.Close() })
	return db
}
