package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ActiveSessions returns the user's sessions that are neither revoked nor
// expired at now, most recently used first, at most limit of them (0: no
// limit). A session's ExpiresAt is its live refresh token's expiry:
// rotation moves both together.
func ActiveSessions(ctx context.Context, db *gorm.DB, userID string, now time.Time, limit int) (_ []*Session, err error) {
	defer Wrap(&err, "ActiveSessions(%q)", userID)
	var ss []*Session
	q := db.WithContext(ctx).
		Where("user_id = ? AND revoked_at IS NULL AND expires_at > ?", userID, now).
		Order("last_used_at DESC, id")
	if limit > 0 {
		q = q.Limit(limit)
	}
	err = q.Find(&ss).Error
	return ss, err
}

// ErrSessionNotFound is the one answer for a session id that is not the
// caller's: unknown, malformed or another user's alike, so that the answer
// does not tell which ids exist.
var ErrSessionNotFound = Errorf(NotFound, "session not found")

// RevokeSession revokes the user's session sessionID as RevokeSessions
// does, with a revocation (see Revoke) published to the other replicas.
// It returns true, with the revocation's end, when this call ended the
// session, false when it had already ended (revoked or expired), and
// NotFound when the user has no session with that id.
func RevokeSession(ctx context.Context, db *gorm.DB, userID, sessionID string, r Revoke) (revoked bool, until time.Time, err error) {
	defer Wrap(&err, "RevokeSession(%q)", userID)
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var s Session
		err := tx.Where("id = ? AND user_id = ?", sessionID, userID).Take(&s).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrSessionNotFound
		} else if err != nil {
			return err
		}
		if s.RevokedAt != nil || !s.ExpiresAt.After(r.At) {
			return nil
		}
		// Scoped to the revoked_at IS NULL rows again: of two concurrent
		// calls only one revokes.
		done, err := revokeSessions(tx, tx.Where("id = ?", s.ID), r)
		if len(done) > 0 {
			revoked, until = true, done[0].Until
		}
		return err
	})
	return revoked, until, err
}

// NewSession is a session to start: the session, its first refresh
// token, what a login stamps on the user, and the bound on the user's live
// sessions.
type NewSession struct {
	Session *Session
	Token   *RefreshToken
	// Login, when set, is stamped on the user in the same transaction.
	Login *LoginStamp
	// Max bounds the user's live sessions, this one included (0: no
	// bound); Revoke is how long the revocations of the sessions
	// ended for it are kept.
	Max    int
	Revoke Revoke
	// Mfa, when set, is spent in the same transaction (see MfaUse): the
	// session exists only if the proof was not spent before.
	Mfa *MfaUse
	// Mails are queued with the session (a recovery code's notice).
	Mails []*OutboxMail
}

// CreateSession inserts a session and its first refresh token (recording a
// live SESSION_CREATED) and, for a login, stamps the user with it
// (publishing EventUserChanged), all in one
// transaction: one commit per login. When the user would hold more than
// ns.Max live sessions, its least recently used ones are revoked in the
// same transaction, as a logout revokes them (revocation rows, published
// to the other replicas); their ids are returned.
func CreateSession(ctx context.Context, db *gorm.DB, ns *NewSession) (evicted []Revoked, err error) {
	defer Wrap(&err, "CreateSession")
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		evicted, err = createSession(tx, ns)
		return err
	})
	return evicted, err
}

// createSession is CreateSession inside tx.
func createSession(tx *gorm.DB, ns *NewSession) (evicted []Revoked, err error) {
	s, login := ns.Session, ns.Login
	if ns.Mfa != nil {
		if err := spendMfa(tx, ns.Mfa); err != nil {
			return nil, err
		}
	}
	if login != nil {
		updates := map[string]any{"last_login_at": login.At}
		if login.NewHash != "" {
			updates["password_hash"] = login.NewHash
		}
		if err := tx.Model(&User{}).Where("id = ?", s.UserID).Updates(updates).Error; err != nil {
			return nil, err
		}
		if err := Publish(tx, Event{Kind: EventUserChanged, ID: s.UserID}); err != nil {
			return nil, err
		}
	}
	if ns.Max > 0 {
		if evicted, err = evictSessions(tx, s.UserID, s.CreatedAt, ns.Max-1, ns.Revoke); err != nil {
			return nil, err
		}
	}
	if err := tx.Omit(clause.Associations).Create(s).Error; err != nil {
		return nil, err
	}
	if err := tx.Omit(clause.Associations).Create(ns.Token).Error; err != nil {
		return nil, err
	}
	if err := RecordLive(tx, NewLiveEvent(LiveSessionCreated, s.UserID, s.ID, nil)); err != nil {
		return nil, err
	}
	return evicted, EnqueueMail(tx, ns.Mails...)
}

// evictSessions revokes the user's live sessions at now past its keep most
// recently used ones, and returns them.
//
// Concurrent sign-ins of one user must not both count keep-1 sessions and
// both add one: the count is taken under a lock that serializes them. On
// PostgreSQL that is the user's row, locked FOR UPDATE until the
// transaction ends (a login's stamp above has locked it already; a
// registration's user is not visible to anyone else yet); under READ
// COMMITTED the count that follows the lock sees every session committed
// before it was granted. On SQLite every write transaction holds the
// database's write lock from BEGIN (see immediateDriver), so sign-ins are
// serialized anyway.
func evictSessions(tx *gorm.DB, userID string, now time.Time, keep int, r Revoke) ([]Revoked, error) {
	if tx.Dialector.Name() == string(Postgres) {
		if err := tx.Exec("SELECT 1 FROM users WHERE id = ? FOR UPDATE", userID).Error; err != nil {
			return nil, err
		}
	}
	var ids []string
	// Most recently used first, ties by id as mySessions lists them: the
	// sessions past the first keep are the least recently used.
	if err := tx.Model(&Session{}).
		Where("user_id = ? AND revoked_at IS NULL AND expires_at > ?", userID, now).
		Order("last_used_at DESC, id").Offset(keep).Limit(maxEvict).
		Pluck("id", &ids).Error; err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return revokeSessions(tx, tx.Where("id IN ?", ids), r)
}

// maxEvict bounds the sessions one sign-in ends. One over the bound is the
// rule; more happen only after AUTH_MAX_SESSIONS was lowered, and then the
// user's next sign-ins bring the count down this many at a time, so that
// one sign-in stays one small transaction.
const maxEvict = 1000

// LoginStamp is what a login changes on its user: the time of the last
// login and, when the stored hash was outdated, a new password hash.
type LoginStamp struct {
	At      time.Time
	NewHash string
}

// Revoke is when sessions are revoked and how long their revocations must
// last: until every access token of theirs has expired, clock skew
// included, whatever the access-token lifetime is configured to now.
type Revoke struct {
	At time.Time
	// For is the least a revocation made at At lasts: the access-token
	// lifetime configured now plus clock skew (what a session without a
	// recorded AccessExpiresAt needs).
	For time.Duration
	// Skew is how long after its expiry an access token is still accepted.
	Skew time.Duration
}

// Until is how long the revocation of a session whose latest access token
// expires at accessExp (nil: not recorded) must last.
func (r Revoke) Until(accessExp *time.Time) time.Time {
	until := r.At.Add(r.For)
	if accessExp != nil && accessExp.Add(r.Skew).After(until) {
		until = accessExp.Add(r.Skew)
	}
	return until
}

// Revoked is a session revoked now, and until when its revocation lasts.
type Revoked struct {
	ID    string
	Until time.Time
}

// RevokeSessions revokes the user's session sessionID, or every session of
// the user when sessionID is empty, and records a revocation of each (see
// Revoke). It returns the sessions it revoked now.
func RevokeSessions(ctx context.Context, db *gorm.DB, userID, sessionID string, r Revoke) (_ []Revoked, err error) {
	defer Wrap(&err, "RevokeSessions(%q)", userID)
	var revoked []Revoked
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := tx.Where("user_id = ?", userID)
		if sessionID != "" {
			q = q.Where("id = ?", sessionID)
		}
		revoked, err = revokeSessions(tx, q, r)
		return err
	})
	return revoked, err
}

// revokeSessions revokes the not yet revoked sessions that scope selects,
// records their revocations and publishes an EventSessionRevoked for each,
// and records a live SESSION_REVOKED for each (sockets and the
// revocation feed learn of it).
// One UPDATE both revokes and reads each session's AccessExpiresAt: a
// rotation committed concurrently, before it, is seen (the row is locked
// and re-read), and one after it finds the session revoked and issues
// nothing.
func revokeSessions(tx, scope *gorm.DB, r Revoke) ([]Revoked, error) {
	var rows []Session
	if err := tx.Model(&rows).Clauses(clause.Returning{Columns: []clause.Column{{Name: "id"}, {Name: "user_id"}, {Name: "access_expires_at"}}}).
		Where(scope).Where("revoked_at IS NULL").Update("revoked_at", r.At).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	revoked := make([]Revoked, len(rows))
	revs := make([]Revocation, len(rows))
	events := make([]Event, len(rows))
	live := make([]LiveEvent, len(rows))
	for i, s := range rows {
		until := r.Until(s.AccessExpiresAt)
		revoked[i] = Revoked{ID: s.ID, Until: until}
		revs[i] = Revocation{ID: s.ID, ExpiresAt: until}
		events[i] = Event{Kind: EventSessionRevoked, ID: s.ID, Until: until}
		live[i] = NewLiveEvent(LiveSessionRevoked, s.UserID, s.ID, nil)
	}
	if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"expires_at"})}).Create(&revs).Error; err != nil {
		return nil, err
	}
	if err := Publish(tx, events...); err != nil {
		return nil, err
	}
	if err := RecordLive(tx, live...); err != nil {
		return nil, err
	}
	return revoked, nil
}

// Revocations returns the unexpired revocations: id -> expiry.
func Revocations(ctx context.Context, db *gorm.DB, now time.Time) (_ map[string]time.Time, err error) {
	defer Wrap(&err, "Revocations")
	var rows []Revocation
	if err := db.WithContext(ctx).Where("expires_at > ?", now).Find(&rows).Error; err != nil {
		return nil, err
	}
	m := make(map[string]time.Time, len(rows))
	for _, r := range rows {
		m[r.ID] = r.ExpiresAt
	}
	return m, nil
}

// Purged counts the rows PurgeExpired deleted.
type Purged struct{ Revocations, RefreshTokens, Sessions, RateLimits int64 }

// PurgeExpired deletes expired revocations, refresh tokens, sessions and
// rate-limit counters, and sessions revoked before revokedBefore whose
// latest access token expired before accessExpiredBefore (by then no
// access token of theirs can still be valid, whatever lifetime it was
// issued with).
func PurgeExpired(ctx context.Context, db *gorm.DB, now, revokedBefore, accessExpiredBefore time.Time) (p Purged, err error) {
	defer Wrap(&err, "PurgeExpired")
	db = db.WithContext(ctx)
	res := db.Where("expires_at <= ?", now).Delete(&Revocation{})
	if res.Error != nil {
		return p, res.Error
	}
	p.Revocations = res.RowsAffected
	const ended = "expires_at <= ? OR (revoked_at < ? AND (access_expires_at IS NULL OR access_expires_at < ?))"
	expired := db.Model(&Session{}).Select("id").Where(ended, now, revokedBefore, accessExpiredBefore)
	res = db.Where("expires_at <= ? OR session_id IN (?)", now, expired).Delete(&RefreshToken{})
	if res.Error != nil {
		return p, res.Error
	}
	p.RefreshTokens = res.RowsAffected
	res = db.Where(ended, now, revokedBefore, accessExpiredBefore).Delete(&Session{})
	if res.Error != nil {
		return p, res.Error
	}
	p.Sessions = res.RowsAffected
	// A counter whose next operation is due in the past has run down: it
	// would allow the same as no row at all.
	res = db.Where("tat < ?", now.UnixMicro()).Delete(&RateLimit{})
	if res.Error != nil {
		return p, res.Error
	}
	p.RateLimits = res.RowsAffected
	return p, nil
}

// SessionOf returns userID's session sessionID (gorm.ErrRecordNotFound when
// the user has none with that id).
func SessionOf(ctx context.Context, db *gorm.DB, userID, sessionID string) (_ *Session, err error) {
	defer Wrap(&err, "SessionOf(%q)", userID)
	var s Session
	err = db.WithContext(ctx).Where("id = ? AND user_id = ?", sessionID, userID).Take(&s).Error
	return &s, err
}
