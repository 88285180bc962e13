package auth

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authql/authql/models"
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
	// stays well under DefaultSyncTimeout, so that a database back after a
	// blip is found again before tokens are refused.
	listenBackoffFirst = 50 * time.Millisecond
	listenBackoffMax   = time.Second
)

// listenerAppName names the listening connection in pg_stat_activity.
const listenerAppName = "authql-listener"

// Listener keeps a Service in step with the other replicas sharing its
// PostgreSQL database: one dedicated connection LISTENs on
// models.EventChannel and applies each event as it arrives. When the
// connection drops, the service is marked out of sync from the last moment
// the connection was known alive; the listener reconnects with backoff,
// LISTENs again, and only then re-reads what it may have missed and marks
// the service in sync. Past Config.SyncTimeout out of sync the service
// refuses access tokens (see Authenticate).
type Listener struct {
	svc *Service
	cfg *pgx.ConnConfig

	pid       atomic.Uint32 // backend of the current connection; 0 while down
	lastAlive time.Time     // owned by the run goroutine
	done      chan struct{}
}

// Listen connects the listener of s to the PostgreSQL database of dsn,
// LISTENs, re-reads what changed since s loaded it, and keeps applying
// events until ctx is done. It returns an error if the first connection
// fails: a replica that cannot hear the others must not start serving.
func (s *Service) Listen(ctx context.Context, dsn string) (*Listener, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("listener: %w", err)
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = listenerAppName
	}
	l := &Listener{svc: s, cfg: cfg, done: make(chan struct{})}
	conn, err := l.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("listener: %w", err)
	}
	go l.run(ctx, conn)
	return l, nil
}

// PID returns the server process ID of the listening connection (as
// pg_backend_pid() names it), or 0 while it is down.
func (l *Listener) PID() uint32 { return l.pid.Load() }

// Done is closed once the listener has stopped (its context is done) and
// closed its connection.
func (l *Listener) Done() <-chan struct{} { return l.done }

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
	if _, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{models.EventChannel}.Sanitize()); err == nil {
		err = conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid)
	}
	if err == nil {
		err = l.svc.resync(ctx)
	}
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	l.lastAlive = time.Now()
	l.pid.Store(pid)
	return conn, nil
}

func (l *Listener) run(ctx context.Context, conn *pgx.Conn) {
	defer close(l.done)
	log := l.svc.log
	for {
		err := l.listen(ctx, conn)
		l.pid.Store(0)
		conn.Close(context.Background())
		if ctx.Err() != nil {
			return
		}
		l.svc.sync.markStale(l.lastAlive)
		log.WarnContext(ctx, "listening connection lost: reconnecting; access tokens are refused if it takes over the sync timeout",
			"err", err, "sync_timeout", l.svc.sync.timeout)
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
				log.ErrorContext(ctx, "listening connection: reconnect failed", "err", err, "refusing_tokens", l.svc.sync.refusing())
				backoff = min(2*backoff, listenBackoffMax)
			}
		}
		l.svc.sync.markSynced()
		log.InfoContext(ctx, "listening connection restored; changes missed meanwhile re-read", "pid", l.PID())
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

func (l *Listener) applyPayload(ctx context.Context, payload string) error {
	events, err := models.ParseEvents(payload)
	if err != nil {
		return err
	}
	for _, e := range events {
		if err := l.svc.apply(ctx, e); err != nil {
			return fmt.Errorf("apply %s event: %w", e.Kind, err)
		}
	}
	return nil
}
