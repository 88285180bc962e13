// Package auth is authql's token, password and session service: it signs
// users up and in, rotates refresh tokens, revokes sessions, authenticates
// access tokens and decides @auth rules.
//
// One file per flow: signup.go (Register, the password rules), login.go,
// refresh.go (Refresh and its reuse rule; the rotation itself is
// models.RotateRefreshToken), sessions.go (sessions, Logout, revocations),
// authorize.go (the @auth rule engine), users.go (user administration).
// middleware.go authenticates each request's access token and puts the
// Principal (principal.go) in its context; events.go keeps a replica in
// step with the others. service.go holds the Service, its Config and
// NewService.
//
// Its other jobs are packages of their own: auth/keys (signing keys, the
// signer and verifier, the JWKS), auth/audit (the audit batch writer, used
// through the auditLog interface), auth/ratelimit (the rate limiter, used
// through the rateLimiter interface), auth/secret (secrets at rest) and
// auth/mail (the mails the account flows queue, and their delivery).
package auth

import (
	"context"
	"crypto"
	"crypto/rand"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"gorm.io/gorm"

	"github.com/authql/authql/auth/audit"
	"github.com/authql/authql/auth/keys"
	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/auth/ratelimit"
	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/internal/periodic"
	"github.com/authql/authql/models"
)

// Config configures a Service.
type Config struct {
	Issuer   string
	Audience string
	// ClientID is the access tokens' client_id claim (RFC 9068 §2.2); ""
	// is Issuer.
	ClientID string
	// Audiences are the downstream audiences exchangeToken issues tokens
	// for (none: it refuses every audience); ExchangeTTL bounds those
	// tokens' lifetime (0: DefaultExchangeTTL).
	Audiences     []string
	ExchangeTTL   time.Duration
	AccessTTL     time.Duration
	RefreshTTL    time.Duration
	ReuseInterval time.Duration // grace for presenting a just-rotated refresh token again
	Signup        bool          // whether Register is open
	Argon2        Argon2Params
	// Limits are the rate limits; the zero value limits nothing.
	Limits Limits
	// HashWorkers bounds concurrent password hashes (0: DefaultHashWorkers;
	// never more than the cores); HashWait is how long one waits for a worker
	// before the operation fails with RateLimited (0: DefaultHashWait).
	HashWorkers int
	HashWait    time.Duration
	// UserCacheSize bounds the users kept in memory (0:
	// DefaultUserCacheSize).
	UserCacheSize int
	// MaxSessions bounds each user's live sessions (0:
	// DefaultMaxSessions): a sign-in past it ends the user's least
	// recently used session.
	MaxSessions int
	// TrustedProxies are the addresses whose X-Forwarded-For is believed
	// (see Middleware); empty trusts none.
	TrustedProxies []netip.Prefix
	// JWTAlg is the algorithm of the keys authql generates: keys.AlgHS256,
	// keys.AlgEdDSA or keys.AlgES256; "" keeps the key store's (see
	// keys.Config.Alg).
	JWTAlg string
	// ReadOnlyKeys leaves the signing keys as they are (no key created,
	// replaced or retired) and loads none: for the commands, which sign
	// nothing (see keys.Config.ReadOnly).
	ReadOnlyKeys bool
	// Encryption encrypts the secrets stored in the database: private
	// signing keys, generated HS256 secrets, the rate-limit key.
	Encryption secret.Keys
	// JWTPrivateKey, when set, is the signing key (AUTH_JWT_PRIVATE_KEY_FILE)
	// instead of a generated one; it must be of JWTAlg.
	JWTPrivateKey crypto.Signer
	// RefreshCookie also hands the refresh token to browsers in an HttpOnly
	// cookie and lets refresh read it from there (see cookie.go).
	RefreshCookie bool
	// CookieInsecure leaves Secure off the cookie, for local http only.
	CookieInsecure bool
	// AllowedOrigins are the exact origins (scheme://host[:port]) of the
	// frontends that may use the refresh cookie and get CORS answers.
	AllowedOrigins []string
	// SyncTimeout is how long after losing its listening connection (see
	// Listen) the service keeps accepting access tokens before it refuses
	// them with ServiceUnavailable (0: DefaultSyncTimeout).
	SyncTimeout time.Duration
	// Observer is told of auth events and hash waits, for metrics; nil
	// observes nothing.
	Observer Observer
	// AuditRetention is how long audit events are kept (0:
	// DefaultAuditRetention); Purge deletes older ones.
	AuditRetention time.Duration
	// EventsRetention is how long live events are kept for the
	// revocation feed to resume from (0: DefaultEventsRetention; never
	// less than AccessTTL); Purge deletes older ones.
	EventsRetention time.Duration
	// AuditQueueBytes bounds the memory of the audit events waiting for
	// the database (0: audit.DefaultQueueBytes); see audit.Writer.
	AuditQueueBytes int64
	// Mail composes the mails the account flows queue in their
	// transactions (see the mail package); nil refuses the flows that mail.
	Mail *mail.Composer
	// MailQueued, when set, is called after a transaction that queued
	// mail has committed, to wake the sender (see mail.Sender) rather than
	// leave the mail for its next poll.
	MailQueued func()
	// ResetTTL, VerifyTTL and EmailChangeTTL are how long the link and code
	// of a password reset (AUTH_RESET_TTL), an email verification
	// (AUTH_VERIFY_TTL) and an email change work (0: the defaults).
	ResetTTL, VerifyTTL, EmailChangeTTL time.Duration
	// RequireVerifiedEmail (AUTH_REQUIRE_VERIFIED_EMAIL) refuses tokens to
	// accounts whose email is not verified: register mails a verification
	// and login fails with EmailNotVerified.
	RequireVerifiedEmail bool
	// WebAuthnRPID is the relying party id of passkeys
	// (AUTH_WEBAUTHN_RP_ID): the domain they are bound to; "" turns
	// passkeys off. WebAuthnOrigins are the exact origins their ceremonies
	// may come from (AUTH_WEBAUTHN_ORIGINS); WebAuthnRPName is the name
	// authenticators show ("": DefaultWebAuthnRPName).
	WebAuthnRPID, WebAuthnRPName string
	WebAuthnOrigins              []string
	// Now is the clock; nil means time.Now. Times are used in UTC.
	Now func() time.Time
}

// Lifetimes of mailed requests when Config leaves them zero.
const (
	DefaultResetTTL       = 15 * time.Minute
	DefaultVerifyTTL      = 24 * time.Hour
	DefaultEmailChangeTTL = time.Hour
)

// Service is the token, password and session service.
type Service struct {
	db     *gorm.DB
	cfg    Config
	signer *keys.Signer
	hasher *Hasher
	pool   *hashPool
	timing *failTiming // pads failed logins (see timing.go)
	log    *slog.Logger

	limiter rateLimiter
	users   *userCache
	tokens  *tokenCache
	revs    revocations
	// origins is Config.AllowedOrigins, lower-cased.
	origins map[string]bool

	mu     sync.RWMutex
	grants map[string][]string // role -> permissions

	sync syncState // whether changes by other replicas may have been missed

	// live fans account and session events out to sockets and feeds;
	// liveLostAt is when the listening connection was last known alive
	// before it dropped (Unix nanoseconds, 0 when it has not), from
	// which the events missed are re-read.
	live       *LiveHub
	liveLostAt atomic.Int64
	// auditLive fans audit events out to auditEvents subscriptions.
	auditLive *auditHub

	// limitSecret keys the names of rate-limit counters (see limitKey).
	limitSecret []byte
	// codeKey keys the MACs of mailed codes (see codeMAC).
	codeKey lazySecret
	// seal encrypts secrets kept in rows (TOTP seeds) under
	// AUTH_ENCRYPTION_KEY when it is set.
	seal *secret.Sealer
	// webauthn is the passkeys' relying party, nil when they are off.
	webauthn *webauthn.WebAuthn

	audits     auditLog // see audit.go
	rateAudits rateAudits
	// originWarnings coalesces the log lines of refused cookie origins
	// (see warnOrigin).
	originWarnings rateAudits
}

// NewService returns a Service. key is an HS256 secret held outside the
// database (AUTH_JWT_SECRET), or nil for keys kept in the key store (see
// keys.Open). It loads the signing keys, the live revocations and the role
// permissions from db.
func NewService(ctx context.Context, db *gorm.DB, key []byte, cfg Config, log *slog.Logger) (*Service, error) {
	cfg = withDefaults(cfg)
	s := &Service{
		db: db, cfg: cfg, log: log,
		revs:    revocations{ids: map[string]time.Time{}},
		pool:    newHashPool(cfg.HashWorkers, cfg.HashWait, cfg.Observer),
		limiter: ratelimit.New(db),
		users:   newUserCache(cfg.UserCacheSize),
		tokens:  newTokenCache(),
		origins: map[string]bool{},
		live:    newLiveHub(cfg.MaxSessions + 1),
		// auditLive is fed by the audit writer (see audit_live.go).
		auditLive: newAuditHub(),
	}
	models.OnLiveCommit(db, s.live.Publish)
	for _, o := range cfg.AllowedOrigins {
		s.origins[strings.ToLower(o)] = true
	}
	// A client's hashes refused for its share of the pool are audited as
	// the refusals of a rate limit are: coalesced, not a row each.
	s.pool.refused = func(ctx context.Context, client string) {
		s.auditRateLimited(ctx, s.limitKey("hash-client", client), "", s.now())
	}
	s.pool.collect = cfg.Argon2.Memory >= collectMinKiB
	s.sync.timeout = cfg.SyncTimeout
	ks, err := keys.Open(ctx, db, keys.Config{Alg: cfg.JWTAlg, Secret: key, PrivateKey: cfg.JWTPrivateKey, ReadOnly: cfg.ReadOnlyKeys, Encryption: cfg.Encryption}, cfg.AccessTTL, s.now, log)
	if err != nil {
		return nil, err
	}
	seal, err := secret.NewSealer(cfg.Encryption)
	if err != nil {
		return nil, err
	}
	s.seal = seal
	if s.webauthn, err = newWebAuthn(cfg); err != nil {
		return nil, err
	}
	if cfg.ReadOnlyKeys {
		// The commands take no rate limits: a key of their own, rather
		// than one read (and perhaps not decryptable) or written.
		s.limitSecret = secret.Random()
	} else if s.limitSecret, err = storedSecret(ctx, db, seal, rateLimitSetting, log); err != nil {
		return nil, err
	}
	s.signer = ks.Signer(cfg.Issuer, cfg.Audience, s.now)
	if s.hasher, err = NewHasher(cfg.Argon2); err != nil {
		return nil, err
	}
	// The dummy's class is measured before the first login: see failTiming.
	s.timing = newFailTiming()
	s.verify(s.hasher.dummy, rand.Text())
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	// Last: nothing above can fail once the writer's goroutine runs.
	w := audit.NewWriter(db, log, cfg.AuditQueueBytes)
	w.OnWritten(s.auditLive.publish)
	s.audits = w
	return s, nil
}

// withDefaults fills the fields of cfg left zero with their defaults.
func withDefaults(cfg Config) Config {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = DefaultSyncTimeout
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.AuditRetention <= 0 {
		cfg.AuditRetention = DefaultAuditRetention
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.EventsRetention <= 0 {
		cfg.EventsRetention = DefaultEventsRetention
	}
	// The feed promises events for at least a token's life (loadConfig
	// refuses less; a Config built in code gets the floor).
	cfg.EventsRetention = max(cfg.EventsRetention, cfg.AccessTTL)
	if cfg.ResetTTL <= 0 {
		cfg.ResetTTL = DefaultResetTTL
	}
	if cfg.VerifyTTL <= 0 {
		cfg.VerifyTTL = DefaultVerifyTTL
	}
	if cfg.EmailChangeTTL <= 0 {
		cfg.EmailChangeTTL = DefaultEmailChangeTTL
	}
	return cfg
}

// mailQueued wakes the mail sender after a commit that queued mail.
func (s *Service) mailQueued() {
	if s.cfg.MailQueued != nil {
		s.cfg.MailQueued()
	}
}

// now is the service clock in UTC (SQLite compares times as UTC text).
func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Reload re-reads the unexpired revocations and the role permissions.
func (s *Service) Reload(ctx context.Context) error {
	loaded, err := models.Revocations(ctx, s.db, s.now())
	if err != nil {
		return err
	}
	s.revs.merge(loaded, s.now())
	return s.reloadGrants(ctx)
}

// reloadGrants re-reads the role permissions.
func (s *Service) reloadGrants(ctx context.Context) error {
	roles, err := models.Roles(ctx, s.db)
	if err != nil {
		return err
	}
	grants := make(map[string][]string, len(roles))
	for _, r := range roles {
		grants[r.Name] = r.PermissionNames()
	}
	s.mu.Lock()
	s.grants = grants
	s.mu.Unlock()
	return nil
}

// Grants returns the permissions of a role.
func (s *Service) Grants(role string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.grants[role]
}

// KeyID returns the kid of the current signing key. The server does not
// need it: it exists for the HTTP scenario tests (package httpapi_test),
// which an export_test.go in auth cannot serve.
func (s *Service) KeyID() string { return s.signer.KeyID() }

// Keys returns the signing keys.
func (s *Service) Keys() *keys.Set { return s.signer.Keys() }

// MailRetention is how long a mail's outbox row is kept once it was sent,
// given up or suppressed: long enough to answer "did my mail go out?"
// (its status, attempts and last error), short enough that the
// recipients' addresses do not pile up. Its story stays in the audit log
// (MAIL_SENT, MAIL_FAILED) for AUTH_AUDIT_RETENTION.
const MailRetention = 7 * 24 * time.Hour

// Purge deletes expired revocations, refresh tokens and sessions, mailed
// requests expired or spent, expired challenges and lapsed TOTP
// enrollments, live events older than Config.EventsRetention, audit
// events older than
// Config.AuditRetention and mails done with for MailRetention, and
// re-reads revocations and role permissions.
func (s *Service) Purge(ctx context.Context) error {
	now := s.now()
	// A revoked session is kept while an access token of its could live:
	// past the current lifetime and past the latest expiry it issued.
	p, err := models.PurgeExpired(ctx, s.db, now, now.Add(-(s.cfg.AccessTTL + MaxClockSkew)), now.Add(-MaxClockSkew))
	if err != nil {
		return err
	}
	requests, err := models.PurgeEmailRequests(ctx, s.db, now)
	if err != nil {
		return err
	}
	audits, err := s.purgeAudit(ctx, now)
	if err != nil {
		return err
	}
	mails, err := models.PurgeMail(ctx, s.db, now.Add(-MailRetention))
	if err != nil {
		return err
	}
	// Live events are stamped by the database layer's wall clock
	// (models.Now), not the service's: their age is measured on it.
	live, err := models.PurgeLiveEvents(ctx, s.db, models.Now().Add(-s.cfg.EventsRetention))
	if err != nil {
		return err
	}
	challenges, err := models.PurgeChallenges(ctx, s.db, now)
	if err != nil {
		return err
	}
	if p != (models.Purged{}) || audits > 0 || requests > 0 || mails > 0 || challenges > 0 || live > 0 {
		s.log.InfoContext(ctx, "purged expired rows", "revocations", p.Revocations, "refresh_tokens", p.RefreshTokens, "sessions", p.Sessions, "rate_limits", p.RateLimits,
			"email_requests", requests, "audit_events", audits, "outbox_mails", mails, "challenges", challenges, "live_events", live)
	}
	s.limiter.Sweep(now)
	s.tokens.sweep(now)
	if n, err := s.signer.Keys().WipeRetired(ctx); err != nil {
		return err
	} else if n > 0 {
		s.log.InfoContext(ctx, "erased private material of retired signing keys", "keys", n)
	}
	return s.Reload(ctx)
}

// purgeTimeout is the deadline of each of the purge's statements, longer
// than AUTH_DB_TIMEOUT: no client waits for it, and after an outage it
// may have a backlog of expired rows to delete.
const purgeTimeout = time.Minute

// RunPurge calls Purge every interval until ctx is done, logging its
// failures.
func (s *Service) RunPurge(ctx context.Context, interval time.Duration) {
	ctx = models.WithTimeout(ctx, purgeTimeout)
	periodic.Run(ctx, interval, s.Purge, func(err error) {
		s.log.ErrorContext(ctx, "purge failed", "err", err)
	})
}
