package models

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// AuditEventType is what an audit event records. The values are the names
// of the GraphQL enum AuditEventType.
type AuditEventType string

// Audit event types.
const (
	AuditLogin          AuditEventType = "LOGIN"
	AuditRegister       AuditEventType = "REGISTER"
	AuditRefresh        AuditEventType = "REFRESH"
	AuditRefreshReuse   AuditEventType = "REFRESH_REUSE"
	AuditLogout         AuditEventType = "LOGOUT"
	AuditSessionRevoked AuditEventType = "SESSION_REVOKED"
	AuditRolesChanged   AuditEventType = "ROLES_CHANGED"
	AuditRateLimited    AuditEventType = "RATE_LIMITED"
	AuditKeyRotated     AuditEventType = "KEY_ROTATED"

	// The account flows (see the mail package for MAIL_SENT and MAIL_FAILED).
	AuditPasswordResetRequested     AuditEventType = "PASSWORD_RESET_REQUESTED"
	AuditPasswordReset              AuditEventType = "PASSWORD_RESET"
	AuditPasswordChanged            AuditEventType = "PASSWORD_CHANGED"
	AuditEmailVerificationRequested AuditEventType = "EMAIL_VERIFICATION_REQUESTED"
	AuditEmailVerified              AuditEventType = "EMAIL_VERIFIED"
	AuditEmailChangeRequested       AuditEventType = "EMAIL_CHANGE_REQUESTED"
	AuditEmailChanged               AuditEventType = "EMAIL_CHANGED"
	AuditMailSent                   AuditEventType = "MAIL_SENT"
	AuditMailFailed                 AuditEventType = "MAIL_FAILED"
	AuditAccountDeleted             AuditEventType = "ACCOUNT_DELETED"
	AuditAccountDisabled            AuditEventType = "ACCOUNT_DISABLED"
	AuditAccountEnabled             AuditEventType = "ACCOUNT_ENABLED"

	// Second factors and step-up.
	AuditMfaChallenge           AuditEventType = "MFA_CHALLENGE"            // a login asked for a second factor
	AuditMfaVerified            AuditEventType = "MFA_VERIFIED"             // verifyMfa: success or failure
	AuditMfaEnrolled            AuditEventType = "MFA_ENROLLED"             // a TOTP factor confirmed
	AuditMfaRemoved             AuditEventType = "MFA_REMOVED"              // a TOTP factor removed
	AuditRecoveryCodeUsed       AuditEventType = "RECOVERY_CODE_USED"       // detail: codes left
	AuditRecoveryCodesGenerated AuditEventType = "RECOVERY_CODES_GENERATED" // a new batch
	AuditPasskeyAdded           AuditEventType = "PASSKEY_ADDED"
	AuditPasskeyRemoved         AuditEventType = "PASSKEY_REMOVED"
	AuditPasskeyLogin           AuditEventType = "PASSKEY_LOGIN"
	AuditStepUp                 AuditEventType = "STEP_UP"   // reauthenticate
	AuditMfaReset               AuditEventType = "MFA_RESET" // an admin removed every factor
	// exchangeToken: a token for a downstream audience (detail: the
	// audience and the scope granted).
	AuditTokenExchanged AuditEventType = "TOKEN_EXCHANGED"
)

// AuditOutcome tells whether the audited operation succeeded. The values
// are the names of the GraphQL enum AuditOutcome.
type AuditOutcome string

// Audit outcomes.
const (
	AuditSuccess AuditOutcome = "SUCCESS"
	AuditFailure AuditOutcome = "FAILURE"
)

// AuditEvent is one recorded authentication event. The nullable columns are
// pointers, so that "unknown" is NULL rather than an empty string.
//
// There is deliberately no foreign key to users (nor to sessions): the
// audit log must outlive a deleted user and a purged session, since it is
// what tells afterwards what they did.
//
// The three indexes serve the three forms of the newest-first page query
// (AuditEvents): all events, one user's, one type's, each ordered by
// (at, id) so that a page is one index range scan, read backwards.
type AuditEvent struct {
	// ID is a UUIDv7, so that new rows append to the primary-key index.
	ID        string         `gorm:"primaryKey;size:36;index:idx_audit_events_at,priority:2;index:idx_audit_events_user,priority:3;index:idx_audit_events_type,priority:3"`
	At        time.Time      `gorm:"not null;index:idx_audit_events_at,priority:1;index:idx_audit_events_user,priority:2;index:idx_audit_events_type,priority:2"`
	Type      AuditEventType `gorm:"size:32;not null;index:idx_audit_events_type,priority:1"`
	Outcome   AuditOutcome   `gorm:"size:16;not null"`
	Reason    *string        `gorm:"size:64"`
	UserID    *string        `gorm:"size:36;index:idx_audit_events_user,priority:1"`
	ActorID   *string        `gorm:"size:36"`
	SessionID *string        `gorm:"size:36"`
	IP        *string        `gorm:"size:64"`
	UserAgent *string        `gorm:"size:512"`
	Detail    *string        `gorm:"size:1024"`
}

// NewAuditEvent returns an event of typ and outcome at `at` with a new id.
// The time is kept to the microsecond, what PostgreSQL stores, so that both
// databases order and page events alike.
func NewAuditEvent(at time.Time, typ AuditEventType, outcome AuditOutcome) AuditEvent {
	id, err := uuid.NewV7()
	if err != nil {
		// Only if the system's randomness fails; a random UUID sorts as
		// well for pagination, which only needs ids to be unique.
		id = uuid.New()
	}
	return AuditEvent{ID: id.String(), At: at.UTC().Truncate(time.Microsecond), Type: typ, Outcome: outcome}
}

// Null returns nil for "", else a pointer to s: the value of a nullable
// audit column.
func Null(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Cursor returns the opaque cursor of e's position in the audit log, for
// the client to pass back as `after`. It has the form of a user's cursor
// (see User.Cursor): a time and a UUID.
func (e *AuditEvent) Cursor() string {
	return encodeCursor(e.At, e.ID)
}

// InsertAuditEvents inserts events in one statement (on PostgreSQL with
// an EventAudit naming them, in one transaction). An event whose id is
// in the table already is skipped: inserting the same events again is
// harmless, so that a writer that never learnt whether its INSERT committed
// (the connection lost at COMMIT) can simply retry it.
func InsertAuditEvents(ctx context.Context, db *gorm.DB, events []AuditEvent) (err error) {
	defer Wrap(&err, "InsertAuditEvents(%d)", len(events))
	if len(events) == 0 {
		return nil
	}
	if db.Dialector.Name() != string(Postgres) {
		return insertAuditEvents(db.WithContext(ctx), events)
	}
	// On PostgreSQL the other replicas are told of the rows, in the same
	// transaction (their auditEvents subscribers re-read them by id): a
	// notification if and only if the rows are there.
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := insertAuditEvents(tx, events); err != nil {
			return err
		}
		return Publish(tx, auditNotices(events)...)
	})
}

// auditIDsPerNotice bounds the ids one EventAudit names, so that it fits a
// notification's payload (see maxPayload) with room to spare.
const auditIDsPerNotice = 128

// auditNotices are the EventAudit naming events' rows.
func auditNotices(events []AuditEvent) []Event {
	var out []Event
	for chunk := range slices.Chunk(events, auditIDsPerNotice) {
		ids := make([]string, len(chunk))
		for i := range chunk {
			ids[i] = chunk[i].ID
		}
		out = append(out, Event{Kind: EventAudit, IDs: ids})
	}
	return out
}

// AuditEventsByID returns the audit events with the ids (those that
// exist), oldest first: what another replica wrote, for the auditEvents
// subscribers of this one. At most auditIDsPerNotice ids are read.
func AuditEventsByID(ctx context.Context, db *gorm.DB, ids []string) (_ []AuditEvent, err error) {
	defer Wrap(&err, "AuditEventsByID(%d)", len(ids))
	ids = ids[:min(len(ids), auditIDsPerNotice)]
	var events []AuditEvent
	err = db.WithContext(ctx).Where("id IN ?", ids).Order("at, id").Find(&events).Error
	return events, err
}

// insertAuditEvents is InsertAuditEvents' INSERT, in db (a transaction or
// not).
func insertAuditEvents(db *gorm.DB, events []AuditEvent) error {
	// Written as SQL rather than through GORM's Create, whose reflection
	// over every field of every row was a third of the audit writer's CPU
	// under chained refreshes (one event each).
	var q strings.Builder
	q.WriteString(`INSERT INTO audit_events (id, at, type, outcome, reason, user_id, actor_id, session_id, ip, user_agent, detail) VALUES `)
	args := make([]any, 0, 11*len(events))
	for i := range events {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		e := &events[i]
		args = append(args, e.ID, e.At, string(e.Type), string(e.Outcome), e.Reason, e.UserID, e.ActorID, e.SessionID, e.IP, e.UserAgent, e.Detail)
	}
	q.WriteString(" ON CONFLICT DO NOTHING")
	return db.Exec(q.String(), args...).Error
}

// AuditFilter narrows AuditEvents: to the events of one user (UserID not
// nil) and of one type (Type not empty).
type AuditFilter struct {
	UserID *string
	Type   AuditEventType
}

// AuditEvents returns up to first events (1 to MaxPageSize) matching f,
// newest first (by at, then id, descending), starting after the cursor
// (from the newest when after is nil). It returns BadUserInput for first
// out of range.
func AuditEvents(ctx context.Context, db *gorm.DB, first int, after *Cursor, f AuditFilter) (_ []*AuditEvent, err error) {
	defer Wrap(&err, "AuditEvents(%d)", first)
	if first < 1 || first > MaxPageSize {
		return nil, Errorf(BadUserInput, "first must be between 1 and %d", MaxPageSize)
	}
	// Keyset, as for users: the id breaks ties between events recorded at
	// the same microsecond, so none is skipped or repeated across pages,
	// and events recorded meanwhile (at the top) do not shift the pages.
	q := db.WithContext(ctx).Order("at DESC, id DESC").Limit(first)
	if f.UserID != nil {
		q = q.Where("user_id = ?", *f.UserID)
	}
	if f.Type != "" {
		q = q.Where("type = ?", f.Type)
	}
	if after != nil {
		q = q.Where("(at, id) < (?, ?)", after.CreatedAt, after.ID)
	}
	var events []*AuditEvent
	err = q.Find(&events).Error
	return events, err
}

// auditPurgeChunk bounds the rows one statement of PurgeAuditEvents
// deletes, so that purging a busy day's events neither holds locks nor
// builds one huge transaction for long.
const auditPurgeChunk = 10_000

// PurgeAuditEvents deletes the events recorded before `before`, in chunks,
// and returns how many it deleted.
func PurgeAuditEvents(ctx context.Context, db *gorm.DB, before time.Time) (n int64, err error) {
	defer Wrap(&err, "PurgeAuditEvents")
	db = db.WithContext(ctx)
	for {
		old := db.Model(&AuditEvent{}).Select("id").Where("at < ?", before).Limit(auditPurgeChunk)
		res := db.Where("id IN (?)", old).Delete(&AuditEvent{})
		if res.Error != nil {
			return n, res.Error
		}
		n += res.RowsAffected
		if res.RowsAffected < auditPurgeChunk {
			return n, nil
		}
	}
}
