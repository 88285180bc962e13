package auth

import (
	"context"
	"testing"

	"gorm.io/gorm"

	"github.com/authql/authql/models"
)

// openDB opens the database at dsn, migrated, and closes it at the end of
// the test.
func openDB(tb testing.TB, dsn string) *gorm.DB {
	tb.Helper()
	db, _, err := models.Open(dsn, models.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	sqlDB, _ := db.DB()
	tb.Cleanup(func() { sqlDB.Close() })
	if err := models.Migrate(context.Background(), db); err != nil {
		tb.Fatal(err)
	}
	return db
}
