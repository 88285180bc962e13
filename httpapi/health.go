package httpapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authql/authql/auth"
)

const (
	// readyPingTimeout bounds the database ping of one readiness check:
	// load balancers probe every few seconds and give up after a few more.
	readyPingTimeout = 2 * time.Second
	// readyCacheFor is how long a check's answer is reused. /readyz needs
	// no credentials, so without it anyone could turn a flood of probes
	// into a flood of pings taking the database pool's connections.
	readyCacheFor = time.Second
)

// Readiness answers GET /readyz: 200 while this replica can serve, 503 with
// the reason while it cannot, so that load balancers send to the others.
type Readiness struct {
	db  *sql.DB
	svc *auth.Service
	log *slog.Logger

	draining atomic.Bool
	// drained is closed by Drain: long-lived streams (GET /events) end
	// when shutdown begins rather than hold it up.
	drained   chan struct{}
	drainOnce sync.Once

	mu      sync.Mutex // held during a check: concurrent probes share it
	checked time.Time
	reason  string // "" when ready
}

// NewReadiness returns the readiness of a replica serving svc over db.
func NewReadiness(db *sql.DB, svc *auth.Service, log *slog.Logger) *Readiness {
	return &Readiness{db: db, svc: svc, log: log, drained: make(chan struct{})}
}

// Drain makes every later check answer 503 "shutting down": called as
// shutdown begins, so that load balancers stop sending before the listener
// closes.
func (rd *Readiness) Drain() {
	rd.draining.Store(true)
	rd.drainOnce.Do(func() { close(rd.drained) })
}

// Draining is closed once Drain was called; nil (never closed) for a nil
// Readiness.
func (rd *Readiness) Draining() <-chan struct{} {
	if rd == nil {
		return nil
	}
	return rd.drained
}

// ServeHTTP answers 200 "ok" while ready, else 503 with the reason.
func (rd *Readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if reason := rd.check(r.Context()); reason != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, reason+"\n")
		return
	}
	io.WriteString(w, "ok\n")
}

// check returns why the replica is not ready, or "" when it is. The reasons
// are fixed phrases: the database driver's error names hosts and users, so
// it goes to the log, not to an unauthenticated caller.
func (rd *Readiness) check(ctx context.Context) string {
	if rd.draining.Load() {
		return "shutting down"
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if !rd.checked.IsZero() && time.Since(rd.checked) < readyCacheFor {
		return rd.reason
	}
	// Not the probe's own context: an answer cached for the others must
	// not be a probe's impatience.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyPingTimeout)
	defer cancel()
	switch err := rd.db.PingContext(ctx); {
	case err != nil:
		rd.log.WarnContext(ctx, "not ready: database unreachable", "err", err)
		rd.reason = "database unreachable"
	case rd.svc.AuditQueue().Failing:
		// The ping passes, but writes fail: a full disk (SQLite), a
		// PostgreSQL out of space or read-only. The audit writer is the
		// one writing steadily, and retries every few seconds, so its
		// state is the write probe, at no cost here. Ready again once one
		// of its INSERTs succeeds.
		rd.reason = "database not taking writes"
	case rd.svc.AuditQueue().Full:
		rd.reason = "audit log queue full"
	case rd.svc.SyncRefusing():
		// The listener has been cut off from the other replicas past
		// AUTH_SYNC_TIMEOUT: every access token is refused until it is
		// back. Not ready earlier: within the timeout tokens are still
		// served correctly, and a reconnection blip should not flap.
		rd.reason = "out of sync with the other replicas"
	default:
		rd.reason = ""
	}
	rd.checked = time.Now()
	return rd.reason
}

// Shutdown stops the servers once the process is told to stop. Readiness
// fails first, and the servers keep serving for delay, so that load
// balancers probing /readyz stop sending here; then the listeners close
// (new connections are refused), idle connections close, and requests in
// flight get up to timeout to finish. Past it their connections are closed
// and shutdown reports it. serveErr is the main server's Serve result.
// after is time.After, or a test's stand-in that ends the delay when the
// test has seen what happens during it.
func Shutdown(ready *Readiness, servers []*http.Server, serveErr <-chan error, delay, timeout time.Duration, after func(time.Duration) <-chan time.Time, log *slog.Logger) error {
	ready.Drain()
	if delay > 0 {
		log.Info("shutting down: not ready, still serving", "delay", delay.String())
		select {
		case err := <-serveErr:
			return err
		case <-after(delay):
		}
	}
	log.Info("shutting down: finishing the requests in flight", "timeout", timeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	for i, srv := range servers {
		if serr := srv.Shutdown(ctx); serr != nil {
			srv.Close()
			if i == 0 {
				err = fmt.Errorf("shutdown: requests still in flight after AUTH_SHUTDOWN_TIMEOUT (%s) were cut off", timeout)
			}
		}
	}
	if serr := <-serveErr; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
