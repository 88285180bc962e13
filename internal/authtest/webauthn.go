package authtest

import "github.com/authql/authql/internal/softkey"

// WebAuthnRPID and WebAuthnOrigin are the relying party of test servers
// (see NewServer) and the origin an Authenticator claims by default.
const (
	WebAuthnRPID   = softkey.RPID
	WebAuthnOrigin = softkey.Origin
)

// Authenticator is a software WebAuthn authenticator (see softkey): it
// answers the options of beginPasskeyRegistration, beginPasskeyLogin and
// MFA_REQUIRED's webauthnOptions with the credential JSON a browser
// would give.
type Authenticator = softkey.Authenticator

// NewAuthenticator returns an Authenticator that verifies its user, at
// WebAuthnOrigin.
func NewAuthenticator() *Authenticator { return softkey.New() }
