package models

import (
	"context"
	"database/sql"
	"database/sql/driver"

	gosqlite "github.com/glebarez/go-sqlite"
)

// sqliteDriver is the name under which Open registers the SQLite driver
// wrapped to begin transactions with BEGIN IMMEDIATE.
const sqliteDriver = "authql-sqlite"

func init() { sql.Register(sqliteDriver, immediateDriver{&gosqlite.Driver{}}) }

// immediateDriver is the pure-Go SQLite driver, except that read-write
// transactions begin with BEGIN IMMEDIATE, taking the write lock at once
// and waiting for it (busy_timeout) if another connection has it.
//
// Every transaction here writes. Begun DEFERRED, as SQLite does by
// default, one that reads first takes the write lock only at its first
// write, and if another connection wrote in between, SQLite fails it at
// once with SQLITE_BUSY rather than wait: half of 40 concurrent
// registrations failed so. The driver's own _txlock=immediate option is
// ignored whenever _time_format is set too (its option parsing returns
// early, as of go-sqlite v1.23.0), hence this wrapper.
type immediateDriver struct{ driver.Driver }

func (d immediateDriver) Open(name string) (driver.Conn, error) {
	c, err := d.Driver.Open(name)
	if err != nil {
		return nil, err
	}
	return immediateConn{c.(sqliteConn)}, nil
}

// sqliteConn is what go-sqlite's connection implements, all of which the
// wrapper passes on so that database/sql uses it as it would the original.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
}

type immediateConn struct{ sqliteConn }

var _ sqliteConn = immediateConn{}

func (c immediateConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c immediateConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly {
		return c.sqliteConn.BeginTx(ctx, opts)
	}
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE", nil); err != nil {
		return nil, err
	}
	return immediateTx{c.sqliteConn}, nil
}

// immediateTx ends a transaction as go-sqlite's own does: with a statement.
type immediateTx struct{ c sqliteConn }

func (t immediateTx) Commit() error {
	_, err := t.c.ExecContext(context.Background(), "COMMIT", nil)
	return err
}

func (t immediateTx) Rollback() error {
	_, err := t.c.ExecContext(context.Background(), "ROLLBACK", nil)
	return err
}
