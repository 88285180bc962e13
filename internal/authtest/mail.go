package authtest

import (
	"context"
	"log/slog"
	"testing"

	"gorm.io/gorm"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/httpapi"
)

// composeMail gives cfg.Auth a Composer (unless a test set its own) and
// has the service wake *sender, which startSender sets, after each commit
// that queued mail.
func composeMail(tb testing.TB, cfg *Config, sender **mail.Sender) {
	tb.Helper()
	if cfg.Auth.Mail == nil {
		seal, err := secret.NewSealer(cfg.Auth.Encryption)
		if err != nil {
			tb.Fatal(err)
		}
		if cfg.Auth.Mail, err = mail.NewComposer(mail.Config{From: MailFrom, AppURL: MailAppURL, Sealer: seal, Now: cfg.Auth.Now}); err != nil {
			tb.Fatal(err)
		}
	}
	cfg.Auth.MailQueued = func() { (*sender).Wake() }
}

// startSender runs a Sender delivering to cfg.SMTPURL on the server's
// clock until the test ends; the cleanup waits for it to stop, before
// the service and the database close.
func startSender(tb testing.TB, db *gorm.DB, cfg Config, m *httpapi.Metrics, svc *auth.Service, log *slog.Logger) *mail.Sender {
	tb.Helper()
	transport, err := mail.NewSMTP(cfg.SMTPURL, false)
	if err != nil {
		tb.Fatalf("WithMail(%q): %v", cfg.SMTPURL, err)
	}
	seal, err := secret.NewSealer(cfg.Auth.Encryption)
	if err != nil {
		tb.Fatal(err)
	}
	s := mail.NewSender(mail.SenderConfig{
		DB: db, Transport: transport, From: MailFrom, Sealer: seal,
		Observer: m, Audit: svc, Log: log, Now: cfg.Auth.Now,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return s
}
