package main

import (
	"github.com/authql/authql/auth"
	"github.com/authql/authql/httpapi"
)

// authConfig is the auth service's configuration, for serve and for the
// commands that act through the service.
func authConfig(cfg config) auth.Config {
	return auth.Config{
		Issuer:          cfg.Issuer,
		Audience:        cfg.Audience,
		ClientID:        cfg.Standards.ClientID,
		Audiences:       cfg.Standards.Audiences,
		ExchangeTTL:     cfg.Standards.ExchangeTTL,
		AccessTTL:       cfg.AccessTTL,
		RefreshTTL:      cfg.RefreshTTL,
		ReuseInterval:   cfg.ReuseInterval,
		Signup:          cfg.Signup,
		Argon2:          cfg.Argon2,
		JWTAlg:          cfg.JWTAlg,
		JWTPrivateKey:   cfg.JWTPrivateKey,
		Encryption:      cfg.Encryption,
		Limits:          cfg.Limits,
		TrustedProxies:  cfg.TrustedProxies,
		HashWorkers:     cfg.HashWorkers,
		HashWait:        cfg.HashWait,
		UserCacheSize:   cfg.UserCacheSize,
		MaxSessions:     cfg.MaxSessions,
		SyncTimeout:     cfg.SyncTimeout,
		AuditRetention:  cfg.AuditRetention,
		EventsRetention: cfg.EventsRetention,

		AuditQueueBytes: cfg.AuditQueueBytes,
		WebAuthnRPID:    cfg.WebAuthnRPID,
		WebAuthnOrigins: cfg.WebAuthnOrigins,

		// Mailed links and codes (the Composer is serve's, see mailer).
		ResetTTL:             cfg.Mail.ResetTTL,
		VerifyTTL:            cfg.Mail.VerifyTTL,
		RequireVerifiedEmail: cfg.Mail.RequireVerified,

		// Browser sessions: the refresh cookie, CSRF and CORS.
		RefreshCookie:  cfg.RefreshCookie,
		CookieInsecure: cfg.CookieInsecure,
		AllowedOrigins: cfg.CORSOrigins,
	}
}

// httpConfig is the HTTP layer's configuration.
func httpConfig(cfg config) httpapi.Config {
	return httpapi.Config{
		Production:    cfg.Production,
		Introspection: cfg.Introspection,
		Playground:    cfg.Playground,
		MaxBodyBytes:  cfg.MaxBodyBytes,
		MaxDepth:      cfg.MaxDepth,
		MaxComplexity: cfg.MaxComplexity,
		MaxSessions:   cfg.MaxSessions,
		Metrics:       cfg.Metrics,
		MetricsAddr:   cfg.MetricsAddr,
		MetricsPublic: cfg.MetricsPublic,
		ExampleUI:     cfg.ExampleUI,

		WSMaxSocketsPerUser: cfg.WSMaxSocketsPerUser,
		WSMaxSubscriptions:  cfg.WSMaxSubscriptions,
		WSMaxMessageBytes:   int64(cfg.WSMaxMessageBytes),
		WSPingInterval:      cfg.WSPingInterval,
		PublicURL:           cfg.Standards.PublicURL,

		EventsMaxStreams: cfg.EventsMaxStreams,
	}
}
