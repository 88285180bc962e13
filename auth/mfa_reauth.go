package auth

import (
	"context"
	"strings"

	"github.com/authql/authql/models"
)

var errNothingToProve = models.Errorf(models.BadUserInput, "give the password, a second factor, or both")

// Reauthenticate proves the principal again in its own session (NIST
// 800-63B §4.2.3): the password, a proof of a second factor, or both. The
// session's level becomes the higher of its own and the one proven now (2
// with a proof, else 1), its amr the methods proven now ("mfa" added with
// a proof), its auth_time now; its refresh token is replaced (every other
// token of the session stops working) and a new pair returned. The access
// token the client holds stays valid and passes @auth(aal, maxAge) at
// once, since the directive reads the session.
//
// A proof alone raises the session to 2: the password was proven at the
// session's sign-in. The password is checked as ChangePassword checks it
// (BadUserInput when wrong, counted against the login limits); a proof as
// VerifyMfa checks one (ErrMfaSpent when wrong or used, counted against
// Limits.MfaAccount), but with no challenge: a webauthnResponse answers a
// ceremony begun with beginPasskeyLogin (see passkeyStepUp), which must be
// a passkey of the caller's. Neither given is BadUserInput. Unauthenticated
// when the session or the account ended; RateLimited while a refresh of
// the session holds its token.
func (s *Service) Reauthenticate(ctx context.Context, p *Principal, password *string, proof *MfaProof) (g *Grant, err error) {
	if (password == nil || *password == "") && proof == nil {
		return nil, errNothingToProve
	}
	if proof != nil {
		if err := proof.check(); err != nil {
			return nil, err
		}
	}
	if err := s.auditRoom(); err != nil {
		return nil, err
	}
	var methods []string
	defer func() {
		if !isHashShare(err) && models.ErrorCode(err) != models.RateLimited {
			s.audit(ctx, event{typ: models.AuditStepUp, err: err, userID: p.UserID, sessionID: p.SessionID, detail: strings.Join(methods, " ")})
		}
	}()
	u, err := s.signedInUser(ctx, p)
	if err != nil {
		return nil, err
	}
	raise := models.Raise{UserID: u.ID, SessionID: p.SessionID, Aal: models.AalOne, TTL: s.cfg.RefreshTTL, AccessTTL: s.cfg.AccessTTL}
	if password != nil && *password != "" {
		if err := checkPasswordBytes(*password); err != nil {
			return nil, err
		}
		if err := s.confirmOwnPassword(ctx, u, *password, errWrongPassword, nil); err != nil {
			return nil, err
		}
		methods = append(methods, models.AmrPassword)
	}
	var f *secondFactor
	if proof != nil {
		if proof.WebAuthnResponse != "" {
			f, err = s.passkeyStepUp(ctx, u.ID, proof.WebAuthnResponse)
		} else {
			f, err = s.proveSecondFactor(ctx, u.ID, *proof, nil)
		}
		if err != nil {
			return nil, err
		}
		methods = append(append(methods, f.amr...), models.AmrMFA)
		raise.Aal, raise.Mfa = models.AalTwo, f.use
		raise.Mails = s.recoveryCodeNotice(ctx, u, f)
	}
	token, tokenHash := newRefreshToken()
	raise.At, raise.Amr, raise.TokenHash = s.now(), strings.Join(methods, " "), tokenHash
	if f != nil {
		f.use.At = raise.At
	}
	sess, _, err := models.RaiseSession(ctx, s.db, raise)
	if err != nil {
		return nil, err
	}
	if len(raise.Mails) > 0 {
		s.mailQueued()
	}
	if f != nil {
		s.spent(ctx, f, u.ID, p.SessionID)
	}
	return s.grant(ctx, u, sess, token, raise.At)
}
