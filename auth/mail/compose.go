// Package mail composes authql's mails and delivers them: the templates
// (embedded, overridable from a directory), the outbox rows that the
// account flows queue in their own transactions, and the background
// sender that delivers them over SMTP, or writes them as .eml files
// outside production when no SMTP server is configured.
package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/google/uuid"

	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/models"
)

// Kind names a mail, and its templates: <kind>.subject.txt, <kind>.txt
// and <kind>.html.
type Kind string

// The mails authql sends.
const (
	KindReset             Kind = "reset"               // a password-reset link and code
	KindVerify            Kind = "verify"              // an email-verification link and code
	KindEmailChange       Kind = "email_change"        // to the new address: a confirmation link and code
	KindEmailChangeNotice Kind = "email_change_notice" // to the old address: a change was asked for
	KindPasswordChanged   Kind = "password_changed"    // a notice after a reset or a change
	KindSignupAttempt     Kind = "signup_attempt"      // someone tried to register an address that has an account
	KindTest              Kind = "test"                // authql mail test
	KindMfaChanged        Kind = "mfa_changed"         // a second factor added or removed, recovery codes regenerated
	KindRecoveryCodeUsed  Kind = "recovery_code_used"  // a recovery code was spent; how many are left
	KindMfaReset          Kind = "mfa_reset"           // an administrator removed every second factor
)

// Kinds lists every Kind, for the template checks.
var Kinds = []Kind{KindReset, KindVerify, KindEmailChange, KindEmailChangeNotice, KindPasswordChanged, KindSignupAttempt, KindTest, KindMfaChanged, KindRecoveryCodeUsed, KindMfaReset}

// Vars are the values a template can use; README's "Mail templates"
// documents each. Fields a mail has no use for are zero.
type Vars struct {
	AppURL    string    // AUTH_APP_URL
	Email     string    // the recipient
	Link      string    // the link with its secret in the fragment
	Code      string    // the short code, for apps that cannot open links
	ExpiresAt time.Time // when the link and the code stop working
	ExpiresIn string    // the same, as a duration: "15 minutes"
	NewEmail  string    // an email change: the new address
	At        time.Time // when the change or the request happened
	IP        string    // the client address of the request
	// Change says what changed, for mfa_changed: a phrase chosen by
	// authql ("an authenticator app was added"), never a user's label,
	// since the notice goes out exactly when someone else may hold the
	// account.
	Change string
	// CodesLeft is how many unused recovery codes remain, for
	// recovery_code_used.
	CodesLeft int
}

// Config configures a Composer.
type Config struct {
	From   string // AUTH_MAIL_FROM, an RFC 5322 address ("authql <no-reply@example.com>")
	AppURL string // AUTH_APP_URL, without a trailing slash
	// Templates overrides the embedded templates (AUTH_MAIL_TEMPLATES):
	// a file of the same name there replaces the embedded one. nil: the
	// embedded ones only.
	Templates fs.FS
	// Sealer encrypts the queued messages (AUTH_ENCRYPTION_KEY); nil or
	// one without keys stores them as they are.
	Sealer *secret.Sealer
	Now    func() time.Time
}

// Composer renders mails into outbox rows.
type Composer struct {
	cfg  Config
	from *mail.Address
	tpl  map[Kind]*templates
}

type templates struct {
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
}

// NewComposer parses the templates (the overrides first, then the embedded
// ones), failing on a template that does not parse or uses a variable that
// Vars lacks.
func NewComposer(cfg Config) (*Composer, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("AUTH_MAIL_FROM %q is not an email address: %w", cfg.From, err)
	}
	c := &Composer{cfg: cfg, from: from, tpl: map[Kind]*templates{}}
	for _, k := range Kinds {
		t, err := c.parse(k)
		if err != nil {
			return nil, err
		}
		c.tpl[k] = t
		// Tried now, with every variable set: a template naming a field
		// Vars lacks parses, and would fail only at its first mail.
		if _, err := c.render(k, "check@example.com", sampleVars); err != nil {
			return nil, fmt.Errorf("mail templates of %s: %w", k, err)
		}
	}
	return c, nil
}

// sampleVars fill every variable, for trying the templates.
var sampleVars = Vars{
	AppURL: "https://app.example.com", Email: "check@example.com", Link: "https://app.example.com/reset#token=x",
	Code: "ABCD2345", ExpiresAt: time.Unix(0, 0).UTC(), ExpiresIn: "15 minutes", NewEmail: "new@example.com",
	At: time.Unix(0, 0).UTC(), IP: "192.0.2.1", Change: "an authenticator app was added", CodesLeft: 9,
}

// Link returns the link to path of the app (AUTH_APP_URL) with the secret
// in the URL's fragment: a mail scanner's GET sends no fragment, so it
// consumes nothing, and no Referer carries it.
func (c *Composer) Link(path, token string) string {
	return c.cfg.AppURL + path + "#token=" + token
}

// AppURL is the app's base URL (AUTH_APP_URL), for the mails that link to
// a page of it without a secret.
func (c *Composer) AppURL() string { return c.cfg.AppURL }

// Compose renders the mail of kind to the address, as a queued outbox row
// (its UserID and RequestID are the caller's to set). Variables left zero
// get defaults: AppURL is AUTH_APP_URL, Email the recipient, At now, and
// ExpiresIn is worked out from ExpiresAt.
func (c *Composer) Compose(kind Kind, to string, v Vars) (*models.OutboxMail, error) {
	now := c.cfg.Now().UTC()
	if v.At.IsZero() {
		v.At = now
	}
	if v.ExpiresIn == "" && !v.ExpiresAt.IsZero() {
		v.ExpiresIn = Duration(v.ExpiresAt.Sub(now))
	}
	if v.AppURL == "" {
		v.AppURL = c.cfg.AppURL
	}
	if v.Email == "" {
		v.Email = to
	}
	msg, err := c.render(kind, to, v)
	if err != nil {
		return nil, err
	}
	id := uuid.NewString()
	if c.cfg.Sealer != nil {
		if msg, err = c.cfg.Sealer.Seal(MessageAAD(id), msg); err != nil {
			return nil, err
		}
	}
	return &models.OutboxMail{ID: id, CreatedAt: now, Kind: string(kind), Status: models.MailQueued, To: to, Message: msg, NextAttemptAt: now}, nil
}

// Suppressed returns the twin of a real mail for an address without an
// account (see auth's password reset): a row that is never sent, written
// as the real one would be, so that the request costs the same. It is
// rendered, sealed and stored like the real mail, of the same length and
// make-up: a row of a few kilobytes is compressed and stored out of line
// by PostgreSQL, an empty one is not, and with the message blanked such
// requests ran at 0.91 of a real one's time. It is addressed to a stand-in
// of the same shape (each letter an x, each digit a 0), not to the address
// typed: that is not anyone's account, and authql does not keep it.
func (c *Composer) Suppressed(kind Kind, to string, v Vars) (*models.OutboxMail, error) {
	stand := standIn(to)
	if v.Email == to {
		v.Email = stand
	}
	m, err := c.Compose(kind, stand, v)
	if err != nil {
		return nil, err
	}
	m.Status = models.MailSuppressed
	return m, nil
}

// standIn is an address of addr's shape that names no one: every letter
// (of any script) an x and every digit a 0, the separators kept.
func standIn(addr string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '@' || r == '.' || r == '-' || r == '+' || r == '_':
			return r
		case r >= '0' && r <= '9':
			return '0'
		}
		return 'x'
	}, addr)
}

// Duration writes d as a mail says it: "15 minutes", "1 hour", "24
// hours", rounded to the minute (and to the hour from 2 hours on).
func Duration(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	d = d.Round(time.Minute)
	switch {
	case d >= 2*time.Hour:
		return plural(int64(d.Round(time.Hour)/time.Hour), "hour")
	case d >= time.Hour && d%time.Hour == 0:
		return "1 hour"
	default:
		return plural(int64(max(d, time.Minute)/time.Minute), "minute")
	}
}

// MessageAAD binds a sealed message to its outbox row.
func MessageAAD(id string) string { return "authql outbox_mails.message " + id }

// render returns the RFC 5322 message: headers, then a multipart/
// alternative body of the text and the HTML, each quoted-printable.
func (c *Composer) render(kind Kind, to string, v Vars) (string, error) {
	t, ok := c.tpl[kind]
	if !ok {
		return "", fmt.Errorf("no templates for mail %q", kind)
	}
	var subject, text, html bytes.Buffer
	if err := t.subject.Execute(&subject, v); err != nil {
		return "", err
	}
	if err := t.text.Execute(&text, v); err != nil {
		return "", err
	}
	if err := t.html.Execute(&html, v); err != nil {
		return "", err
	}
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return "", fmt.Errorf("recipient is not an email address: %w", err)
	}
	boundary := randomHex(16)
	var b strings.Builder
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", c.from.String())
	header("To", rcpt.String())
	// A subject line is one line, whatever a template made of it.
	header("Subject", mime.QEncoding.Encode("utf-8", strings.Join(strings.Fields(subject.String()), " ")))
	header("Date", c.cfg.Now().Format(time.RFC1123Z))
	header("Message-ID", "<"+randomHex(16)+"@"+domainOf(c.from.Address)+">")
	header("MIME-Version", "1.0")
	header("Auto-Submitted", "auto-generated")
	header("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	for _, part := range []struct{ typ, body string }{{"text/plain", text.String()}, {"text/html", html.String()}} {
		if part.typ == "text/plain" && plain7bit(part.body) {
			// As it is, when it can be: the link reads whole in the raw
			// message (an .eml file in development, grep token= mail/*).
			fmt.Fprintf(&b, "--%s\r\nContent-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n", boundary, part.typ)
			(&crlfWriter{&b}).Write([]byte(part.body))
			b.WriteString("\r\n")
			continue
		}
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary, part.typ)
		w := quotedprintable.NewWriter(&crlfWriter{&b})
		if _, err := w.Write([]byte(part.body)); err != nil {
			return "", err
		}
		if err := w.Close(); err != nil {
			return "", err
		}
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.String(), nil
}

// plain7bit reports whether body can go as 7bit: ASCII without NUL or a
// bare CR, no line longer than SMTP's 998 bytes, and no line that is a
// MIME boundary's "--" lead-in.
func plain7bit(body string) bool {
	for _, line := range strings.Split(body, "\n") {
		if len(line) > 998 || strings.HasPrefix(line, "--") {
			return false
		}
		for i := 0; i < len(line); i++ {
			if c := line[i]; c == 0 || c == '\r' || c >= 0x80 {
				return false
			}
		}
	}
	return true
}

// crlfWriter writes to b with every bare LF turned into CRLF, as SMTP
// wants lines to end.
type crlfWriter struct{ b *strings.Builder }

func (w *crlfWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		if c == '\n' {
			w.b.WriteByte('\r')
		}
		if c != '\r' {
			w.b.WriteByte(c)
		}
	}
	return len(p), nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return "authql"
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
