package models

import (
	"time"

	"gorm.io/gorm"
)

// migrateMfa adds second factors and step-up: on sessions, the level,
// methods and time of their last authentication (existing sessions are
// password sessions, authenticated when they began); on users, the
// WebAuthn user handle; and the tables of TOTP factors, recovery codes,
// passkeys and challenges. New tables and defaulted or nullable columns
// only, so the previous version runs on the result.
func migrateMfa(tx *gorm.DB) error {
	type Session struct {
		Aal      int    `gorm:"not null;default:1"`
		Amr      string `gorm:"size:64;not null;default:pwd"`
		AuthTime *time.Time
	}
	type User struct {
		WebAuthnID *string `gorm:"size:64;uniqueIndex"`
	}
	m := tx.Migrator()
	for _, f := range []string{"Aal", "Amr", "AuthTime"} {
		if !m.HasColumn(&Session{}, f) {
			if err := m.AddColumn(&Session{}, f); err != nil {
				return err
			}
		}
	}
	if err := tx.Exec(`UPDATE sessions SET auth_time = created_at WHERE auth_time IS NULL`).Error; err != nil {
		return err
	}
	if !m.HasColumn(&User{}, "WebAuthnID") {
		if err := m.AddColumn(&User{}, "WebAuthnID"); err != nil {
			return err
		}
	}
	if !m.HasIndex(&User{}, "WebAuthnID") {
		if err := m.CreateIndex(&User{}, "WebAuthnID"); err != nil {
			return err
		}
	}
	// No foreign keys, as for the account tables: deleting an account
	// deletes these rows explicitly (DeleteUser).
	type MfaFactor struct {
		ID          string    `gorm:"primaryKey;size:36"`
		UserID      string    `gorm:"size:36;not null;index"`
		Type        string    `gorm:"size:16;not null"`
		Label       string    `gorm:"size:64;not null"`
		Secret      string    `gorm:"size:255;not null"`
		CreatedAt   time.Time `gorm:"not null"`
		ConfirmedAt *time.Time
		ExpiresAt   *time.Time
		LastStep    int64 `gorm:"not null;default:0"`
		LastUsedAt  *time.Time
	}
	type RecoveryCode struct {
		ID        string    `gorm:"primaryKey;size:36"`
		UserID    string    `gorm:"size:36;not null;index"`
		Hash      string    `gorm:"size:255;not null"`
		CreatedAt time.Time `gorm:"not null"`
		UsedAt    *time.Time
	}
	type Passkey struct {
		ID              string    `gorm:"primaryKey;size:36"`
		UserID          string    `gorm:"size:36;not null;index"`
		CredentialID    string    `gorm:"size:1400;not null;uniqueIndex"`
		PublicKey       []byte    `gorm:"not null"`
		AttestationType string    `gorm:"size:32;not null;default:''"`
		Transports      string    `gorm:"size:128;not null;default:''"`
		AAGUID          []byte    `gorm:"column:aaguid"`
		SignCount       int64     `gorm:"not null;default:0"`
		BackupEligible  bool      `gorm:"not null;default:false"`
		BackedUp        bool      `gorm:"not null;default:false"`
		Label           string    `gorm:"size:64;not null"`
		CreatedAt       time.Time `gorm:"not null"`
		LastUsedAt      *time.Time
	}
	type AuthChallenge struct {
		ID        string    `gorm:"primaryKey;size:64"`
		Kind      string    `gorm:"size:24;not null"`
		UserID    *string   `gorm:"size:36;index"`
		Data      string    `gorm:"not null;default:''"`
		CreatedAt time.Time `gorm:"not null"`
		ExpiresAt time.Time `gorm:"not null;index"`
		UsedAt    *time.Time
		Failures  int `gorm:"not null;default:0"`
	}
	return tx.AutoMigrate(&MfaFactor{}, &RecoveryCode{}, &Passkey{}, &AuthChallenge{})
}
