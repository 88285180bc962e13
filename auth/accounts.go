package auth

import (
	"context"

	"github.com/authql/authql/models"
)

// DeleteAccount: see graph/accounts.graphqls. (Being built.)
func (s *Service) DeleteAccount(ctx context.Context, p *Principal, password string) error {
	return errNotBuilt
}

// DeleteUser: see graph/accounts.graphqls. (Being built.)
func (s *Service) DeleteUser(ctx context.Context, userID string) error {
	return errNotBuilt
}

// DisableUser: see graph/accounts.graphqls. (Being built.)
func (s *Service) DisableUser(ctx context.Context, userID string, reason *string) (*models.User, error) {
	return nil, errNotBuilt
}

// EnableUser: see graph/accounts.graphqls. (Being built.)
func (s *Service) EnableUser(ctx context.Context, userID string) (*models.User, error) {
	return nil, errNotBuilt
}
