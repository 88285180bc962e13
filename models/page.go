package models

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Page sizes of lists.
const (
	DefaultPageSize = 50
	// MaxPageSize bounds one page, so that one request cannot make the
	// server load and serialize a whole table.
	MaxPageSize = 500
)

// Cursor is a position in a list ordered by a time and an id: the users
// (by CreatedAt, ID) or the audit log (by At, ID, newest first). A page
// after it starts with the next row in that order. ID breaks ties, so that
// rows of the same instant are neither skipped nor repeated from one page
// to the next.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// cursorVersion is the first byte of an encoded cursor, so that the format
// can change without old cursors being misread.
const cursorVersion = 1

// cursorLen is the length of an encoded cursor: the version, the creation
// time in Unix nanoseconds, and the 16 bytes of the UUID.
const cursorLen = 1 + 8 + 16

// Cursor returns the opaque cursor of u's position in the list of users,
// for the client to pass back as `after`. It encodes only what the user's
// createdAt and id already show; it is opaque so that clients do not come
// to rely on its form.
func (u *User) Cursor() string { return encodeCursor(u.CreatedAt, u.ID) }

// encodeCursor encodes a position (a time and a UUID) as a cursor.
func encodeCursor(at time.Time, uuidID string) string {
	id, err := uuid.Parse(uuidID)
	if err != nil {
		// Every user and audit event id is a UUID; an empty cursor would
		// be refused as invalid rather than misplace the page.
		return ""
	}
	b := make([]byte, 0, cursorLen)
	b = append(b, cursorVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(at.UnixNano()))
	b = append(b, id[:]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseCursor decodes a cursor made by User.Cursor or AuditEvent.Cursor
// (CreatedAt is then the event's At). Anything else, including a cursor
// whose spelling was altered, is BadUserInput "invalid cursor".
func ParseCursor(s string) (Cursor, error) {
	invalid := Errorf(BadUserInput, "invalid cursor")
	// Strict and unpadded: a cursor is accepted only as it was issued.
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != cursorLen || b[0] != cursorVersion {
		return Cursor{}, invalid
	}
	id, err := uuid.FromBytes(b[9:])
	if err != nil {
		return Cursor{}, invalid
	}
	nanos := int64(binary.BigEndian.Uint64(b[1:9]))
	// UTC: SQLite compares times as the UTC text they were written in.
	return Cursor{CreatedAt: time.Unix(0, nanos).UTC(), ID: id.String()}, nil
}

// Users returns up to first users (1 to MaxPageSize) with their roles,
// oldest first, starting after the cursor (from the first user when after
// is nil). It returns BadUserInput for first out of range. It issues the
// same three statements whatever the page size: the users, then the roles
// of all of them at once.
func Users(ctx context.Context, db *gorm.DB, first int, after *Cursor) (_ []*User, err error) {
	defer Wrap(&err, "Users(%d)", first)
	if first < 1 || first > MaxPageSize {
		return nil, Errorf(BadUserInput, "first must be between 1 and %d", MaxPageSize)
	}
	// Keyset, not OFFSET: each page costs the same however deep it is, and
	// a user created or deleted meanwhile does not shift the pages after it.
	q := db.WithContext(ctx).Preload("Roles", orderByName).Order("created_at, id").Limit(first)
	if after != nil {
		q = q.Where("(created_at, id) > (?, ?)", after.CreatedAt, after.ID)
	}
	var us []*User
	err = q.Find(&us).Error
	return us, err
}
