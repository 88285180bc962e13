package main

// standardsConfig is what tokens and answers need to follow the standards
// downstream services and clients expect (RFC 9068's client_id, RFC 8414's
// discovery, RFC 8693-like exchange).
type standardsConfig struct {
	// ClientID is the access tokens' client_id (AUTH_CLIENT_ID); "" is
	// the issuer.
	ClientID string
}

// readStandards reads the variables of standardsConfig.
func readStandards(r *envReader, c *config) {
	r.str("AUTH_CLIENT_ID", &c.Standards.ClientID)
}
