package auth

import (
	"context"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"

	"github.com/authql/authql/models"
)

// Password length limits. The upper bound is in bytes and is checked before
// any hashing, so that a huge password cannot make one request expensive.
const (
	MinPasswordRunes = 8
	MaxPasswordBytes = 128
)

// Register creates a user with the role "user" and signs it in. It returns
// BadUserInput for an invalid email or password or a taken email, and
// EmailNotVerified instead of tokens when verified emails are required
// (see registerUnverified), and
// Forbidden when sign-up is disabled, ServiceUnavailable when the audit
// log cannot take its record (see auditRoom) or the database is down.
func (s *Service) Register(ctx context.Context, email, password string) (_ *Grant, err error) {
	if !s.cfg.Signup {
		return nil, models.Errorf(models.Forbidden, "sign-up is disabled")
	}
	if err := s.auditRoom(); err != nil {
		return nil, err
	}
	client := ClientFrom(ctx).limitKey()
	if _, err := s.take(ctx, s.now(), []string{s.limitKey("register", client)}, []Rate{s.cfg.Limits.Register}); err != nil {
		return nil, err
	}
	if s.cfg.RequireVerifiedEmail {
		return nil, s.registerUnverified(ctx, email, password)
	}
	// The user, its roles and its first session commit together or not at
	// all: a registration that fails after the account was inserted would
	// leave an account its owner cannot sign in to, and its email taken.
	ns, token := s.newSession(ctx, nil)
	u, err := s.createUser(ctx, email, password, []string{models.RoleUser}, ns)
	if err != nil {
		if !errors.Is(err, errHashShare) { // audited as a RATE_LIMITED event
			s.audit(ctx, event{typ: models.AuditRegister, err: err})
		}
		return nil, err
	}
	g, err := s.grant(ctx, u, ns.Session, token, ns.Session.CreatedAt)
	s.audit(ctx, event{typ: models.AuditRegister, err: err, userID: u.ID, sessionID: g.sessionID()})
	return g, err
}

// createUser checks the email and password, hashes the password and
// inserts the user with roles and, when first is set, its first session in
// the same transaction.
func (s *Service) createUser(ctx context.Context, email, password string, roles []string, first *models.NewSession) (*models.User, error) {
	email, err := models.NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	password, err = newPassword(password)
	if err != nil {
		return nil, err
	}
	var hash string
	if perr := s.pool.do(ctx, func() { hash, err = s.hasher.Hash(password) }); perr != nil {
		return nil, perr
	}
	if err != nil {
		return nil, err
	}
	u := &models.User{ID: uuid.NewString(), Email: email, PasswordHash: hash}
	if err := models.CreateUser(ctx, s.db, u, roles, first); err != nil {
		return nil, err
	}
	return u, nil
}

// checkPasswordBytes returns BadUserInput for a password over
// MaxPasswordBytes, or one that is not valid UTF-8 or holds a NUL: no one
// types those, and the forms of such a password are not well defined (a
// JSON decoder or a terminal may turn invalid bytes into U+FFFD, making
// different passwords one). It is checked before any hashing.
func checkPasswordBytes(p string) error {
	switch {
	case len(p) > MaxPasswordBytes:
		return models.Errorf(models.BadUserInput, "password must be at most %d bytes", MaxPasswordBytes)
	case !utf8.ValidString(p):
		return models.Errorf(models.BadUserInput, "password is not valid UTF-8")
	case strings.IndexByte(p, 0) >= 0:
		return models.Errorf(models.BadUserInput, "password contains a NUL character")
	}
	return nil
}

// newPassword returns the form a new password is hashed in, NFC, or
// BadUserInput unless it passes checkPasswordBytes and has at least
// MinPasswordRunes characters. Every password set (register, user add, the
// admin of AUTH_ADMIN_EMAIL, any later change) goes through it.
func newPassword(p string) (string, error) {
	if err := checkPasswordBytes(p); err != nil {
		return "", err
	}
	p = norm.NFC.String(p)
	if utf8.RuneCountInString(p) < MinPasswordRunes {
		return "", models.Errorf(models.BadUserInput, "password must be at least %d characters", MinPasswordRunes)
	}
	return p, nil
}
