package auth

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/models"
)

// errVerified refuses to mail a verification to an address verified
// already. The caller's own account: it reveals nothing.
var errVerified = models.Errorf(models.BadUserInput, "email is already verified")

// SendEmailVerification mails a verification link and code to the
// principal's current address. BadUserInput when it is verified already;
// RateLimited past the mail limits (see takeMail).
func (s *Service) SendEmailVerification(ctx context.Context, p *Principal) (_ *models.EmailRequest, err error) {
	if s.cfg.Mail == nil {
		return nil, errNoMail
	}
	if err := s.auditRoom(); err != nil {
		return nil, err
	}
	u, err := models.UserByID(ctx, s.db, p.UserID)
	if err != nil {
		return nil, err
	}
	if u.EmailVerified {
		return nil, errVerified
	}
	if _, err := s.takeMail(ctx, u.Email); err != nil {
		return nil, err
	}
	r, err := s.mailVerification(ctx, u)
	s.audit(ctx, event{typ: models.AuditEmailVerificationRequested, err: err, userID: u.ID, sessionID: p.SessionID})
	return r, err
}

// mailVerification queues a verification request for u's address and its
// mail.
func (s *Service) mailVerification(ctx context.Context, u *models.User) (*models.EmailRequest, error) {
	spec := s.spec(models.RequestVerify)
	p, err := s.newRequest(ctx, spec, &u.ID, u.Email)
	if err != nil {
		return nil, err
	}
	m, err := s.requestMail(ctx, spec, p, u.Email)
	if err != nil {
		return nil, err
	}
	if err := models.CreateEmailRequest(ctx, s.db, p.req, m); err != nil {
		return nil, err
	}
	s.mailQueued()
	return p.req, nil
}

// VerifyEmail marks the email of the request's user verified, with the
// link's token or the request's id and code, if it is still the address
// the request was mailed to: a verification proves that address, not
// whatever the account holds now. BadUserInput for an invalid, used or
// expired token or code (or a changed address); RateLimited past
// Limits.CodeAccount.
func (s *Service) VerifyEmail(ctx context.Context, proof Proof) error {
	return s.settle(ctx, models.RequestVerify, models.AuditEmailVerified, proof, models.VerifyEmail)
}

// settle applies the pending request of kind that proof answers, with
// apply, and audits it as typ (a refusal by the code limit is a
// RATE_LIMITED event instead, coalesced): the verification and the email
// change differ only in what they apply.
func (s *Service) settle(ctx context.Context, kind string, typ models.AuditEventType, proof Proof,
	apply func(context.Context, *gorm.DB, *models.EmailRequest, time.Time) error) (err error) {
	if err := s.auditRoom(); err != nil {
		return err
	}
	var userID string
	defer func() {
		if models.ErrorCode(err) != models.RateLimited {
			s.audit(ctx, event{typ: typ, err: err, userID: userID})
		}
	}()
	r, err := s.proven(ctx, kind, proof)
	if err != nil {
		return err
	}
	userID = *r.UserID
	if err := apply(ctx, s.db, r, s.now()); err != nil {
		return err
	}
	s.forgetUser(userID)
	return nil
}
