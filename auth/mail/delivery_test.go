package mail_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/smtptest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// auditOf returns the audit events of typ, flushed first.
func auditOf(t *testing.T, ts *authtest.Server, typ models.AuditEventType) []models.AuditEvent {
	t.Helper()
	if err := ts.Svc.FlushAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	var rows []models.AuditEvent
	if err := ts.DB.Where("type = ?", typ).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

// metric returns the line of authql_mail_total for outcome on /metrics.
func metric(t *testing.T, ts *authtest.Server, outcome string) string {
	t.Helper()
	for _, line := range strings.Split(authtest.Scrape(t, ts.URL), "\n") {
		if strings.HasPrefix(line, `authql_mail_total{outcome="`+outcome+`"}`) {
			return line
		}
	}
	return ""
}

// TestRetryUntilDelivered: while the SMTP server refuses (451), the mail
// is retried after its backoff, nothing is lost and nothing is sent
// twice; once it accepts, the retry delivers it. The stored error and the
// metrics say what happened; the audit log records MAIL_SENT once.
func TestRetryUntilDelivered(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		smtp := smtptest.Start(t)
		ts := authtest.NewServer(t, dsn, nil, authtest.WithMail(smtp.URL))
		smtp.Refuse()
		m := queue(t, ts, mail.KindReset, "bob@example.com")
		authtest.WaitFor(t, "the first attempt", func() bool { return outbox(t, ts.DB, m.ID).Attempts == 1 && outbox(t, ts.DB, m.ID).LastError != nil })
		row := outbox(t, ts.DB, m.ID)
		if row.Status != models.MailQueued || !row.NextAttemptAt.Equal(ts.Clock.Now().UTC().Add(mail.RetryBackoff(1))) || row.Message == "" {
			t.Errorf("after a 451: %s, next %v (now %v), message kept %v; want queued, a minute on, kept", row.Status, row.NextAttemptAt, ts.Clock.Now(), row.Message != "")
		}
		if !strings.Contains(*row.LastError, "451") || strings.Contains(*row.LastError, "bob@") {
			t.Errorf("last_error %q: want the 451, without the recipient", *row.LastError)
		}
		if got := metric(t, ts, "retried"); got != `authql_mail_total{outcome="retried"} 1` {
			t.Errorf("metric %q, want retried 1", got)
		}

		// Polls before the backoff has passed leave it alone.
		ts.Mail.SendDue(context.Background())
		if n := outbox(t, ts.DB, m.ID).Attempts; n != 1 {
			t.Errorf("%d attempts before the backoff passed, want 1", n)
		}
		smtp.Accept()
		ts.Clock.Advance(mail.RetryBackoff(1))
		ts.Mail.Wake()
		smtp.Wait(t, "bob@example.com", "Reset your password")
		authtest.WaitFor(t, "the row marked sent", func() bool { return outbox(t, ts.DB, m.ID).Status == models.MailSent })
		if row := outbox(t, ts.DB, m.ID); row.Attempts != 2 || row.Message != "" || row.LastError != nil {
			t.Errorf("sent row: attempts %d, message %d bytes, last_error %v; want 2, wiped, cleared", row.Attempts, len(row.Message), row.LastError)
		}
		if n := smtp.Count("bob@example.com"); n != 1 {
			t.Errorf("%d mails delivered, want 1", n)
		}
		if got := metric(t, ts, "sent"); got != `authql_mail_total{outcome="sent"} 1` {
			t.Errorf("metric %q, want sent 1", got)
		}
		if ev := auditOf(t, ts, models.AuditMailSent); len(ev) != 1 || *ev[0].Detail != "reset" || ev[0].UserID == nil || *ev[0].UserID != "user-1" {
			t.Errorf("MAIL_SENT events %+v, want one with detail reset and the mail's user", ev)
		}
	})
}

// TestGivenUp: a 5xx refusal of the message fails the mail at once, and a
// mail whose last attempt fails is given up: both wiped, counted and
// audited as MAIL_FAILED (with the kind, not the address).
func TestGivenUp(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		smtp := smtptest.Start(t)
		ts := authtest.NewServer(t, dsn, nil, authtest.WithMail(smtp.URL))
		// smtptest answers 554 to a message it cannot parse.
		now := ts.Clock.Now().UTC()
		bad := &models.OutboxMail{ID: uuid.NewString(), CreatedAt: now, Kind: "verify", Status: models.MailQueued, To: "carol@example.com",
			Message: "Subject: x\r\nContent-Type: multipart/alternative\r\n\r\nno parts\r\n", NextAttemptAt: now}
		if err := ts.DB.Transaction(func(tx *gorm.DB) error { return models.EnqueueMail(tx, bad) }); err != nil {
			t.Fatal(err)
		}
		ts.Mail.Wake()
		authtest.WaitFor(t, "the 554", func() bool { return outbox(t, ts.DB, bad.ID).Status != models.MailQueued })
		row := outbox(t, ts.DB, bad.ID)
		if row.Status != models.MailFailed || row.Attempts != 1 || row.Message != "" || !strings.Contains(*row.LastError, "554") {
			t.Errorf("after a 554: %s, attempts %d, message %q, last_error %v; want failed at once, wiped, the 554", row.Status, row.Attempts, row.Message, *row.LastError)
		}

		smtp.Refuse()
		last := compose(t, ts, nil, mail.KindVerify, "dan@example.com")
		last.Attempts = mail.MaxAttempts - 1 // as after a day of retries
		insert(t, ts, last)
		authtest.WaitFor(t, "the last attempt", func() bool { return outbox(t, ts.DB, last.ID).Status != models.MailQueued })
		if row := outbox(t, ts.DB, last.ID); row.Status != models.MailFailed || row.Attempts != mail.MaxAttempts || row.Message != "" {
			t.Errorf("after the last attempt: %s, attempts %d, message %d bytes; want failed, %d, wiped", row.Status, row.Attempts, len(row.Message), mail.MaxAttempts)
		}
		if got := metric(t, ts, "failed"); got != `authql_mail_total{outcome="failed"} 2` {
			t.Errorf("metric %q, want failed 2", got)
		}
		ev := auditOf(t, ts, models.AuditMailFailed)
		if len(ev) != 2 || *ev[0].Detail != "verify" || ev[0].Outcome != models.AuditFailure {
			t.Fatalf("MAIL_FAILED events %+v, want two, detail verify, outcome FAILURE", ev)
		}
		for _, e := range ev {
			if e.Detail != nil && strings.Contains(*e.Detail, "@") {
				t.Errorf("audit detail %q holds an address", *e.Detail)
			}
		}
	})
}

// TestSealedAtRest: with AUTH_ENCRYPTION_KEY the queued row holds neither
// the link nor the code, and the mail delivered is readable.
func TestSealedAtRest(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		smtp := smtptest.Start(t)
		keys := secret.Keys{Current: []byte("0123456789abcdef0123456789abcdef")}
		ts := authtest.NewServer(t, dsn, nil, authtest.WithMail(smtp.URL), func(c *authtest.Config) { c.Auth.Encryption = keys })
		seal, err := secret.NewSealer(keys)
		if err != nil {
			t.Fatal(err)
		}
		smtp.Refuse() // keep it queued while the row is read
		m := queueWith(t, ts, seal, mail.KindReset, "erin@example.com")
		authtest.WaitFor(t, "the first attempt", func() bool { return outbox(t, ts.DB, m.ID).Attempts == 1 })
		row := outbox(t, ts.DB, m.ID)
		for _, secret := range []string{"tok_", "ABCD2345", "erin@example.com", "Reset your password"} {
			if strings.Contains(row.Message, secret) {
				t.Errorf("the queued row's message holds %q", secret)
			}
		}
		if !strings.HasPrefix(row.Message, "enc:v1:") {
			t.Errorf("queued message %.20q is not sealed", row.Message)
		}
		smtp.Accept()
		ts.Clock.Advance(mail.RetryBackoff(1))
		ts.Mail.Wake()
		if got := smtp.Wait(t, "erin@example.com", "Reset your password"); got.Code() != "ABCD2345" || !strings.HasPrefix(got.Token(), "tok_") {
			t.Errorf("delivered code %q token %q, want them readable", got.Code(), got.Token())
		}
	})
}

// TestTwoSendersShareTheOutbox: two replicas' senders on one PostgreSQL
// database deliver every mail exactly once.
func TestTwoSendersShareTheOutbox(t *testing.T) {
	dsn := testdb.Postgres(t)
	smtp := smtptest.Start(t)
	clock := authtest.NewClock()
	a := authtest.NewServer(t, dsn, clock, authtest.WithMail(smtp.URL))
	b := authtest.NewServer(t, dsn, clock, authtest.WithMail(smtp.URL))
	const n = 60
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ts := a
			if i%2 == 1 {
				ts = b
			}
			queue(t, ts, mail.KindTest, fmt.Sprintf("r%d@example.com", i))
			a.Mail.Wake()
			b.Mail.Wake()
		})
	}
	wg.Wait()
	authtest.WaitFor(t, "every mail delivered", func() bool { return len(smtp.Mails()) >= n })
	// Whatever was claimed twice would arrive a little later.
	time.Sleep(200 * time.Millisecond)
	if got := len(smtp.Mails()); got != n {
		t.Errorf("%d mails delivered for %d queued", got, n)
	}
	for i := range n {
		if c := smtp.Count(fmt.Sprintf("r%d@example.com", i)); c != 1 {
			t.Errorf("r%d got %d mails, want 1", i, c)
		}
	}
}

// TestSTARTTLSRequired: smtp:// to a host that is not loopback is refused
// unless the server offers STARTTLS: nothing is sent, no password
// crosses in clear. AUTH_SMTP_INSECURE lifts it (without credentials).
func TestSTARTTLSRequired(t *testing.T) {
	ip := nonLoopbackIP(t)
	srv := smtptest.StartOn(t, ip)
	_, port, _ := net.SplitHostPort(srv.Addr)
	msg := mail.Message{ID: "m1", From: "no-reply@authql.test", To: "fay@example.com", Data: []byte("Subject: hi\r\nContent-Type: text/plain\r\n\r\nhello\r\n")}

	strict, err := mail.NewSMTP("smtp://test:secret@"+net.JoinHostPort(ip, port), false)
	if err != nil {
		t.Fatal(err)
	}
	err = strict.Send(context.Background(), msg)
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("send to %s without STARTTLS = %v, want a refusal naming STARTTLS", ip, err)
	}
	if mail.Permanent(err) {
		t.Errorf("the refusal is permanent; want it retried (the operator may fix the server)")
	}
	if len(srv.Mails()) != 0 || len(srv.Logins()) != 0 {
		t.Errorf("the server got %d mails and %d logins, want none", len(srv.Mails()), len(srv.Logins()))
	}

	if _, err := mail.NewSMTP("smtp://test:secret@"+net.JoinHostPort(ip, port), true); err == nil {
		t.Errorf("insecure with credentials to %s accepted", ip)
	}
	insecure, err := mail.NewSMTP("smtp://"+net.JoinHostPort(ip, port), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := insecure.Send(context.Background(), msg); err != nil {
		t.Errorf("insecure send = %v", err)
	}
	srv.Wait(t, "fay@example.com", "hi")
}

// nonLoopbackIP returns an IPv4 address of this machine that is not
// loopback, skipping the test when there is none (the decision itself
// is tested in TestPlainAllowed).
func nonLoopbackIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			ln, err := net.Listen("tcp", net.JoinHostPort(n.IP.String(), "0"))
			if err != nil {
				continue
			}
			ln.Close()
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address to listen on")
	return ""
}

// TestPurgeDoneMails: the purge deletes mails sent, failed or suppressed
// more than a week ago, and keeps queued ones and recent ones.
func TestPurgeDoneMails(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		smtp := smtptest.Start(t)
		ts := authtest.NewServer(t, dsn, nil, authtest.WithMail(smtp.URL))
		sent := queue(t, ts, mail.KindTest, "gil@example.com")
		authtest.WaitFor(t, "the mail sent", func() bool { return outbox(t, ts.DB, sent.ID).Status == models.MailSent })
		smtp.Refuse()
		queued := queue(t, ts, mail.KindTest, "hal@example.com")
		ts.Clock.Advance(8 * 24 * time.Hour)
		recent := queue(t, ts, mail.KindTest, "ida@example.com")
		if err := ts.Svc.Purge(context.Background()); err != nil {
			t.Fatal(err)
		}
		var ids []string
		ts.DB.Model(&models.OutboxMail{}).Order("created_at").Pluck("id", &ids)
		if len(ids) != 2 || ids[0] != queued.ID || ids[1] != recent.ID {
			t.Errorf("left after the purge: %v, want the queued %s and the recent %s", ids, queued.ID, recent.ID)
		}
	})
}

// TestRetryScheduleLastsADay: the attempts span about a day.
func TestRetryScheduleLastsADay(t *testing.T) {
	var total time.Duration
	for a := 1; a < mail.MaxAttempts; a++ {
		total += mail.RetryBackoff(a)
	}
	if total < 20*time.Hour || total > 30*time.Hour {
		t.Errorf("the %d attempts span %s, want about a day", mail.MaxAttempts, total)
	}
	if mail.RetryBackoff(1) != time.Minute || mail.RetryBackoff(100) != 4*time.Hour {
		t.Errorf("backoff starts at %s and ends at %s, want 1m and 4h", mail.RetryBackoff(1), mail.RetryBackoff(100))
	}
}

// TestRequestsDoNotWaitOnSMTP: with the SMTP server hanging (it accepts
// connections and never greets), the sender is stuck in its first
// attempt, and requests that queue mail answer all the same: none waits
// on SMTP.
func TestRequestsDoNotWaitOnSMTP(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan net.Conn, 16)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted <- c // held open, never answered
			}
		}()
		t.Cleanup(func() {
			ln.Close()
			for len(accepted) > 0 {
				(<-accepted).Close()
			}
		})
		ts := authtest.NewServer(t, dsn, nil, authtest.WithMail("smtp://"+ln.Addr().String()))
		ts.Register(t, "hank@example.com", "password1")
		const doc = `mutation($e: String!) { requestPasswordReset(email: $e) { requestId } }`
		ts.Do(t, "", doc, map[string]any{"e": "hank@example.com"}).OK(t)
		select {
		case <-accepted:
		case <-time.After(time.Minute):
			t.Fatal("the sender never connected")
		}
		// The sender now waits for a greeting that never comes.
		for range 3 {
			ts.Do(t, "", doc, map[string]any{"e": "hank@example.com"}).OK(t)
		}
		var queued int64
		ts.DB.Model(&models.OutboxMail{}).Where("status = ? AND kind = ?", models.MailQueued, "reset").Count(&queued)
		if queued != 4 {
			t.Errorf("%d reset mails queued, want 4 (one being attempted, three waiting)", queued)
		}
	})
}
