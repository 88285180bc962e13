package auth

import (
	"context"
	"strings"
	"time"

	"github.com/authql/authql/models"
)

// MfaProof is a proof of a second factor: exactly one of its fields set.
type MfaProof struct {
	TOTPCode         string
	RecoveryCode     string
	WebAuthnResponse string // the credential's JSON
}

// Lifetime and limits of login's MFA challenges.
const (
	mfaChallengeTTL = 5 * time.Minute
)

// VerifyMfa answers login's MFA_REQUIRED challenge with a proof, and signs
// in at level 2: a new session whose amr is the password and the proof
// ("pwd otp mfa", "pwd rc mfa", "pwd hwk user mfa"), stamped as the user's
// last login.
//
// A proof that is not exactly one of its fields is BadUserInput. An
// unknown, expired, spent or dead challenge is models.ErrChallengeInvalid
// (BadUserInput), a malformed id without a query. A wrong or used proof is
// models.ErrMfaSpent (BadUserInput); each answer counts against the
// challenge (dead after models.MaxChallengeFailures) and the account's
// Limits.MfaAccount (RateLimited past it, see proveSecondFactor). The
// challenge, the TOTP step, the recovery code or the passkey's counter
// are spent in the transaction that creates the session: of two answers
// with one code at one moment, exactly one signs in. AccountDisabled when
// the account was disabled during the challenge.
func (s *Service) VerifyMfa(ctx context.Context, challengeID string, proof MfaProof) (g *Grant, err error) {
	if err := proof.check(); err != nil {
		return nil, err
	}
	if !wellFormedRefreshToken(challengeID) {
		return nil, models.ErrChallengeInvalid // not a guess worth a query
	}
	if err := s.auditRoom(); err != nil {
		return nil, err
	}
	hash, now := hashRefreshToken(challengeID), s.now()
	c, err := models.LiveChallenge(ctx, s.db, hash, models.ChallengeMfaLogin, now)
	if err != nil {
		return nil, err
	}
	if c.UserID == nil {
		return nil, models.ErrChallengeInvalid
	}
	userID := *c.UserID
	var sessionID string
	defer func() {
		if !isHashShare(err) && models.ErrorCode(err) != models.RateLimited {
			s.audit(ctx, event{typ: models.AuditMfaVerified, err: err, userID: userID, sessionID: sessionID})
		}
	}()
	f, err := s.proveSecondFactor(ctx, userID, proof, c)
	if err != nil {
		return nil, err
	}
	// Read again, not from the cache: the account may have been disabled
	// or deleted while the challenge waited.
	u, err := models.UserByID(ctx, s.db, userID)
	if models.ErrorCode(err) == models.NotFound {
		return nil, models.ErrChallengeInvalid
	} else if err != nil {
		return nil, err
	}
	if err := s.refuseDisabled(ctx, u); err != nil {
		return nil, err
	}
	ns, token := s.newSession(ctx, &models.LoginStamp{At: now})
	ns.Session.UserID = u.ID
	ns.Session.Aal = models.AalTwo
	ns.Session.Amr = strings.Join(append(append([]string{models.AmrPassword}, f.amr...), models.AmrMFA), " ")
	f.use.ChallengeID = hash
	ns.Mfa = f.use
	ns.Mails = s.recoveryCodeNotice(ctx, u, f)
	evicted, err := models.CreateSession(ctx, s.db, ns)
	s.forgetUser(u.ID) // its last login changed
	if err != nil {
		return nil, err
	}
	sessionID = ns.Session.ID
	s.sessionsEvicted(ctx, u.ID, evicted)
	if len(ns.Mails) > 0 {
		s.mailQueued()
	}
	s.spent(ctx, f, u.ID, sessionID)
	u.LastLoginAt = &now
	return s.grant(ctx, u, ns.Session, token, ns.Session.CreatedAt)
}
