package main

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"
)

// standardsConfig is what tokens and answers need to follow the standards
// downstream services and clients expect (RFC 9068's client_id, RFC 8414's
// discovery, RFC 8693-like exchange).
type standardsConfig struct {
	// ClientID is the access tokens' client_id (AUTH_CLIENT_ID); "" is
	// the issuer.
	ClientID string
	// PublicURL is the server's external base URL (AUTH_PUBLIC_URL),
	// without a trailing slash; "" outside production only.
	PublicURL string
	// Audiences are the downstream audiences exchangeToken issues tokens
	// for (AUTH_AUDIENCES); ExchangeTTL bounds those tokens' life
	// (AUTH_EXCHANGE_TTL).
	Audiences   []string
	ExchangeTTL time.Duration
	// Production is AUTH_ENV=production, for required.
	Production bool
}

// readStandards reads the variables of standardsConfig. It needs
// c.Production.
func readStandards(r *envReader, c *config) {
	r.str("AUTH_CLIENT_ID", &c.Standards.ClientID)
	if v := r.value("AUTH_PUBLIC_URL"); v != "" {
		if why := badPublicURL(v, c.Production); why != "" {
			r.bad("AUTH_PUBLIC_URL", "%q %s", v, why)
		}
		c.Standards.PublicURL = strings.TrimRight(v, "/")
	}
	c.Standards.Production = c.Production
	readAudiences(r, c)
}

// readAudiences reads AUTH_AUDIENCES and AUTH_EXCHANGE_TTL. It needs
// c.Audience.
func readAudiences(r *envReader, c *config) {
	for _, a := range strings.Split(r.raw("AUTH_AUDIENCES"), ",") {
		switch a = strings.TrimSpace(a); {
		case a == "":
		case a == c.Audience:
			// A token exchanged for authql would be a second access token
			// outside the session's rotation.
			r.bad("AUTH_AUDIENCES", "lists %q, authql's own AUTH_AUDIENCE; list only the downstream services' audiences", a)
		case len(a) > 256 || strings.ContainsFunc(a, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			r.bad("AUTH_AUDIENCES", "%q is not an audience: at most 256 bytes, no spaces or control characters (such as https://orders.example.com or orders)", a)
		case !slices.Contains(c.Standards.Audiences, a):
			c.Standards.Audiences = append(c.Standards.Audiences, a)
		}
	}
	r.duration("AUTH_EXCHANGE_TTL", &c.Standards.ExchangeTTL, time.Second)
	// The token lives at most as long as the caller's anyway.
	r.atMost("AUTH_EXCHANGE_TTL", c.Standards.ExchangeTTL, time.Hour, "a token held by another service outlives what authql can see of it")
}

// required refuses, for serve only (the commands serve no discovery
// document), production without AUTH_PUBLIC_URL: a document built from
// the request's Host would hand out URLs a client chose, to every cache
// that keeps it.
func (s standardsConfig) required() error {
	if s.Production && s.PublicURL == "" {
		return errors.New("invalid configuration:\nAUTH_PUBLIC_URL: must be set with AUTH_ENV=production: the server's external base URL, such as https://auth.example.com, from which the discovery document's URLs are built (set AUTH_ISSUER to it too)")
	}
	return nil
}

// badPublicURL says what is wrong with AUTH_PUBLIC_URL v, or "".
func badPublicURL(v string, production bool) string {
	u, err := url.Parse(v)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "":
		return "is not an absolute URL; write it as https://auth.example.com (with a path prefix if authql is served under one)"
	case u.Scheme != "http" && u.Scheme != "https":
		return "is not http or https"
	case u.User != nil:
		return "holds credentials; write the URL clients use, without them"
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(v, "#"):
		return "has a query or fragment; the URLs of the discovery document are built by appending paths to it"
	case production && u.Scheme == "http" && !isLocalhost(u.Scheme+"://"+u.Host):
		return "is http; AUTH_ENV=production needs https (tokens and keys are fetched from it)"
	}
	return ""
}

// warnIssuer logs at start an AUTH_ISSUER that is not AUTH_PUBLIC_URL. Not
// refused: tokens already issued carry the old issuer, and changing it
// signs everyone out once. But RFC 8414 expects the issuer to be the URL
// the metadata is fetched under, and some libraries check it.
func warnIssuer(ctx context.Context, cfg config, log *slog.Logger) {
	if pub := cfg.Standards.PublicURL; pub != "" && cfg.Issuer != pub {
		log.WarnContext(ctx, "AUTH_ISSUER differs from AUTH_PUBLIC_URL: RFC 8414 expects the issuer to be the server's URL; set AUTH_ISSUER to AUTH_PUBLIC_URL when you can sign everyone out once", "issuer", cfg.Issuer, "public_url", pub)
	}
}
