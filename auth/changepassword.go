package auth

import "context"

// ChangePassword: see graph/accounts.graphqls. (Being built.)
func (s *Service) ChangePassword(ctx context.Context, p *Principal, currentPassword, newPassword string, signOutOthers bool) (*Grant, error) {
	return nil, errNotBuilt
}
