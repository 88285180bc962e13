package models_test

import (
	"context"
	"database/sql"
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

// TestSQLitePragmas: the pragmas ParseDSN asks for are in effect on every
// connection, those of the pool and the one a transaction runs on alike. A
// driver that reads only part of the DSN's options (glebarez/go-sqlite
// ignores those after _time_format) leaves the rest at SQLite's defaults,
// silently.
func TestSQLitePragmas(t *testing.T) {
	db := testdb.OpenAsIs(t, testdb.SQLite(t))
	want := map[string]string{
		"busy_timeout":       "10000",
		"journal_mode":       "wal",
		"journal_size_limit": fmt.Sprint(models.WALSizeLimit),
		"synchronous":        "1", // NORMAL
		"foreign_keys":       "1",
		"temp_store":         "2", // MEMORY
	}
	check := func(t *testing.T, where string, read func(pragma string) (string, error)) {
		t.Helper()
		for pragma, value := range want {
			got, err := read(pragma)
			if err != nil {
				t.Fatalf("%s: PRAGMA %s: %v", where, pragma, err)
			}
			if got != value {
				t.Errorf("%s: PRAGMA %s = %s, want %s", where, pragma, got, value)
			}
		}
	}
	ctx := context.Background()
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	// Every connection of the read pool, held at once so that each is a
	// different one.
	conns := make([]*sql.Conn, models.DefaultSQLiteMaxConns)
	for i := range conns {
		if conns[i], err = sqlDB.Conn(ctx); err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
	}
	for i, c := range conns {
		check(t, fmt.Sprintf("read connection %d", i), func(pragma string) (v string, err error) {
			err = c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&v)
			return v, err
		})
		c.Close()
	}
	// The connection a transaction runs on (the write pool's, on SQLite).
	err = db.Transaction(func(tx *gorm.DB) error {
		check(t, "write connection", func(pragma string) (v string, err error) {
			err = tx.Raw("PRAGMA " + pragma).Row().Scan(&v)
			return v, err
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
