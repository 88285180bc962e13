package auth

import (
	"context"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/models"
)

// RequestEmailChange mails a confirmation link and code to newEmail, and
// to the current address a notice of the change asked for (when, from
// where, both addresses). Nothing changes until ConfirmEmailChange. The
// current password is required: a session left open on a shared computer
// must not be enough to take the account over by moving its email.
//
// BadUserInput for a wrong current password (counted as a failed login,
// against the same limits), an email NormalizeEmail refuses, the current
// address, or one that has an account; RateLimited past the login or mail
// limits.
func (s *Service) RequestEmailChange(ctx context.Context, p *Principal, newEmail, currentPassword string) (_ *models.EmailRequest, err error) {
	if s.cfg.Mail == nil {
		return nil, errNoMail
	}
	if err := checkPasswordBytes(currentPassword); err != nil {
		return nil, err
	}
	if newEmail, err = models.NormalizeEmail(newEmail); err != nil {
		return nil, err
	}
	if err := s.auditRoom(); err != nil {
		return nil, err
	}
	defer func() {
		if models.ErrorCode(err) != models.RateLimited {
			s.audit(ctx, event{typ: models.AuditEmailChangeRequested, err: err, userID: p.UserID, sessionID: p.SessionID})
		}
	}()
	u, err := models.UserByID(ctx, s.db, p.UserID)
	if err != nil {
		return nil, err
	}
	if err := s.confirmOwnPassword(ctx, u, currentPassword, errWrongCurrentPassword, nil); err != nil {
		return nil, err
	}
	if newEmail == u.Email {
		return nil, models.Errorf(models.BadUserInput, "that is already the account's email")
	}
	// Counted before the address is looked up: that lookup tells a
	// signed-in user whether an address has an account, as register
	// does, and the limits bound how fast.
	if _, err := s.takeMail(ctx, newEmail); err != nil {
		return nil, err
	}
	if _, err := models.UserByEmail(ctx, s.db, newEmail); err == nil {
		return nil, models.ErrEmailTaken
	} else if models.ErrorCode(err) != models.NotFound {
		return nil, err
	}
	return s.mailEmailChange(ctx, u, newEmail)
}

// mailEmailChange queues the request for u's change to newEmail, its mail
// to newEmail and the notice to u's current address, in one transaction.
func (s *Service) mailEmailChange(ctx context.Context, u *models.User, newEmail string) (*models.EmailRequest, error) {
	spec := s.spec(models.RequestEmailChange)
	p, err := s.newRequest(ctx, spec, &u.ID, newEmail)
	if err != nil {
		return nil, err
	}
	confirm, err := s.requestMail(ctx, spec, p, newEmail)
	if err != nil {
		return nil, err
	}
	v := s.vars(ctx, spec, nil, u.Email)
	v.NewEmail = newEmail
	notice, err := s.cfg.Mail.Compose(mail.KindEmailChangeNotice, u.Email, v)
	if err != nil {
		return nil, err
	}
	notice.UserID, notice.RequestID = &u.ID, &p.req.ID
	if err := models.CreateEmailRequest(ctx, s.db, p.req, confirm, notice); err != nil {
		return nil, err
	}
	s.mailQueued()
	return p.req, nil
}

// ConfirmEmailChange sets the email of the request's user to the address
// the request was mailed to, verified, with the link's token or the
// request's id and code. The address is checked again: one taken since
// the request is BadUserInput, and the request is spent. BadUserInput for
// an invalid, used or expired token or code; RateLimited past
// Limits.CodeAccount.
func (s *Service) ConfirmEmailChange(ctx context.Context, proof Proof) error {
	return s.settle(ctx, models.RequestEmailChange, models.AuditEmailChanged, proof, models.ChangeEmail)
}
