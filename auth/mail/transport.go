package mail

import (
	"context"
	"errors"
	"strings"
)

// Message is one mail handed to a Transport.
type Message struct {
	ID   string // the outbox row's id (names the .eml file of Dir)
	From string // the envelope sender: AUTH_MAIL_FROM's address
	To   string // the one recipient
	Data []byte // the whole RFC 5322 message, CRLF line ends
}

// Transport delivers a message, or fails; an error for which Permanent
// holds will fail the same way every time, any other may pass later.
type Transport interface {
	Send(ctx context.Context, m Message) error
	// String says where mails go, for the start line and authql mail
	// test: the SMTP server (without credentials), or the directory.
	String() string
}

// permanentError is a refusal that retrying cannot change.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent reports whether err is a refusal of this very mail that a
// later attempt would meet again (an SMTP 5xx answer to its recipient or
// its content), so that the sender gives it up at once.
func Permanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Domain returns the domain of an address, the part of it the sender's
// log lines show: the local part names a person.
func Domain(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.TrimSuffix(addr[i+1:], ">")
	}
	return ""
}
