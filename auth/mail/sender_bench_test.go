package mail_test

import (
	"context"
	"fmt"
	"testing"

	"gorm.io/gorm"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/smtptest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// BenchmarkDeliver measures one sender delivering queued mails to an
// in-process SMTP server: a claim (one UPDATE), an SMTP conversation on
// a connection of its own (loopback, AUTH PLAIN) and the sent mark, per
// mail (ns/op is per mail).
func BenchmarkDeliver(b *testing.B) {
	run := func(b *testing.B, dsn string) {
		smtp := smtptest.Start(b)
		ts := authtest.NewServer(b, dsn, nil)
		c, err := mail.NewComposer(mail.Config{From: authtest.MailFrom, AppURL: authtest.MailAppURL, Now: ts.Clock.Now})
		if err != nil {
			b.Fatal(err)
		}
		transport, err := mail.NewSMTP(smtp.URL, false)
		if err != nil {
			b.Fatal(err)
		}
		s := mail.NewSender(mail.SenderConfig{DB: ts.DB, Transport: transport, From: authtest.MailFrom, Now: ts.Clock.Now})
		mails := make([]*models.OutboxMail, b.N)
		for i := range mails {
			if mails[i], err = c.Compose(mail.KindTest, fmt.Sprintf("r%d@example.com", i), mail.Vars{}); err != nil {
				b.Fatal(err)
			}
		}
		for i := 0; i < len(mails); i += 500 {
			batch := mails[i:min(i+500, len(mails))]
			if err := ts.DB.Transaction(func(tx *gorm.DB) error { return models.EnqueueMail(tx, batch...) }); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		s.SendDue(context.Background())
		b.StopTimer()
		if got := len(smtp.Mails()); got != b.N {
			b.Fatalf("%d mails delivered, want %d", got, b.N)
		}
	}
	b.Run("sqlite", func(b *testing.B) { run(b, testdb.SQLite(b)) })
	b.Run("postgres", func(b *testing.B) { run(b, testdb.Postgres(b)) })
}
