package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Timeouts of an SMTP delivery: to connect (TLS handshake included), for
// each command's answer, and for the answer to the message's end. A
// server that stalls costs the sender that long, never a request (no
// request waits on SMTP), and each stays well inside the sender's lease
// (see Sender) so that a slow mail is not leased again meanwhile.
const (
	smtpDialTimeout    = 15 * time.Second
	smtpCommandTimeout = 30 * time.Second
	smtpDataTimeout    = 2 * time.Minute
)

// SMTP delivers over SMTP, with github.com/emersion/go-smtp's client
// rather than net/smtp: net/smtp is frozen, has no per-command timeouts,
// and its errors are text, whereas go-smtp's carry the reply code that
// tells a temporary refusal (4xx, retried) from a permanent one (5xx).
type SMTP struct {
	addr     string // host:port
	host     string
	implicit bool // smtps://: TLS from the first byte
	user     string
	pass     string
	// insecure allows plain text to a host that is not loopback
	// (AUTH_SMTP_INSECURE, refused in production and with credentials).
	insecure bool
	tls      *tls.Config
}

// NewSMTP returns the transport of AUTH_SMTP_URL:
// smtp://[user:pass@]host[:587] (STARTTLS required, except to a loopback
// address) or smtps://[user:pass@]host[:465] (TLS from the start).
// insecure (AUTH_SMTP_INSECURE) lifts the STARTTLS requirement for a
// mail catcher on a private network; it refuses credentials, which would
// then cross the network in clear text.
func NewSMTP(rawURL string, insecure bool) (*SMTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("is not a URL; write smtp://user:pass@host:587 or smtps://user:pass@host:465")
	}
	t := &SMTP{host: u.Hostname(), insecure: insecure}
	port := u.Port()
	switch strings.ToLower(u.Scheme) {
	case "smtp":
		if port == "" {
			port = "587"
		}
	case "smtps":
		t.implicit = true
		if port == "" {
			port = "465"
		}
	default:
		return nil, fmt.Errorf("has scheme %q; use smtp:// (STARTTLS, port 587) or smtps:// (TLS, port 465)", u.Scheme)
	}
	if t.host == "" || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("must be scheme://[user:pass@]host[:port] with no path, query or fragment")
	}
	if u.User != nil {
		t.user = u.User.Username()
		t.pass, _ = u.User.Password()
	}
	if insecure && t.user != "" && !loopbackHost(t.host) {
		return nil, errors.New("has credentials, and AUTH_SMTP_INSECURE=true would send them in clear text to a host that is not loopback; configure the server's STARTTLS, or drop the credentials")
	}
	t.addr = net.JoinHostPort(t.host, port)
	t.tls = &tls.Config{ServerName: t.host, MinVersion: tls.VersionTLS12}
	return t, nil
}

// String is the server, without credentials.
func (t *SMTP) String() string {
	if t.implicit {
		return "smtps://" + t.addr
	}
	return "smtp://" + t.addr
}

// Send delivers m in one connection of its own. Mails are few and far
// between (a person's request each); a kept-open connection would save
// little and time out between them.
func (t *SMTP) Send(ctx context.Context, m Message) error {
	c, err := t.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if t.user != "" {
		// AUTH PLAIN sends the password as it is: dial has made sure the
		// connection is TLS, or stays on this machine.
		if err := c.Auth(sasl.NewPlainClient("", t.user, t.pass)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := c.Mail(m.From, nil); err != nil {
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	if err := c.Rcpt(m.To, nil); err != nil {
		return refusal("smtp RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return refusal("smtp DATA", err)
	}
	if _, err := w.Write(m.Data); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return refusal("smtp DATA", err)
	}
	// The mail is accepted; a failed QUIT changes nothing of that.
	_ = c.Quit()
	return nil
}

// refusal wraps err from a step that concerns this mail alone (its
// recipient, its content) as permanent when the server's reply is a 5xx.
// A 5xx elsewhere (AUTH, MAIL FROM) is the configuration's fault and
// would fail every mail: those are retried, giving the operator the
// retries' day to fix it before any mail is given up.
func refusal(step string, err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code >= 500 && se.Code < 600 {
		return permanentError{fmt.Errorf("%s: %w", step, err)}
	}
	return fmt.Errorf("%s: %w", step, err)
}

// dial connects, greets and secures the connection: TLS from the start
// (smtps), or STARTTLS (smtp), which is required unless the server is
// on this machine or AUTH_SMTP_INSECURE is set.
func (t *SMTP) dial(ctx context.Context) (*smtp.Client, error) {
	d := &net.Dialer{Timeout: smtpDialTimeout}
	var conn net.Conn
	var err error
	if t.implicit {
		conn, err = (&tls.Dialer{NetDialer: d, Config: t.tls}).DialContext(ctx, "tcp", t.addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", t.addr)
	}
	if err != nil {
		return nil, fmt.Errorf("smtp connect: %w", err)
	}
	// Cancelling ctx (shutdown, the sender's deadline for one mail) ends
	// the conversation wherever it is, the greeting included.
	context.AfterFunc(ctx, func() { conn.Close() })
	var c *smtp.Client
	if t.implicit || t.plainAllowed(conn.RemoteAddr()) {
		c = smtp.NewClient(conn)
	} else if c, err = smtp.NewClientStartTLS(conn, t.tls); err != nil {
		// Never downgraded to plain text: the mail holds a live link,
		// and the credentials would follow it.
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("smtp STARTTLS (required: %s is not a loopback address): %w", t.addr, err)
	}
	c.CommandTimeout, c.SubmissionTimeout = smtpCommandTimeout, smtpDataTimeout
	return c, nil
}

// plainAllowed decides whether a smtp:// connection to peer may stay in
// clear text: only when it does not leave this machine (a loopback peer,
// such as a local relay or a test's server), or when AUTH_SMTP_INSECURE
// says so. It looks at the address actually connected to, not the host's
// name, so a name that resolves elsewhere is held to STARTTLS.
func (t *SMTP) plainAllowed(peer net.Addr) bool {
	if t.insecure {
		return true
	}
	a, ok := peer.(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// loopbackHost reports whether host is a loopback address or localhost.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Loopback reports whether the server is a loopback host, for the
// configuration's checks.
func (t *SMTP) Loopback() bool { return loopbackHost(t.host) }

var _ Transport = (*SMTP)(nil)
