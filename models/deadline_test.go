package models_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/internal/pgcluster"
	"github.com/authql/authql/internal/testdb"
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

// TestSQLiteTransactionsTakeTurns: a transaction waiting for SQLite's
// write lock gets it in its turn, not after a connection that commits and
// begins again at once has had it over and over (SQLite's own busy wait
// polls, and the looping connection wins the lock between polls).
func TestSQLiteTransactionsTakeTurns(t *testing.T) {
	db := testdb.Open(t, testdb.SQLite(t))
	ctx := context.Background()
	write := func(tx *gorm.DB) error {
		return tx.Exec(`INSERT INTO settings (name, value) VALUES ('turns', '0') ON CONFLICT (name) DO UPDATE SET value = settings.value || 'x'`).Error
	}
	var loops atomic.Int64
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				loops.Add(1)
				time.Sleep(time.Millisecond) // holds the lock a while, as a rotation does
				return write(tx)
			}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(stop); <-stopped }()
	for loops.Load() < 5 {
		runtime.Gosched()
	}
	for i := range 20 {
		before := loops.Load()
		if err := db.WithContext(ctx).Transaction(write); err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
		// In its turn: after the looping transaction that held the lock,
		// and perhaps the one that queued before this began.
		if waited := loops.Load() - before; waited > 2 {
			t.Fatalf("transaction %d waited through %d transactions of the looping connection", i, waited)
		}
	}
}
