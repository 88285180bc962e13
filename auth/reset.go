package auth

import (
	"context"

	"github.com/authql/authql/models"
)

var errNotBuilt = models.Errorf(models.Internal, "not built yet")

// RequestPasswordReset: see graph/accounts.graphqls. (Being built.)
func (s *Service) RequestPasswordReset(ctx context.Context, email string) (*models.EmailRequest, error) {
	return nil, errNotBuilt
}

// ResetPassword: see graph/accounts.graphqls. (Being built.)
func (s *Service) ResetPassword(ctx context.Context, proof Proof, newPassword string) error {
	return errNotBuilt
}

// SendPasswordReset: see graph/accounts.graphqls. (Being built.)
func (s *Service) SendPasswordReset(ctx context.Context, userID string) (*models.EmailRequest, error) {
	return nil, errNotBuilt
}
