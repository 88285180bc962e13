// Package models holds authql's persistent domain: users, roles and
// permissions, sessions, refresh tokens and revocations, stored with GORM on
// PostgreSQL or on embedded SQLite.
package models

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names the database behind a *gorm.DB.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// ParseDSN tells which database a DATABASE_URL selects and returns the DSN
// to hand to its driver: postgres:// and postgresql:// select PostgreSQL,
// sqlite://PATH or a plain file path select SQLite.
func ParseDSN(dsn string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return Postgres, dsn, nil
	case strings.HasPrefix(dsn, "sqlite://"):
		dsn = strings.TrimPrefix(dsn, "sqlite://")
	case strings.Contains(dsn, "://"):
		return "", "", fmt.Errorf("unsupported database URL scheme in %q: use postgres://, postgresql://, sqlite://PATH or a file path", redactDSN(dsn))
	}
	path, query, _ := strings.Cut(dsn, "?")
	if path == "" {
		return "", "", fmt.Errorf("empty SQLite path")
	}
	if path == ":memory:" {
		// Each pooled connection would get its own empty database.
		return "", "", fmt.Errorf("in-memory SQLite is not supported: use a file path")
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", "", fmt.Errorf("invalid SQLite options %q: %v", query, err)
	}
	// Order matters: busy_timeout first, so that the journal-mode switch
	// itself waits for a concurrent opener instead of failing with
	// SQLITE_BUSY; then WAL, so readers never block the writer; then foreign
	// keys, which SQLite leaves off unless asked on every connection.
	q["_pragma"] = append([]string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(1)"}, q["_pragma"]...)
	// Every transaction here writes; taking the write lock at BEGIN makes a
	// concurrent writer wait on busy_timeout instead of failing with
	// SQLITE_BUSY when a read lock cannot be upgraded.
	if q.Get("_txlock") == "" {
		q.Set("_txlock", "immediate")
	}
	// One sortable text format for times, always written in UTC (see Now).
	q.Set("_time_format", "sqlite")
	return SQLite, path + "?" + q.Encode(), nil
}

// Open connects to the database that dsn selects (see ParseDSN).
func Open(dsn string) (*gorm.DB, Dialect, error) {
	dialect, driverDSN, err := ParseDSN(dsn)
	if err != nil {
		return nil, "", err
	}
	var d gorm.Dialector
	switch dialect {
	case Postgres:
		d = postgres.Open(driverDSN)
	case SQLite:
		d = sqlite.Open(driverDSN)
	}
	db, err := gorm.Open(d, &gorm.Config{
		// Duplicate keys surface as gorm.ErrDuplicatedKey on both databases.
		TranslateError: true,
		NowFunc:        Now,
		Logger:         logger.Discard,
	})
	if err != nil {
		return nil, "", fmt.Errorf("open %s database: %w", dialect, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, "", err
	}
	// Pools are sized on purpose: database/sql keeps only 2 idle
	// connections by default, so under concurrent load it would dial
	// PostgreSQL (or reopen SQLite and rerun its pragmas) per request.
	switch dialect {
	case Postgres:
		sqlDB.SetMaxOpenConns(20)
		sqlDB.SetMaxIdleConns(20)
	case SQLite:
		// SQLite runs one writer at a time; more connections than a few
		// readers only queue on its lock.
		sqlDB.SetMaxOpenConns(8)
		sqlDB.SetMaxIdleConns(8)
	}
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqlDB.Ping(); err != nil {
		sqlDB.Close()
		return nil, "", fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	return db, dialect, nil
}

// Now is the time GORM stamps rows with: UTC, so that SQLite's text times
// compare correctly as strings.
func Now() time.Time { return time.Now().UTC() }

// redactDSN drops a password from a URL so it can appear in an error.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		return u.Redacted()
	}
	return "the database URL"
}
