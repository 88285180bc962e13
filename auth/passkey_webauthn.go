package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/authql/authql/models"
)

// DefaultWebAuthnRPName is the relying party's name authenticators show
// when Config.WebAuthnRPName is empty.
const DefaultWebAuthnRPName = "authql"

// errPasskeyUnverified is the one answer for a credential or assertion
// that does not verify: the library's reasons (a wrong origin, a missing
// flag, a bad signature) are logged, never sent, so that a client learns
// nothing it could probe with.
var errPasskeyUnverified = models.Errorf(models.BadUserInput, "the passkey could not be verified")

// errPasskeysOff refuses the passkey flows of a service configured
// without a relying party (Config.WebAuthnRPID).
var errPasskeysOff = models.Errorf(models.BadUserInput, "passkeys are not configured on this server")

// newWebAuthn is the WebAuthn relying party of cfg, or nil without
// Config.WebAuthnRPID (passkeys off).
func newWebAuthn(cfg Config) (*webauthn.WebAuthn, error) {
	if cfg.WebAuthnRPID == "" {
		return nil, nil
	}
	name := cfg.WebAuthnRPName
	if name == "" {
		name = DefaultWebAuthnRPName
	}
	return webauthn.New(&webauthn.Config{
		RPID: cfg.WebAuthnRPID, RPDisplayName: name, RPOrigins: cfg.WebAuthnOrigins,
		// No attestation: authql trusts the user's choice of
		// authenticator, and "none" asks the browser for no identifying
		// certificate chain (WebAuthn §5.4.7).
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			RequireResidentKey: protocol.ResidentKeyRequired(),
			// Required: a passkey signs in alone, at level 2, only
			// because the authenticator verified the user (PIN or
			// biometrics), not mere presence.
			UserVerification: protocol.VerificationRequired,
		},
		// Ceremonies expire with their challenge row, on the service's
		// clock (the library's own timeouts read the wall clock).
	})
}

// relyingParty returns the service's WebAuthn relying party, or
// errPasskeysOff.
func (s *Service) relyingParty() (*webauthn.WebAuthn, error) {
	if s.webauthn == nil {
		return nil, errPasskeysOff
	}
	return s.webauthn, nil
}

// passkeyUser is a user with their passkeys, as the library sees them.
type passkeyUser struct {
	u      *models.User
	handle []byte
	keys   []*models.Passkey
	creds  []webauthn.Credential
}

var _ webauthn.User = (*passkeyUser)(nil)

func (p *passkeyUser) WebAuthnID() []byte                         { return p.handle }
func (p *passkeyUser) WebAuthnName() string                       { return p.u.Email }
func (p *passkeyUser) WebAuthnDisplayName() string                { return p.u.Email }
func (p *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return p.creds }

// passkey returns the user's passkey with the credential id, or nil.
func (p *passkeyUser) passkey(credentialID []byte) *models.Passkey {
	for i, c := range p.creds {
		if bytes.Equal(c.ID, credentialID) {
			return p.keys[i]
		}
	}
	return nil
}

// loadPasskeyUser returns u with their passkeys. handle is their user
// handle (base64url), "" when they have none yet.
func (s *Service) loadPasskeyUser(ctx context.Context, u *models.User) (*passkeyUser, error) {
	keys, err := models.UserPasskeys(ctx, s.db, u.ID)
	if err != nil {
		return nil, err
	}
	p := &passkeyUser{u: u, keys: keys}
	if u.WebAuthnID != nil {
		if p.handle, err = base64.RawURLEncoding.DecodeString(*u.WebAuthnID); err != nil {
			return nil, err
		}
	}
	for _, k := range keys {
		id, err := base64.RawURLEncoding.DecodeString(k.CredentialID)
		if err != nil {
			return nil, err
		}
		var transports []protocol.AuthenticatorTransport
		for _, t := range strings.Fields(k.Transports) {
			transports = append(transports, protocol.AuthenticatorTransport(t))
		}
		p.creds = append(p.creds, webauthn.Credential{
			ID: id, PublicKey: k.PublicKey, AttestationType: k.AttestationType, Transport: transports,
			Flags: webauthn.CredentialFlags{
				UserPresent: true, UserVerified: true, BackupEligible: k.BackupEligible, BackupState: k.BackedUp,
			},
			Authenticator: webauthn.Authenticator{AAGUID: k.AAGUID, SignCount: uint32(k.SignCount)},
		})
	}
	return p, nil
}

// descriptors lists p's passkeys for excludeCredentials or
// allowCredentials.
func (p *passkeyUser) descriptors() []protocol.CredentialDescriptor {
	d := make([]protocol.CredentialDescriptor, 0, len(p.creds))
	for i := range p.creds {
		d = append(d, p.creds[i].Descriptor())
	}
	return d
}

// newWebAuthnHandle is a new user handle: 32 random bytes (WebAuthn
// §14.6.1: no personal information, not the account's id), base64url.
func newWebAuthnHandle() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ceremonyData is what a passkey ceremony's challenge row keeps (see
// models.AuthChallenge.Data).
type ceremonyData struct {
	Session webauthn.SessionData `json:"session"`
	// Label is the passkey's, for a registration.
	Label string `json:"label,omitempty"`
	// Bound is set for a sign-in begun with an email: only a passkey of
	// the challenge's user (none, for an unknown email) finishes it.
	Bound bool `json:"bound,omitempty"`
}

// publicKeyJSON is the JSON of v's "publicKey" member: the options a
// browser passes to navigator.credentials.create or get.
func publicKeyJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var outer struct {
		PublicKey json.RawMessage `json:"publicKey"`
	}
	if err := json.Unmarshal(b, &outer); err != nil {
		return "", err
	}
	return string(outer.PublicKey), nil
}

// maxPasskeyLabel bounds a passkey's label, in characters.
const maxPasskeyLabel = 64

// passkeyLabel returns label trimmed, "Passkey" when empty, or
// BadUserInput when it is too long or holds control characters (a label
// is shown in lists and mails).
func passkeyLabel(label string) (string, error) {
	label = strings.TrimSpace(label)
	if label == "" {
		return "Passkey", nil
	}
	if !utf8.ValidString(label) || utf8.RuneCountInString(label) > maxPasskeyLabel {
		return "", models.Errorf(models.BadUserInput, "a passkey's label has at most 64 characters")
	}
	if strings.IndexFunc(label, unicode.IsControl) >= 0 {
		return "", models.Errorf(models.BadUserInput, "a passkey's label cannot hold control characters")
	}
	return label, nil
}

// passkeyAmr is the amr of an assertion of a passkey: "swk" when it is
// backed up (synced: a copy may live elsewhere), "hwk" otherwise, and
// "user" (user verification is required).
func passkeyAmr(backedUp bool) []string {
	if backedUp {
		return []string{models.AmrSoftwareKey, models.AmrUser}
	}
	return []string{models.AmrHardwareKey, models.AmrUser}
}

// passkeyRefused logs why the library refused a credential and returns the
// one answer a client gets.
func (s *Service) passkeyRefused(ctx context.Context, what string, err error) error {
	var perr *protocol.Error
	if errors.As(err, &perr) {
		s.log.InfoContext(ctx, what+" refused", "reason", perr.Details, "info", perr.DevInfo)
	} else {
		s.log.InfoContext(ctx, what+" refused", "err", err)
	}
	return errPasskeyUnverified
}
