package models

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// defaultRoles are seeded by Migrate (see seedRoles). Seeding never removes a permission an
// operator added, and never re-adds one an operator removed from a role
// that already existed.
var defaultRoles = map[string][]string{
	RoleAdmin: {"users:read", "users:write", "roles:read"},
	RoleUser:  {},
}

// seedRoles creates the built-in roles that do not exist, publishing
// EventRolesChanged if it created one. ApplyMigrations runs it after the
// migrations, under their lock, so that new databases and upgraded ones
// alike have the roles.
func seedRoles(db *gorm.DB) (err error) {
	defer Wrap(&err, "seedRoles")
	return db.Transaction(func(tx *gorm.DB) error {
		created := false
		// In one order everywhere: two transactions inserting the same
		// rows in different orders can deadlock.
		for _, name := range slices.Sorted(maps.Keys(defaultRoles)) {
			perms := defaultRoles[name]
			res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&Role{Name: name})
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				continue // the role exists: its permissions are the operator's
			}
			created = true
			for _, p := range perms {
				if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&Permission{Name: p}).Error; err != nil {
					return err
				}
				if err := tx.Exec("INSERT INTO role_permissions (role_name, permission_name) VALUES (?, ?)", name, p).Error; err != nil {
					return err
				}
			}
		}
		if created {
			// Replicas already running (an upgrade rolling out) learn of
			// the new role's permissions.
			return Publish(tx, Event{Kind: EventRolesChanged})
		}
		return nil
	})
}

// SettingValue returns the persisted value of name, storing gen() first if it
// has none. Concurrent callers, on one process or several sharing a
// database, all get the same value: the first insert wins.
func SettingValue(ctx context.Context, db *gorm.DB, name string, gen func() (string, error)) (_ string, err error) {
	defer Wrap(&err, "SettingValue(%q)", name)
	db = db.WithContext(ctx)
	var s Setting
	if err := db.Where("name = ?", name).Take(&s).Error; err == nil {
		return s.Value, nil
	} else if !errors.Is(err, gorm.ErrRecordNotFound) {
		return "", err
	}
	v, err := gen()
	if err != nil {
		return "", err
	}
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&Setting{Name: name, Value: v}).Error; err != nil {
		return "", err
	}
	if err := db.Where("name = ?", name).Take(&s).Error; err != nil {
		return "", err
	}
	return s.Value, nil
}

// ReplaceSetting sets name to value if it is still old, and reports
// whether it did: another process may have done it first.
func ReplaceSetting(ctx context.Context, db *gorm.DB, name, old, value string) (replaced bool, err error) {
	defer Wrap(&err, "ReplaceSetting(%q)", name)
	res := db.WithContext(ctx).Model(&Setting{}).Where("name = ? AND value = ?", name, old).Update("value", value)
	return res.RowsAffected > 0, res.Error
}

// DeleteSetting deletes name, if it exists.
func DeleteSetting(ctx context.Context, db *gorm.DB, name string) (err error) {
	defer Wrap(&err, "DeleteSetting(%q)", name)
	return db.WithContext(ctx).Where("name = ?", name).Delete(&Setting{}).Error
}

// ErrEmailTaken is returned by CreateUser for an email that has an account.
var ErrEmailTaken = Errorf(BadUserInput, "an account with this email already exists")

// CreateUser inserts u with the given roles and, when first is set, u's
// first session (first.Session.UserID is set to u.ID), all in one
// transaction: a registration whose session cannot be created leaves no
// account behind, and its email free. It returns ErrEmailTaken (a
// BadUserInput error) if the email is taken, and BadUserInput for an
// unknown role.
func CreateUser(ctx context.Context, db *gorm.DB, u *User, roles []string, first *NewSession) (err error) {
	// The id, never the email: the error may be logged, and what a user
	// typed stays out of the log.
	defer Wrap(&err, "CreateUser(%s)", u.ID)
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		rs, err := findRoles(tx, roles)
		if err != nil {
			return err
		}
		u.Roles = nil
		if err := tx.Omit(clause.Associations).Create(u).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return ErrEmailTaken
			}
			return err
		}
		if len(rs) > 0 {
			if err := tx.Model(u).Omit("Roles.*").Association("Roles").Append(rs); err != nil {
				return err
			}
		}
		u.Roles = rs
		if first == nil {
			return nil
		}
		first.Session.UserID = u.ID
		_, err = createSession(tx, first)
		return err
	})
}

// UserByEmail returns the user with the (normalized) email and its roles, or
// a NotFound error.
func UserByEmail(ctx context.Context, db *gorm.DB, email string) (_ *User, err error) {
	defer Wrap(&err, "UserByEmail")
	return takeUser(db.WithContext(ctx).Where("email = ?", email))
}

// UserByID returns the user with the id and its roles, or a NotFound error.
func UserByID(ctx context.Context, db *gorm.DB, id string) (_ *User, err error) {
	defer Wrap(&err, "UserByID(%q)", id)
	return takeUser(db.WithContext(ctx).Where("id = ?", id))
}

func takeUser(q *gorm.DB) (*User, error) {
	var u User
	// Roles only: permission checks read the role->permissions table the
	// auth service keeps in memory, so loading them here would cost a query
	// per request for nothing.
	err := q.Preload("Roles", orderByName).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, Errorf(NotFound, "user not found")
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

func orderByName(db *gorm.DB) *gorm.DB { return db.Order("name") }

// Roles returns every role with its permissions, by name.
func Roles(ctx context.Context, db *gorm.DB) (_ []*Role, err error) {
	defer Wrap(&err, "Roles")
	var rs []*Role
	err = db.WithContext(ctx).Preload("Permissions", orderByName).Order("name").Find(&rs).Error
	return rs, err
}

// SetUserRoles replaces the roles of the user. It returns NotFound for an
// unknown user, and BadUserInput for an unknown role or for taking the admin
// role from the last admin (which would leave nobody able to administer).
// It publishes EventUserChanged.
func SetUserRoles(ctx context.Context, db *gorm.DB, userID string, roles []string) (_ *User, err error) {
	defer Wrap(&err, "SetUserRoles(%q)", userID)
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		u, err := takeUser(tx.Where("id = ?", userID))
		if err != nil {
			return err
		}
		rs, err := findRoles(tx, roles)
		if err != nil {
			return err
		}
		if u.HasRole(RoleAdmin) && !containsRole(rs, RoleAdmin) {
			var admins int64
			if err := tx.Table("user_roles").Where("role_name = ?", RoleAdmin).Count(&admins).Error; err != nil {
				return err
			}
			if admins <= 1 {
				return Errorf(BadUserInput, "cannot remove the admin role from the last admin")
			}
		}
		if err := tx.Model(u).Omit("Roles.*").Association("Roles").Replace(rs); err != nil {
			return err
		}
		if err := tx.Model(u).Update("updated_at", Now()).Error; err != nil {
			return err
		}
		return Publish(tx, Event{Kind: EventUserChanged, ID: userID})
	})
	if err != nil {
		return nil, err
	}
	return UserByID(ctx, db, userID)
}

// findRoles loads the named roles, deduplicated, or returns BadUserInput
// naming the first unknown one.
func findRoles(tx *gorm.DB, names []string) ([]Role, error) {
	seen := map[string]bool{}
	var want []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			want = append(want, n)
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	var rs []Role
	if err := tx.Where("name IN ?", want).Order("name").Find(&rs).Error; err != nil {
		return nil, err
	}
	if len(rs) != len(want) {
		found := map[string]bool{}
		for _, r := range rs {
			found[r.Name] = true
		}
		sort.Strings(want)
		for _, n := range want {
			if !found[n] {
				return nil, Errorf(BadUserInput, "unknown role %q", n)
			}
		}
	}
	return rs, nil
}

func containsRole(rs []Role, name string) bool {
	for _, r := range rs {
		if r.Name == name {
			return true
		}
	}
	return false
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
}

// CreateSession inserts a session and its first refresh token and, for a
// login, stamps the user with it (publishing EventUserChanged), all in one
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
	return evicted, nil
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

// Rotate describes one exchange of a refresh token.
type Rotate struct {
	OldHash, NewHash string
	// Now is the clock. It is read once the rotation holds what it is
	// about to change (see RotateRefreshToken), not when the request
	// started.
	Now           func() time.Time
	TTL           time.Duration // lifetime of the new token and the session
	AccessTTL     time.Duration // lifetime of the access token issued with it
	ReuseInterval time.Duration // grace for presenting a just-rotated token again
	// Revoke is how long a revocation for reuse lasts; its At is the
	// rotation's time.
	Revoke Revoke
}

// Rotation is the outcome of RotateRefreshToken.
type Rotation struct {
	Session *Session
	// At is the time the rotation was made at: the new access token is to
	// be issued at it, so that it expires by the session's AccessExpiresAt.
	At time.Time
	// Retry is true when the token had been rotated before, after the grace
	// interval, and none of its successors had been used: its holder never
	// got them. They are spent, and the session goes on.
	Retry bool
	// Reuse is true when the presentation was reuse of a superseded token:
	// the session is now revoked, until RevokedUntil.
	Reuse        bool
	RevokedUntil time.Time
}

// RotateRefreshToken exchanges the refresh token hashed as r.OldHash for a
// new one hashed as r.NewHash, continuing the same session, in one
// transaction, and records on the session the expiry of the access token
// to be issued with it (r.Now + r.AccessTTL).
//
// The common case is a token never presented before: it is marked rotated,
// only if it was not already, so of several concurrent exchanges exactly
// one wins. A token presented again is told apart by its successors (the
// tokens whose ParentID it is):
//   - within r.ReuseInterval of its rotation (concurrent tabs), it gets a
//     new token too, and every successor keeps working;
//   - later, if none of its successors was ever used, it is a retry by a
//     client whose answer was lost (a database stall, a crash, a dropped
//     connection): the unused successors are spent, the token gets a new
//     successor and its grace interval starts again, so that concurrent
//     retries are served as concurrent tabs are. Of retries further apart
//     than the interval, only the last successor stays usable;
//   - otherwise, or if the token itself was spent, it is reuse: the
//     session is revoked (and that is committed) and Rotation.Reuse is
//     set. A token rotated without recording its successor (by a version
//     before them) is treated so after the interval.
//
// Times are the service clock's (r.Now), read when the rotation holds what
// it changes: on SQLite inside the transaction, which took the write lock
// at BEGIN; on PostgreSQL once a connection is held, and on the slower
// path once the presented token's row is locked. Not the database's clock:
// every other time these rows are compared with (access-token expiry,
// revocations, the grace interval) is the service clock's, and tests
// inject it; mixing the two would shift every window by their skew.
//
// It returns Unauthenticated for an unknown or expired token, or one whose
// session is revoked or expired.
func RotateRefreshToken(ctx context.Context, db *gorm.DB, r Rotate) (_ Rotation, err error) {
	defer Wrap(&err, "RotateRefreshToken")
	postgres := db.Dialector.Name() == string(Postgres)
	if postgres {
		if rot, err := rotatePostgres(ctx, db, r); err != nil || rot.Session != nil {
			return rot, err
		}
		// Not the common case: the transaction below tells why.
	}
	invalid := Errorf(Unauthenticated, "invalid or expired refresh token")
	var out Rotation
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		out = Rotation{At: r.Now()}
		now := out.At
		// The common case costs three statements: this one marks an
		// unspent, unexpired token rotated (only one of several concurrent
		// exchanges can) and names its session.
		var sessionIDs []string
		if err := tx.Raw(`UPDATE refresh_tokens SET rotated_at = ? WHERE id = ? AND rotated_at IS NULL AND expires_at > ? RETURNING session_id`,
			now, r.OldHash, now).Scan(&sessionIDs).Error; err != nil {
			return err
		}
		if len(sessionIDs) == 0 {
			// Unknown, expired or already rotated: read it to tell which.
			// On PostgreSQL the row is locked, so that presentations of
			// one token after its rotation (retries) are decided one at a
			// time, each seeing the successors of the one before.
			q := tx
			if postgres {
				q = tx.Clauses(clause.Locking{Strength: "UPDATE"})
			}
			var old RefreshToken
			if err := q.Where("id = ?", r.OldHash).Take(&old).Error; errors.Is(err, gorm.ErrRecordNotFound) {
				return invalid
			} else if err != nil {
				return err
			}
			if postgres {
				out.At = r.Now() // after waiting for the lock
				now = out.At
			}
			if !old.ExpiresAt.After(now) || old.RotatedAt == nil {
				return invalid
			}
			again, retry, err := presentedAgain(tx, &old, now, r.ReuseInterval)
			if err != nil {
				return err
			}
			if !again {
				out.Reuse = true
				// The whole row: the audit log records whose session it was.
				out.Session = &Session{}
				if err := tx.Where("id = ?", old.SessionID).Take(out.Session).Error; err != nil {
					return err
				}
				r.Revoke.At = now
				out.RevokedUntil = r.Revoke.Until(out.Session.AccessExpiresAt)
				revoked, err := revokeSessions(tx, tx.Where("id = ?", old.SessionID), r.Revoke)
				if len(revoked) > 0 {
					out.RevokedUntil = revoked[0].Until // as read when it was revoked
				}
				return err
			}
			out.Retry = retry
			sessionIDs = append(sessionIDs, old.SessionID)
		}
		// The session goes on, and slides, only if it is still live.
		accessExp := now.Add(r.AccessTTL)
		var live []Session
		if err := tx.Raw(`UPDATE sessions SET last_used_at = ?, expires_at = ?,
				access_expires_at = CASE WHEN access_expires_at IS NULL OR access_expires_at < ? THEN ? ELSE access_expires_at END
			WHERE id = ? AND revoked_at IS NULL AND expires_at > ? RETURNING *`,
			now, now.Add(r.TTL), accessExp, accessExp, sessionIDs[0], now).Scan(&live).Error; err != nil {
			return err
		}
		if len(live) == 0 {
			return invalid
		}
		s := live[0]
		// The successor, written as SQL rather than through GORM's Create:
		// the rotation holds SQLite's write lock, and Create's reflection
		// and callbacks were 7% of its CPU in a profile of chained refreshes.
		if err := tx.Exec(`INSERT INTO refresh_tokens (id, session_id, created_at, expires_at, parent_id) VALUES (?, ?, ?, ?, ?)`,
			r.NewHash, s.ID, now, s.ExpiresAt, r.OldHash).Error; err != nil {
			return err
		}
		out.Session = &s
		return nil
	})
	return out, err
}

// presentedAgain decides the presentation at now of old, a token rotated
// before (see RotateRefreshToken): again is true to give it a new successor
// (a concurrent presentation, or a retry when retry is true), false for
// reuse. For a retry it spends old's unused successors and restarts old's
// grace interval.
func presentedAgain(tx *gorm.DB, old *RefreshToken, now time.Time, interval time.Duration) (again, retry bool, _ error) {
	if old.SpentAt != nil {
		// Its parent was retried while it was unused: whoever presents it
		// now did not get it from the answer the retry replaced.
		return false, false, nil
	}
	if interval > 0 && !now.After(old.RotatedAt.Add(interval)) {
		return true, false, nil
	}
	// Spent first, then counted: a successor being used concurrently is
	// either spent here (and its use is then reuse) or, its row lock
	// waited for, counted as used below (and this is reuse).
	if err := tx.Exec(`UPDATE refresh_tokens SET rotated_at = ?, spent_at = ? WHERE session_id = ? AND parent_id = ? AND rotated_at IS NULL`,
		now, now, old.SessionID, old.ID).Error; err != nil {
		return false, false, err
	}
	var n struct{ Successors, Used int64 }
	if err := tx.Raw(`SELECT COUNT(*) AS successors, COALESCE(SUM(CASE WHEN spent_at IS NULL THEN 1 ELSE 0 END), 0) AS used
		FROM refresh_tokens WHERE session_id = ? AND parent_id = ?`, old.SessionID, old.ID).Scan(&n).Error; err != nil {
		return false, false, err
	}
	if n.Successors == 0 || n.Used > 0 {
		return false, false, nil
	}
	// A retry: its grace interval starts now, for retries of its own.
	if err := tx.Model(&RefreshToken{}).Where("id = ?", old.ID).Update("rotated_at", now).Error; err != nil {
		return false, false, err
	}
	return true, true, nil
}

// rotatePostgres is the common case of RotateRefreshToken in one statement,
// hence one round trip and one commit: an unspent, unexpired token of a
// live session is marked rotated, the session slides (and records the new
// access token's expiry), and the new token is inserted. It returns the
// rotation, or one without a session (having changed nothing) when the
// token is not such a token, for the transactional path to sort out.
func rotatePostgres(ctx context.Context, db *gorm.DB, r Rotate) (Rotation, error) {
	// database/sql directly rather than GORM's Raw and Scan: on this, the
	// busiest write, GORM's statement building and reflection cost more
	// CPU than PostgreSQL's own work.
	sqlDB, err := db.DB()
	if err != nil {
		return Rotation{}, err
	}
	// The *sql.DB itself does not apply AUTH_DB_TIMEOUT: GORM's pool does.
	ctx, cancel := boundContext(db, ctx)
	defer cancel()
	// The connection first, then the time: a request that waited for a
	// connection must not date its writes from before the wait. Taking a
	// pooled connection costs no round trip.
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return Rotation{}, err
	}
	defer conn.Close()
	now := r.Now()
	var s Session
	err = conn.QueryRowContext(ctx, `WITH tok AS (
			UPDATE refresh_tokens t SET rotated_at = $1
			FROM sessions s
			WHERE t.id = $2 AND t.rotated_at IS NULL AND t.expires_at > $1
			  AND s.id = t.session_id AND s.revoked_at IS NULL AND s.expires_at > $1
			RETURNING t.session_id
		), sess AS (
			UPDATE sessions SET last_used_at = $1, expires_at = $4, access_expires_at = GREATEST(sessions.access_expires_at, $5)
			FROM tok WHERE sessions.id = tok.session_id
			RETURNING sessions.id, sessions.user_id, sessions.created_at, sessions.last_used_at, sessions.expires_at, sessions.user_agent, sessions.ip, sessions.access_expires_at
		), ins AS (
			INSERT INTO refresh_tokens (id, session_id, created_at, expires_at, parent_id)
			SELECT $3, sess.id, $1, $4, $2 FROM sess
		)
		SELECT * FROM sess`,
		now, r.OldHash, r.NewHash, now.Add(r.TTL), now.Add(r.AccessTTL),
	).Scan(&s.ID, &s.UserID, &s.CreatedAt, &s.LastUsedAt, &s.ExpiresAt, &s.UserAgent, &s.IP, &s.AccessExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Rotation{}, nil
	}
	if err != nil {
		return Rotation{}, err
	}
	return Rotation{Session: &s, At: now}, nil
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
// records their revocations and publishes an EventSessionRevoked for each.
// One UPDATE both revokes and reads each session's AccessExpiresAt: a
// rotation committed concurrently, before it, is seen (the row is locked
// and re-read), and one after it finds the session revoked and issues
// nothing.
func revokeSessions(tx, scope *gorm.DB, r Revoke) ([]Revoked, error) {
	var rows []Session
	if err := tx.Model(&rows).Clauses(clause.Returning{Columns: []clause.Column{{Name: "id"}, {Name: "access_expires_at"}}}).
		Where(scope).Where("revoked_at IS NULL").Update("revoked_at", r.At).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	revoked := make([]Revoked, len(rows))
	revs := make([]Revocation, len(rows))
	events := make([]Event, len(rows))
	for i, s := range rows {
		until := r.Until(s.AccessExpiresAt)
		revoked[i] = Revoked{ID: s.ID, Until: until}
		revs[i] = Revocation{ID: s.ID, ExpiresAt: until}
		events[i] = Event{Kind: EventSessionRevoked, ID: s.ID, Until: until}
	}
	if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"expires_at"})}).Create(&revs).Error; err != nil {
		return nil, err
	}
	if err := Publish(tx, events...); err != nil {
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

// PasswordHashOutside returns the password hash of some user whose hash
// starts with none of prefixes, or "" when every hash starts with one of
// them. The auth service finds the cost classes of the stored hashes with
// it, a prefix per class (see auth.Service.MeasureHashClasses): each call
// stops at the first row outside the classes known so far, and only the
// last, which finds none, reads the whole table.
func PasswordHashOutside(ctx context.Context, db *gorm.DB, prefixes []string) (_ string, err error) {
	defer Wrap(&err, "PasswordHashOutside(%d)", len(prefixes))
	q := db.WithContext(ctx).Table("users").Select("password_hash")
	for _, p := range prefixes {
		// The prefixes are made by authql from hashes' fixed fields: no
		// LIKE wildcard is in them, but escape them all the same.
		p = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p)
		q = q.Where(`password_hash NOT LIKE ? ESCAPE '\'`, p+"%")
	}
	var hashes []string
	if err := q.Limit(1).Pluck("password_hash", &hashes).Error; err != nil || len(hashes) == 0 {
		return "", err
	}
	return hashes[0], nil
}
