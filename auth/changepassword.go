package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/models"
)

var (
	errWrongCurrentPassword = models.Errorf(models.BadUserInput, "the current password is wrong")
	errWrongPassword        = models.Errorf(models.BadUserInput, "wrong password")
	errSamePassword         = models.Errorf(models.BadUserInput, "the new password must differ from the current one")
)

// ChangePassword replaces the principal's password, which it must give
// (a stolen access token alone must not be enough to take the account
// over): a wrong one is BadUserInput, counted as a failed login of the
// account (RateLimited past the login limits). The new password follows
// the rules of Register (BadUserInput otherwise, or when it is the
// current one).
//
// It returns a new pair for the principal's own session, whose other
// refresh tokens stop working (for a new session in its place when a
// refresh of it raced the change); with signOutOthers every other session
// of the user ends, on every replica. All of it commits with the new hash, in
// one transaction, with a "your password was changed" notice to the
// account's address when mail is configured. Unauthenticated when the
// session or the account ended meanwhile.
func (s *Service) ChangePassword(ctx context.Context, p *Principal, currentPassword, newPw string, signOutOthers bool) (g *Grant, err error) {
	if err := s.auditRoom(); err != nil {
		return nil, err
	}
	var ended int
	defer func() {
		if !isHashShare(err) { // audited as a RATE_LIMITED event
			e := event{typ: models.AuditPasswordChanged, err: err, userID: p.UserID, sessionID: p.SessionID}
			if err == nil && signOutOthers {
				e.detail = fmt.Sprintf("%d other sessions ended", ended)
			}
			s.audit(ctx, e)
		}
	}()
	if err := checkPasswordBytes(currentPassword); err != nil {
		return nil, err
	}
	next, err := newPassword(newPw)
	if err != nil {
		return nil, err
	}
	if next == norm.NFC.String(currentPassword) {
		return nil, errSamePassword
	}
	u, err := s.signedInUser(ctx, p)
	if err != nil {
		return nil, err
	}
	var hash string
	var herr error
	if err := s.confirmOwnPassword(ctx, u, currentPassword, errWrongCurrentPassword, func() { hash, herr = s.hasher.Hash(next) }); err != nil {
		return nil, err
	} else if herr != nil {
		return nil, herr
	}
	now := s.now()
	mails, err := s.passwordChangedMail(ctx, u, now)
	if err != nil {
		return nil, err
	}
	token, tokenHash := newRefreshToken()
	restart, restartToken := s.newSession(ctx, nil)
	sess, revoked, err := models.ChangePassword(ctx, s.db, models.PasswordChange{
		UserID: u.ID, SessionID: p.SessionID, OldHash: u.PasswordHash, NewHash: hash, TokenHash: tokenHash,
		Restart: restart, TTL: s.cfg.RefreshTTL, AccessTTL: s.cfg.AccessTTL,
		SignOutOthers: signOutOthers, Revoke: s.revocation(now), Mails: mails,
	})
	s.forgetUser(u.ID) // even on error: the transaction's outcome may be unknown
	if err != nil {
		return nil, err
	}
	s.addRevoked(revoked)
	if len(mails) > 0 {
		s.mailQueued()
	}
	if sess.ID != p.SessionID {
		// A refresh of the caller's session raced the change: it ended
		// (the first of the revoked), and this one took its place (see
		// models.ChangePassword).
		token, revoked = restartToken, revoked[1:]
	}
	ended = len(revoked)
	u.PasswordHash = hash
	return s.grant(ctx, u, sess, token, now)
}

// signedInUser reads the principal's user from the database rather than
// the cache: what follows checks its password hash, and must see the
// latest. Unauthenticated when the account is gone or disabled.
func (s *Service) signedInUser(ctx context.Context, p *Principal) (*models.User, error) {
	u, err := models.UserByID(ctx, s.db, p.UserID)
	if models.ErrorCode(err) == models.NotFound {
		return nil, errAccountGone
	} else if err != nil {
		return nil, err
	}
	if u.Disabled() {
		return nil, errDisabled
	}
	return u, nil
}

// confirmOwnPassword checks that password is u's, for a signed-in user
// about to change or delete their account, and returns wrong when it is
// not. Each attempt counts against the login limits of the account and
// the client, as a failed login does: whoever holds a stolen access token
// must not get a faster way to guess the password than the login form. A
// right password gives its attempt back. The hash runs on the bounded
// pool (RateLimited when it has no room for the client), and then, if
// set and the password is right, runs on the same worker (to hash a new
// password).
//
// Passwords are compared in NFC, then in the form typed, as Login does.
// No padding of the failures' time: the caller is signed in as u, so the
// answer cannot tell an account exists.
func (s *Service) confirmOwnPassword(ctx context.Context, u *models.User, password string, wrong error, then func()) error {
	client := ClientFrom(ctx).limitKey()
	giveBack, err := s.takeFor(ctx, s.now(), u.ID,
		[]string{s.limitKey("login-account", u.Email, client), s.limitKey("login-client", client)},
		[]Rate{s.cfg.Limits.LoginAccount, s.cfg.Limits.LoginClient})
	if err != nil {
		return err
	}
	forms := []string{norm.NFC.String(password)}
	if password != forms[0] {
		forms = append(forms, password)
	}
	var ok bool
	var verr error
	if perr := s.pool.do(ctx, func() {
		for _, f := range forms {
			if _, ok, _, verr = s.verify(u.PasswordHash, f); ok || verr != nil {
				break
			}
		}
		if ok && verr == nil && then != nil {
			then()
		}
	}); perr != nil {
		giveBack() // the password was never checked
		return perr
	}
	if verr != nil {
		s.log.ErrorContext(ctx, "password hash", "user", u.ID, "err", verr)
		return wrong
	}
	if !ok {
		return wrong
	}
	giveBack()
	return nil
}

// isHashShare reports whether err is the hash pool's refusal of a client
// past its share, which is audited as a coalesced RATE_LIMITED event.
func isHashShare(err error) bool { return errors.Is(err, errHashShare) }

// passwordChangedMail is the notice to u's address that its password was
// changed at `at` from the request's client, or none when mail is not
// configured: the change goes ahead, since refusing it would keep an
// account on a password its owner wants gone.
func (s *Service) passwordChangedMail(ctx context.Context, u *models.User, at time.Time) ([]*models.OutboxMail, error) {
	if s.cfg.Mail == nil {
		return nil, nil
	}
	m, err := s.cfg.Mail.Compose(mail.KindPasswordChanged, u.Email, mail.Vars{
		AppURL: s.cfg.Mail.AppURL(), Email: u.Email, At: at, IP: ClientFrom(ctx).IP,
	})
	if err != nil {
		return nil, err
	}
	m.UserID = &u.ID
	return []*models.OutboxMail{m}, nil
}
