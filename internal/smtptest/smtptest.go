// Package smtptest runs a real SMTP server in the test process
// (github.com/emersion/go-smtp) that keeps the mails it receives, so that
// tests read the mail authql delivered and follow its link and code.
package smtptest

import (
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mail is one received mail.
type Mail struct {
	From    string
	To      []string
	Raw     []byte
	Subject string
	Text    string // the text/plain part, decoded
	HTML    string // the text/html part, decoded
}

var (
	linkRE = regexp.MustCompile(`https?://\S+#token=[A-Za-z0-9_-]+`)
	codeRE = regexp.MustCompile(`code in the app: ([A-Z0-9]{8})`)
)

// Link returns the first link with a token in the text part, or "".
func (m Mail) Link() string { return linkRE.FindString(m.Text) }

// Token returns the token in the fragment of Link, or "".
func (m Mail) Token() string {
	_, t, _ := strings.Cut(m.Link(), "#token=")
	return t
}

// Code returns the short code in the text part, or "".
func (m Mail) Code() string {
	if s := codeRE.FindStringSubmatch(m.Text); s != nil {
		return s[1]
	}
	return ""
}

// Server is a running SMTP server on a loopback port.
type Server struct {
	// URL is the server as AUTH_SMTP_URL names it: smtp://user:pass@127.0.0.1:PORT.
	URL  string
	Addr string

	srv *smtp.Server

	mu     sync.Mutex
	mails  []Mail
	added  chan struct{} // closed and replaced when a mail arrives
	refuse error         // returned to DATA while set
	logins []string
	ln     net.Listener
}

// Start runs a server for the test; it stops when the test ends. It
// accepts AUTH PLAIN with the user and password of URL over plain text
// (loopback only), and any sender and recipient.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartOn(tb, "127.0.0.1")
}

// StartOn is Start listening on the address ip of this machine: a
// non-loopback one, to test what a client requires of a remote server
// (STARTTLS, which this server does not offer).
func StartOn(tb testing.TB, ip string) *Server {
	tb.Helper()
	s := &Server{added: make(chan struct{})}
	s.srv = smtp.NewServer(backend{s})
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout = 30 * time.Second
	s.srv.WriteTimeout = 30 * time.Second
	s.srv.MaxMessageBytes = 1 << 20
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		tb.Fatal(err)
	}
	s.ln, s.Addr = ln, ln.Addr().String()
	s.URL = "smtp://test:secret@" + s.Addr
	go s.srv.Serve(ln)
	tb.Cleanup(func() { s.srv.Close() })
	return s
}

// Refuse makes the server answer every DATA with a temporary failure
// (451) until Accept, as a server that is down for a while would have the
// sender retry. Connections still open and close normally.
func (s *Server) Refuse() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
}

// Accept ends Refuse.
func (s *Server) Accept() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = nil
}

// Mails returns the mails received so far.
func (s *Server) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// Logins returns the user names that authenticated.
func (s *Server) Logins() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.logins...)
}

// Wait returns the first mail to the address whose subject contains
// subject (any subject for ""), waiting for it up to a minute (a bound on
// a hung test, not a measure of speed), and fails the test without one.
func (s *Server) Wait(tb testing.TB, to, subject string) Mail {
	tb.Helper()
	deadline := time.After(time.Minute)
	for {
		s.mu.Lock()
		for _, m := range s.mails {
			if contains(m.To, to) && strings.Contains(m.Subject, subject) {
				s.mu.Unlock()
				return m
			}
		}
		added := s.added
		s.mu.Unlock()
		select {
		case <-added:
		case <-deadline:
			tb.Fatalf("no mail to %s with subject %q within a minute; received %d others", to, subject, len(s.Mails()))
			return Mail{}
		}
	}
}

// Count returns how many mails went to the address.
func (s *Server) Count(to string) int {
	n := 0
	for _, m := range s.Mails() {
		if contains(m.To, to) {
			n++
		}
	}
	return n
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func (s *Server) add(m Mail) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mails = append(s.mails, m)
	close(s.added)
	s.added = make(chan struct{})
}

type backend struct{ s *Server }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s    *Server
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "test" || pass != "secret" {
			return errors.New("bad credentials")
		}
		ss.s.mu.Lock()
		ss.s.logins = append(ss.s.logins, user)
		ss.s.mu.Unlock()
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error { ss.from = from; return nil }
func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error   { ss.to = append(ss.to, to); return nil }
func (ss *session) Reset()                                      { ss.from, ss.to = "", nil }
func (ss *session) Logout() error                               { return nil }

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	refuse := ss.s.refuse
	ss.s.mu.Unlock()
	if refuse != nil {
		return refuse
	}
	m := Mail{From: ss.from, To: ss.to, Raw: raw}
	if err := parse(&m); err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "malformed message: " + err.Error()}
	}
	ss.s.add(m)
	return nil
}

// parse fills the subject and the decoded text and HTML parts of m.
func parse(m *Mail) error {
	msg, err := mail.ReadMessage(strings.NewReader(string(m.Raw)))
	if err != nil {
		return err
	}
	dec := new(mime.WordDecoder)
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return err
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	if !strings.HasPrefix(mt, "multipart/") {
		body, err := decode(msg.Body, msg.Header.Get("Content-Transfer-Encoding"))
		m.Text = body
		return err
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		body, err := decode(p, p.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return err
		}
		switch pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); pt {
		case "text/plain":
			m.Text = body
		case "text/html":
			m.HTML = body
		}
	}
}

func decode(r io.Reader, enc string) (string, error) {
	if strings.EqualFold(enc, "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	return strings.ReplaceAll(string(b), "\r\n", "\n"), err
}
