package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/authql/authql/models"
)

// stepUp decides the aal and maxAge of rule for the principal's session as
// it is now, not as its access token says: a reauthenticate applies to the
// very next request, with the token the client already holds. It costs a
// query or two, so only fields that ask for it pay them (the mutations that
// manage credentials).
//
// aal 2 is "the highest level the user has" (Kratos's highest_available):
// a user without a second factor passes at level 1, since asking for a
// factor they cannot give would only lock them out of enrolling one.
//
// A failure is InsufficientUserAuthentication (RFC 9470) with what is
// missing in its extensions: acrValues "aal2" and/or maxAge in seconds.
func (s *Service) stepUp(ctx context.Context, p *Principal, rule Rule) error {
	var sess *models.Session
	session := func() (*models.Session, error) {
		var err error
		if sess == nil {
			sess, err = models.SessionAuthn(ctx, s.db, p.UserID, p.SessionID, s.now())
		}
		return sess, err
	}
	ext := map[string]any{}
	var msg string
	if rule.MaxAge > 0 {
		sess, err := session()
		if err != nil {
			return err
		}
		if s.now().Sub(sess.AuthenticatedAt()) > rule.MaxAge {
			ext["maxAge"] = int(rule.MaxAge / time.Second)
			msg = fmt.Sprintf("this operation requires a sign-in within the last %d seconds", int(rule.MaxAge/time.Second))
		}
	}
	if rule.AAL >= models.AalTwo {
		// The factors first: most users have none, and then the session
		// need not be read at all.
		m, err := models.UserMfaMethods(ctx, s.db, p.UserID)
		if err != nil {
			return err
		}
		if m.Any() {
			sess, err := session()
			if err != nil {
				return err
			}
			if sess.Aal < models.AalTwo {
				ext["acrValues"] = "aal2"
				msg = "this operation requires a second factor"
			}
		}
	}
	if len(ext) == 0 {
		return nil
	}
	if len(ext) == 2 {
		msg = fmt.Sprintf("this operation requires a second factor within the last %d seconds", int(rule.MaxAge/time.Second))
	}
	return &models.Error{Code: models.InsufficientUserAuthentication, Message: msg + ": call reauthenticate, then retry", Extensions: ext}
}
