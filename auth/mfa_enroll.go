package auth

import (
	"context"
	"time"

	"github.com/authql/authql/models"
)

// TotpEnrollment is a TOTP factor waiting for its first code.
type TotpEnrollment struct {
	FactorID  string
	Secret    string // base32, no padding
	URI       string // otpauth://
	QRCode    string // data:image/svg+xml;base64,…
	ExpiresAt time.Time
}

// MfaEnrollment is a confirmed TOTP factor, with the recovery codes of a
// first factor and the caller's session raised to level 2.
type MfaEnrollment struct {
	Factor        *models.MfaFactor
	RecoveryCodes []string // nil unless first factor
	Session       *Grant
}

// MfaStatus is a user's second factors.
type MfaStatus struct {
	Enabled                bool
	Factors                []*models.MfaFactor
	Passkeys               []*models.Passkey
	RecoveryCodesRemaining int
}

// EnrollTotp begins a TOTP factor for the principal.
func (s *Service) EnrollTotp(ctx context.Context, p *Principal, label string) (*TotpEnrollment, error) {
	return nil, errNotYet
}

// ConfirmTotp confirms a pending TOTP factor with a code of it.
func (s *Service) ConfirmTotp(ctx context.Context, p *Principal, factorID, code string, signOutOthers bool) (*MfaEnrollment, error) {
	return nil, errNotYet
}

// RegenerateRecoveryCodes replaces the principal's recovery codes.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, p *Principal) ([]string, error) {
	return nil, errNotYet
}

// RemoveMfaFactor removes a TOTP factor of the principal.
func (s *Service) RemoveMfaFactor(ctx context.Context, p *Principal, id string) (bool, error) {
	return false, errNotYet
}

// UserMfa returns the second factors of the user with the id, for the
// principal: the user themself or an admin; Forbidden for anyone else.
func (s *Service) UserMfa(ctx context.Context, p *Principal, userID string) (*MfaStatus, error) {
	return nil, errNotYet
}

// ResetUserMfa removes every second factor of a user, for an admin.
func (s *Service) ResetUserMfa(ctx context.Context, p *Principal, userID string) (bool, error) {
	return false, errNotYet
}
