package auth

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/authql/authql/models"
)

// MaxDisableReason bounds the reason an admin gives for disabling an
// account, in characters (the column holds 512).
const MaxDisableReason = 256

// errUserNotFound is the answer for an unknown user id, well formed or
// not.
var errUserNotFound = models.Errorf(models.NotFound, "user not found")

// errDisabled refuses a disabled account's access tokens (see Authorize)
// and refresh tokens: the same answer as a revoked token, so a client
// signs in again and learns there why it cannot.
var errDisabled = models.Unauthenticatedf(models.ReasonTokenRevoked, "the account is disabled")

// errAccountGone refuses the tokens of a deleted account, as a revoked
// token is refused.
var errAccountGone = models.Unauthenticatedf(models.ReasonTokenRevoked, "the account no longer exists")

// DeleteAccount deletes the principal's own account, after checking its
// password: a stolen access token alone must not be enough to destroy the
// account. Its sessions end on every replica at once, its refresh cookie
// is cleared, and its pending requests and mails go with it (see
// models.DeleteUser). A wrong password is BadUserInput and counts as a
// failed login of the account (RateLimited past the login limits).
// Forbidden for the last admin.
func (s *Service) DeleteAccount(ctx context.Context, p *Principal, password string) (err error) {
	if err := checkPasswordBytes(password); err != nil {
		return err
	}
	if err := s.auditRoom(); err != nil {
		return err
	}
	defer func() {
		if !isHashShare(err) {
			s.audit(ctx, event{typ: models.AuditAccountDeleted, err: err, userID: p.UserID, sessionID: p.SessionID})
		}
	}()
	u, err := s.signedInUser(ctx, p)
	if err != nil {
		return err
	}
	if err := s.confirmOwnPassword(ctx, u, password, errWrongPassword, nil); err != nil {
		return err
	}
	now := s.now()
	revoked, err := models.DeleteUser(ctx, s.db, u.ID, s.revocation(now))
	s.forgetUser(u.ID) // even on error: the transaction's outcome may be unknown
	if err != nil {
		return err
	}
	s.addRevoked(revoked)
	s.revs.add(s.revokeOwn(now, p), p.SessionID)
	s.clearRefreshCookie(ctx)
	return nil
}

// DeleteUser deletes a user, for admins (and operators: authql user
// delete), as DeleteAccount does but without a password. The caller may
// delete itself unless it is the last admin. NotFound for an unknown user;
// Forbidden for the last admin.
func (s *Service) DeleteUser(ctx context.Context, userID string) (err error) {
	e, done, err := s.adminAction(ctx, models.AuditAccountDeleted, userID)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	now := s.now()
	revoked, err := models.DeleteUser(ctx, s.db, e.userID, s.revocation(now))
	s.forgetUser(e.userID)
	if err != nil {
		return err
	}
	s.addRevoked(revoked)
	return nil
}

// DisableUser disables an account, for admins: every session of it ends
// (on every replica), its access tokens are refused at their next request,
// its refresh tokens and logins too (a login with the right password fails
// with AccountDisabled) until EnableUser. reason, shown to admins only,
// must be valid UTF-8 of at most MaxDisableReason characters
// (BadUserInput). NotFound for an unknown user; Forbidden for the last
// admin.
func (s *Service) DisableUser(ctx context.Context, userID string, reason *string) (u *models.User, err error) {
	e, done, err := s.adminAction(ctx, models.AuditAccountDisabled, userID)
	if err != nil {
		return nil, err
	}
	defer func() { done(err) }()
	if reason, err = disableReason(reason); err != nil {
		return nil, err
	}
	if reason != nil {
		e.detail = *reason
	}
	u, revoked, err := models.DisableUser(ctx, s.db, e.userID, reason, s.revocation(s.now()))
	s.forgetUser(e.userID)
	if err != nil {
		return nil, err
	}
	s.addRevoked(revoked)
	return u, nil
}

// EnableUser lets a disabled account sign in again, for admins; the
// sessions that disabling ended stay ended. NotFound for an unknown user.
func (s *Service) EnableUser(ctx context.Context, userID string) (u *models.User, err error) {
	e, done, err := s.adminAction(ctx, models.AuditAccountEnabled, userID)
	if err != nil {
		return nil, err
	}
	defer func() { done(err) }()
	u, err = models.EnableUser(ctx, s.db, e.userID, s.now())
	s.forgetUser(e.userID)
	return u, err
}

// adminAction starts an admin's action on the user userID: it returns the
// audit event to record (the user, and the admin as its actor) and done,
// to be called with the action's outcome, which records it. An admin's
// script failing in a loop is limited (see limitFailures); operators at
// the command line have no principal and are not counted. An id that is
// not a UUID is NotFound at once, recorded naming no user.
func (s *Service) adminAction(ctx context.Context, typ models.AuditEventType, userID string) (e *event, done func(error), err error) {
	e = &event{typ: typ}
	limited := func(error) {}
	if p, _ := PrincipalFrom(ctx); p != nil {
		e.actorID = p.UserID
		if limited, err = s.limitFailures(ctx, p.UserID); err != nil {
			return nil, nil, err
		}
	}
	done = func(err error) {
		limited(err)
		e.err = err
		s.audit(ctx, *e)
	}
	id, perr := uuid.Parse(userID)
	if perr != nil {
		done(errUserNotFound)
		return nil, nil, errUserNotFound
	}
	e.userID = id.String()
	return e, done, nil
}

// disableReason returns the reason to store: trimmed, nil when empty, or
// BadUserInput for one that is not valid UTF-8, holds a NUL or is too long.
func disableReason(reason *string) (*string, error) {
	if reason == nil {
		return nil, nil
	}
	r := strings.TrimSpace(*reason)
	switch {
	case !utf8.ValidString(r) || strings.IndexByte(r, 0) >= 0:
		return nil, models.Errorf(models.BadUserInput, "the reason is not valid UTF-8 or contains a NUL character")
	case utf8.RuneCountInString(r) > MaxDisableReason:
		return nil, models.Errorf(models.BadUserInput, "the reason must be at most %d characters", MaxDisableReason)
	case r == "":
		return nil, nil
	}
	return &r, nil
}

// addRevoked refuses the revoked sessions' access tokens here at once
// (the other replicas learn of them from the revocations' events).
func (s *Service) addRevoked(revoked []models.Revoked) {
	for _, r := range revoked {
		s.revs.add(r.Until, r.ID)
	}
}

// refuseDisabled is Login's answer for a disabled account whose right
// password was given: AccountDisabled, audited as a failed login. Only
// after the password was checked, so that the answer tells nothing to
// whoever does not know it (a wrong password gets the usual answer, in
// the usual time).
func (s *Service) refuseDisabled(ctx context.Context, u *models.User) error {
	if !u.Disabled() {
		return nil
	}
	err := models.Errorf(models.AccountDisabled, "this account is disabled")
	s.audit(ctx, event{typ: models.AuditLogin, err: err, userID: u.ID})
	return err
}
