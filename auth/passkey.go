package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/models"
)

// Ceremony is a WebAuthn ceremony begun.
type Ceremony struct {
	ID        string
	Options   string // PublicKeyCredential{Creation,Request}Options JSON
	ExpiresAt time.Time
}

// passkeyCeremonyTTL is how long a passkey ceremony can be finished.
const passkeyCeremonyTTL = 5 * time.Minute

// BeginPasskeyRegistration begins registering a passkey of the principal,
// labelled label ("Passkey" when empty): the creation options ask for a
// discoverable credential with user verification and no attestation, and
// exclude the user's passkeys, so an authenticator does not register
// twice. BadUserInput for a bad label, past models.MaxPasskeys, or when
// passkeys are not configured.
func (s *Service) BeginPasskeyRegistration(ctx context.Context, p *Principal, label string) (*Ceremony, error) {
	rp, err := s.relyingParty()
	if err != nil {
		return nil, err
	}
	if label, err = passkeyLabel(label); err != nil {
		return nil, err
	}
	u, err := s.signedInUser(ctx, p)
	if err != nil {
		return nil, err
	}
	if u.WebAuthnID == nil {
		// Made at the first registration, so that accounts without
		// passkeys never have one.
		handle, err := models.EnsureWebAuthnID(ctx, s.db, u.ID, newWebAuthnHandle())
		if err != nil {
			return nil, err
		}
		u.WebAuthnID = &handle
	}
	pu, err := s.loadPasskeyUser(ctx, u)
	if err != nil {
		return nil, err
	}
	if len(pu.keys) >= models.MaxPasskeys {
		return nil, models.ErrTooManyPasskeys
	}
	creation, session, err := rp.BeginRegistration(pu, webauthn.WithExclusions(pu.descriptors()))
	if err != nil {
		return nil, err
	}
	token, _ := newRefreshToken()
	return s.newCeremony(ctx, models.ChallengePasskeyRegister, &u.ID, token, creation, ceremonyData{Session: *session, Label: label})
}

// newCeremony stores a ceremony of kind with its data and returns it with
// options (the library's creation or assertion, of which the client gets
// the publicKey member).
func (s *Service) newCeremony(ctx context.Context, kind string, userID *string, token string, options any, data ceremonyData) (*Ceremony, error) {
	opts, err := publicKeyJSON(options)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	now := s.now()
	// The client holds the token (a newRefreshToken), the database its
	// hash: a read of the database yields no ceremony that can be
	// finished.
	c := &models.AuthChallenge{ID: hashRefreshToken(token), Kind: kind, UserID: userID, Data: string(raw), CreatedAt: now, ExpiresAt: now.Add(passkeyCeremonyTTL)}
	if err := models.CreateChallenge(ctx, s.db, c); err != nil {
		return nil, err
	}
	return &Ceremony{ID: token, Options: opts, ExpiresAt: c.ExpiresAt}, nil
}

// liveCeremony returns the live ceremony of kind with the token and its
// data, or models.ErrChallengeInvalid.
func (s *Service) liveCeremony(ctx context.Context, kind, token string) (*models.AuthChallenge, *ceremonyData, error) {
	if token == "" || len(token) > 100 {
		return nil, nil, models.ErrChallengeInvalid
	}
	c, err := models.LiveChallenge(ctx, s.db, hashRefreshToken(token), kind, s.now())
	if err != nil {
		return nil, nil, err
	}
	var data ceremonyData
	if err := json.Unmarshal([]byte(c.Data), &data); err != nil {
		return nil, nil, err
	}
	return c, &data, nil
}

// FinishPasskeyRegistration finishes the principal's registration
// ceremonyID with credential (the JSON of the PublicKeyCredential
// navigator.credentials.create returned) and stores the passkey. The
// ceremony is spent in the transaction that stores it. BadUserInput for a
// ceremony that is not the principal's live one (models.ErrChallengeInvalid),
// a credential that does not verify (user verification is required, and
// the origin and relying party must be the configured ones), or past
// models.MaxPasskeys.
func (s *Service) FinishPasskeyRegistration(ctx context.Context, p *Principal, ceremonyID, credential string) (pk *models.Passkey, err error) {
	// Every failure is an audit row: limited per user (see limitFailures).
	done, err := s.limitFailures(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	defer func() { done(err) }()
	defer func() {
		s.audit(ctx, event{typ: models.AuditPasskeyAdded, err: err, userID: p.UserID, detail: passkeyIDOf(pk)})
	}()
	rp, err := s.relyingParty()
	if err != nil {
		return nil, err
	}
	c, data, err := s.liveCeremony(ctx, models.ChallengePasskeyRegister, ceremonyID)
	if err != nil {
		return nil, err
	}
	if c.UserID == nil || *c.UserID != p.UserID {
		return nil, models.ErrChallengeInvalid // another's ceremony: as if unknown
	}
	u, err := s.signedInUser(ctx, p)
	if err != nil {
		return nil, err
	}
	pu, err := s.loadPasskeyUser(ctx, u)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(credential))
	if err != nil {
		return nil, s.passkeyRefused(ctx, "passkey registration", err)
	}
	cred, err := rp.CreateCredential(pu, data.Session, parsed)
	if err != nil {
		return nil, s.passkeyRefused(ctx, "passkey registration", err)
	}
	now := s.now()
	pk = newPasskey(u.ID, data.Label, cred, now)
	mails := s.mfaNotice(mail.KindMfaChanged, u, mail.Vars{Change: changePasskeyAdded, IP: ClientFrom(ctx).IP})
	err = models.AddPasskey(ctx, s.db, pk, c.ID, mails)
	s.forgetUser(u.ID) // its factors (aal_max); even on error: the outcome may be unknown
	if err != nil {
		return nil, err
	}
	s.mailQueued()
	return pk, nil
}

// newPasskey is the row of a credential just verified.
func newPasskey(userID, label string, c *webauthn.Credential, now time.Time) *models.Passkey {
	transports := make([]string, 0, len(c.Transport))
	for _, t := range c.Transport {
		if transportNames[t] && !slices.Contains(transports, string(t)) {
			transports = append(transports, string(t))
		}
	}
	return &models.Passkey{
		ID: uuid.NewString(), UserID: userID,
		CredentialID:    base64.RawURLEncoding.EncodeToString(c.ID),
		PublicKey:       c.PublicKey,
		AttestationType: c.AttestationType,
		Transports:      strings.Join(transports, " "),
		AAGUID:          c.Authenticator.AAGUID,
		SignCount:       int64(c.Authenticator.SignCount),
		BackupEligible:  c.Flags.BackupEligible,
		BackedUp:        c.Flags.BackupState,
		Label:           label,
		CreatedAt:       now,
	}
}

// transportNames are the transports a passkey row keeps: the ones
// WebAuthn defines. They are the client's claim, kept only as hints for
// allowCredentials, so anything else is dropped rather than stored.
var transportNames = map[protocol.AuthenticatorTransport]bool{
	protocol.USB: true, protocol.NFC: true, protocol.BLE: true, protocol.SmartCard: true,
	protocol.Hybrid: true, protocol.Internal: true,
}

// passkeyIDOf is pk's id for an audit detail, "" for none.
func passkeyIDOf(pk *models.Passkey) string {
	if pk == nil {
		return ""
	}
	return pk.ID
}

// RenamePasskey labels the principal's passkey id with label. NotFound
// when it is not theirs; BadUserInput for a bad label.
func (s *Service) RenamePasskey(ctx context.Context, p *Principal, id, label string) (*models.Passkey, error) {
	label = strings.TrimSpace(label)
	if label == "" {
		return nil, models.Errorf(models.BadUserInput, "a passkey's label cannot be empty")
	}
	label, err := passkeyLabel(label)
	if err != nil {
		return nil, err
	}
	if _, perr := uuid.Parse(id); perr != nil {
		return nil, models.ErrPasskeyNotFound
	}
	return models.RenamePasskey(ctx, s.db, p.UserID, id, label)
}

// DeletePasskey deletes the principal's passkey id; with their last
// second factor go their recovery codes. NotFound when it is not theirs.
func (s *Service) DeletePasskey(ctx context.Context, p *Principal, id string) (_ bool, err error) {
	// Every failure is an audit row: limited per user (see limitFailures).
	done, err := s.limitFailures(ctx, p.UserID)
	if err != nil {
		return false, err
	}
	defer func() { done(err) }()
	if _, perr := uuid.Parse(id); perr != nil {
		return false, models.ErrPasskeyNotFound
	}
	u, err := s.signedInUser(ctx, p)
	if err != nil {
		return false, err
	}
	mails := s.mfaNotice(mail.KindMfaChanged, u, mail.Vars{Change: changePasskeyRemoved, IP: ClientFrom(ctx).IP})
	codesDeleted, err := models.DeletePasskey(ctx, s.db, p.UserID, id, mails)
	s.forgetUser(p.UserID) // its factors (aal_max); even on error: the outcome may be unknown
	detail := id
	if codesDeleted {
		detail += " (last factor: recovery codes deleted)"
	}
	s.audit(ctx, event{typ: models.AuditPasskeyRemoved, err: err, userID: p.UserID, sessionID: p.SessionID, detail: detail})
	if err != nil {
		return false, err
	}
	s.mailQueued()
	return true, nil
}
