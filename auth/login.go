package auth

import (
	"context"
	"errors"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/authql/authql/models"
)

var errBadCredentials = models.Unauthenticatedf(models.ReasonInvalidCredentials, "invalid email or password")

// Login checks an email and password and starts a session. Every failure
// returns the same Unauthenticated error, after the same time (see
// failTiming), whether or not the email has an account and whatever its
// hash's cost. An email that NormalizeEmail refuses, and a password over
// MaxPasswordBytes or with bytes no password has (see checkPasswordBytes),
// are BadUserInput, refused before hashing. Past the failed-login limits of
// the account and client, or when no hashing worker frees up in time, it
// returns RateLimited without checking the password. The right password
// of a disabled account is AccountDisabled. The right password of a user
// with a second factor is MfaRequired, with a challenge to answer with
// VerifyMfa (see secondFactorRequired), and no session. While the audit log cannot
// take its record (see auditRoom) it returns ServiceUnavailable.
func (s *Service) Login(ctx context.Context, email, password string) (*Grant, error) {
	if err := checkPasswordBytes(password); err != nil {
		return nil, err
	}
	email, err := models.NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if err := s.auditRoom(); err != nil {
		return nil, err
	}
	now, client := s.now(), ClientFrom(ctx).limitKey()
	// The attempt is counted before the password is checked, so that
	// concurrent requests cannot all slip under the limit, and refused
	// attempts are not checked at all: past the limit, the right password
	// fails like a wrong one. The account key is the email as typed, known
	// or not, so the answer does not reveal whether an account exists.
	giveBack, err := s.take(ctx, now,
		[]string{s.limitKey("login-account", email, client), s.limitKey("login-client", client)},
		[]Rate{s.cfg.Limits.LoginAccount, s.cfg.Limits.LoginClient})
	if err != nil {
		return nil, err
	}
	u, newHash, err := s.checkPassword(ctx, email, password)
	if err != nil {
		if models.ErrorCode(err) == models.RateLimited {
			giveBack() // the password was never checked
		}
		if errors.Is(err, errHashShare) {
			// A flood from one client: its refusals are coalesced in one
			// RATE_LIMITED event (see hashPool.refused), not a row each.
			return nil, err
		}
		// The user when the email has an account; never the email typed,
		// which is at times a password typed in the wrong field.
		s.audit(ctx, event{typ: models.AuditLogin, err: err, userID: userIDOf(u)})
		return nil, err
	}
	// Only failures count: a successful login gives its attempt back.
	giveBack()
	if err := s.refuseDisabled(ctx, u); err != nil {
		return nil, err
	}
	if err := s.unverified(u); err != nil {
		s.audit(ctx, event{typ: models.AuditLogin, err: err, userID: u.ID})
		return nil, err
	}
	if err := s.secondFactorRequired(ctx, u, newHash); err != nil {
		return nil, err // MfaRequired with its challenge, audited there
	}
	u.LastLoginAt = &now
	g, err := s.startSession(ctx, u, &models.LoginStamp{At: now, NewHash: newHash})
	s.forgetUser(u.ID) // its last login changed (and perhaps its hash)
	s.audit(ctx, event{typ: models.AuditLogin, err: err, userID: u.ID, sessionID: g.sessionID()})
	return g, err
}

// checkPassword returns the user with the email if password is theirs and,
// when its stored hash is outdated, a new hash to store. Hashing runs on the
// bounded pool, all of one login's on one worker. When the email has an
// account, the user comes with an error too, for the audit log.
//
// Passwords are hashed in NFC (see newPassword), so that "é" typed as one
// code point or as "e" and a combining accent is one password. A hash made
// before that holds the form typed then: when the NFC form fails and the
// typed form differs, the typed form is tried too and, if it matches, the
// hash is replaced by one of the NFC form. A wrong password costs a second
// verification only then, for unknown emails alike, and every failure is
// padded to the same time (see failTiming).
func (s *Service) checkPassword(ctx context.Context, email, typed string) (*models.User, string, error) {
	password := norm.NFC.String(typed)
	forms := []string{password}
	if typed != password {
		forms = append(forms, typed)
	}
	u, newHash, spent, err := s.verifyLogin(ctx, email, forms)
	if err == errBadCredentials {
		s.timing.pad(ctx, len(forms), spent)
	}
	return u, newHash, err
}

// verifyLogin is checkPassword but the padding; it also returns how long
// its verifications took.
func (s *Service) verifyLogin(ctx context.Context, email string, forms []string) (_ *models.User, newHash string, spent time.Duration, _ error) {
	u, err := models.UserByEmail(ctx, s.db, email)
	if models.ErrorCode(err) == models.NotFound {
		if err := s.pool.do(ctx, func() {
			for _, p := range forms {
				d, _, _, _ := s.verify(s.hasher.dummy, p)
				spent += d
			}
		}); err != nil {
			return nil, "", 0, err
		}
		return nil, "", spent, errBadCredentials
	} else if err != nil {
		return nil, "", 0, err
	}
	var ok, rehash bool
	if perr := s.pool.do(ctx, func() {
		for i, p := range forms {
			var d time.Duration
			d, ok, rehash, err = s.verify(u.PasswordHash, p)
			spent += d
			if ok || err != nil {
				rehash = rehash || i > 0 // a hash of the form typed, not NFC
				break
			}
		}
		if ok && rehash && err == nil {
			newHash, err = s.hasher.Hash(forms[0])
		}
	}); perr != nil {
		return u, "", 0, perr
	}
	if err != nil {
		s.log.ErrorContext(ctx, "password hash", "user", u.ID, "err", err)
		return u, "", spent, errBadCredentials
	}
	if !ok {
		return u, "", spent, errBadCredentials
	}
	return u, newHash, 0, nil
}

// verify is Hasher.Verify, on the caller's worker, timed: how long it took
// is recorded for failTiming and returned.
func (s *Service) verify(stored, password string) (d time.Duration, ok, rehash bool, err error) {
	start := time.Now()
	ok, rehash, err = s.hasher.Verify(stored, password)
	d = time.Since(start)
	class, _ := hashClass(stored)
	s.timing.record(class, d)
	return d, ok, rehash, err
}
