package models

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// EnqueueMail queues mails as part of tx, the transaction of the change
// that sends them: they go out if and only if it commits.
func EnqueueMail(tx *gorm.DB, mails ...*OutboxMail) error {
	if len(mails) == 0 {
		return nil
	}
	return tx.Create(mails).Error
}

// ClaimMail leases the queued mail due first at now (NextAttemptAt <= now),
// or returns nil when none is due. The lease is the attempt counted
// (Attempts+1) and NextAttemptAt moved to now+lease, committed before the
// mail is sent: a sender that dies mid-send leaves the mail to be tried
// again once the lease has run out, rather than lost or stuck.
//
// One statement is the whole transaction. On PostgreSQL the row is chosen
// FOR UPDATE SKIP LOCKED, so that replicas sharing the database each take
// a different mail and none waits for another's (a row another claim has
// just leased fails the re-checked WHERE and is passed over).
// SQLite serialises writers, so each statement sees the previous one's
// lease.
func ClaimMail(ctx context.Context, db *gorm.DB, now time.Time, lease time.Duration) (_ *OutboxMail, err error) {
	defer Wrap(&err, "ClaimMail")
	db = db.WithContext(ctx)
	var rows []OutboxMail
	if db.Dialector.Name() == string(Postgres) {
		// The CTE runs once: the row it locks is the row updated. (As
		// "id IN (subquery)" the planner may run the subquery again, or
		// join it to a scan from the statement's start, and claims came
		// back empty with mails still due.)
		err = db.Raw(`WITH due AS (
				SELECT id FROM outbox_mails WHERE status = ? AND next_attempt_at <= ?
				ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)
			UPDATE outbox_mails o SET attempts = o.attempts + 1, next_attempt_at = ?
			FROM due WHERE o.id = due.id RETURNING o.*`, MailQueued, now, now.Add(lease)).Scan(&rows).Error
	} else {
		due := db.Model(&OutboxMail{}).Select("id").
			Where("status = ? AND next_attempt_at <= ?", MailQueued, now).
			Order("next_attempt_at").Limit(1)
		err = db.Model(&rows).Clauses(clause.Returning{}).
			Where("id IN (?) AND status = ? AND next_attempt_at <= ?", due, MailQueued, now).
			Updates(map[string]any{"attempts": gorm.Expr("attempts + 1"), "next_attempt_at": now.Add(lease)}).Error
	}
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return &rows[0], nil
}

// MarkMailSent records the mail of a lease (m as ClaimMail returned it) as
// delivered at, and wipes its message: the link in it would still work
// until it expires, and nothing needs it any more. It reports false when
// the lease had been lost (the mail is no longer queued with that
// attempt), which a sender logs.
func MarkMailSent(ctx context.Context, db *gorm.DB, m *OutboxMail, at time.Time) (_ bool, err error) {
	defer Wrap(&err, "MarkMailSent(%q)", m.ID)
	return endLease(ctx, db, m, map[string]any{"status": MailSent, "sent_at": at, "message": "", "last_error": nil})
}

// RetryMail records a failed attempt of the mail of a lease: it is tried
// again at next. lastError is stored as the operator's clue; the caller
// keeps addresses and secrets out of it. It is cut to the column's size.
func RetryMail(ctx context.Context, db *gorm.DB, m *OutboxMail, next time.Time, lastError string) (_ bool, err error) {
	defer Wrap(&err, "RetryMail(%q)", m.ID)
	return endLease(ctx, db, m, map[string]any{"next_attempt_at": next, "last_error": truncate(lastError, 512)})
}

// FailMail gives the mail of a lease up, wiping its message.
func FailMail(ctx context.Context, db *gorm.DB, m *OutboxMail, lastError string) (_ bool, err error) {
	defer Wrap(&err, "FailMail(%q)", m.ID)
	return endLease(ctx, db, m, map[string]any{"status": MailFailed, "message": "", "last_error": truncate(lastError, 512)})
}

// endLease applies the outcome of the attempt that leased m, unless the
// lease was lost: the mail was leased again (its Attempts moved on) after
// this one ran out, or deleted with its account.
func endLease(ctx context.Context, db *gorm.DB, m *OutboxMail, set map[string]any) (bool, error) {
	res := db.WithContext(ctx).Model(&OutboxMail{}).
		Where("id = ? AND status = ? AND attempts = ?", m.ID, MailQueued, m.Attempts).Updates(set)
	return res.RowsAffected == 1, res.Error
}

// PurgeMail deletes the mails that are done with (sent, failed or
// suppressed) and were queued before `before`: they hold the recipient's
// address, and their story is in the audit log.
func PurgeMail(ctx context.Context, db *gorm.DB, before time.Time) (_ int64, err error) {
	defer Wrap(&err, "PurgeMail")
	res := db.WithContext(ctx).Where("status IN ? AND created_at < ?", []string{MailSent, MailFailed, MailSuppressed}, before).Delete(&OutboxMail{})
	return res.RowsAffected, res.Error
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
