package auth

import (
	"context"
	"fmt"
	"slices"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/models"
)

// MfaStatus is a user's second factors.
type MfaStatus struct {
	Enabled                bool
	Factors                []*models.MfaFactor
	Passkeys               []*models.Passkey
	RecoveryCodesRemaining int
}

// RegenerateRecoveryCodes replaces the principal's recovery codes, used or
// not, with ten new ones, returned this once, and queues an mfa_changed
// notice in the same transaction. BadUserInput when the user has no
// second factor (no confirmed TOTP factor, no passkey): codes stand in for
// a lost factor and exist only beside one. RateLimited past
// Limits.RecoveryCodes for the user, or when the hash pool has no room for
// the client.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, p *Principal) (_ []string, err error) {
	if err := s.auditRoom(); err != nil {
		return nil, err
	}
	defer func() {
		if !isHashShare(err) {
			s.audit(ctx, event{typ: models.AuditRecoveryCodesGenerated, err: err, userID: p.UserID, sessionID: p.SessionID})
		}
	}()
	u, err := s.signedInUser(ctx, p)
	if err != nil {
		return nil, err
	}
	// Checked before the ten hashes too, so that a user without a factor
	// does not get to spend the pool's time for nothing.
	if m, err := models.UserMfaMethods(ctx, s.db, u.ID); err != nil {
		return nil, err
	} else if !m.Any() {
		return nil, models.ErrNoSecondFactor
	}
	// Ten hashes a batch: a user makes a few an hour (every attempt
	// counts, since each spends the pool's time).
	if _, err := s.take(ctx, s.now(), []string{s.limitKey("recovery-codes", u.ID)}, []Rate{s.cfg.Limits.RecoveryCodes}); err != nil {
		return nil, err
	}
	codes := newRecoveryCodes()
	var hashes []string
	if err := s.pool.do(ctx, func() { hashes = s.hasher.hashRecoveryCodes(codes) }); err != nil {
		return nil, err
	}
	now := s.now()
	mails := s.mfaNotice(mail.KindMfaChanged, u, mail.Vars{Change: changeRecoveryCodes, At: now, IP: ClientFrom(ctx).IP})
	if err := models.RegenerateRecoveryCodes(ctx, s.db, u.ID, hashes, now, mails...); err != nil {
		return nil, err
	}
	s.mailQueued()
	return codes, nil
}

// RemoveMfaFactor removes a confirmed TOTP factor of the principal and
// queues an mfa_changed notice; with the user's last factor (no TOTP
// factor nor passkey left) the recovery codes go too. NotFound for an id
// that is not one of the principal's confirmed factors, the same answer
// whoever's it is.
func (s *Service) RemoveMfaFactor(ctx context.Context, p *Principal, id string) (_ bool, err error) {
	if err := s.auditRoom(); err != nil {
		return false, err
	}
	// Every failure is an audit row: a script trying ids in a loop is
	// limited per user, its refusals coalesced (see limitFailures).
	done, err := s.limitFailures(ctx, p.UserID)
	if err != nil {
		return false, err
	}
	defer func() { done(err) }()
	defer func() {
		s.audit(ctx, event{typ: models.AuditMfaRemoved, err: err, userID: p.UserID, sessionID: p.SessionID, detail: auditID(id)})
	}()
	u, err := s.signedInUser(ctx, p)
	if err != nil {
		return false, err
	}
	mails := s.mfaNotice(mail.KindMfaChanged, u, mail.Vars{Change: changeTotpRemoved, At: s.now(), IP: ClientFrom(ctx).IP})
	err = models.RemoveTotpFactor(ctx, s.db, u.ID, id, mails...)
	s.forgetUser(u.ID) // its factors (aal_max); even on error: the outcome may be unknown
	if err != nil {
		return false, err
	}
	s.mailQueued()
	return true, nil
}

// auditID is an id a client gave, for an audit event's detail: cut short,
// since it may be anything.
func auditID(id string) string {
	if len(id) > 40 {
		return id[:40]
	}
	return id
}

// UserMfa returns the second factors of the user with the id, for the
// principal: the user themself or an admin (by the roles it has now, not
// those of its token); Forbidden for anyone else.
func (s *Service) UserMfa(ctx context.Context, p *Principal, userID string) (*MfaStatus, error) {
	if p.UserID != userID {
		cu, err := s.user(ctx, p.UserID)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(cu.roles, models.RoleAdmin) {
			return nil, models.Errorf(models.Forbidden, "only the user and admins see a user's second factors")
		}
	}
	m, err := models.UserMfaMethods(ctx, s.db, userID)
	if err != nil {
		return nil, err
	}
	factors, passkeys, err := models.UserFactors(ctx, s.db, userID)
	if err != nil {
		return nil, err
	}
	return &MfaStatus{Enabled: m.Any(), Factors: factors, Passkeys: passkeys, RecoveryCodesRemaining: m.RecoveryCodes}, nil
}

// ResetUserMfa removes every second factor of a user (TOTP factors,
// passkeys, recovery codes, pending challenges), ends all their sessions
// on every replica and queues an mfa_reset notice, in one transaction: for
// a user who lost their factors, once an admin has made sure who they
// are. p is the admin (Forbidden unless an admin now), or nil for an
// operator at the command line (authql user mfa reset). NotFound for an
// unknown user.
func (s *Service) ResetUserMfa(ctx context.Context, p *Principal, userID string) (_ bool, err error) {
	if p != nil {
		cu, err := s.user(ctx, p.UserID)
		if err != nil {
			return false, err
		}
		if !slices.Contains(cu.roles, models.RoleAdmin) {
			return false, models.Errorf(models.Forbidden, "only admins reset a user's second factors")
		}
	}
	e, done, err := s.adminAction(ctx, models.AuditMfaReset, userID)
	if err != nil {
		return false, err
	}
	defer func() { done(err) }()
	u, err := models.UserByID(ctx, s.db, e.userID)
	if models.ErrorCode(err) == models.NotFound {
		return false, errUserNotFound
	} else if err != nil {
		return false, err
	}
	now := s.now()
	mails := s.mfaNotice(mail.KindMfaReset, u, mail.Vars{At: now})
	revoked, err := models.ResetMfa(ctx, s.db, u.ID, s.revocation(now), mails...)
	s.forgetUser(u.ID) // its factors (aal_max); even on error: the outcome may be unknown
	if err != nil {
		return false, err
	}
	s.addRevoked(revoked)
	s.mailQueued()
	e.detail = fmt.Sprintf("%d sessions ended", len(revoked))
	return true, nil
}
