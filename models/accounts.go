package models

import "time"

// Kinds of EmailRequest.
const (
	RequestReset       = "reset"
	RequestVerify      = "verify"
	RequestEmailChange = "email_change"
)

// EmailRequest is one mailed secret: a link token and a short code that
// prove the holder reads the mail sent to Email. Neither is stored: the
// token as its hex SHA-256 (TokenHash), the code as an HMAC bound to the
// request's ID (CodeMAC), so a read of the database yields no working link
// or code. Both are single use (UsedAt). UserID is nil for a password reset
// asked for an email without an account: the row is written all the same,
// so that such a request costs what a real one does, and it can never be
// used (no token or code hashes to its random values).
type EmailRequest struct {
	ID     string  `gorm:"primaryKey;size:36"`
	Kind   string  `gorm:"size:16;not null"`
	UserID *string `gorm:"size:36;index"`
	// Email is where the request was mailed: the account's address for a
	// reset or a verification (a verification proves that address only, so
	// it fails once the email has changed), the new address for an email
	// change; "" when UserID is nil.
	Email       string    `gorm:"size:320;not null"`
	TokenHash   string    `gorm:"size:64;not null;uniqueIndex"`
	CodeMAC     string    `gorm:"size:64;not null"`
	CreatedAt   time.Time `gorm:"not null"`
	ExpiresAt   time.Time `gorm:"not null;index"`
	UsedAt      *time.Time
	FailedCodes int `gorm:"not null;default:0"`
}

// Statuses of OutboxMail.
const (
	MailQueued     = "queued"     // waiting for its (next) attempt
	MailSent       = "sent"       // delivered; Message wiped
	MailFailed     = "failed"     // given up after the last retry; Message wiped
	MailSuppressed = "suppressed" // never sent: the twin of a real mail for an address without an account
)

// OutboxMail is one mail waiting for the background sender (see the mail
// package), queued in the transaction of the change that sends it, so a
// mail goes out if and only if its change committed, and no request waits
// on SMTP. Message is the whole RFC 5322 message, sealed under
// AUTH_ENCRYPTION_KEY when one is set (it holds a link's secret), and
// wiped once the mail is sent or given up.
type OutboxMail struct {
	ID            string    `gorm:"primaryKey;size:36"`
	CreatedAt     time.Time `gorm:"not null"`
	Kind          string    `gorm:"size:32;not null"`
	Status        string    `gorm:"size:16;not null;index:idx_outbox_mails_due,priority:1"`
	UserID        *string   `gorm:"size:36;index"` // deleting the account deletes its queued mails
	RequestID     *string   `gorm:"size:36"`
	To            string    `gorm:"size:320;not null"`
	Message       string    `gorm:"not null"`
	Attempts      int       `gorm:"not null;default:0"`
	NextAttemptAt time.Time `gorm:"not null;index:idx_outbox_mails_due,priority:2"`
	SentAt        *time.Time
	LastError     *string `gorm:"size:512"`
}
