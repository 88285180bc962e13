package models_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"gorm.io/gorm"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// TestSQLiteConcurrentWriters: transactions that read before they write,
// run at once on several connections, all commit: each waits for the write
// lock at BEGIN instead of failing with SQLITE_BUSY at its first write.
func TestSQLiteConcurrentWriters(t *testing.T) {
	db := testdb.OpenAsIs(t, testdb.SQLite(t))
	if err := models.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	const n = 40
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- db.Transaction(func(tx *gorm.DB) error {
				var count int64
				if err := tx.Table("settings").Count(&count).Error; err != nil {
					return err
				}
				return tx.Exec(`INSERT INTO settings (name, value) VALUES (?, ?)`, fmt.Sprint("s", i), fmt.Sprint(count)).Error
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
