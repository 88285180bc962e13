package auth

import (
	"context"
	"sync"

	"github.com/authql/authql/models"
)

// auditBuffer is how many audit events one auditEvents subscription may
// have waiting: a batch of the writer. Past it the subscriber is dropped
// (Lagged), as a live one is.
const auditBuffer = 256

// auditSeen is how many recent audit event ids the hub remembers, so that
// a batch heard again (this replica's own notification, a retried write)
// is delivered once.
const auditSeen = 4096

// auditHub fans the audit events written by every replica out to this
// process's auditEvents subscriptions: this process's own batches from
// the audit writer's hook, the other replicas' re-read from the rows
// their notifications name (see applyAudit).
type auditHub struct {
	mu   sync.Mutex
	subs map[*AuditSub]struct{}
	seen map[string]struct{}
	ring []string
	next int
}

// AuditSub is one subscription to the audit events as they are written.
type AuditSub struct {
	// C receives the events (of the subscription's type, if it has one).
	// It is closed by Cancel, or when the subscriber fell auditBuffer
	// events behind (then Lagged is true).
	C      chan models.AuditEvent
	typ    *models.AuditEventType
	hub    *auditHub
	closed bool
	lagged bool
}

func newAuditHub() *auditHub {
	return &auditHub{subs: map[*AuditSub]struct{}{}, seen: map[string]struct{}{}, ring: make([]string, auditSeen)}
}

// SubscribeAudit returns a subscription to the audit events written from
// now on, by every replica, of type typ (every type when nil). Who may
// subscribe is the caller's check (auditEvents is for admins). Cancel it
// when done.
func (s *Service) SubscribeAudit(typ *models.AuditEventType) *AuditSub {
	h := s.auditLive
	sub := &AuditSub{C: make(chan models.AuditEvent, auditBuffer), typ: typ, hub: h}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[sub] = struct{}{}
	return sub
}

// Cancel ends the subscription and closes C, if it is not closed yet.
func (sub *AuditSub) Cancel() {
	sub.hub.mu.Lock()
	defer sub.hub.mu.Unlock()
	sub.hub.drop(sub)
}

// Lagged reports whether the subscription was ended because its
// subscriber fell behind. Read it once C is closed.
func (sub *AuditSub) Lagged() bool {
	sub.hub.mu.Lock()
	defer sub.hub.mu.Unlock()
	return sub.lagged
}

// drop removes sub and closes its channel; h.mu is held.
func (h *auditHub) drop(sub *AuditSub) {
	if !sub.closed {
		sub.closed = true
		close(sub.C)
		delete(h.subs, sub)
	}
}

// active reports whether anyone subscribes: without subscribers, the other
// replicas' batches are not read back.
func (h *auditHub) active() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

// publish delivers events, each once however often it is published. It
// never blocks: the audit writer calls it.
func (h *auditHub) publish(events []models.AuditEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range events {
		if _, dup := h.seen[e.ID]; dup {
			continue
		}
		if old := h.ring[h.next]; old != "" {
			delete(h.seen, old)
		}
		h.ring[h.next] = e.ID
		h.next = (h.next + 1) % len(h.ring)
		h.seen[e.ID] = struct{}{}
		for sub := range h.subs {
			if sub.typ != nil && *sub.typ != e.Type {
				continue
			}
			select {
			case sub.C <- e:
			default:
				sub.lagged = true
				h.drop(sub)
			}
		}
	}
}

// applyAudit reads back the audit events another replica wrote (or this
// one: its own notifications come back too, and are dropped as seen), for
// this replica's subscribers, if it has any.
func (s *Service) applyAudit(ctx context.Context, e models.Event) error {
	if !s.auditLive.active() {
		return nil
	}
	events, err := models.AuditEventsByID(ctx, s.db, e.IDs)
	if err != nil {
		return err
	}
	s.auditLive.publish(events)
	return nil
}
