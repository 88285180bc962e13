package mail_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/smtptest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// queue composes a mail of kind to the address with a link and a code,
// and queues it in a transaction of its own, as an account flow does,
// then wakes the sender as the flow's commit would.
func queue(t *testing.T, ts *authtest.Server, kind mail.Kind, to string) *models.OutboxMail {
	t.Helper()
	return queueWith(t, ts, nil, kind, to)
}

// queueWith is queue with the message sealed by seal (nil: not sealed).
// The mail's user is "user-1".
func queueWith(t *testing.T, ts *authtest.Server, seal *secret.Sealer, kind mail.Kind, to string) *models.OutboxMail {
	t.Helper()
	m := compose(t, ts, seal, kind, to)
	insert(t, ts, m)
	return m
}

// compose renders a mail of kind to the address with a link and a code,
// as a flow would, without queuing it.
func compose(t *testing.T, ts *authtest.Server, seal *secret.Sealer, kind mail.Kind, to string) *models.OutboxMail {
	t.Helper()
	c, err := mail.NewComposer(mail.Config{From: authtest.MailFrom, AppURL: authtest.MailAppURL, Now: ts.Clock.Now, Sealer: seal})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Compose(kind, to, mail.Vars{
		Link: c.Link("/reset", "tok_"+strings.Repeat("x", 43)), Code: "ABCD2345",
		ExpiresAt: ts.Clock.Now().Add(15 * time.Minute), IP: "192.0.2.7",
	})
	if err != nil {
		t.Fatal(err)
	}
	user := "user-1"
	m.UserID = &user
	return m
}

// insert queues m in a transaction of its own and wakes the sender, as a
// flow's commit does.
func insert(t *testing.T, ts *authtest.Server, m *models.OutboxMail) {
	t.Helper()
	if err := ts.DB.Transaction(func(tx *gorm.DB) error { return models.EnqueueMail(tx, m) }); err != nil {
		t.Fatal(err)
	}
	ts.Mail.Wake()
}

// outbox reads the mail's row.
func outbox(t *testing.T, db *gorm.DB, id string) models.OutboxMail {
	t.Helper()
	var m models.OutboxMail
	if err := db.WithContext(context.Background()).First(&m, "id = ?", id).Error; err != nil {
		t.Fatal(err)
	}
	return m
}

// TestWithMailDelivers: a mail queued on a test server built WithMail
// reaches the SMTP server, with its link and code, and its row is marked
// sent with the message wiped.
func TestWithMailDelivers(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		smtp := smtptest.Start(t)
		ts := authtest.NewServer(t, dsn, nil, authtest.WithMail(smtp.URL))
		m := queue(t, ts, mail.KindReset, "ann@example.com")
		got := smtp.Wait(t, "ann@example.com", "")
		if got.Link() != authtest.MailAppURL+"/reset#token=tok_"+strings.Repeat("x", 43) || got.Code() != "ABCD2345" {
			t.Errorf("delivered link %q code %q, want the queued ones", got.Link(), got.Code())
		}
		if got.From != "no-reply@authql.test" {
			t.Errorf("envelope sender %q, want no-reply@authql.test", got.From)
		}
		authtest.WaitFor(t, "the row marked sent", func() bool { return outbox(t, ts.DB, m.ID).Status == models.MailSent })
		row := outbox(t, ts.DB, m.ID)
		if row.Message != "" || row.SentAt == nil || row.Attempts != 1 {
			t.Errorf("sent row: message %d bytes, sent_at %v, attempts %d; want wiped, set, 1", len(row.Message), row.SentAt, row.Attempts)
		}
		if n := smtp.Count("ann@example.com"); n != 1 {
			t.Errorf("%d mails delivered, want 1", n)
		}
	})
}
