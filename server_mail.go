package main

import (
	"log/slog"
	"net"
	"strconv"

	"gorm.io/gorm"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/httpapi"
)

// mailer is serve's mail: the Composer the account flows queue mails
// with, and the transport the background sender delivers them through.
type mailer struct {
	composer  *mail.Composer
	transport mail.Transport
	seal      *secret.Sealer
	sender    *mail.Sender // set by startSender
}

// newMailer builds the mail of cfg for a server listening on port (the
// default AUTH_APP_URL's), refusing production without what it needs.
func newMailer(cfg config, port string) (*mailer, error) {
	if err := cfg.Mail.required(); err != nil {
		return nil, err
	}
	seal, err := secret.NewSealer(cfg.Encryption)
	if err != nil {
		return nil, err
	}
	c, err := composer(cfg.Mail, seal, appURL(cfg.Mail, port))
	if err != nil {
		return nil, err
	}
	t, err := mailTransport(cfg)
	if err != nil {
		return nil, err
	}
	return &mailer{composer: c, transport: t, seal: seal}, nil
}

// mailComposer is the Composer of cfg, sealing under AUTH_ENCRYPTION_KEY,
// for the commands (a server's port is cfg.Port).
func mailComposer(cfg config, port string) (*mail.Composer, error) {
	seal, err := secret.NewSealer(cfg.Encryption)
	if err != nil {
		return nil, err
	}
	return composer(cfg.Mail, seal, appURL(cfg.Mail, port))
}

// mailTransport is SMTP (AUTH_SMTP_URL), or outside production without
// it the .eml files of AUTH_MAIL_DIR (loadConfig refuses production
// without AUTH_SMTP_URL).
func mailTransport(cfg config) (mail.Transport, error) {
	if cfg.Mail.SMTPURL != "" {
		return mail.NewSMTP(cfg.Mail.SMTPURL, cfg.Mail.SMTPInsecure)
	}
	return mail.NewDir(cfg.Mail.Dir, nil)
}

// configure gives the service's configuration the Composer, and the hook
// that wakes the sender after a commit that queued mail.
func (m *mailer) configure(acfg *auth.Config) {
	acfg.Mail = m.composer
	// The sender is built after the service (it records its audit events
	// through it); Wake on a nil Sender does nothing.
	acfg.MailQueued = func() { m.sender.Wake() }
}

// newSender builds the sender over db, counting in metrics and auditing
// through svc; startBackground runs it.
func (m *mailer) newSender(db *gorm.DB, from string, svc *auth.Service, metrics *httpapi.Metrics, log *slog.Logger) {
	m.sender = mail.NewSender(mail.SenderConfig{
		DB: db, Transport: m.transport, From: from, Sealer: m.seal,
		Observer: metrics, Audit: svc, Log: log,
	})
}

// where says where mails go, for the start line: the SMTP server, or
// the directory of the .eml files.
func (m *mailer) where() string {
	if _, ok := m.transport.(*mail.Dir); ok {
		return "mails written as .eml files to " + m.transport.String()
	}
	return "mails sent through " + m.transport.String()
}

// portOf is the port of a listener's address, for the default AUTH_APP_URL.
func portOf(addr net.Addr) string {
	if a, ok := addr.(*net.TCPAddr); ok {
		return strconv.Itoa(a.Port)
	}
	_, port, _ := net.SplitHostPort(addr.String())
	return port
}
