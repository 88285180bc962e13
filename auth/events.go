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

// Synced reports whether the service holds every change other replicas
// committed: always, unless its listening connection (see Listen) dropped
// and it has not yet re-read what it may have missed.
func (s *Service) Synced() bool { return s.sync.staleSince.Load() == 0 }

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
	return s.Keys().Reload(ctx)
}
