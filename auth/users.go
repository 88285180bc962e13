package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/authql/authql/models"
)

// Me returns the principal's user, from the user cache. It returns
// Unauthenticated if the user no longer exists.
func (s *Service) Me(ctx context.Context, p *Principal) (*models.User, error) {
	u, err := s.user(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	return u.User, nil
}

// SetUserRoles replaces a user's roles (names are case-insensitive). It
// returns NotFound for an unknown user and BadUserInput for an unknown role.
// The new roles apply to the user's next request (role checks read the
// user cache, dropped here); tokens' roles claim follows at their next
// refresh.
func (s *Service) SetUserRoles(ctx context.Context, userID string, roles []string) (u *models.User, err error) {
	names, err := roleNames(roles)
	if err != nil {
		return nil, err
	}
	if p, _ := PrincipalFrom(ctx); p != nil {
		// An admin's script failing in a loop must not write an audit row
		// per call (see limitFailures); operators at the CLI have no
		// principal and are not counted.
		done, lerr := s.limitFailures(ctx, p.UserID)
		if lerr != nil {
			return nil, lerr
		}
		defer func() { done(err) }()
	}
	defer func() { s.auditRoles(ctx, userID, names, u, err) }()
	if _, err := uuid.Parse(userID); err != nil {
		return nil, models.Errorf(models.NotFound, "user not found")
	}
	u, err = models.SetUserRoles(ctx, s.db, userID, names)
	s.forgetUser(userID) // even on error: the transaction's outcome may be unknown
	return u, err
}

// roleNames returns role names as stored (trimmed, lower case), or
// BadUserInput for a name that is not valid UTF-8 or holds a NUL, which no
// role has and PostgreSQL cannot even compare.
func roleNames(roles []string) ([]string, error) {
	names := make([]string, len(roles))
	for i, r := range roles {
		if !utf8.ValidString(r) || strings.IndexByte(r, 0) >= 0 {
			return nil, models.Errorf(models.BadUserInput, "a role name is not valid UTF-8 or contains a NUL character")
		}
		names[i] = strings.ToLower(strings.TrimSpace(r))
	}
	return names, nil
}

// ErrAdminEmailNotAdmin is EnsureAdmin's refusal to make an existing
// account an admin.
var ErrAdminEmailNotAdmin = errors.New("an account with this email exists and is not an admin")

// EnsureAdmin makes sure the admin of AUTH_ADMIN_EMAIL exists: when no
// account has the email, it creates one with the password and the roles
// admin and user; when one has and is an admin, it does nothing (the
// password stays the account's own).
//
// When the account exists but is not an admin, it returns
// ErrAdminEmailNotAdmin and changes nothing. Promoting it would give the
// admin role to whoever registered that email first, an attacker included
// (sign-up is open by default, and the configured email is no secret): the
// operator checks who owns the account, and grants the role explicitly
// (authql user roles) or configures another email.
func (s *Service) EnsureAdmin(ctx context.Context, email, password string) (err error) {
	defer models.Wrap(&err, "EnsureAdmin")
	key, err := models.NormalizeEmail(email)
	if err != nil {
		return err
	}
	u, err := models.UserByEmail(ctx, s.db, key)
	if models.ErrorCode(err) == models.NotFound {
		u, err = s.createUser(ctx, email, password, []string{models.RoleAdmin, models.RoleUser}, nil)
		if errors.Is(err, models.ErrEmailTaken) {
			// Created meanwhile: by another replica starting (then an
			// admin) or by a registration (then refused below).
			u, err = models.UserByEmail(ctx, s.db, key)
		} else if err == nil {
			s.audit(ctx, event{typ: models.AuditRegister, userID: u.ID, detail: strings.Join(u.RoleNames(), ",")})
			return nil
		}
	}
	if err != nil {
		return err
	}
	if !u.HasRole(models.RoleAdmin) {
		return ErrAdminEmailNotAdmin
	}
	return nil
}

// Users lists up to first users (models.DefaultPageSize when nil) after the
// cursor after (from the first user when nil), oldest first. It returns
// BadUserInput for first out of range or an invalid cursor.
func (s *Service) Users(ctx context.Context, first *int, after *string) ([]*models.User, error) {
	n, c, err := page(first, after)
	if err != nil {
		return nil, err
	}
	return models.Users(ctx, s.db, n, c)
}

// page reads a list's optional arguments: the page size (models'
// DefaultPageSize when nil; models checks its range) and the cursor to
// continue after, or BadUserInput for a cursor authql did not make.
func page(first *int, after *string) (int, *models.Cursor, error) {
	n := models.DefaultPageSize
	if first != nil {
		n = *first
	}
	if after == nil {
		return n, nil, nil
	}
	c, err := models.ParseCursor(*after)
	if err != nil {
		return 0, nil, err
	}
	return n, &c, nil
}

// Permissions returns what u's roles grant, sorted and without duplicates.
// It reads the role permissions kept in memory, so listing many users with
// their permissions costs no query per user.
func (s *Service) Permissions(u *models.User) []string {
	perms := []string{} // never null: the field is [String!]!
	for _, r := range u.Roles {
		perms = append(perms, s.Grants(r.Name)...)
	}
	slices.Sort(perms)
	return slices.Compact(perms)
}

// Roles lists every role with its permissions.
func (s *Service) Roles(ctx context.Context) ([]*models.Role, error) { return models.Roles(ctx, s.db) }

// AddUser creates a user with the email, password and roles (names are
// case-insensitive), for operators (authql user add): the same checks and
// password hashing as Register, but with the roles given and whether or not
// sign-up is open. It returns BadUserInput for an invalid email or password
// or an unknown role, and models.ErrEmailTaken (BadUserInput) for an email
// that has an account.
func (s *Service) AddUser(ctx context.Context, email, password string, roles []string) (*models.User, error) {
	names, err := roleNames(roles)
	if err != nil {
		return nil, err
	}
	u, err := s.createUser(ctx, email, password, names, nil)
	if err != nil {
		return nil, err
	}
	// Audited like a registration; the detail says which roles an operator
	// gave, since these may include admin.
	s.audit(ctx, event{typ: models.AuditRegister, userID: u.ID, detail: strings.Join(u.RoleNames(), ",")})
	return u, nil
}
