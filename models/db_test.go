package models_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// burst takes n connections of db at once, then gives them all back, as a
// burst of n concurrent requests would.
func burst(tb testing.TB, db *sql.DB, n int) {
	tb.Helper()
	conns := make([]*sql.Conn, n)
	for i := range conns {
		c, err := db.Conn(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		conns[i] = c
	}
	for _, c := range conns {
		c.Close()
	}
}

// TestOpenPool checks that Open sizes the pool as asked, and by default
// keeps every connection a burst opened: a pool that closed them (as
// database/sql's default of 2 idle connections does) would dial them again
// at the next burst.
func TestOpenPool(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		open := func(t *testing.T, o models.Options) (*sql.DB, models.Dialect) {
			t.Helper()
			db, dialect, err := models.Open(dsn, o)
			if err != nil {
				t.Fatal(err)
			}
			sqlDB, _ := db.DB()
			t.Cleanup(func() { sqlDB.Close() })
			return sqlDB, dialect
		}
		t.Run("Defaults", func(t *testing.T) {
			db, dialect := open(t, models.Options{})
			max := models.DefaultMaxConns(dialect)
			if got := db.Stats().MaxOpenConnections; got != max {
				t.Fatalf("MaxOpenConnections = %d, want %d", got, max)
			}
			burst(t, db, max)
			burst(t, db, max)
			if s := db.Stats(); s.Idle != max || s.OpenConnections != max || s.MaxIdleClosed != 0 || s.MaxLifetimeClosed != 0 {
				t.Errorf("after two bursts of %d: %+v, want all %d kept idle and none closed", max, s, max)
			}
		})
		t.Run("Sized", func(t *testing.T) {
			db, _ := open(t, models.Options{MaxConns: 4, MaxIdleConns: 2})
			if got := db.Stats().MaxOpenConnections; got != 4 {
				t.Fatalf("MaxOpenConnections = %d, want 4", got)
			}
			burst(t, db, 4)
			if s := db.Stats(); s.Idle != 2 || s.MaxIdleClosed != 2 {
				t.Errorf("after a burst of 4 with 2 idle allowed: %+v, want 2 idle and 2 closed", s)
			}
		})
		t.Run("MoreIdleThanOpen", func(t *testing.T) {
			_, _, err := models.Open(dsn, models.Options{MaxConns: 2, MaxIdleConns: 3})
			if err == nil || !strings.Contains(err.Error(), "idle") {
				t.Errorf("Open with 3 idle of 2 open: %v, want an error about idle connections", err)
			}
		})
	})
}

// TestSQLiteTransactionsBeginImmediate: a transaction takes SQLite's write
// lock at BEGIN, so that one that reads before it writes waits for another
// writer (busy_timeout) instead of failing with SQLITE_BUSY at its first
// write.
func TestSQLiteTransactionsBeginImmediate(t *testing.T) {
	db, _, err := models.Open(testdb.SQLite(t), models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	ctx := context.Background()
	first, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Rollback()
	c, err := sqlDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		t.Fatal(err)
	}
	second, err := c.BeginTx(ctx, nil)
	if err == nil {
		second.Rollback()
		t.Fatal("a second transaction began while the first was open: transactions are DEFERRED, not IMMEDIATE")
	}
	if !strings.Contains(err.Error(), "locked") {
		t.Errorf("second BEGIN: %v, want database is locked", err)
	}
}

// TestSQLiteTimeFormat: times are stored as sortable UTC text, the format
// existing databases hold.
func TestSQLiteTimeFormat(t *testing.T) {
	db, _, err := models.Open(testdb.SQLite(t), models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	if err := db.Exec("CREATE TABLE times (at DATETIME)").Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("INSERT INTO times (at) VALUES (?)", time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)).Error; err != nil {
		t.Fatal(err)
	}
	var text string
	if err := db.Raw("SELECT CAST(at AS TEXT) FROM times").Scan(&text).Error; err != nil {
		t.Fatal(err)
	}
	if want := "2026-01-02 03:04:05.6+00:00"; text != want {
		t.Errorf("stored %q, want %q", text, want)
	}
}
