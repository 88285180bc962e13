package auth

import (
	"context"
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

var errNotYet = models.Errorf(models.Internal, "not implemented yet")

// VerifyMfa answers login's MFA_REQUIRED challenge with a proof, and signs
// in at level 2.
func (s *Service) VerifyMfa(ctx context.Context, challengeID string, proof MfaProof) (*Grant, error) {
	return nil, errNotYet
}

// Reauthenticate proves the principal again in its session: the password,
// a proof, or both.
func (s *Service) Reauthenticate(ctx context.Context, p *Principal, password *string, proof *MfaProof) (*Grant, error) {
	return nil, errNotYet
}
