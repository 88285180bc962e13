package auth

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/authql/authql/models"
)

// DefaultSyncTimeout is how long a replica that has lost its listening
// connection keeps trusting what it holds in memory (Config.SyncTimeout).
const DefaultSyncTimeout = 5 * time.Second

// errUnsynced refuses tokens while a replica cannot know what other
// replicas revoked.
var errUnsynced = &models.Error{
	Code:       models.ServiceUnavailable,
	Message:    "authentication is temporarily unavailable; retry shortly",
	RetryAfter: time.Second,
}

// syncState tracks whether the service's memory (revocations, users, role
// grants, keys) is known to hold every change committed by other replicas.
type syncState struct {
	// staleSince is the wall-clock time (Unix nanoseconds) since which
	// changes may have been missed, or 0 while in sync.
	staleSince atomic.Int64
	timeout    time.Duration
}

// markStale records that changes made since `since` may have been missed.
// An earlier mark is kept: staleness runs from the first moment of doubt.
func (st *syncState) markStale(since time.Time) {
	st.staleSince.CompareAndSwap(0, since.UnixNano())
}

func (st *syncState) markSynced() { st.staleSince.Store(0) }

// refusing reports whether the service has been out of sync for longer than
// its timeout. Wall-clock time, not the service clock: what is bounded is
// how long, in real time, a missed revocation could still be honoured.
func (st *syncState) refusing() bool {
	since := st.staleSince.Load()
	return since != 0 && time.Since(time.Unix(0, since)) > st.timeout
}

// apply applies one event from another replica (or from this one: its own
// notifications come back too, and applying an event twice is harmless).
func (s *Service) apply(ctx context.Context, e models.Event) error {
	switch e.Kind {
	case models.EventSessionRevoked:
		until := e.Until
		if until.IsZero() {
			until = s.revokeUntil(s.now())
		}
		s.revs.add(until.UTC(), e.ID)
	case models.EventUserChanged:
		s.forgetUser(e.ID)
	case models.EventRolesChanged:
		return s.reloadGrants(ctx)
	case models.EventKeysChanged:
		return s.Keys().Reload(ctx)
	case models.EventLive:
		return s.applyLive(ctx, e)
	case models.EventAudit:
		return s.applyAudit(ctx, e)
	default:
		// A kind this version does not know, say from a newer replica
		// during a rolling upgrade: the caller re-reads everything rather
		// than ignore a change it cannot tell the meaning of.
		return fmt.Errorf("unknown event kind %q", e.Kind)
	}
	return nil
}

// resync re-reads everything other replicas may have changed while this
// one was not listening: revocations, users, role grants and keys.
func (s *Service) resync(ctx context.Context) error {
	loaded, err := models.Revocations(ctx, s.db, s.now())
	if err != nil {
		return err
	}
	s.revs.merge(loaded, s.now())
	s.forgetAllUsers()
	if err := s.reloadGrants(ctx); err != nil {
		return err
	}
	if err := s.Keys().Reload(ctx); err != nil {
		return err
	}
	if lost := s.liveLostAt.Swap(0); lost != 0 {
		if err := s.resyncLive(ctx, time.Unix(0, lost)); err != nil {
			s.liveLostAt.CompareAndSwap(0, lost)
			return err
		}
	}
	return nil
}

// Listen keeps s in step with the other replicas sharing its PostgreSQL
// database (see models.Listen): it hears their revocations, user, role and
// key changes as they commit. While the listening connection has been down
// for longer than Config.SyncTimeout, s refuses access tokens (see
// Authenticate). It returns an error if the first connection fails: a
// replica that cannot hear the others must not start serving. For SQLite,
// which one process serves, it returns a nil Listener, whose Done is closed.
func (s *Service) Listen(ctx context.Context, dsn string) (*models.Listener, error) {
	return models.Listen(ctx, dsn, replicaEvents{s})
}

// replicaEvents is the service as the listener sees it.
type replicaEvents struct{ s *Service }

var _ models.Subscriber = replicaEvents{}

func (r replicaEvents) Resync(ctx context.Context) error { return r.s.resync(ctx) }

func (r replicaEvents) Apply(ctx context.Context, e models.Event) error { return r.s.apply(ctx, e) }

func (r replicaEvents) Lost(ctx context.Context, lastAlive time.Time, err error) {
	r.s.sync.markStale(lastAlive)
	r.s.liveLostAt.CompareAndSwap(0, lastAlive.UnixNano())
	r.s.log.WarnContext(ctx, "listening connection lost: reconnecting; access tokens are refused if it takes over the sync timeout",
		"err", err, "sync_timeout", r.s.sync.timeout)
}

func (r replicaEvents) ReconnectFailed(ctx context.Context, err error) {
	r.s.log.ErrorContext(ctx, "listening connection: reconnect failed", "err", err, "refusing_tokens", r.s.sync.refusing())
}

func (r replicaEvents) Restored(ctx context.Context, pid uint32) {
	r.s.sync.markSynced()
	r.s.log.InfoContext(ctx, "listening connection restored; changes missed meanwhile re-read", "pid", pid)
}
