package models

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Timings of the listening connection.
const (
	// listenIdle is how long the listener waits for a notification before
	// it checks that the connection is alive. A connection killed by the
	// server (pg_terminate_backend, a restart) is noticed at once; this
	// bounds how long a silently dead one (a network partition) goes
	// unnoticed.
	listenIdle = time.Second
	// listenPingTimeout bounds that check.
	listenPingTimeout = 2 * time.Second
	// listenConnectTimeout bounds one connection attempt with its LISTEN
	// and resync.
	listenConnectTimeout = 5 * time.Second
	// Reconnection backoff: from the first to the last, doubling. The last
	// stays well under auth's DefaultSyncTimeout (5 s), so that a database
	// back after a blip is found again before tokens are refused.
	listenBackoffFirst = 50 * time.Millisecond
	listenBackoffMax   = time.Second
)

// listenerAppName names the listening connection in pg_stat_activity.
const listenerAppName = "authql-listener"

// Subscriber is what a Listener keeps in step with the other replicas
// sharing a PostgreSQL database (auth's Service).
type Subscriber interface {
	// Resync re-reads everything other replicas may have changed while
	// nothing was heard. It runs on each new connection once it LISTENs.
	Resync(ctx context.Context) error
	// Apply applies one event, from another replica or from this one:
	// its own notifications come back too. An error is treated as a lost
	// connection, so that what was not applied is re-read.
	Apply(ctx context.Context, e Event) error
	// Lost is told that the connection dropped (err says why): changes
	// committed since lastAlive may have been missed.
	Lost(ctx context.Context, lastAlive time.Time, err error)
	// ReconnectFailed is told of each failed reconnection attempt.
	ReconnectFailed(ctx context.Context, err error)
	// Restored is told that a new connection (server process pid)
	// LISTENs again and Resync has run.
	Restored(ctx context.Context, pid uint32)
}

// Listener keeps a Subscriber in step with the other replicas sharing its
// PostgreSQL database: one dedicated connection LISTENs on EventChannel
// and applies each event as it arrives. When the connection drops, the
// subscriber is told it is out of sync from the last moment the connection
// was known alive; the listener reconnects with backoff, LISTENs again, and
// only then re-reads what it may have missed and tells the subscriber it
// is in sync (auth refuses access tokens while it has been out of sync for
// too long).
type Listener struct {
	sub Subscriber
	cfg *pgx.ConnConfig

	pid       atomic.Uint32 // backend of the current connection; 0 while down
	lastAlive time.Time     // owned by the run goroutine
	done      chan struct{}
}

// Listen connects a listener for sub to the PostgreSQL database of dsn,
// LISTENs, has sub re-read what changed since it loaded it, and keeps
// applying events until ctx is done. It returns an error if the first
// connection fails: a replica that cannot hear the others must not start
// serving. For a SQLite dsn it returns a nil Listener, whose Done is
// closed: one process serves a SQLite database, so there is no one to hear.
func Listen(ctx context.Context, dsn string, sub Subscriber) (*Listener, error) {
	if d, _, err := ParseDSN(dsn); err != nil {
		return nil, fmt.Errorf("listener: %w", err)
	} else if d != Postgres {
		return nil, nil
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("listener: %w", err)
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = listenerAppName
	}
	l := &Listener{sub: sub, cfg: cfg, done: make(chan struct{})}
	conn, err := l.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("listener: %w", err)
	}
	go l.run(ctx, conn)
	return l, nil
}

// closedDone is the Done of a nil Listener.
var closedDone = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// PID returns the server process ID of the listening connection (as
// pg_backend_pid() names it), or 0 while it is down or l is nil.
func (l *Listener) PID() uint32 {
	if l == nil {
		return 0
	}
	return l.pid.Load()
}

// Done is closed once the listener has stopped (its context is done) and
// closed its connection; at once for a nil Listener (see Listen).
func (l *Listener) Done() <-chan struct{} {
	if l == nil {
		return closedDone
	}
	return l.done
}

// connect opens the connection, LISTENs, then resyncs, in that order: a
// change committed after the re-read is then certain to be notified, and
// one committed before it is certain to be read.
func (l *Listener) connect(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, listenConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return nil, err
	}
	var pid uint32
	if _, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{EventChannel}.Sanitize()); err == nil {
		err = conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid)
	}
	if err == nil {
		err = l.sub.Resync(ctx)
	}
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	l.lastAlive = time.Now()
	l.pid.Store(pid)
	return conn, nil
}

// run listens on conn, and on each new connection after it drops, until
// ctx is done.
func (l *Listener) run(ctx context.Context, conn *pgx.Conn) {
	defer close(l.done)
	for {
		err := l.listen(ctx, conn)
		l.pid.Store(0)
		conn.Close(context.Background())
		if ctx.Err() != nil {
			return
		}
		l.sub.Lost(ctx, l.lastAlive, err)
		backoff := listenBackoffFirst
		for conn = nil; conn == nil; {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			if conn, err = l.connect(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				l.sub.ReconnectFailed(ctx, err)
				backoff = min(2*backoff, listenBackoffMax)
			}
		}
		l.sub.Restored(ctx, l.PID())
	}
}

// listen applies notifications until the connection fails or ctx is done.
func (l *Listener) listen(ctx context.Context, conn *pgx.Conn) error {
	for {
		wait, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(wait)
		cancel()
		switch {
		case err == nil:
			l.lastAlive = time.Now()
			if err := l.applyPayload(ctx, n.Payload); err != nil {
				// An event not applied is a change missed: treat it as a
				// dropped connection, which re-reads everything.
				return err
			}
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case !errors.Is(err, context.DeadlineExceeded):
			return err
		}
		// Idle: a connection the network silently dropped looks just
		// like a quiet one, so ask.
		ping, cancel := context.WithTimeout(ctx, listenPingTimeout)
		err = conn.Ping(ping)
		cancel()
		if err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		l.lastAlive = time.Now()
	}
}

// applyPayload applies the events of one notification, in order.
func (l *Listener) applyPayload(ctx context.Context, payload string) error {
	events, err := ParseEvents(payload)
	if err != nil {
		return err
	}
	for _, e := range events {
		if err := l.sub.Apply(ctx, e); err != nil {
			return fmt.Errorf("apply %s event: %w", e.Kind, err)
		}
	}
	return nil
}
