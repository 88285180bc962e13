package auth

import (
	"context"
	"time"

	"github.com/authql/authql/models"
)

// Ceremony is a WebAuthn ceremony begun.
type Ceremony struct {
	ID        string
	Options   string // PublicKeyCredential{Creation,Request}Options JSON
	ExpiresAt time.Time
}

// BeginPasskeyRegistration begins registering a passkey of the principal.
func (s *Service) BeginPasskeyRegistration(ctx context.Context, p *Principal, label string) (*Ceremony, error) {
	return nil, errNotYet
}

// FinishPasskeyRegistration finishes a registration.
func (s *Service) FinishPasskeyRegistration(ctx context.Context, p *Principal, ceremonyID, credential string) (*models.Passkey, error) {
	return nil, errNotYet
}

// BeginPasskeyLogin begins a passkey sign-in.
func (s *Service) BeginPasskeyLogin(ctx context.Context, email string) (*Ceremony, error) {
	return nil, errNotYet
}

// FinishPasskeyLogin finishes a passkey sign-in, at level 2.
func (s *Service) FinishPasskeyLogin(ctx context.Context, ceremonyID, credential string) (*Grant, error) {
	return nil, errNotYet
}

// RenamePasskey renames a passkey of the principal.
func (s *Service) RenamePasskey(ctx context.Context, p *Principal, id, label string) (*models.Passkey, error) {
	return nil, errNotYet
}

// DeletePasskey deletes a passkey of the principal.
func (s *Service) DeletePasskey(ctx context.Context, p *Principal, id string) (bool, error) {
	return false, errNotYet
}
