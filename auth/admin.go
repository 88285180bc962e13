package auth

import (
	"context"
	"strings"

	"github.com/authql/authql/models"
)

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
