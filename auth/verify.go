package auth

import (
	"context"

	"github.com/authql/authql/models"
)

// SendEmailVerification: see graph/accounts.graphqls. (Being built.)
func (s *Service) SendEmailVerification(ctx context.Context, p *Principal) (*models.EmailRequest, error) {
	return nil, errNotBuilt
}

// VerifyEmail: see graph/accounts.graphqls. (Being built.)
func (s *Service) VerifyEmail(ctx context.Context, proof Proof) error {
	return errNotBuilt
}
