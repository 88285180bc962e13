package auth

import (
	"context"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/models"
)

// TotpEnrollment is a TOTP factor waiting for its first code.
type TotpEnrollment struct {
	FactorID  string
	Secret    string // base32, no padding
	URI       string // otpauth://
	QRCode    string // data:image/svg+xml;base64,…
	ExpiresAt time.Time
}

// MfaEnrollment is a confirmed TOTP factor, with the recovery codes of a
// first factor and the caller's session raised to level 2.
type MfaEnrollment struct {
	Factor        *models.MfaFactor
	RecoveryCodes []string // nil unless first factor
	Session       *Grant
}

// TOTP enrollment: its lifetime, and its label's default and bound (in
// characters; the column holds 64).
const (
	totpEnrollTTL     = 10 * time.Minute
	defaultTotpLabel  = "Authenticator app"
	MaxMfaFactorLabel = 64
)

var errWrongTotpCode = models.Errorf(models.BadUserInput, "wrong code")

// EnrollTotp begins a TOTP factor for the principal: a new seed (160 bits
// from the CSPRNG), stored sealed under AUTH_ENCRYPTION_KEY when set,
// pending until ConfirmTotp within 10 minutes. It replaces the principal's
// earlier pending enrollments. label (default "Authenticator app") must be
// valid UTF-8 of at most MaxMfaFactorLabel characters without control
// characters: BadUserInput otherwise, or when the user has
// models.MaxTotpFactors confirmed already. Unauthenticated when the
// account ended or is disabled.
func (s *Service) EnrollTotp(ctx context.Context, p *Principal, label string) (*TotpEnrollment, error) {
	label, err := factorLabel(label, defaultTotpLabel)
	if err != nil {
		return nil, err
	}
	u, err := s.signedInUser(ctx, p)
	if err != nil {
		return nil, err
	}
	now := s.now()
	seed := newTotpSeed()
	id := uuid.NewString()
	sealed, err := s.sealTotpSeed(id, seed)
	if err != nil {
		return nil, err
	}
	exp := now.Add(totpEnrollTTL)
	f := &models.MfaFactor{ID: id, UserID: u.ID, Type: models.FactorTOTP, Label: label, Secret: sealed, CreatedAt: now, ExpiresAt: &exp}
	if err := models.EnrollTotp(ctx, s.db, f); err != nil {
		return nil, err
	}
	uri := totpURI(s.cfg.Issuer, u.Email, seed)
	qr, err := qrCodeDataURI(uri)
	if err != nil {
		return nil, err
	}
	return &TotpEnrollment{FactorID: id, Secret: totpEncoding.EncodeToString(seed), URI: uri, QRCode: qr, ExpiresAt: exp}, nil
}

// factorLabel returns the label to store: trimmed, def when empty, or
// BadUserInput for one that is not valid UTF-8, holds a control character
// (a label is shown in lists and mails' neighbours; a newline or an escape
// has no business there) or is too long.
func factorLabel(label, def string) (string, error) {
	l := strings.TrimSpace(label)
	switch {
	case !utf8.ValidString(l) || strings.ContainsFunc(l, unicode.IsControl):
		return "", models.Errorf(models.BadUserInput, "the label is not valid UTF-8 or contains a control character")
	case utf8.RuneCountInString(l) > MaxMfaFactorLabel:
		return "", models.Errorf(models.BadUserInput, "the label must be at most %d characters", MaxMfaFactorLabel)
	case l == "":
		return def, nil
	}
	return l, nil
}

// ConfirmTotp confirms the principal's pending TOTP factor with a code of
// it (BadUserInput for a wrong code, or for an enrollment unknown, of
// someone else, lapsed or confirmed already; a wrong code counts against
// Limits.MfaAccount, RateLimited past it). The code counts as used: it
// cannot sign in afterwards. In one transaction with the confirmation:
// with the user's first factor, ten new recovery codes (returned this
// once) replace any earlier ones; the caller's session is raised to level
// 2 (authenticated now, refresh token rotated); with signOutOthers every
// other session of the user ends; an mfa_changed notice is queued.
func (s *Service) ConfirmTotp(ctx context.Context, p *Principal, factorID, code string, signOutOthers bool) (_ *MfaEnrollment, err error) {
	if err := s.auditRoom(); err != nil {
		return nil, err
	}
	// Every failure is an audit row: an unknown enrollment in a loop is
	// limited per user (see limitFailures); wrong codes are limited per
	// account as well (Limits.MfaAccount).
	done, err := s.limitFailures(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	defer func() { done(err) }()
	e := event{typ: models.AuditMfaEnrolled, userID: p.UserID, sessionID: p.SessionID}
	defer func() {
		if !isHashShare(err) { // audited as a RATE_LIMITED event
			e.err = err
			s.audit(ctx, e)
		}
	}()
	u, err := s.signedInUser(ctx, p)
	if err != nil {
		return nil, err
	}
	now := s.now()
	f, err := models.PendingTotp(ctx, s.db, u.ID, factorID, now)
	if err != nil {
		return nil, err
	}
	step, err := s.checkEnrollmentCode(ctx, now, u.ID, f, code)
	if err != nil {
		return nil, err
	}
	codes, hashes, err := s.firstFactorCodes(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	token, tokenHash := newRefreshToken()
	var first bool
	sess, revoked, err := models.RaiseSession(ctx, s.db, models.Raise{
		UserID: u.ID, SessionID: p.SessionID,
		Aal: models.AalTwo, Amr: strings.Join([]string{models.AmrPassword, models.AmrOTP, models.AmrMFA}, " "), At: now,
		TokenHash: tokenHash, TTL: s.cfg.RefreshTTL, AccessTTL: s.cfg.AccessTTL,
		SignOutOthers: signOutOthers, Revoke: s.revocation(now),
		Apply: func(tx *gorm.DB) (err error) {
			first, err = models.ConfirmTotp(tx, models.TotpConfirmation{UserID: u.ID, FactorID: f.ID, Step: step, At: now, RecoveryHashes: hashes})
			return err
		},
		Mails: s.mfaNotice(mail.KindMfaChanged, u, mail.Vars{Change: changeTotpAdded, At: now, IP: ClientFrom(ctx).IP}),
	})
	s.forgetUser(u.ID) // its factors (aal_max); even on error: the outcome may be unknown
	if err != nil {
		return nil, err
	}
	s.addRevoked(revoked)
	s.mailQueued()
	e.detail = f.ID
	if !first {
		codes = nil
	}
	g, err := s.grant(ctx, u, sess, token, now)
	if err != nil {
		return nil, err
	}
	f.ConfirmedAt, f.ExpiresAt, f.LastStep = &now, nil, step
	return &MfaEnrollment{Factor: f, RecoveryCodes: codes, Session: g}, nil
}

// checkEnrollmentCode returns the step of code among f's, counting the
// attempt against the account's second-factor limit (given back when the
// code is right).
func (s *Service) checkEnrollmentCode(ctx context.Context, now time.Time, userID string, f *models.MfaFactor, code string) (int64, error) {
	give, err := s.mfaAccountLimit(ctx, now, userID)
	if err != nil {
		return 0, err
	}
	seed, err := s.openTotpSeed(f)
	if err != nil {
		give() // nothing was checked
		return 0, err
	}
	step, ok := totpMatch(seed, strings.TrimSpace(code), now, f.LastStep)
	if !ok {
		return 0, errWrongTotpCode
	}
	give()
	return step, nil
}

// firstFactorCodes returns a new batch of recovery codes and their hashes
// when the user has no second factor yet (the factor being confirmed will
// be the first), and none otherwise. The hashes are made here, on the hash
// pool, before the transaction: ten argon2id runs must not hold it open.
// The transaction decides again whether the factor is the first (see
// models.ConfirmTotp).
func (s *Service) firstFactorCodes(ctx context.Context, userID string) (codes, hashes []string, err error) {
	m, err := models.UserMfaMethods(ctx, s.db, userID)
	if err != nil || m.Any() {
		return nil, nil, err
	}
	codes = newRecoveryCodes()
	if err := s.pool.do(ctx, func() { hashes = s.hasher.hashRecoveryCodes(codes) }); err != nil {
		return nil, nil, err
	}
	return codes, hashes, nil
}
