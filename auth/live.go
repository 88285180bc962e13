package auth

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/authql/authql/models"
)

// DefaultEventsRetention is how long live events are kept for the
// revocation feed when Config.EventsRetention is zero
// (AUTH_EVENTS_RETENTION).
const DefaultEventsRetention = time.Hour

// liveBuffer is how many events one subscription may have waiting beyond
// one transaction's worth (see newLiveHub). A subscriber that falls this
// far behind is dropped (its channel closed,
// Lagged set) rather than slow the committing request or hold memory
// without bound: a socket then closes, a feed client resumes from its
// Last-Event-ID.
const liveBuffer = 64

// liveSeen is how many recent event ids the hub remembers, so that an
// event delivered twice (by this process's commit and again by its own
// notification, or by a re-read after a reconnect) is delivered once.
const liveSeen = 4096

// LiveHub fans the live events of every replica out to this process's
// subscribers: sockets (sessionEvents, one user each) and revocation-feed
// streams (every user). Events recorded here arrive when their
// transaction commits (models.OnLiveCommit); those of other replicas
// through the listener (Service.apply); each is delivered once.
type LiveHub struct {
	// buffer is each subscription's channel capacity.
	buffer int
	mu     sync.Mutex
	byUser map[string]map[*LiveSub]struct{}
	all    map[*LiveSub]struct{}
	seen   map[int64]struct{}
	ring   []int64 // the ids of seen, oldest first at next
	next   int
}

// LiveSub is one subscription to a LiveHub.
type LiveSub struct {
	// C receives the events. It is closed by Cancel, or when the
	// subscriber fell liveBuffer events behind (then Lagged is true).
	C      chan models.LiveEvent
	userID string
	hub    *LiveHub
	closed bool
	lagged bool
}

// newLiveHub returns a hub whose subscriptions hold liveBuffer events
// beyond burst: the most one transaction records for one user (ending
// every session of a user records one event per session, and the change
// that ended them one more), so that a subscriber keeping up is never
// dropped for one large change such as a logout of every session.
func newLiveHub(burst int) *LiveHub {
	return &LiveHub{
		buffer: liveBuffer + max(burst, 0),
		byUser: map[string]map[*LiveSub]struct{}{},
		all:    map[*LiveSub]struct{}{},
		seen:   make(map[int64]struct{}, liveSeen),
		ring:   make([]int64, liveSeen),
	}
}

// Subscribe returns a subscription to the events of userID, or of every
// user when userID is empty. Cancel it when done.
func (h *LiveHub) Subscribe(userID string) *LiveSub {
	sub := &LiveSub{C: make(chan models.LiveEvent, h.buffer), userID: userID, hub: h}
	h.mu.Lock()
	defer h.mu.Unlock()
	if userID == "" {
		h.all[sub] = struct{}{}
		return sub
	}
	subs := h.byUser[userID]
	if subs == nil {
		subs = map[*LiveSub]struct{}{}
		h.byUser[userID] = subs
	}
	subs[sub] = struct{}{}
	return sub
}

// Cancel ends the subscription and closes C, if it is not closed yet.
func (sub *LiveSub) Cancel() {
	h := sub.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drop(sub)
}

// Lagged reports whether the subscription was ended because its
// subscriber fell behind. Read it once C is closed.
func (sub *LiveSub) Lagged() bool {
	sub.hub.mu.Lock()
	defer sub.hub.mu.Unlock()
	return sub.lagged
}

// drop removes sub and closes its channel; h.mu is held.
func (h *LiveHub) drop(sub *LiveSub) {
	if sub.closed {
		return
	}
	sub.closed = true
	close(sub.C)
	if sub.userID == "" {
		delete(h.all, sub)
		return
	}
	if subs := h.byUser[sub.userID]; subs != nil {
		delete(subs, sub)
		if len(subs) == 0 {
			delete(h.byUser, sub.userID)
		}
	}
}

// Publish delivers events to their subscribers, each event once however
// often it is published. It never blocks.
func (h *LiveHub) Publish(events []models.LiveEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range events {
		if _, dup := h.seen[e.ID]; dup {
			continue
		}
		if old := h.ring[h.next]; old != 0 {
			delete(h.seen, old)
		}
		h.ring[h.next] = e.ID
		h.next = (h.next + 1) % len(h.ring)
		h.seen[e.ID] = struct{}{}
		for sub := range h.byUser[e.UserID] {
			h.send(sub, e)
		}
		for sub := range h.all {
			h.send(sub, e)
		}
	}
}

// send gives e to sub, or drops a subscriber whose buffer is full; h.mu
// is held.
func (h *LiveHub) send(sub *LiveSub, e models.LiveEvent) {
	select {
	case sub.C <- e:
	default:
		sub.lagged = true
		h.drop(sub)
	}
}

// Subscribers returns how many subscriptions are open: of one user's
// events, and of every user's.
func (h *LiveHub) Subscribers() (users, all int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, subs := range h.byUser {
		users += len(subs)
	}
	return users, len(h.all)
}

// Live returns the service's hub of live events.
func (s *Service) Live() *LiveHub { return s.live }

// applyLive delivers one live event heard from a replica (this one's own
// come back too: the hub delivers each once).
func (s *Service) applyLive(ctx context.Context, e models.Event) error {
	if e.Live != nil {
		s.live.Publish([]models.LiveEvent{*e.Live})
		return nil
	}
	id, err := strconv.ParseInt(e.ID, 10, 64)
	if err != nil {
		return err
	}
	ev, err := models.LiveEventByID(ctx, s.db, id)
	if err != nil {
		return err
	}
	s.live.Publish([]models.LiveEvent{ev})
	return nil
}

// liveResyncWindow is how far before a lost connection's last sign of
// life a replica re-reads live events when it reconnects: events are
// stamped before their transaction commits, so one committed just after
// the loss may carry an earlier time.
const liveResyncWindow = 10 * time.Second

// resyncLive re-reads the live events recorded since the listening
// connection was last known alive, and delivers those not yet seen.
func (s *Service) resyncLive(ctx context.Context, since time.Time) error {
	if since.IsZero() {
		return nil
	}
	events, err := models.LiveEventsSince(ctx, s.db, since.Add(-liveResyncWindow), 10*liveSeen/11)
	if err != nil {
		return err
	}
	s.live.Publish(events)
	return nil
}

// Now is the service's clock (Config.Now), by which access tokens expire:
// for the revocation feed's streams, which end with their token.
func (s *Service) Now() time.Time { return s.now() }

// LiveEventsAfter returns at most limit live events with an id above
// afterID, in id order: the revocation feed's resumption from
// Last-Event-ID.
func (s *Service) LiveEventsAfter(ctx context.Context, afterID int64, limit int) ([]models.LiveEvent, error) {
	return models.LiveEventsAfter(ctx, s.db, afterID, limit)
}

// LiveEventsCommittedLate returns at most limit live events with an id
// below afterID that may have committed after it (see
// models.LiveEventsCommittedLate): a resumption sends them again first.
func (s *Service) LiveEventsCommittedLate(ctx context.Context, afterID int64, limit int) ([]models.LiveEvent, error) {
	return models.LiveEventsCommittedLate(ctx, s.db, afterID, limit)
}

// RolesGrant reports whether one of roles grants the permission, by the
// role->permissions table held in memory.
func (s *Service) RolesGrant(roles []string, permission string) bool {
	for _, r := range roles {
		if slices.Contains(s.Grants(r), permission) {
			return true
		}
	}
	return false
}
