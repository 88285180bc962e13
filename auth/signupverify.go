package auth

import (
	"context"

	"github.com/google/uuid"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/models"
)

// errVerifyFirst is register's answer while verified emails are required,
// for a new account and for an address that has one alike.
var errVerifyFirst = models.Errorf(models.EmailNotVerified, "check your mail to verify your email, then sign in")

// registerUnverified is Register with Config.RequireVerifiedEmail: it
// creates the account without a session, queues a verification mail in
// the same transaction, and fails with EmailNotVerified. An address that
// has an account gets the same answer after the same work (the password is
// hashed all the same), and its owner a mail that someone tried to sign up
// with it: register does not tell who has an account, the owner is told.
// The mail limits apply to both (see takeMail).
func (s *Service) registerUnverified(ctx context.Context, email, password string) error {
	if s.cfg.Mail == nil {
		return errNoMail
	}
	email, err := models.NormalizeEmail(email)
	if err != nil {
		return err
	}
	if password, err = newPassword(password); err != nil {
		return err
	}
	if _, err := s.takeMail(ctx, email); err != nil {
		return err
	}
	var hash string
	if perr := s.pool.do(ctx, func() { hash, err = s.hasher.Hash(password) }); perr != nil {
		return perr
	}
	if err != nil {
		return err
	}
	owner, err := models.MailUser(ctx, s.db, email)
	if models.ErrorCode(err) == models.NotFound {
		u := &models.User{ID: uuid.NewString(), Email: email, PasswordHash: hash}
		if err = s.createUnverified(ctx, u); err == nil {
			s.audit(ctx, event{typ: models.AuditRegister, userID: u.ID})
			s.audit(ctx, event{typ: models.AuditEmailVerificationRequested, userID: u.ID})
			return errVerifyFirst
		}
		if err != models.ErrEmailTaken {
			s.audit(ctx, event{typ: models.AuditRegister, err: err})
			return err
		}
		// Registered concurrently: that account's owner is told, below.
		owner, err = models.MailUser(ctx, s.db, email)
	}
	if err != nil {
		return err
	}
	if err := s.mailSignupAttempt(ctx, owner); err != nil {
		return err
	}
	s.audit(ctx, event{typ: models.AuditRegister, err: models.ErrEmailTaken, userID: owner.ID})
	return errVerifyFirst
}

// createUnverified inserts u with the role "user" and its verification
// request and mail.
func (s *Service) createUnverified(ctx context.Context, u *models.User) error {
	spec := s.spec(models.RequestVerify)
	p, err := s.newRequest(ctx, spec, &u.ID, u.Email)
	if err != nil {
		return err
	}
	m, err := s.requestMail(ctx, spec, p, u.Email)
	if err != nil {
		return err
	}
	if err := models.CreateUnverifiedUser(ctx, s.db, u, []string{models.RoleUser}, p.req, m); err != nil {
		return err
	}
	s.mailQueued()
	return nil
}

// mailSignupAttempt tells u that someone tried to register u's address.
func (s *Service) mailSignupAttempt(ctx context.Context, u *models.User) error {
	m, err := s.cfg.Mail.Compose(mail.KindSignupAttempt, u.Email, s.vars(ctx, requestSpec{}, nil, u.Email))
	if err != nil {
		return err
	}
	m.UserID = &u.ID
	if err := models.QueueMail(ctx, s.db, m); err != nil {
		return err
	}
	s.mailQueued()
	return nil
}

// unverified refuses, while verified emails are required, the right
// password of an account whose email is not verified. After the password
// check, so that a wrong password gets the usual answer and the refusal
// tells nothing to whoever does not hold the password.
func (s *Service) unverified(u *models.User) error {
	if s.cfg.RequireVerifiedEmail && !u.EmailVerified {
		return models.Errorf(models.EmailNotVerified, "verify your email first: follow the link or type the code mailed to you")
	}
	return nil
}
