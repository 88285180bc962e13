package auth

import (
	"context"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/models"
)

var _ mail.Auditor = (*Service)(nil)

// AuditMail records that the background sender delivered a mail
// (MAIL_SENT, a success) or gave it up (MAIL_FAILED, a failure). The
// detail is the mail's kind alone: neither the address nor anything of
// the message, which holds a live link. No client asked for it, so the
// event has no client address, user agent or reason code (the SMTP error
// is the outbox row's last_error and the sender's log line).
func (s *Service) AuditMail(_ context.Context, sent bool, kind string, userID *string) {
	typ, outcome := models.AuditMailSent, models.AuditSuccess
	if !sent {
		typ, outcome = models.AuditMailFailed, models.AuditFailure
	}
	s.cfg.Observer.AuthEvent(string(typ), string(outcome))
	row := models.NewAuditEvent(s.now(), typ, outcome)
	row.UserID = userID
	row.Detail = models.Null(kind)
	s.audits.Record(row)
}
