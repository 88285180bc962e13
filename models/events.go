package models

import (
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// EventChannel is the PostgreSQL notification channel on which replicas
// tell each other what they changed (see Publish).
const EventChannel = "authql_events"

// Event kinds.
const (
	// EventSessionRevoked: the session ID is revoked until Until.
	EventSessionRevoked = "session"
	// EventUserChanged: the user ID changed (roles, login stamp, password
	// hash); copies of it held in memory are stale.
	EventUserChanged = "user"
	// EventRolesChanged: roles or their permissions changed.
	EventRolesChanged = "roles"
	// EventKeysChanged: a signing key was added or retired.
	EventKeysChanged = "keys"
	// EventAudit: audit events were written; IDs name their rows (see
	// InsertAuditEvents).
	EventAudit = "audit"
)

// Event is one change that replicas sharing the database must learn of.
// The store functions publish their own, inside the transaction that makes
// the change, so that an event is delivered if and only if its change is
// committed.
type Event struct {
	Kind  string    `json:"k"`
	ID    string    `json:"id,omitempty"`
	Until time.Time `json:"until,omitzero"`
	// Live is the event of an EventLive (nil when ID names its row).
	Live *LiveEvent `json:"e,omitempty"`
	// IDs are the rows of an EventAudit.
	IDs []string `json:"ids,omitempty"`
}

// maxPayload bounds one notification's payload. PostgreSQL refuses payloads
// of 8000 bytes or more; the margin leaves room for a longer id or time
// than expected without a failed transaction.
const maxPayload = 7000

// Publish sends events to every replica listening on EventChannel, as part
// of tx: PostgreSQL delivers them when, and only if, tx commits. Events go
// as compact JSON arrays, as many per notification as fit. On SQLite, which
// one process serves, it does nothing.
func Publish(tx *gorm.DB, events ...Event) error {
	if len(events) == 0 || tx.Dialector.Name() != string(Postgres) {
		return nil
	}
	payloads, err := eventPayloads(events)
	if err != nil {
		return err
	}
	for _, p := range payloads {
		if err := Notify(tx, EventChannel, p); err != nil {
			return err
		}
	}
	return nil
}

// Notify sends payload on channel as part of tx (PostgreSQL's pg_notify);
// on SQLite it does nothing.
func Notify(tx *gorm.DB, channel, payload string) error {
	if tx.Dialector.Name() != string(Postgres) {
		return nil
	}
	return tx.Exec("SELECT pg_notify(?, ?)", channel, payload).Error
}

// eventPayloads encodes events as JSON arrays of at most maxPayload bytes.
func eventPayloads(events []Event) ([]string, error) {
	var out []string
	batch := []byte{'['}
	for _, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		if len(b)+2 > maxPayload {
			return nil, fmt.Errorf("event %s %q does not fit a notification", e.Kind, e.ID)
		}
		if len(batch)+len(b)+1 > maxPayload {
			out = append(out, string(append(batch[:len(batch)-1], ']')))
			batch = []byte{'['}
		}
		batch = append(append(batch, b...), ',')
	}
	if len(batch) > 1 {
		out = append(out, string(append(batch[:len(batch)-1], ']')))
	}
	return out, nil
}

// ParseEvents decodes one notification's payload.
func ParseEvents(payload string) ([]Event, error) {
	var events []Event
	if err := json.Unmarshal([]byte(payload), &events); err != nil {
		return nil, fmt.Errorf("malformed event payload: %w", err)
	}
	return events, nil
}
