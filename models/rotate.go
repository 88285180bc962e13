package models

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

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
	var out Rotation
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return rotate(tx, r, postgres, &out)
	})
	return out, err
}

// ErrInvalidRefresh refuses an unknown or expired refresh token, or one
// whose session is revoked or expired.
var ErrInvalidRefresh = Unauthenticatedf(ReasonRefreshTokenInvalid, "invalid or expired refresh token")

// rotate is RotateRefreshToken's transaction. It fills out as it goes, on
// failure too: the caller audits what it learnt (whose session, reuse).
func rotate(tx *gorm.DB, r Rotate, postgres bool, out *Rotation) error {
	*out = Rotation{At: r.Now()}
	// The common case costs three statements: this one marks an unspent,
	// unexpired token rotated (only one of several concurrent exchanges
	// can) and names its session.
	var sessionID string
	err := scanRow(tx.Raw(`UPDATE refresh_tokens SET rotated_at = ? WHERE id = ? AND rotated_at IS NULL AND expires_at > ? RETURNING session_id`,
		out.At, r.OldHash, out.At), &sessionID)
	if errors.Is(err, sql.ErrNoRows) {
		if sessionID, err = rotatedBefore(tx, r, postgres, out); err != nil || sessionID == "" {
			return err
		}
	} else if err != nil {
		return err
	}
	return continueSession(tx, r, sessionID, out)
}

// scanRow runs q, a statement returning at most one row, and scans that
// row into dest with database/sql, or returns sql.ErrNoRows. It is the
// rotation's way to read what its statements return: GORM's Scan finds
// its destination by reflection for every row, which in a profile of
// chained refreshes cost more than SQLite's own work on the statement,
// while the rotation holds SQLite's write lock. The statement still goes
// through GORM (its deadline, its callbacks).
func scanRow(q *gorm.DB, dest ...any) error {
	rows, err := q.Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// rotatedBefore decides the presentation of a token the common case did
// not rotate: unknown, expired or already rotated. It returns the session
// to go on with, or "" for reuse, having revoked the session (see
// revokeForReuse).
func rotatedBefore(tx *gorm.DB, r Rotate, postgres bool, out *Rotation) (sessionID string, _ error) {
	// Read it to tell which. On PostgreSQL the row is locked, so that
	// presentations of one token after its rotation (retries) are decided
	// one at a time, each seeing the successors of the one before.
	q := tx
	if postgres {
		q = tx.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var old RefreshToken
	if err := q.Where("id = ?", r.OldHash).Take(&old).Error; errors.Is(err, gorm.ErrRecordNotFound) {
		return "", ErrInvalidRefresh
	} else if err != nil {
		return "", err
	}
	if postgres {
		out.At = r.Now() // after waiting for the lock
	}
	if !old.ExpiresAt.After(out.At) || old.RotatedAt == nil {
		return "", ErrInvalidRefresh
	}
	again, retry, err := presentedAgain(tx, &old, out.At, r.ReuseInterval)
	if err != nil {
		return "", err
	}
	if !again {
		return "", revokeForReuse(tx, r, old.SessionID, out)
	}
	out.Retry = retry
	return old.SessionID, nil
}

// revokeForReuse revokes the session of a reused token, setting out's
// Reuse, Session and RevokedUntil.
func revokeForReuse(tx *gorm.DB, r Rotate, sessionID string, out *Rotation) error {
	out.Reuse = true
	// The whole row: the audit log records whose session it was.
	out.Session = &Session{}
	if err := tx.Where("id = ?", sessionID).Take(out.Session).Error; err != nil {
		return err
	}
	r.Revoke.At = out.At
	out.RevokedUntil = r.Revoke.Until(out.Session.AccessExpiresAt)
	revoked, err := revokeSessions(tx, tx.Where("id = ?", sessionID), r.Revoke)
	if len(revoked) > 0 {
		out.RevokedUntil = revoked[0].Until // as read when it was revoked
	}
	return err
}

// continueSession goes on with the session of a rotated token: if it is
// still live it slides, records the new access token's expiry, and gets
// the new token.
func continueSession(tx *gorm.DB, r Rotate, sessionID string, out *Rotation) error {
	now := out.At
	accessExp := now.Add(r.AccessTTL)
	// The columns of a live session (revoked_at is NULL), in the order
	// of rotatePostgres's.
	var s Session
	err := scanRow(tx.Raw(`UPDATE sessions SET last_used_at = ?, expires_at = ?,
			access_expires_at = CASE WHEN access_expires_at IS NULL OR access_expires_at < ? THEN ? ELSE access_expires_at END
		WHERE id = ? AND revoked_at IS NULL AND expires_at > ?
		RETURNING id, user_id, created_at, last_used_at, expires_at, user_agent, ip, access_expires_at, aal, amr, auth_time`,
		now, now.Add(r.TTL), accessExp, accessExp, sessionID, now),
		&s.ID, &s.UserID, &s.CreatedAt, &s.LastUsedAt, &s.ExpiresAt, &s.UserAgent, &s.IP, &s.AccessExpiresAt, &s.Aal, &s.Amr, &s.AuthTime)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrInvalidRefresh
	} else if err != nil {
		return err
	}
	// The successor, written as SQL rather than through GORM's Create:
	// the rotation holds SQLite's write lock, and Create's reflection
	// and callbacks were 7% of its CPU in a profile of chained refreshes.
	if err := tx.Exec(`INSERT INTO refresh_tokens (id, session_id, created_at, expires_at, parent_id) VALUES (?, ?, ?, ?, ?)`,
		r.NewHash, s.ID, now, s.ExpiresAt, r.OldHash).Error; err != nil {
		return err
	}
	out.Session = &s
	return nil
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
			RETURNING sessions.id, sessions.user_id, sessions.created_at, sessions.last_used_at, sessions.expires_at, sessions.user_agent, sessions.ip, sessions.access_expires_at, sessions.aal, sessions.amr, sessions.auth_time
		), ins AS (
			INSERT INTO refresh_tokens (id, session_id, created_at, expires_at, parent_id)
			SELECT $3, sess.id, $1, $4, $2 FROM sess
		)
		SELECT * FROM sess`,
		now, r.OldHash, r.NewHash, now.Add(r.TTL), now.Add(r.AccessTTL),
	).Scan(&s.ID, &s.UserID, &s.CreatedAt, &s.LastUsedAt, &s.ExpiresAt, &s.UserAgent, &s.IP, &s.AccessExpiresAt, &s.Aal, &s.Amr, &s.AuthTime)
	if errors.Is(err, sql.ErrNoRows) {
		return Rotation{}, nil
	}
	if err != nil {
		return Rotation{}, err
	}
	return Rotation{Session: &s, At: now}, nil
}
