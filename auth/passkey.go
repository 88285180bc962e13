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

// passkeyAssertion returns the WebAuthn request options (JSON of the
// publicKey member) for u to prove a passkey as a second factor, with
// allowCredentials naming u's passkeys, and the WebAuthn session data to
// keep on the challenge for checkPasskeyAssertion.
func (s *Service) passkeyAssertion(ctx context.Context, u *models.User) (options, sessionData string, err error) {
	return "", "", errNotYet
}

// checkPasskeyAssertion verifies response (the credential's JSON) against
// sessionData as an assertion of one of userID's passkeys, with user
// verification. It returns what to spend with the session (the passkey's
// new counter and backup state: MfaUse.PasskeyID, SignCount, BackedUp) and
// the passkey's amr values ("hwk" or "swk", and "user"). A response that
// does not verify is BadUserInput.
func (s *Service) checkPasskeyAssertion(ctx context.Context, userID, sessionData, response string) (*models.MfaUse, []string, error) {
	return nil, nil, errNotYet
}
