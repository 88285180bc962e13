package testdb

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// SQLCounter counts the SQL statements run through a *gorm.DB: GORM reports
// every statement it executes to its logger, and this logger counts them.
type SQLCounter struct {
	logger.Interface
	N atomic.Int64 // the statements counted
}

// Trace counts one statement.
func (c *SQLCounter) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	c.N.Add(1)
}

// LogMode returns c: every statement is counted.
func (c *SQLCounter) LogMode(logger.LogLevel) logger.Interface { return c }

// CountSQL makes db count its statements from now on (for the rest of the
// test) and returns the counter.
func CountSQL(tb testing.TB, db *gorm.DB) *SQLCounter {
	tb.Helper()
	c := &SQLCounter{Interface: logger.Discard}
	old := db.Config.Logger
	db.Config.Logger = c
	tb.Cleanup(func() { db.Config.Logger = old })
	return c
}
