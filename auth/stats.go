package auth

// Figures for the server's readiness probe and metrics. They read what the
// service holds in memory and cost no database round trip.

// RevokedCount is how many revoked session and token ids the service holds
// in memory; each stays until every access token it could match has
// expired, so the figure follows the logout rate over one access TTL.
func (s *Service) RevokedCount() int { return s.revs.len() }

// SyncRefusing reports whether the service refuses access tokens because it
// has been out of step with the other replicas for longer than
// Config.SyncTimeout (see Listen). A replica in that state answers every
// authenticated request with SERVICE_UNAVAILABLE, so load balancers should
// send to the others.
func (s *Service) SyncRefusing() bool { return s.sync.refusing() }
