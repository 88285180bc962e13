package auth

import (
	"context"

	"github.com/authql/authql/models"
)

// RequestEmailChange: see graph/accounts.graphqls. (Being built.)
func (s *Service) RequestEmailChange(ctx context.Context, p *Principal, newEmail, currentPassword string) (*models.EmailRequest, error) {
	return nil, errNotBuilt
}

// ConfirmEmailChange: see graph/accounts.graphqls. (Being built.)
func (s *Service) ConfirmEmailChange(ctx context.Context, proof Proof) error {
	return errNotBuilt
}
