package auth

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/models"
)

var (
	errOneProof = models.Errorf(models.BadUserInput, "give exactly one of totpCode, recoveryCode and webauthnResponse")
)

// check refuses a proof that is not exactly one of its fields.
func (p MfaProof) check() error {
	n := 0
	for _, f := range []string{p.TOTPCode, p.RecoveryCode, p.WebAuthnResponse} {
		if f != "" {
			n++
		}
	}
	if n != 1 {
		return errOneProof
	}
	return nil
}

// secondFactor is a proof that checked out, still to be spent.
type secondFactor struct {
	// use is spent in the transaction that signs in or raises the
	// session: the proof counts only if that commits (see models.MfaUse).
	use *models.MfaUse
	amr []string // the proof's methods (RFC 8176, "rc" for a recovery code)
	// codesLeft is, for a recovery code, the user's unused codes once it
	// is spent; -1 for other proofs.
	codesLeft int
	// give returns the proof's count against Limits.MfaAccount: call it
	// once the proof was spent, so that only wrong answers count.
	give func()
}

// proveSecondFactor checks proof as a second factor of userID, answering
// the login challenge c (nil for a step-up, which has none).
//
// Every answer is counted before it is checked, so that concurrent
// guesses cannot slip under a bound: against Limits.MfaAccount for the
// account, whatever the client address (spreading guesses over addresses
// must not help), and against the challenge's models.MaxChallengeFailures
// (ErrChallengeInvalid past them). A malformed answer counts like any
// wrong one: it is a guess too, and counting it keeps the audit log of a
// script bounded. The account's count is given back (secondFactor.give)
// only when the proof was spent; a proof that cannot be checked (the hash
// pool full, the database failing) gives it back at once.
//
// A wrong proof is ErrMfaSpent (BadUserInput), the same answer as a
// right one used already.
func (s *Service) proveSecondFactor(ctx context.Context, userID string, proof MfaProof, c *models.AuthChallenge) (*secondFactor, error) {
	now := s.now()
	give, err := s.mfaAccountLimit(ctx, now, userID)
	if err != nil {
		return nil, err
	}
	if c != nil {
		if err := models.CountChallengeAttempt(ctx, s.db, c.ID, now); err != nil {
			give() // dead or spent meanwhile: nothing was checked
			return nil, err
		}
	}
	f, err := s.checkProof(ctx, userID, proof, c, now)
	if err != nil {
		if models.ErrorCode(err) != models.BadUserInput {
			give()
		}
		return nil, err
	}
	f.use.At, f.give = now, give
	return f, nil
}

// mfaAccountLimit reserves one second-factor attempt of the user against
// Limits.MfaAccount (RateLimited past it), as login's verifyMfa counts
// them: a wrong code keeps its attempt, a right one gives it back. Keyed by
// the user alone, not the client: spreading guesses over addresses must
// not help.
func (s *Service) mfaAccountLimit(ctx context.Context, now time.Time, userID string) (give func(), err error) {
	return s.takeFor(ctx, now, userID, []string{s.limitKey("mfa-account", userID)}, []Rate{s.cfg.Limits.MfaAccount})
}

// checkProof is proveSecondFactor's check, uncounted.
func (s *Service) checkProof(ctx context.Context, userID string, proof MfaProof, c *models.AuthChallenge, now time.Time) (*secondFactor, error) {
	switch {
	case proof.TOTPCode != "":
		return s.checkTotp(ctx, userID, proof.TOTPCode, now)
	case proof.RecoveryCode != "":
		return s.checkRecoveryCode(ctx, userID, proof.RecoveryCode)
	case c == nil:
		// A step-up's passkey answers a ceremony of its own (see
		// passkeyStepUp), not this check.
		return nil, models.ErrMfaSpent
	case c.Data == "":
		// The user had no passkey at login: no assertion was asked for.
		return nil, models.ErrMfaSpent
	}
	use, amr, err := s.checkPasskeyAssertion(ctx, userID, c.Data, proof.WebAuthnResponse)
	if err != nil {
		return nil, err
	}
	return &secondFactor{use: use, amr: amr, codesLeft: -1}, nil
}

// checkTotp finds the user's confirmed TOTP factor that code is a code of,
// at a step after the last one the factor accepted (totpMatch). That the
// step is still unaccepted when the session commits is the conditional
// update of models.MfaUse: of two requests with one code, one commits.
func (s *Service) checkTotp(ctx context.Context, userID, code string, now time.Time) (*secondFactor, error) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "") // "123 456" as apps show it
	fs, err := models.ConfirmedTotpFactors(ctx, s.db, userID)
	if err != nil {
		return nil, err
	}
	for i := range fs {
		seed, err := s.openTotpSeed(&fs[i])
		if err != nil {
			return nil, fmt.Errorf("factor %s: %w", fs[i].ID, err)
		}
		if step, ok := totpMatch(seed, code, now, fs[i].LastStep); ok {
			return &secondFactor{use: &models.MfaUse{FactorID: fs[i].ID, Step: step}, amr: []string{models.AmrOTP}, codesLeft: -1}, nil
		}
	}
	return nil, models.ErrMfaSpent
}

// checkRecoveryCode finds the user's unused recovery code that typed is
// (normalised: case, spaces, hyphens, lookalike letters), with one argon2
// on a worker of the hash pool.
func (s *Service) checkRecoveryCode(ctx context.Context, userID, typed string) (*secondFactor, error) {
	canon, ok := normalizeRecoveryCode(typed)
	if !ok {
		return nil, models.ErrMfaSpent
	}
	codes, err := models.UnusedRecoveryCodes(ctx, s.db, userID)
	if err != nil {
		return nil, err
	}
	if len(codes) == 0 {
		return nil, models.ErrMfaSpent
	}
	var id string
	if err := s.pool.do(ctx, func() { id = matchRecoveryCode(codes, canon) }); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, models.ErrMfaSpent
	}
	return &secondFactor{use: &models.MfaUse{RecoveryCodeID: id}, amr: []string{models.AmrRecoveryCode}, codesLeft: len(codes) - 1}, nil
}

// spent finishes what a proof's spending began: its count against the
// account given back, and, for a recovery code, RECOVERY_CODE_USED.
func (s *Service) spent(ctx context.Context, f *secondFactor, userID, sessionID string) {
	f.give()
	if f.codesLeft >= 0 {
		s.audit(ctx, event{typ: models.AuditRecoveryCodeUsed, userID: userID, sessionID: sessionID, detail: fmt.Sprintf("%d left", f.codesLeft)})
	}
}

// recoveryCodeNotice is the mail telling u that a recovery code was used
// and how many are left, to be queued with the session it signs in.
func (s *Service) recoveryCodeNotice(ctx context.Context, u *models.User, f *secondFactor) []*models.OutboxMail {
	if f.codesLeft < 0 {
		return nil
	}
	return s.mfaNotice(mail.KindRecoveryCodeUsed, u, mail.Vars{CodesLeft: f.codesLeft, IP: ClientFrom(ctx).IP})
}
