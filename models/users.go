package models

import (
	"context"
	"errors"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ErrEmailTaken is returned by CreateUser for an email that has an account.
var ErrEmailTaken = Errorf(BadUserInput, "an account with this email already exists")

// CreateUser inserts u with the given roles and, when first is set, u's
// first session (first.Session.UserID is set to u.ID), all in one
// transaction: a registration whose session cannot be created leaves no
// account behind, and its email free. It returns ErrEmailTaken (a
// BadUserInput error) if the email is taken, and BadUserInput for an
// unknown role.
func CreateUser(ctx context.Context, db *gorm.DB, u *User, roles []string, first *NewSession) (err error) {
	// The id, never the email: the error may be logged, and what a user
	// typed stays out of the log.
	defer Wrap(&err, "CreateUser(%s)", u.ID)
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := insertUser(tx, u, roles); err != nil {
			return err
		}
		if first == nil {
			return nil
		}
		first.Session.UserID = u.ID
		_, err = createSession(tx, first)
		return err
	})
}

// insertUser is CreateUser without the session, inside tx.
func insertUser(tx *gorm.DB, u *User, roles []string) error {
	rs, err := findRoles(tx, roles)
	if err != nil {
		return err
	}
	u.Roles = nil
	if err := tx.Omit(clause.Associations).Create(u).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return ErrEmailTaken
		}
		return err
	}
	if len(rs) > 0 {
		if err := tx.Model(u).Omit("Roles.*").Association("Roles").Append(rs); err != nil {
			return err
		}
	}
	u.Roles = rs
	return nil
}

// UserByEmail returns the user with the (normalized) email and its roles, or
// a NotFound error.
func UserByEmail(ctx context.Context, db *gorm.DB, email string) (_ *User, err error) {
	defer Wrap(&err, "UserByEmail")
	return takeUser(db.WithContext(ctx).Where("email = ?", email))
}

// UserByID returns the user with the id and its roles, or a NotFound error.
func UserByID(ctx context.Context, db *gorm.DB, id string) (_ *User, err error) {
	defer Wrap(&err, "UserByID(%q)", id)
	return takeUser(db.WithContext(ctx).Where("id = ?", id))
}

func takeUser(q *gorm.DB) (*User, error) {
	var u User
	// Roles only: permission checks read the role->permissions table the
	// auth service keeps in memory, so loading them here would cost a query
	// per request for nothing.
	err := q.Preload("Roles", orderByName).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, Errorf(NotFound, "user not found")
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// PasswordHashOutside returns the password hash of some user whose hash
// starts with none of prefixes, or "" when every hash starts with one of
// them. The auth service finds the cost classes of the stored hashes with
// it, a prefix per class (see auth.Service.MeasureHashClasses): each call
// stops at the first row outside the classes known so far, and only the
// last, which finds none, reads the whole table.
func PasswordHashOutside(ctx context.Context, db *gorm.DB, prefixes []string) (_ string, err error) {
	defer Wrap(&err, "PasswordHashOutside(%d)", len(prefixes))
	q := db.WithContext(ctx).Table("users").Select("password_hash")
	for _, p := range prefixes {
		// The prefixes are made by authql from hashes' fixed fields: no
		// LIKE wildcard is in them, but escape them all the same.
		p = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p)
		q = q.Where(`password_hash NOT LIKE ? ESCAPE '\'`, p+"%")
	}
	var hashes []string
	if err := q.Limit(1).Pluck("password_hash", &hashes).Error; err != nil || len(hashes) == 0 {
		return "", err
	}
	return hashes[0], nil
}
