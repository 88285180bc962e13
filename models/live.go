package models

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"gorm.io/gorm"
)

// Live event types: what happened to an account or one of its sessions.
// They are the values of the GraphQL enum SessionEventType, and of the
// `event:` field of the revocation feed (GET /events).
const (
	LiveSessionRevoked  = "SESSION_REVOKED"
	LiveSessionCreated  = "SESSION_CREATED"
	LiveRolesChanged    = "ROLES_CHANGED"
	LivePasswordChanged = "PASSWORD_CHANGED"
	LiveEmailChanged    = "EMAIL_CHANGED"
	LiveMfaChanged      = "MFA_CHANGED"
	LiveAccountDisabled = "ACCOUNT_DISABLED"
)

// LiveEvent is one change to an account or session that open sockets
// (sessionEvents) and other services (the revocation feed) must learn of.
// Rows are written in the transaction of the change they record (see
// RecordLive), so an event exists if and only if its change committed,
// and are kept for at least the access-token lifetime, from which the
// feed resumes (Last-Event-ID).
type LiveEvent struct {
	// ID orders events and names them in the feed. On PostgreSQL, ids
	// are taken when a transaction inserts, not when it commits, so an
	// event may commit after one with a higher id.
	ID        int64     `gorm:"primaryKey;autoIncrement" json:"id"`
	At        time.Time `gorm:"not null;index" json:"at"`
	Type      string    `gorm:"size:32;not null" json:"type"`
	UserID    string    `gorm:"size:36;not null;index" json:"user"`
	SessionID *string   `gorm:"size:36" json:"session,omitempty"`
	// Roles, as a JSON array, are the user's roles after ROLES_CHANGED.
	Roles *string `gorm:"type:text" json:"roles,omitempty"`
}

// RoleList decodes Roles (nil when there are none).
func (e *LiveEvent) RoleList() []string {
	if e.Roles == nil {
		return nil
	}
	var roles []string
	if json.Unmarshal([]byte(*e.Roles), &roles) != nil {
		return nil
	}
	return roles
}

// NewLiveEvent returns the event of type typ for userID, about sessionID
// when it is not empty, with roles for ROLES_CHANGED.
func NewLiveEvent(typ, userID, sessionID string, roles []string) LiveEvent {
	e := LiveEvent{At: Now(), Type: typ, UserID: userID}
	if sessionID != "" {
		e.SessionID = &sessionID
	}
	if roles != nil {
		b, _ := json.Marshal(roles)
		s := string(b)
		e.Roles = &s
	}
	return e
}

// EventLive: a live event was recorded; Event.Live carries it, or, when
// it would not fit a notification, Event.ID names its row.
const EventLive = "live"

// liveInline bounds the encoded size of an event carried whole in a
// notification; a larger one (many roles) is sent as its id and read back.
const liveInline = 1024

// RecordLive inserts events as part of tx and publishes them: to the other
// replicas (PostgreSQL's notifications, delivered at commit), and to this
// process's sink (see OnLiveCommit), called after tx commits. Events
// whose transaction rolls back are never seen.
func RecordLive(tx *gorm.DB, events ...LiveEvent) error {
	if len(events) == 0 {
		return nil
	}
	if err := tx.Create(&events).Error; err != nil {
		return err
	}
	published := make([]Event, 0, len(events))
	for i := range events {
		e := &events[i]
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if len(b) <= liveInline {
			published = append(published, Event{Kind: EventLive, Live: e})
		} else {
			published = append(published, Event{Kind: EventLive, ID: strconv.FormatInt(e.ID, 10)})
		}
	}
	if err := Publish(tx, published...); err != nil {
		return err
	}
	if t, ok := tx.Statement.ConnPool.(*deadlineTx); ok {
		t.live = append(t.live, events...)
	}
	return nil
}

// liveSinks holds the function each database's pool hands committed live
// events to.
type liveSink struct {
	mu sync.RWMutex
	f  func([]LiveEvent)
}

func (s *liveSink) deliver(events []LiveEvent) {
	s.mu.RLock()
	f := s.f
	s.mu.RUnlock()
	if f != nil && len(events) > 0 {
		f(events)
	}
}

// OnLiveCommit sets the function that receives the live events recorded by
// this process, once their transaction has committed, in the committing
// goroutine: it must not block. One function per database; a later call
// replaces it.
func OnLiveCommit(db *gorm.DB, f func([]LiveEvent)) {
	if p, ok := db.ConnPool.(*deadlinePool); ok {
		p.sink.mu.Lock()
		p.sink.f = f
		p.sink.mu.Unlock()
	}
}

// LiveEventByID reads one event, for a notification that named it.
func LiveEventByID(ctx context.Context, db *gorm.DB, id int64) (e LiveEvent, err error) {
	defer Wrap(&err, "LiveEventByID(%d)", id)
	err = db.WithContext(ctx).Take(&e, id).Error
	return e, err
}

// LiveEventsAfter returns at most limit events with an id above afterID,
// in id order: the feed's resumption from Last-Event-ID.
func LiveEventsAfter(ctx context.Context, db *gorm.DB, afterID int64, limit int) (events []LiveEvent, err error) {
	defer Wrap(&err, "LiveEventsAfter(%d)", afterID)
	err = db.WithContext(ctx).Where("id > ?", afterID).Order("id").Limit(limit).Find(&events).Error
	return events, err
}

// LiveEventsCommittedLate returns at most limit events with an id below
// afterID that may have committed after afterID's event did, in id order:
// those recorded at most a transaction's lifetime before it. An id is taken
// when its row is inserted, and its transaction may commit up to the
// operation deadline later (see deadlinePool), so a reader that saw
// afterID may not have seen such an event. Resending them makes the feed's
// resumption at-least-once: ids may repeat, which costs its readers
// nothing, since what they do with an event (refuse a session) is the same
// done twice. Empty when afterID is unknown (purged or never recorded).
func LiveEventsCommittedLate(ctx context.Context, db *gorm.DB, afterID int64, limit int) (events []LiveEvent, err error) {
	defer Wrap(&err, "LiveEventsCommittedLate(%d)", afterID)
	var last LiveEvent
	res := db.WithContext(ctx).Where("id = ?", afterID).Limit(1).Find(&last)
	if res.Error != nil || res.RowsAffected == 0 {
		return nil, res.Error
	}
	window := DefaultTimeout
	if p, ok := db.ConnPool.(*deadlinePool); ok && p.timeout > 0 {
		window = p.timeout
	}
	// Twice the deadline, and a second for clocks: events are stamped by
	// the replicas' clocks, which may differ a little.
	since := last.At.Add(-2*window - time.Second)
	err = db.WithContext(ctx).Where("id < ? AND at >= ?", afterID, since.UTC()).Order("id").Limit(limit).Find(&events).Error
	return events, err
}

// LiveEventsSince returns at most limit events recorded at or after since,
// in id order: what a replica re-reads after its listening connection
// was down.
func LiveEventsSince(ctx context.Context, db *gorm.DB, since time.Time, limit int) (events []LiveEvent, err error) {
	defer Wrap(&err, "LiveEventsSince(%s)", since)
	err = db.WithContext(ctx).Where("at >= ?", since.UTC()).Order("id").Limit(limit).Find(&events).Error
	return events, err
}

// LatestLiveEventID is the highest event id recorded so far (0 for none).
func LatestLiveEventID(ctx context.Context, db *gorm.DB) (id int64, err error) {
	defer Wrap(&err, "LatestLiveEventID")
	err = db.WithContext(ctx).Model(&LiveEvent{}).Select("COALESCE(MAX(id), 0)").Scan(&id).Error
	return id, err
}

// PurgeLiveEvents deletes events recorded before `before`.
func PurgeLiveEvents(ctx context.Context, db *gorm.DB, before time.Time) (n int64, err error) {
	defer Wrap(&err, "PurgeLiveEvents")
	res := db.WithContext(ctx).Where("at < ?", before.UTC()).Delete(&LiveEvent{})
	return res.RowsAffected, res.Error
}

// migrateLive adds the table of live events and the permission to read
// them (PermEventsRead). A new database gets the permission through
// seedRoles (admin and service hold it); an existing one has its admin role
// already, which seedRoles leaves to the operator, so the permission is
// granted to it here, once, if the admin role still holds every
// permission authql had before (the rule so far: admins may do
// everything). An admin role an operator narrowed stays as they left it.
// The service role, new, is seeded by seedRoles after the migrations.
func migrateLive(tx *gorm.DB) error {
	type LiveEvent struct {
		ID        int64     `gorm:"primaryKey;autoIncrement"`
		At        time.Time `gorm:"not null;index"`
		Type      string    `gorm:"size:32;not null"`
		UserID    string    `gorm:"size:36;not null;index"`
		SessionID *string   `gorm:"size:36"`
		Roles     *string   `gorm:"type:text"`
	}
	if err := tx.Migrator().AutoMigrate(&LiveEvent{}); err != nil {
		return err
	}
	earlier := []string{"users:read", "users:write", "roles:read"}
	var held int64
	if err := tx.Table("role_permissions").Where("role_name = ? AND permission_name IN ?", RoleAdmin, earlier).
		Count(&held).Error; err != nil || held < int64(len(earlier)) {
		return err
	}
	if err := tx.Exec("INSERT INTO permissions (name) VALUES (?) ON CONFLICT DO NOTHING", PermEventsRead).Error; err != nil {
		return err
	}
	res := tx.Exec("INSERT INTO role_permissions (role_name, permission_name) VALUES (?, ?) ON CONFLICT DO NOTHING", RoleAdmin, PermEventsRead)
	if res.Error != nil || res.RowsAffected == 0 {
		return res.Error
	}
	if err := Publish(tx, Event{Kind: EventRolesChanged}); err != nil {
		return err
	}
	return recordRoleHolders(tx, RoleAdmin)
}

// maxRoleHolders bounds the ROLES_CHANGED events one change of a role's
// permissions records, so that it stays one bounded transaction. Past it,
// holders learn of the change at their next token (whose scope is read
// then) rather than at once.
const maxRoleHolders = 1000

// recordRoleHolders records a ROLES_CHANGED, carrying the user's roles, for
// each user holding role, whose permissions changed in tx.
func recordRoleHolders(tx *gorm.DB, role string) error {
	var rows []struct{ UserID, RoleName string }
	if err := tx.Raw(`SELECT ur.user_id, ur.role_name FROM user_roles ur
		WHERE ur.user_id IN (SELECT user_id FROM user_roles WHERE role_name = ? ORDER BY user_id LIMIT ?)
		ORDER BY ur.user_id, ur.role_name`, role, maxRoleHolders).Scan(&rows).Error; err != nil {
		return err
	}
	var events []LiveEvent
	for i := 0; i < len(rows); {
		j, roles := i, []string{}
		for ; j < len(rows) && rows[j].UserID == rows[i].UserID; j++ {
			roles = append(roles, rows[j].RoleName)
		}
		events = append(events, NewLiveEvent(LiveRolesChanged, rows[i].UserID, "", roles))
		i = j
	}
	return RecordLive(tx, events...)
}
