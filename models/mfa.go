package models

import (
	"time"
)

// Authenticator assurance levels (NIST 800-63B), as sessions record them.
const (
	AalOne = 1 // one factor: a password
	AalTwo = 2 // two factors, or a passkey with user verification
)

// Authentication method references (RFC 8176 §2), as sessions and access
// tokens carry them. AmrRecoveryCode has no RFC 8176 value: a recovery code
// is a look-up secret (800-63B §5.1.2), neither an OTP generator nor a key,
// so it gets a value of its own rather than pass for one of those.
const (
	AmrPassword     = "pwd"
	AmrOTP          = "otp"  // a TOTP code
	AmrHardwareKey  = "hwk"  // a device-bound passkey
	AmrSoftwareKey  = "swk"  // a synced (backed-up) passkey
	AmrUser         = "user" // user verification by the authenticator
	AmrMFA          = "mfa"  // more than one factor
	AmrRecoveryCode = "rc"
)

// MFA factor types.
const FactorTOTP = "TOTP"

// MfaFactor is a second factor of a user: a TOTP seed. It is pending
// (ConfirmedAt nil) from enrollTotp until confirmTotp, and lapses at
// ExpiresAt unless confirmed.
type MfaFactor struct {
	ID     string `gorm:"primaryKey;size:36"`
	UserID string `gorm:"size:36;not null;index"`
	Type   string `gorm:"size:16;not null"`
	Label  string `gorm:"size:64;not null"`
	// Secret is the TOTP seed, sealed under AUTH_ENCRYPTION_KEY when set
	// (see auth/secret), with the factor's id as associated data.
	Secret      string    `gorm:"size:255;not null"`
	CreatedAt   time.Time `gorm:"not null"`
	ConfirmedAt *time.Time
	ExpiresAt   *time.Time
	// LastStep is the last TOTP time step accepted (RFC 6238 §5.2: a code
	// is accepted once): a code is accepted only for a later step, by a
	// conditional update in the transaction that acts on it.
	LastStep   int64 `gorm:"not null;default:0"`
	LastUsedAt *time.Time
}

// RecoveryCode is one single-use recovery code of a user, stored only as
// its argon2id hash. A batch of codes shares one salt (see auth's
// recovery.go), so that checking a code costs one hash, not one per code.
type RecoveryCode struct {
	ID        string    `gorm:"primaryKey;size:36"`
	UserID    string    `gorm:"size:36;not null;index"`
	Hash      string    `gorm:"size:255;not null"`
	CreatedAt time.Time `gorm:"not null"`
	UsedAt    *time.Time
}

// Passkey is a WebAuthn credential of a user.
type Passkey struct {
	ID     string `gorm:"primaryKey;size:36"`
	UserID string `gorm:"size:36;not null;index"`
	// CredentialID is the credential's id, base64url without padding.
	CredentialID    string `gorm:"size:1400;not null;uniqueIndex"`
	PublicKey       []byte `gorm:"not null"`
	AttestationType string `gorm:"size:32;not null;default:''"`
	Transports      string `gorm:"size:128;not null;default:''"` // separated by spaces
	AAGUID          []byte `gorm:"column:aaguid"`
	// SignCount is the authenticator's signature counter as last seen; a
	// later assertion must show a higher one unless both are zero.
	SignCount      int64     `gorm:"not null;default:0"`
	BackupEligible bool      `gorm:"not null;default:false"`
	BackedUp       bool      `gorm:"not null;default:false"`
	Label          string    `gorm:"size:64;not null"`
	CreatedAt      time.Time `gorm:"not null"`
	LastUsedAt     *time.Time
}

// Challenge kinds.
const (
	ChallengeMfaLogin        = "mfa_login"        // login's MFA_REQUIRED
	ChallengePasskeyRegister = "passkey_register" // beginPasskeyRegistration
	ChallengePasskeyLogin    = "passkey_login"    // beginPasskeyLogin
)

// AuthChallenge is a pending step of a sign-in or a passkey ceremony. Its
// ID is the SHA-256 (hex) of the opaque id the client holds, so a read of
// the database yields none that can be answered. It is single use
// (UsedAt), lapses at ExpiresAt, and dies after MaxChallengeFailures wrong
// answers.
type AuthChallenge struct {
	ID     string  `gorm:"primaryKey;size:64"`
	Kind   string  `gorm:"size:24;not null"`
	UserID *string `gorm:"size:36;index"`
	// Data is what the next step needs: the WebAuthn session data (JSON),
	// a passkey's label.
	Data      string    `gorm:"not null;default:''"`
	CreatedAt time.Time `gorm:"not null"`
	ExpiresAt time.Time `gorm:"not null;index"`
	UsedAt    *time.Time
	Failures  int `gorm:"not null;default:0"`
}

// MaxChallengeFailures is the number of wrong answers that end a challenge.
const MaxChallengeFailures = 5
