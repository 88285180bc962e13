package main

import (
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/models"
)

// mailConfig is how authql mails: where to (SMTP, or .eml files in
// development), from whom, with links to which app, from which templates,
// and the lifetimes of the mailed links.
type mailConfig struct {
	// SMTPURL is AUTH_SMTP_URL; "" writes .eml files to Dir instead
	// (outside production only).
	SMTPURL string
	// SMTPInsecure (AUTH_SMTP_INSECURE) allows smtp:// without STARTTLS to
	// a host that is not loopback: a mail catcher in development.
	SMTPInsecure bool
	From         string // AUTH_MAIL_FROM
	// AppURL is AUTH_APP_URL without a trailing slash; "" outside
	// production: http://localhost:PORT/example once the port is known
	// (see appURL).
	AppURL    string
	Dir       string // AUTH_MAIL_DIR, when SMTPURL is ""
	Templates string // AUTH_MAIL_TEMPLATES, a directory; "": the embedded ones

	ResetTTL        time.Duration // AUTH_RESET_TTL
	VerifyTTL       time.Duration // AUTH_VERIFY_TTL
	RequireVerified bool          // AUTH_REQUIRE_VERIFIED_EMAIL

	// Missing names the variables production needs to mail and lacks
	// (see required).
	Missing []string
}

// required refuses a configuration that cannot mail: production without
// SMTP, a sender or the app's URL. serve and authql mail test check it;
// the commands that send no mail (migrate, user add, health) run
// without, so that a release step or a health probe needs no SMTP
// password. It names every variable missing at once: a password reset
// that cannot be mailed, or whose link leads nowhere, would otherwise be
// found by the first user who forgets theirs.
func (m mailConfig) required() error {
	if len(m.Missing) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration:\n%s: must be set with AUTH_ENV=production: authql mails password resets, verifications and notices over SMTP (AUTH_SMTP_URL, such as smtps://user:pass@smtp.example.com:465) from AUTH_MAIL_FROM (such as \"Example <no-reply@example.com>\") with links to your app at AUTH_APP_URL (such as https://app.example.com)", strings.Join(m.Missing, ", "))
}

// devMailFrom is AUTH_MAIL_FROM outside production when unset.
const devMailFrom = "authql <no-reply@localhost>"

// readMail reads the mail variables, the mailed links' lifetimes and the
// mail limits. It needs c.Production and c.DatabaseURL.
func readMail(r *envReader, c *config) {
	m := &c.Mail
	r.str("AUTH_SMTP_URL", &m.SMTPURL)
	r.boolean("AUTH_SMTP_INSECURE", &m.SMTPInsecure)
	r.str("AUTH_MAIL_FROM", &m.From)
	r.str("AUTH_APP_URL", &m.AppURL)
	r.str("AUTH_MAIL_DIR", &m.Dir)
	r.str("AUTH_MAIL_TEMPLATES", &m.Templates)
	m.ResetTTL, m.VerifyTTL = 15*time.Minute, 24*time.Hour
	r.duration("AUTH_RESET_TTL", &m.ResetTTL, time.Minute)
	r.atMost("AUTH_RESET_TTL", m.ResetTTL, 24*time.Hour, "a reset link in a mailbox works that long for whoever reads it")
	r.duration("AUTH_VERIFY_TTL", &m.VerifyTTL, time.Minute)
	r.atMost("AUTH_VERIFY_TTL", m.VerifyTTL, 30*24*time.Hour, "a verification link in a mailbox works that long")
	r.boolean("AUTH_REQUIRE_VERIFIED_EMAIL", &m.RequireVerified)
	r.rate("AUTH_MAIL_LIMIT", &c.Limits.MailAddress)
	r.rate("AUTH_MAIL_CLIENT_LIMIT", &c.Limits.MailClient)

	if c.Production {
		requireProductionMail(r, m)
	} else if m.From == "" {
		m.From = devMailFrom
	}
	readMailTransport(r, m, c)
	if m.From != "" {
		if _, err := netmail.ParseAddress(m.From); err != nil {
			r.bad("AUTH_MAIL_FROM", "%q is not an email address; write it as no-reply@example.com or \"Example <no-reply@example.com>\"", m.From)
			return
		}
	}
	if m.AppURL != "" {
		u, err := parseAppURL(m.AppURL, c.Production)
		if err != nil {
			r.bad("AUTH_APP_URL", "%q %v", m.AppURL, err)
			return
		}
		m.AppURL = u
	}
	if m.Templates != "" {
		check := *m
		if check.From == "" {
			check.From = devMailFrom // missing in production: said above
		}
		if _, err := composer(check, nil, "http://localhost"); err != nil {
			r.bad("AUTH_MAIL_TEMPLATES", "%v", err)
		}
	}
}

// requireProductionMail notes the variables production needs to mail and
// lacks (see required), and refuses AUTH_SMTP_INSECURE there.
func requireProductionMail(r *envReader, m *mailConfig) {
	for _, v := range []struct{ name, value string }{{"AUTH_SMTP_URL", m.SMTPURL}, {"AUTH_MAIL_FROM", m.From}, {"AUTH_APP_URL", m.AppURL}} {
		if v.value == "" {
			m.Missing = append(m.Missing, v.name)
		}
	}
	if m.SMTPInsecure {
		r.bad("AUTH_SMTP_INSECURE", "true is for a mail catcher in development and is refused with AUTH_ENV=production: mails hold live links, and would cross the network in clear text")
	}
}

// readMailTransport checks AUTH_SMTP_URL, or chooses the .eml directory.
func readMailTransport(r *envReader, m *mailConfig, c *config) {
	switch {
	case m.SMTPURL != "":
		// The error never quotes the URL: it may hold a password.
		if _, err := mail.NewSMTP(m.SMTPURL, m.SMTPInsecure); err != nil {
			r.bad("AUTH_SMTP_URL", "%v", err)
		}
		if m.Dir != "" {
			r.bad("AUTH_MAIL_DIR", "is set with AUTH_SMTP_URL: mails go over SMTP, and AUTH_MAIL_DIR is only for development without it; unset one of them")
		}
	case m.SMTPInsecure:
		r.bad("AUTH_SMTP_INSECURE", "is set without AUTH_SMTP_URL; unset it, or set AUTH_SMTP_URL")
	case m.Dir == "":
		m.Dir = defaultMailDir(c.DatabaseURL)
	}
}

// defaultMailDir is mail/ beside the SQLite file, or in the working
// directory for PostgreSQL.
func defaultMailDir(databaseURL string) string {
	d, dsn, err := models.ParseDSN(databaseURL)
	if err != nil || d != models.SQLite {
		return "mail"
	}
	path, _, _ := strings.Cut(dsn, "?")
	path = strings.TrimPrefix(path, "file:")
	return filepath.Join(filepath.Dir(path), "mail")
}

// parseAppURL returns s without a trailing slash, or an error saying why
// it cannot be the base of the mailed links: an absolute http(s) URL
// (https in production: the link carries a secret) without credentials,
// query or fragment (the fragment is where the secret goes).
func parseAppURL(s string, production bool) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "", errors.New("is not an absolute http(s) URL; write the address of your app, such as https://app.example.com")
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#") {
		return "", errors.New("has credentials, a query or a fragment; write scheme://host[:port][/path] only: links add their path and put the secret in the fragment")
	}
	if production && u.Scheme != "https" {
		return "", errors.New("is http; AUTH_ENV=production needs https: the links carry their secret to the app")
	}
	return strings.TrimSuffix(s, "/"), nil
}

// appURL is AUTH_APP_URL, or outside production the example frontend on
// port (http://localhost:PORT/example), so `go run .` users can follow
// the mailed links.
func appURL(m mailConfig, port string) string {
	if m.AppURL != "" {
		return m.AppURL
	}
	return "http://" + net.JoinHostPort("localhost", port) + "/example"
}

// composer builds the Composer of m with the templates of
// AUTH_MAIL_TEMPLATES, checked (parsed and tried) now, so that a broken
// override stops the start rather than the first mail.
func composer(m mailConfig, seal *secret.Sealer, app string) (*mail.Composer, error) {
	cfg := mail.Config{From: m.From, AppURL: app, Sealer: seal}
	if m.Templates != "" {
		if fi, err := os.Stat(m.Templates); err != nil {
			return nil, err
		} else if !fi.IsDir() {
			return nil, errors.New(m.Templates + " is not a directory")
		}
		cfg.Templates = os.DirFS(m.Templates)
	}
	return mail.NewComposer(cfg)
}
