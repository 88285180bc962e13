package auth

import (
	"github.com/authql/authql/models"
)

// totpSeedAAD binds a sealed seed to its factor's row, so that a seed
// copied into another factor's row does not decrypt.
func totpSeedAAD(factorID string) string { return "authql mfa_factors.secret " + factorID }

// sealTotpSeed returns the stored form of a factor's seed: base32, sealed
// under AUTH_ENCRYPTION_KEY when it is set. A TOTP seed is a long-lived
// shared secret: a copy of the database without the key must not yield
// codes.
func (s *Service) sealTotpSeed(factorID string, seed []byte) (string, error) {
	return s.seal.Seal(totpSeedAAD(factorID), totpEncoding.EncodeToString(seed))
}

// openTotpSeed returns the seed of a factor.
func (s *Service) openTotpSeed(f *models.MfaFactor) ([]byte, error) {
	plain, _, err := s.seal.Open(totpSeedAAD(f.ID), f.Secret)
	if err != nil {
		return nil, err
	}
	return totpEncoding.DecodeString(plain)
}
