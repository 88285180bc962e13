package models

import (
	"strings"
	"time"
)

// Built-in roles. Role names are lower case; the API compares them
// case-insensitively by lowering them first.
const (
	RoleAdmin = "admin"
	RoleUser  = "user"
	// RoleService is for the accounts of other services that read the
	// revocation feed (GET /events): it holds PermEventsRead alone.
	RoleService = "service"
)

// User is an account. Email is stored as NormalizeEmail returns it, so the
// unique index makes one account per person's address, however typed.
type User struct {
	ID           string     `gorm:"primaryKey;size:36;index:idx_users_page,priority:2"`
	Email        string     `gorm:"size:320;not null;uniqueIndex"`
	PasswordHash string     `gorm:"size:255;not null"`
	Roles        []Role     `gorm:"many2many:user_roles;constraint:OnDelete:CASCADE"`
	CreatedAt    time.Time  `gorm:"not null;index:idx_users_page,priority:1"` // the list's order (see Users)
	UpdatedAt    time.Time  `gorm:"not null"`
	LastLoginAt  *time.Time ``
	// EmailVerified is set when the owner of Email proved it by a mailed
	// link or code (or by a password reset, which is mailed there too).
	EmailVerified bool `gorm:"not null;default:false"`
	// DisabledAt, when set, refuses the account: its tokens at their next
	// request, its refresh tokens, and its logins (ACCOUNT_DISABLED).
	DisabledAt *time.Time
	// DisabledReason is the admin's note, shown to admins only.
	DisabledReason *string `gorm:"size:512"`
	// WebAuthnID is the user handle of the user's passkeys: random, made
	// at the first registration, so that an authenticator never learns
	// the account's id (WebAuthn §14.6.1).
	WebAuthnID *string `gorm:"size:64;uniqueIndex"`
}

// Disabled reports whether the account is disabled.
func (u *User) Disabled() bool { return u.DisabledAt != nil }

// RoleNames returns the names of the user's roles, sorted as loaded.
func (u *User) RoleNames() []string {
	names := make([]string, len(u.Roles))
	for i, r := range u.Roles {
		names[i] = r.Name
	}
	return names
}

// HasRole reports whether the user has the named (lower-case) role.
func (u *User) HasRole(name string) bool {
	for _, r := range u.Roles {
		if r.Name == name {
			return true
		}
	}
	return false
}

// Role is a named set of permissions.
type Role struct {
	Name        string       `gorm:"primaryKey;size:64"`
	Permissions []Permission `gorm:"many2many:role_permissions;constraint:OnDelete:CASCADE"`
}

// PermissionNames returns the names of the role's permissions.
func (r *Role) PermissionNames() []string {
	names := make([]string, len(r.Permissions))
	for i, p := range r.Permissions {
		names[i] = p.Name
	}
	return names
}

// Permission is a capability that roles grant, such as "users:read".
type Permission struct {
	Name string `gorm:"primaryKey;size:128"`
}

// Session is one sign-in of a user, continued by refresh-token rotation.
// ExpiresAt slides forward with every rotation; RevokedAt ends it for good.
type Session struct {
	ID         string    `gorm:"primaryKey;size:36"`
	UserID     string    `gorm:"size:36;not null;index"`
	User       *User     `gorm:"constraint:OnDelete:CASCADE"`
	CreatedAt  time.Time `gorm:"not null"`
	LastUsedAt time.Time `gorm:"not null"`
	ExpiresAt  time.Time `gorm:"not null;index"`
	RevokedAt  *time.Time
	UserAgent  string `gorm:"size:512"`
	IP         string `gorm:"size:64"`
	// AccessExpiresAt is the latest expiry of any access token issued for
	// the session (set when it is created and by each rotation, never moved
	// back): a revocation of the session lasts at least until then, whatever
	// the access-token lifetime is configured to now. Nil for sessions
	// created before it was recorded.
	AccessExpiresAt *time.Time
	// Aal is the authenticator assurance level the session proved: 1 for
	// one factor, 2 for two (or a passkey with user verification). Amr is
	// how it last authenticated, RFC 8176 method values separated by
	// spaces, and AuthTime when (nil only for sessions made before they
	// were recorded, whose login was CreatedAt). A reauthentication
	// changes all three in place; refreshes carry them into each access
	// token.
	Aal      int    `gorm:"not null;default:1"`
	Amr      string `gorm:"size:64;not null;default:pwd"`
	AuthTime *time.Time
}

// AuthenticatedAt is when the session last authenticated.
func (s *Session) AuthenticatedAt() time.Time {
	if s.AuthTime != nil {
		return *s.AuthTime
	}
	return s.CreatedAt
}

// Methods returns the session's amr values.
func (s *Session) Methods() []string {
	if s.Amr == "" {
		return []string{AmrPassword}
	}
	return strings.Fields(s.Amr)
}

// RefreshToken is one refresh token of a session. ID is the hex SHA-256 of
// the token: the database never holds the token itself, so a read of the
// database does not yield usable tokens. RotatedAt is set when the token is
// exchanged (or spent); presenting it again after that is a retry, a
// concurrent presentation or reuse (see RotateRefreshToken).
type RefreshToken struct {
	ID        string    `gorm:"primaryKey;size:64"`
	SessionID string    `gorm:"size:36;not null;index"`
	Session   *Session  `gorm:"constraint:OnDelete:CASCADE"`
	CreatedAt time.Time `gorm:"not null"`
	ExpiresAt time.Time `gorm:"not null;index"`
	RotatedAt *time.Time
	// ParentID is the hash of the token this one was exchanged for; nil for
	// a session's first token (and tokens made before it was recorded).
	ParentID *string `gorm:"size:64"`
	// SpentAt is set, with RotatedAt, when the token was never used and its
	// parent was presented again after the grace interval: the parent's
	// holder never got this token (its answer was lost), so it is retired
	// unused, and presenting it later is reuse.
	SpentAt *time.Time
}

// Revocation records a revoked session id or access-token id (jti) until
// every access token it could match has expired.
type Revocation struct {
	ID        string    `gorm:"primaryKey;size:64"`
	ExpiresAt time.Time `gorm:"not null;index"`
}

// Setting is a small persisted value, such as the generated signing key.
type Setting struct {
	Name  string `gorm:"primaryKey;size:64"`
	Value string `gorm:"size:1024;not null"`
}
