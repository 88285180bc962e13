package auth

import (
	"context"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/models"
)

// RequestPasswordReset mails a reset link and code to the address when it
// has an account, and returns the request's id and expiry. BadUserInput
// for an email NormalizeEmail refuses; RateLimited past Limits.MailAddress
// for the address or Limits.MailClient for the client.
//
// Whether the address has an account is not told by the answer, its
// time, the rows written or the limits (the enumeration that Supabase's
// synchronous /recover allowed): an address without one gets a request row
// that can never be used and a suppressed outbox row, rendered as the real
// mail would be; both are written in one transaction as a real request's
// are, and the limits count the address alike. Older requests are left as
// they are: spending them would be a write that only known addresses make.
func (s *Service) RequestPasswordReset(ctx context.Context, email string) (*models.EmailRequest, error) {
	if s.cfg.Mail == nil {
		return nil, errNoMail
	}
	email, err := models.NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if err := s.auditRoom(); err != nil {
		return nil, err
	}
	if _, err := s.takeMail(ctx, email); err != nil {
		return nil, err
	}
	u, err := models.MailUser(ctx, s.db, email)
	if err != nil && models.ErrorCode(err) != models.NotFound {
		return nil, err
	}
	r, err := s.mailReset(ctx, u, email)
	// The user when the address has an account; never the address typed.
	s.audit(ctx, event{typ: models.AuditPasswordResetRequested, err: err, userID: userIDOf(u)})
	return r, err
}

// mailReset queues a reset request and its mail for u, or, when u is nil,
// the twin rows of a reset for an address without an account.
func (s *Service) mailReset(ctx context.Context, u *models.User, email string) (*models.EmailRequest, error) {
	spec := s.spec(models.RequestReset)
	var userID *string
	stored := s.limitKey("unknown-address", email) // see codeAccountKey
	if u != nil {
		userID, stored = &u.ID, u.Email
	}
	p, err := s.newRequest(ctx, spec, userID, stored)
	if err != nil {
		return nil, err
	}
	var m *models.OutboxMail
	if u != nil {
		m, err = s.requestMail(ctx, spec, p, u.Email)
	} else if m, err = s.cfg.Mail.Suppressed(spec.mail, email, s.vars(ctx, spec, p, email)); err == nil {
		m.RequestID = &p.req.ID
	}
	if err != nil {
		return nil, err
	}
	if err := models.CreateEmailRequest(ctx, s.db, p.req, m); err != nil {
		return nil, err
	}
	s.mailQueued()
	return p.req, nil
}

// ResetPassword sets a new password (by the rules of register) with the
// link's token or the request's id and code. It does not sign the user in:
// it ends every session of the user (here at once, on the other replicas
// through the revocations' events), spends the user's other pending resets
// and email changes, marks the email verified (the link was mailed there),
// clears the login limit of the account for the client that reset it, and
// mails a notice that the password changed. BadUserInput for an invalid
// password or an invalid, used or expired token or code; RateLimited past
// Limits.CodeAccount.
func (s *Service) ResetPassword(ctx context.Context, proof Proof, newPass string) (err error) {
	if s.cfg.Mail == nil {
		return errNoMail
	}
	password, err := newPassword(newPass)
	if err != nil {
		return err
	}
	if err := s.auditRoom(); err != nil {
		return err
	}
	var userID string
	defer func() {
		if models.ErrorCode(err) != models.RateLimited { // audited as RATE_LIMITED
			s.audit(ctx, event{typ: models.AuditPasswordReset, err: err, userID: userID})
		}
	}()
	r, err := s.proven(ctx, models.RequestReset, proof)
	if err != nil {
		return err
	}
	userID = *r.UserID
	var hash string
	if perr := s.pool.do(ctx, func() { hash, err = s.hasher.Hash(password) }); perr != nil {
		return perr
	}
	if err != nil {
		return err
	}
	now := s.now()
	notice, err := s.cfg.Mail.Compose(mail.KindPasswordChanged, r.Email, mail.Vars{AppURL: s.cfg.Mail.AppURL(), Email: r.Email, At: now, IP: ClientFrom(ctx).IP})
	if err != nil {
		return err
	}
	notice.UserID = r.UserID
	revoked, err := models.ResetPassword(ctx, s.db, models.PasswordReset{Request: r, Hash: hash, Revoke: s.revocation(now), Notice: notice})
	if err != nil {
		return err
	}
	for _, rv := range revoked {
		s.revs.add(rv.Until, rv.ID)
	}
	s.forgetUser(userID)
	s.clearLoginLimit(ctx, r.Email)
	s.mailQueued()
	return nil
}

// clearLoginLimit forgets the failed logins of the account from the
// request's client. The login limit counts per account and client (see
// Limits.LoginAccount), and keeps no list of the clients that failed, so
// the reset clears the count of the client that made it: the one its owner
// is locked out from. Other clients' counts run down as usual, which is
// what a reset owes them: an attacker guessing from elsewhere stays slowed.
func (s *Service) clearLoginLimit(ctx context.Context, email string) {
	key := s.limitKey("login-account", email, ClientFrom(ctx).limitKey())
	if err := s.limiter.Clear(context.WithoutCancel(ctx), key); err != nil {
		s.log.ErrorContext(ctx, "clear login limit", "err", err)
	}
}

// SendPasswordReset mails a reset link and code to the user userID (an
// admin's mutation, and `authql user reset`). NotFound for an unknown
// user.
func (s *Service) SendPasswordReset(ctx context.Context, userID string) (*models.EmailRequest, error) {
	if s.cfg.Mail == nil {
		return nil, errNoMail
	}
	u, err := models.UserByID(ctx, s.db, userID)
	if err != nil {
		return nil, err
	}
	r, err := s.mailReset(ctx, u, u.Email)
	var actor string
	if p, _ := PrincipalFrom(ctx); p != nil {
		actor = p.UserID
	}
	s.audit(ctx, event{typ: models.AuditPasswordResetRequested, err: err, userID: u.ID, actorID: actor, detail: "admin"})
	return r, err
}
