package models_test

import (
	"context"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/internal/pgcluster"
	"github.com/authql/authql/models"
)

// TestTimeoutOnFrozenDatabase: with PostgreSQL frozen (SIGSTOP), a
// statement and a transaction each end with an error that reads as the
// database being unavailable, instead of hanging as long as the freeze,
// and the transaction's write is not committed after the thaw.
func TestTimeoutOnFrozenDatabase(t *testing.T) {
	pg := pgcluster.Start(t)
	db, _, err := models.Open(pg.DSN(), models.Options{Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	if err := db.Exec("CREATE TABLE t (n int)").Error; err != nil {
		t.Fatal(err)
	}
	pg.Freeze()
	defer pg.Thaw()
	done := make(chan error, 2)
	go func() { done <- db.WithContext(context.Background()).Exec("INSERT INTO t VALUES (1)").Error }()
	go func() {
		done <- db.WithContext(context.Background()).Transaction(func(tx *gorm.DB) error {
			return tx.Exec("INSERT INTO t VALUES (2)").Error
		})
	}()
	for range 2 {
		select {
		case err := <-done:
			if !models.Unavailable(err) {
				t.Errorf("statement on a frozen database: %v, want an error Unavailable reports", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("statement on a frozen database still waiting after 30s: no deadline")
		}
	}
}
