package auth

import (
	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/models"
)

// What changed, for the mfa_changed notice (mail.Vars.Change). Fixed
// phrases rather than the factor's label: the label is the user's text,
// and the notice is sent exactly when someone else may hold the account,
// so it must not carry their words to the owner.
const (
	changeTotpAdded      = "an authenticator app was added"
	changeTotpRemoved    = "an authenticator app was removed"
	changePasskeyAdded   = "a passkey was added"
	changePasskeyRemoved = "a passkey was removed"
	changeRecoveryCodes  = "new recovery codes were generated, the earlier ones no longer work"
)

// mfaNotice is the notice of kind to u's address, to be queued in the
// transaction of the change, or none when mail is not configured. A
// notice that cannot be composed is logged and dropped, never failing the
// change: the templates were tried at start, and refusing to remove a
// factor because a mail failed would keep the account as its owner no
// longer wants it. Vars left zero get the Composer's defaults (AppURL,
// Email, At now); callers set IP: ClientFrom(ctx).IP for a request.
func (s *Service) mfaNotice(kind mail.Kind, u *models.User, vars mail.Vars) []*models.OutboxMail {
	if s.cfg.Mail == nil {
		return nil
	}
	m, err := s.cfg.Mail.Compose(kind, u.Email, vars)
	if err != nil {
		s.log.Error("mfa notice not composed", "kind", kind, "user", u.ID, "err", err)
		return nil
	}
	m.UserID = &u.ID
	return []*models.OutboxMail{m}
}
