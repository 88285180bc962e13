package auth

import (
	"context"
	"strings"
	"time"

	"github.com/authql/authql/models"
)

// The methods MFA_REQUIRED offers (extensions.methods).
const (
	methodTOTP         = "TOTP"
	methodRecoveryCode = "RECOVERY_CODE"
	methodWebAuthn     = "WEBAUTHN"
)

// secondFactorRequired is Login's answer for u, whose right password was
// given: nil when u has no second factor (Login then signs in as before),
// else MfaRequired carrying a new challenge to answer with VerifyMfa.
//
// No session and no token exist until the challenge is answered: a
// password alone must not yield anything an access token could do. The
// challenge's id is 256 random bits held by the client only; the database
// keeps its SHA-256, so a copy of the table yields none that can be
// answered.
//
// newHash (the password's hash renewed) is stored at once with the
// challenge: the password was right, and a rehash changes nothing of who
// may sign in. The login's time (users.last_login_at) is stamped by
// VerifyMfa, when the sign-in happens.
func (s *Service) secondFactorRequired(ctx context.Context, u *models.User, newHash string) error {
	m, err := models.UserMfaMethods(ctx, s.db, u.ID)
	if err != nil {
		return err
	}
	if !m.Any() {
		return nil
	}
	now := s.now()
	token, hash := newRefreshToken()
	c := &models.AuthChallenge{
		ID: hash, Kind: models.ChallengeMfaLogin, UserID: &u.ID,
		CreatedAt: now, ExpiresAt: now.Add(mfaChallengeTTL),
	}
	var methods []string
	if m.TOTP > 0 {
		methods = append(methods, methodTOTP)
	}
	if m.RecoveryCodes > 0 {
		methods = append(methods, methodRecoveryCode)
	}
	ext := map[string]any{"challengeId": token, "expiresAt": c.ExpiresAt.UTC().Format(time.RFC3339)}
	if m.Passkeys > 0 {
		options, data, err := s.passkeyAssertion(ctx, u)
		if err != nil {
			return err
		}
		methods = append(methods, methodWebAuthn)
		ext["webauthnOptions"] = options
		c.Data = data
	}
	ext["methods"] = methods
	err = models.CreateLoginChallenge(ctx, s.db, c, newHash)
	if newHash != "" {
		s.forgetUser(u.ID) // even on error: the outcome may be unknown
	}
	s.audit(ctx, event{typ: models.AuditMfaChallenge, err: err, userID: u.ID, detail: strings.Join(methods, " ")})
	if err != nil {
		return err
	}
	return &models.Error{
		Code:       models.MfaRequired,
		Message:    "a second factor is required: answer with verifyMfa",
		Extensions: ext,
	}
}
