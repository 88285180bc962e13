package models

import (
	"context"
	"database/sql"
	"sync"
	"time"

	"gorm.io/gorm"
)

// DefaultTimeout is the deadline of one database operation when
// Options.Timeout is 0 (AUTH_DB_TIMEOUT).
const DefaultTimeout = 5 * time.Second

// deadlinePool gives every statement and every transaction authql runs a
// deadline: the caller's context (a request's, cancelled when its client
// goes) bounded by the pool's timeout. It sits between GORM and the
// *sql.DB, so that nothing reaches the database without one: the
// statements of requests, of transactions, of the rate limiter, of the
// listener's re-reads and of the purge alike. A database that stalls
// (frozen, partitioned, out of disk with writers queued on a lock) then
// costs a request at most the timeout, and its error is the deadline,
// which clients see as SERVICE_UNAVAILABLE (see Unavailable).
//
// A transaction gets one deadline for all of it, from BEGIN to COMMIT: its
// statements and its COMMIT run under the context it began with, and
// database/sql rolls it back when that context ends, so a request whose
// client has gone (or that ran out of time) never commits.
type deadlinePool struct {
	db      *sql.DB
	timeout time.Duration
	// writers, on SQLite, queues the transactions of this process for
	// the database's one write lock, first come first served (see
	// BeginTx); nil on PostgreSQL.
	writers chan struct{}
	// sink receives the live events of each committed transaction.
	sink liveSink
}

var (
	_ gorm.ConnPool         = (*deadlinePool)(nil)
	_ gorm.ConnPoolBeginner = (*deadlinePool)(nil)
	_ gorm.GetDBConnector   = (*deadlinePool)(nil)
	_ gorm.Tx               = (*deadlineTx)(nil)
	_ gorm.GetDBConnector   = (*deadlineTx)(nil)
)

type timeoutKey struct{}

// WithoutTimeout returns ctx for work that may rightly take longer than
// any operation timeout: migrations, which rewrite whole tables.
func WithoutTimeout(ctx context.Context) context.Context {
	return context.WithValue(ctx, timeoutKey{}, time.Duration(-1))
}

// WithTimeout returns ctx whose database operations each get d instead of
// the pool's timeout: background work that no client waits for and that
// may have a backlog to go through, such as the purge after an outage.
func WithTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, timeoutKey{}, d)
}

// bound returns ctx with the operation deadline (the pool's timeout, or
// the one ctx asks for), unless ctx has an earlier one or asked for none.
func (p *deadlinePool) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	d := p.timeout
	if v, ok := ctx.Value(timeoutKey{}).(time.Duration); ok {
		if v < 0 {
			return ctx, func() {}
		}
		d = v
	}
	return context.WithTimeout(ctx, d)
}

// boundContext returns ctx with db's operation deadline, for a statement
// run on db.DB() directly, which bypasses the deadline pool.
func boundContext(db *gorm.DB, ctx context.Context) (context.Context, context.CancelFunc) {
	if p, ok := db.ConnPool.(*deadlinePool); ok {
		return p.bound(ctx)
	}
	return ctx, func() {}
}

func (p *deadlinePool) GetDBConn() (*sql.DB, error) { return p.db, nil }

func (p *deadlinePool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	ctx, cancel := p.bound(ctx)
	defer cancel()
	return p.db.PrepareContext(ctx, query)
}

func (p *deadlinePool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, cancel := p.bound(ctx)
	defer cancel()
	return p.db.ExecContext(ctx, query, args...)
}

// QueryContext cannot cancel its deadline when it returns: the rows are
// read afterwards, under that context. The deadline's own timer releases
// it, at the latest after the timeout.
func (p *deadlinePool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx, cancel := p.bound(ctx)
	rows, err := p.db.QueryContext(ctx, query, args...)
	if err != nil {
		cancel()
	}
	return rows, err
}

// QueryRowContext: as QueryContext, the row is scanned after it returns.
func (p *deadlinePool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx, cancel := p.bound(ctx)
	row := p.db.QueryRowContext(ctx, query, args...)
	if row.Err() != nil {
		cancel()
	}
	return row
}

func (p *deadlinePool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	ctx, cancel := p.bound(ctx)
	release := p.queue(ctx)
	if release == nil {
		cancel()
		return nil, ctx.Err()
	}
	tx, err := p.db.BeginTx(ctx, opts)
	if err != nil {
		release()
		cancel()
		return nil, err
	}
	done := func() {
		release()
		cancel()
	}
	return &deadlineTx{Tx: tx, db: p.db, ctx: ctx, cancel: done, pool: p}, nil
}

// queue waits for this process's turn to begin a transaction on SQLite
// and returns the function that ends it, or nil when ctx ends first. On
// PostgreSQL it returns at once.
//
// Every SQLite transaction here takes the write lock at BEGIN
// (_txlock=immediate), and SQLite's own wait for it (busy_timeout) polls
// at intervals: a connection that commits and begins again at once, such
// as a client refreshing in a loop, wins the lock again and again, and a
// password change or an account deletion waiting beside it could time out
// on a loaded machine. Waiting here instead, in a channel whose waiters
// Go serves in arrival order, each transaction gets the lock in its turn,
// and holds no connection while it waits. Other processes (the commands)
// still meet the busy timeout.
func (p *deadlinePool) queue(ctx context.Context) (release func()) {
	if p.writers == nil {
		return func() {}
	}
	select {
	case p.writers <- struct{}{}:
	case <-ctx.Done():
		return nil
	}
	var once sync.Once
	return func() { once.Do(func() { <-p.writers }) }
}

// deadlineTx is a transaction under the deadline it began with: every
// statement in it runs under that deadline too (GORM hands them the
// caller's context, which has none).
type deadlineTx struct {
	*sql.Tx
	db     *sql.DB
	ctx    context.Context
	cancel context.CancelFunc
	pool   *deadlinePool
	// live are the events RecordLive added, handed to the pool's sink
	// once the transaction has committed.
	live []LiveEvent
}

func (t *deadlineTx) GetDBConn() (*sql.DB, error) { return t.db, nil }

// within returns ctx ending no later than the transaction's deadline.
func (t *deadlineTx) within(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := t.ctx.Deadline(); ok {
		return context.WithDeadline(ctx, d)
	}
	return ctx, func() {}
}

func (t *deadlineTx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	ctx, cancel := t.within(ctx)
	defer cancel()
	return t.Tx.PrepareContext(ctx, query)
}

func (t *deadlineTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, cancel := t.within(ctx)
	defer cancel()
	return t.Tx.ExecContext(ctx, query, args...)
}

// QueryContext runs under the transaction's context itself (whose
// deadline ends with the transaction), since its rows are read after it
// returns.
func (t *deadlineTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if _, ok := t.ctx.Deadline(); ok {
		ctx = t.ctx
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t *deadlineTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if _, ok := t.ctx.Deadline(); ok {
		ctx = t.ctx
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

func (t *deadlineTx) Commit() error {
	err := t.Tx.Commit()
	t.cancel()
	if err == nil {
		t.pool.sink.deliver(t.live)
	}
	return err
}

func (t *deadlineTx) Rollback() error {
	defer t.cancel()
	return t.Tx.Rollback()
}
