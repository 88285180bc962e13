package models_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// queueMails queues n mails due at `at` (each a microsecond after the
// previous, so that they have an order) and returns them.
func queueMails(t *testing.T, db *gorm.DB, n int, at time.Time) []*models.OutboxMail {
	t.Helper()
	mails := make([]*models.OutboxMail, n)
	for i := range mails {
		due := at.Add(time.Duration(i) * time.Microsecond)
		mails[i] = &models.OutboxMail{ID: uuid.NewString(), CreatedAt: due, Kind: "test", Status: models.MailQueued,
			To: fmt.Sprintf("u%d@example.com", i), Message: "message " + fmt.Sprint(i), NextAttemptAt: due}
	}
	if err := db.Transaction(func(tx *gorm.DB) error { return models.EnqueueMail(tx, mails...) }); err != nil {
		t.Fatal(err)
	}
	return mails
}

func row(t *testing.T, db *gorm.DB, id string) models.OutboxMail {
	t.Helper()
	var m models.OutboxMail
	if err := db.First(&m, "id = ?", id).Error; err != nil {
		t.Fatal(err)
	}
	return m
}

// TestClaimMailLease: a claim takes the mail due first and leases it (an
// attempt counted, the next one moved past the lease), so that no other
// claim takes it until the lease runs out, when it is claimed again (a
// sender that died mid-send). The outcome of a lost lease is refused.
func TestClaimMailLease(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := testdb.Open(t, dsn)
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Second)
		mails := queueMails(t, db, 2, now.Add(-time.Minute))
		later := queueMails(t, db, 1, now.Add(time.Hour))[0]
		const lease = 10 * time.Minute

		first, err := models.ClaimMail(ctx, db, now, lease)
		if err != nil || first == nil || first.ID != mails[0].ID {
			t.Fatalf("first claim = %+v, %v; want the mail due first", first, err)
		}
		if first.Attempts != 1 || !first.NextAttemptAt.Equal(now.Add(lease)) || first.Message != "message 0" || first.To != "u0@example.com" {
			t.Errorf("claimed: attempts %d, next %v, message %q, to %q; want 1, now+lease, the whole row", first.Attempts, first.NextAttemptAt, first.Message, first.To)
		}
		second, err := models.ClaimMail(ctx, db, now, lease)
		if err != nil || second == nil || second.ID != mails[1].ID {
			t.Fatalf("second claim = %+v, %v; want the other due mail", second, err)
		}
		if none, err := models.ClaimMail(ctx, db, now, lease); err != nil || none != nil {
			t.Fatalf("third claim = %+v, %v; want none (two leased, one not due)", none, err)
		}

		// The first sender dies; past its lease the mail is claimed again.
		again, err := models.ClaimMail(ctx, db, now.Add(lease+time.Second), lease)
		if err != nil || again == nil || again.ID != first.ID || again.Attempts != 2 {
			t.Fatalf("claim past the lease = %+v, %v; want the first mail, attempt 2", again, err)
		}
		if ok, err := models.MarkMailSent(ctx, db, first, now); err != nil || ok {
			t.Errorf("MarkMailSent with the lost lease = %v, %v; want false", ok, err)
		}
		if ok, err := models.MarkMailSent(ctx, db, again, now); err != nil || !ok {
			t.Fatalf("MarkMailSent = %v, %v", ok, err)
		}
		if r := row(t, db, first.ID); r.Status != models.MailSent || r.Message != "" || r.SentAt == nil {
			t.Errorf("sent row: %s, message %q, sent_at %v; want sent, wiped, set", r.Status, r.Message, r.SentAt)
		}

		next := now.Add(time.Minute)
		if ok, err := models.RetryMail(ctx, db, second, next, strings.Repeat("é", 400)); err != nil || !ok {
			t.Fatalf("RetryMail = %v, %v", ok, err)
		}
		r := row(t, db, second.ID)
		if r.Status != models.MailQueued || !r.NextAttemptAt.Equal(next) || r.Message != "message 1" || r.LastError == nil || len(*r.LastError) != 512 {
			t.Errorf("retried row: %s, next %v, message %q, last_error %d bytes; want queued, next, kept, 512", r.Status, r.NextAttemptAt, r.Message, len(*r.LastError))
		}
		if m, _ := models.ClaimMail(ctx, db, next, lease); m == nil || m.ID != second.ID {
			t.Fatalf("claim at the retry's time = %+v; want the retried mail", m)
		} else if ok, err := models.FailMail(ctx, db, m, "550 no such user"); err != nil || !ok {
			t.Fatalf("FailMail = %v, %v", ok, err)
		}
		if r := row(t, db, second.ID); r.Status != models.MailFailed || r.Message != "" || *r.LastError != "550 no such user" {
			t.Errorf("failed row: %s, message %q, last_error %q; want failed, wiped, the error", r.Status, r.Message, *r.LastError)
		}

		// The purge takes the sent and failed ones, not the queued one.
		n, err := models.PurgeMail(ctx, db, now.Add(time.Hour))
		if err != nil || n != 2 {
			t.Errorf("PurgeMail = %d, %v; want 2", n, err)
		}
		var left []models.OutboxMail
		db.Find(&left)
		if len(left) != 1 || left[0].ID != later.ID {
			t.Errorf("left after the purge: %d rows, want the queued one", len(left))
		}
	})
}

// TestClaimMailConcurrent: senders claiming at once, through two
// connection pools (two replicas), never claim one mail twice and leave
// none unclaimed. On PostgreSQL this is FOR UPDATE SKIP LOCKED's work.
func TestClaimMailConcurrent(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		dbs := []*gorm.DB{testdb.Open(t, dsn), testdb.OpenAsIs(t, dsn)}
		now := time.Now().UTC()
		mails := queueMails(t, dbs[0], 100, now.Add(-time.Minute))
		var mu sync.Mutex
		claimed := map[string]int{}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for {
					m, err := models.ClaimMail(context.Background(), dbs[w%2], now, time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					if m == nil {
						return
					}
					mu.Lock()
					claimed[m.ID]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, m := range mails {
			if claimed[m.ID] != 1 {
				t.Errorf("mail %s claimed %d times, want once", m.ID, claimed[m.ID])
			}
		}
	})
}
