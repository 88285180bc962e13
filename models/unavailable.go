package models

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// UnavailableRetryAfter is the retryAfter of ErrUnavailable: long enough
// for a restarted database or a failover to come back, short enough that a
// client does not give up on a blip.
const UnavailableRetryAfter = 5 * time.Second

// ErrUnavailable is what a client is told when the database cannot be
// reached or cannot write: the service is down for now, not broken, and
// the request may be retried as it is.
var ErrUnavailable = &Error{
	Code:       ServiceUnavailable,
	Message:    "the service is temporarily unavailable; retry later",
	RetryAfter: UnavailableRetryAfter,
}

// Unavailable reports whether err means the database is unreachable or
// cannot do its work for now, rather than that the request or the code is
// wrong: a refused, reset or closed connection, a statement past its
// deadline (AUTH_DB_TIMEOUT), PostgreSQL shutting down, starting up or out
// of connections or disk, SQLite's full disk, locks still held past
// busy_timeout, and I/O errors. A client that retries later may succeed.
// A request cancelled by its own client is not among them: nobody is
// waiting for that answer.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EIO) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	// pgconn's own connection-level errors (a connection the server
	// closed, or that broke mid-message: "conn closed", "failed to
	// receive message") are the ones that say whether a retry is safe;
	// PostgreSQL's answers (PgError, below) do not.
	var connectErr *pgconn.ConnectError
	var connErr interface{ SafeToRetry() bool }
	if errors.As(err, &connectErr) || pgconn.Timeout(err) || errors.As(err, &connErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch class := pgErr.Code[:min(2, len(pgErr.Code))]; {
		case class == "08": // connection exception
			return true
		case class == "53": // insufficient resources: disk full, out of memory, too many connections
			return true
		case class == "58": // system error: I/O error
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // admin, crash shutdown; cannot connect now
			return true
		case pgErr.Code == "57014": // query cancelled: a statement timeout, or our deadline
			return true
		}
		return false
	}
	// SQLite (glebarez/go-sqlite's *Error): primary result codes, the low
	// byte of the extended ones.
	var sqliteErr interface{ Code() int }
	if errors.As(err, &sqliteErr) {
		switch sqliteErr.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED: still locked after busy_timeout
			return true
		case 10, 13, 14: // SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
			return true
		}
	}
	// A COMMIT that failed for a full disk, whose rollback then failed
	// too, comes as one error with the code of the second (SQLITE_ERROR)
	// and both messages: SQLite's own fixed texts for the codes above.
	msg := err.Error()
	for _, m := range sqliteUnavailable {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// sqliteUnavailable are sqlite3_errstr's texts of the result codes that
// mean the database is unavailable.
var sqliteUnavailable = []string{
	"database or disk is full", "disk I/O error", "database is locked",
	"database table is locked", "unable to open database file",
}

// Coded returns the *Error a client is shown for err: the one in its
// chain, ErrUnavailable when err means the database is unavailable (see
// Unavailable), or nil for an internal failure.
func Coded(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if Unavailable(err) {
		return ErrUnavailable
	}
	return nil
}
