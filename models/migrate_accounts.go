package models

import (
	"time"

	"gorm.io/gorm"
)

// migrateAccounts adds what the account flows need: on users, whether the
// email is verified and whether the account is disabled; the mailed
// requests (password reset, email verification, email change); and the
// outbox of mails waiting for delivery. New tables and defaulted or
// nullable columns only, so the previous version runs on the result.
//
// Existing accounts start unverified: nothing proved that their owners
// hold their addresses. With AUTH_REQUIRE_VERIFIED_EMAIL off (the default)
// that changes nothing for them.
func migrateAccounts(tx *gorm.DB) error {
	type User struct {
		EmailVerified  bool `gorm:"not null;default:false"`
		DisabledAt     *time.Time
		DisabledReason *string `gorm:"size:512"`
	}
	m := tx.Migrator()
	for _, f := range []string{"EmailVerified", "DisabledAt", "DisabledReason"} {
		if m.HasColumn(&User{}, f) {
			continue
		}
		if err := m.AddColumn(&User{}, f); err != nil {
			return err
		}
	}
	// No foreign keys on either table: deleting an account deletes its rows
	// explicitly (DeleteUser), and a request made for an email without an
	// account has no user at all.
	type EmailRequest struct {
		ID          string     `gorm:"primaryKey;size:36"`
		Kind        string     `gorm:"size:16;not null"`
		UserID      *string    `gorm:"size:36;index"`
		Email       string     `gorm:"size:320;not null"`
		TokenHash   string     `gorm:"size:64;not null;uniqueIndex"`
		CodeMAC     string     `gorm:"size:64;not null"`
		CreatedAt   time.Time  `gorm:"not null"`
		ExpiresAt   time.Time  `gorm:"not null;index"`
		UsedAt      *time.Time ``
		FailedCodes int        `gorm:"not null;default:0"`
	}
	type OutboxMail struct {
		ID            string     `gorm:"primaryKey;size:36"`
		CreatedAt     time.Time  `gorm:"not null"`
		Kind          string     `gorm:"size:32;not null"`
		Status        string     `gorm:"size:16;not null;index:idx_outbox_mails_due,priority:1"`
		UserID        *string    `gorm:"size:36;index"`
		RequestID     *string    `gorm:"size:36"`
		To            string     `gorm:"size:320;not null"`
		Message       string     `gorm:"not null"`
		Attempts      int        `gorm:"not null;default:0"`
		NextAttemptAt time.Time  `gorm:"not null;index:idx_outbox_mails_due,priority:2"`
		SentAt        *time.Time ``
		LastError     *string    `gorm:"size:512"`
	}
	return tx.AutoMigrate(&EmailRequest{}, &OutboxMail{})
}
