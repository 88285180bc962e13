package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/authql/authql/models"
)

// BeginPasskeyLogin begins a passkey sign-in. The request options never
// name credentials (a discoverable login, with or without an email), so
// that the answer does not tell whether an account or a passkey exists.
// With an email, the ceremony is bound to that account: only one of its
// passkeys finishes it (none, for an unknown email, though the ceremony
// looks alike). RateLimited past Limits.PasskeyClient; BadUserInput for
// an email NormalizeEmail refuses, or when passkeys are not configured.
func (s *Service) BeginPasskeyLogin(ctx context.Context, email string) (*Ceremony, error) {
	rp, err := s.relyingParty()
	if err != nil {
		return nil, err
	}
	var bound bool
	var userID *string
	if email != "" {
		if email, err = models.NormalizeEmail(email); err != nil {
			return nil, err
		}
		bound = true
	}
	// Each ceremony is a row: counted per client, known or not.
	client := ClientFrom(ctx).limitKey()
	if _, err := s.take(ctx, s.now(), []string{s.limitKey("passkey-client", client)}, []Rate{s.cfg.Limits.PasskeyClient}); err != nil {
		return nil, err
	}
	if bound {
		u, err := models.UserByEmail(ctx, s.db, email)
		if err == nil {
			userID = &u.ID
		} else if models.ErrorCode(err) != models.NotFound {
			return nil, err
		}
	}
	// The ceremony's id is its WebAuthn challenge, so that an assertion
	// names the ceremony it answers (its clientDataJSON holds the
	// challenge): reauthenticate, which takes the assertion alone, finds
	// it so (see passkeyStepUp). The challenge is no secret (it is in
	// the options), and the id never was: what finishes a ceremony is a
	// signature by a passkey.
	token, _ := newRefreshToken()
	challenge, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return nil, err
	}
	assertion, session, err := rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired), webauthn.WithChallenge(challenge))
	if err != nil {
		return nil, err
	}
	return s.newCeremony(ctx, models.ChallengePasskeyLogin, userID, token, assertion, ceremonyData{Session: *session, Bound: bound})
}

// passkeyStepUp checks response, an assertion answering a passkey sign-in
// ceremony (begun by BeginPasskeyLogin, and found by the challenge the
// authenticator signed), as one of userID's passkeys: the passkey proof of
// Reauthenticate. It is counted as FinishPasskeyLogin counts one, and the
// ceremony is spent with the session's raise. BadUserInput for a ceremony
// that cannot be finished, an assertion that does not verify, or a passkey
// of another account.
func (s *Service) passkeyStepUp(ctx context.Context, userID, response string) (*secondFactor, error) {
	if _, err := s.relyingParty(); err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(response))
	if err != nil {
		return nil, s.passkeyRefused(ctx, "passkey step-up", err)
	}
	c, data, err := s.liveCeremony(ctx, models.ChallengePasskeyLogin, parsed.Response.CollectedClientData.Challenge)
	if err != nil {
		return nil, err
	}
	pu, use, err := s.checkPasskeyLogin(ctx, c, data, response)
	if err != nil {
		return nil, err
	}
	if pu.u.ID != userID {
		return nil, errPasskeyUnverified
	}
	return &secondFactor{use: use, amr: passkeyAmr(use.BackedUp), codesLeft: -1, give: func() {}}, nil
}

// FinishPasskeyLogin finishes the passkey sign-in ceremonyID with
// credential (the JSON of the PublicKeyCredential that
// navigator.credentials.get returned) and starts a session at level 2
// (amr "hwk" or, for a backed-up passkey, "swk", with "user" and "mfa").
// The passkey's counter must have risen (unless it stays zero) and its
// backup eligibility be unchanged; the ceremony and the counter are spent
// in the transaction that creates the session, so a ceremony signs in
// once. BadUserInput for a ceremony that cannot be finished
// (models.ErrChallengeInvalid) or an assertion that does not verify;
// RateLimited past Limits.MfaAccount of the account; AccountDisabled,
// EmailNotVerified as Login.
func (s *Service) FinishPasskeyLogin(ctx context.Context, ceremonyID, credential string) (g *Grant, err error) {
	var userID string
	defer func() {
		if models.ErrorCode(err) != models.AccountDisabled { // refuseDisabled audits it
			s.audit(ctx, event{typ: models.AuditPasskeyLogin, err: err, userID: userID, sessionID: g.sessionID()})
		}
	}()
	if err := s.auditRoom(); err != nil {
		return nil, err
	}
	c, data, err := s.liveCeremony(ctx, models.ChallengePasskeyLogin, ceremonyID)
	if err != nil {
		return nil, err
	}
	pu, use, err := s.checkPasskeyLogin(ctx, c, data, credential)
	if pu != nil {
		userID = pu.u.ID
	}
	if err != nil {
		return nil, err
	}
	u := pu.u
	if err := s.refuseDisabled(ctx, u); err != nil {
		return nil, err
	}
	if err := s.unverified(u); err != nil {
		return nil, err
	}
	now := s.now()
	ns, token := s.newSession(ctx, &models.LoginStamp{At: now})
	ns.Session.UserID = u.ID
	// A passkey with user verification is two factors in one: something
	// held (the key) and something known or been (the PIN, the face).
	ns.Session.Aal = models.AalTwo
	ns.Session.Amr = strings.Join(append(passkeyAmr(use.BackedUp), models.AmrMFA), " ")
	ns.Mfa = use
	evicted, err := models.CreateSession(ctx, s.db, ns)
	if err != nil {
		return nil, err
	}
	s.forgetUser(u.ID) // its last login changed
	s.sessionsEvicted(ctx, u.ID, evicted)
	u.LastLoginAt = &now
	return s.grant(ctx, u, ns.Session, token, ns.Session.CreatedAt)
}

// checkPasskeyLogin verifies a sign-in's assertion against its ceremony
// c: the user handle names the account, which must be the ceremony's when
// it was begun with an email. It returns the account (once known, also
// with an error) and what to spend with the session. The attempt counts
// against the ceremony (models.MaxChallengeFailures) and, once the account
// is known, against its Limits.MfaAccount, before the signature is
// checked; a success gives the latter back.
func (s *Service) checkPasskeyLogin(ctx context.Context, c *models.AuthChallenge, data *ceremonyData, credential string) (*passkeyUser, *models.MfaUse, error) {
	now := s.now()
	if err := models.CountChallengeAttempt(ctx, s.db, c.ID, now); err != nil {
		return nil, nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(credential))
	if err != nil {
		return nil, nil, s.passkeyRefused(ctx, "passkey sign-in", err)
	}
	handle := parsed.Response.UserHandle
	if len(handle) == 0 {
		return nil, nil, errPasskeyUnverified
	}
	u, err := models.UserByWebAuthnID(ctx, s.db, base64.RawURLEncoding.EncodeToString(handle))
	if models.ErrorCode(err) == models.NotFound {
		return nil, nil, errPasskeyUnverified
	} else if err != nil {
		return nil, nil, err
	}
	give, err := s.mfaAccountLimit(ctx, now, u.ID)
	if err != nil {
		return nil, nil, err
	}
	pu, err := s.loadPasskeyUser(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	if data.Bound && (c.UserID == nil || *c.UserID != u.ID) {
		// Begun with another email, or one without an account.
		return pu, nil, errPasskeyUnverified
	}
	cred, err := s.webauthn.ValidateLogin(pu, webauthnSession(data.Session, pu.handle), parsed)
	if err != nil {
		return pu, nil, s.passkeyRefused(ctx, "passkey sign-in", err)
	}
	use, err := assertionUse(pu, cred, parsed)
	if err != nil {
		return pu, nil, err
	}
	give()
	use.At, use.ChallengeID = now, c.ID
	return pu, use, nil
}

// webauthnSession is a discoverable ceremony's session data made the
// user's: the library's ValidateLogin then checks the user handle against
// handle, as its discoverable login would.
func webauthnSession(sd webauthn.SessionData, handle []byte) webauthn.SessionData {
	sd.UserID = handle
	return sd
}

// assertionUse checks what the library leaves to the relying party about
// an assertion of one of pu's passkeys that verified, and returns what to
// spend: the counter, which must rise unless it stays zero (a lower or
// equal one is a cloned authenticator, WebAuthn §6.1.1), user
// verification, and the backup eligibility, which never changes.
func assertionUse(pu *passkeyUser, cred *webauthn.Credential, parsed *protocol.ParsedCredentialAssertionData) (*models.MfaUse, error) {
	pk := pu.passkey(cred.ID)
	if pk == nil {
		return nil, errPasskeyUnverified
	}
	flags := parsed.Response.AuthenticatorData.Flags
	count := int64(parsed.Response.AuthenticatorData.Counter)
	switch {
	case !flags.HasUserVerified():
		return nil, errPasskeyUnverified
	case flags.HasBackupEligible() != pk.BackupEligible:
		return nil, errPasskeyUnverified
	case (count != 0 || pk.SignCount != 0) && count <= pk.SignCount:
		return nil, errPasskeyUnverified
	}
	return &models.MfaUse{PasskeyID: pk.ID, SignCount: count, BackedUp: flags.HasBackupState()}, nil
}

// passkeyAssertion returns the WebAuthn request options (JSON of the
// publicKey member) for u to prove a passkey as a second factor, with
// allowCredentials naming u's passkeys, and the WebAuthn session data to
// keep on the challenge for checkPasskeyAssertion.
func (s *Service) passkeyAssertion(ctx context.Context, u *models.User) (options, sessionData string, err error) {
	rp, err := s.relyingParty()
	if err != nil {
		return "", "", err
	}
	pu, err := s.loadPasskeyUser(ctx, u)
	if err != nil {
		return "", "", err
	}
	if len(pu.creds) == 0 || pu.handle == nil {
		return "", "", models.Errorf(models.BadUserInput, "the account has no passkey")
	}
	assertion, session, err := rp.BeginLogin(pu, webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return "", "", err
	}
	if options, err = publicKeyJSON(assertion); err != nil {
		return "", "", err
	}
	raw, err := json.Marshal(session)
	if err != nil {
		return "", "", err
	}
	return options, string(raw), nil
}

// checkPasskeyAssertion verifies response (the credential's JSON) against
// sessionData as an assertion of one of userID's passkeys, with user
// verification. It returns what to spend with the session (the passkey's
// new counter and backup state: MfaUse.PasskeyID, SignCount, BackedUp) and
// the passkey's amr values ("hwk" or "swk", and "user"). A response that
// does not verify is BadUserInput.
func (s *Service) checkPasskeyAssertion(ctx context.Context, userID, sessionData, response string) (*models.MfaUse, []string, error) {
	rp, err := s.relyingParty()
	if err != nil {
		return nil, nil, err
	}
	var session webauthn.SessionData
	if err := json.Unmarshal([]byte(sessionData), &session); err != nil {
		return nil, nil, err
	}
	u, err := models.UserByID(ctx, s.db, userID)
	if err != nil {
		return nil, nil, err
	}
	pu, err := s.loadPasskeyUser(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(response))
	if err != nil {
		return nil, nil, s.passkeyRefused(ctx, "passkey assertion", err)
	}
	cred, err := rp.ValidateLogin(pu, session, parsed)
	if err != nil {
		return nil, nil, s.passkeyRefused(ctx, "passkey assertion", err)
	}
	use, err := assertionUse(pu, cred, parsed)
	if err != nil {
		return nil, nil, err
	}
	return use, passkeyAmr(use.BackedUp), nil
}
