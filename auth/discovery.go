package auth

import (
	"net/http"
	"slices"
)

// Metadata is what the discovery document says of authql's tokens.
type Metadata struct {
	Issuer   string // iss
	Audience string // aud of authql's own tokens
	ClientID string // client_id
	// Scopes are every permission a role grants, sorted: the values a
	// token's scope may hold.
	Scopes []string
}

// Metadata returns what the discovery document says of the tokens.
func (s *Service) Metadata() Metadata {
	s.mu.RLock()
	scopes := []string{}
	for _, perms := range s.grants {
		scopes = append(scopes, perms...)
	}
	s.mu.RUnlock()
	slices.Sort(scopes)
	return Metadata{Issuer: s.cfg.Issuer, Audience: s.cfg.Audience, ClientID: s.clientID(), Scopes: slices.Compact(scopes)}
}

// FromTrustedProxy reports whether r came through a trusted proxy
// (AUTH_TRUSTED_PROXIES): only then are its X-Forwarded-* headers believed.
func (s *Service) FromTrustedProxy(r *http.Request) bool {
	peer, ok := parseAddr(r.RemoteAddr)
	return ok && isTrusted(peer, s.cfg.TrustedProxies)
}
