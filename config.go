package main

import (
	"crypto"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/auth/keys"
	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/graph"
	"github.com/authql/authql/httpapi"
	"github.com/authql/authql/models"
)

// config is the whole configuration, read once from the environment.
type config struct {
	Port        string
	DatabaseURL string
	JWTSecret   []byte // nil: generate one and persist it in the database
	JWTAlg      string // keys.AlgHS256, auth.AlgEdDSA or auth.AlgES256; "": keep the database's
	// JWTPrivateKeyFile names the signing key file; JWTPrivateKey is its key.
	JWTPrivateKeyFile string
	JWTPrivateKey     crypto.Signer
	AccessTTL         time.Duration
	RefreshTTL        time.Duration
	ReuseInterval     time.Duration
	Issuer            string
	Audience          string
	AdminEmail        string
	AdminPassword     string
	Signup            bool
	Argon2            auth.Argon2Params

	Limits         auth.Limits
	TrustedProxies []netip.Prefix
	HashWorkers    int           // 0: auth.DefaultHashWorkers
	HashWait       time.Duration // how long a hash waits for a worker
	UserCacheSize  int
	// MaxSessions bounds each user's live sessions, and the length of
	// mySessions (graph.Options.MaxSessions).
	MaxSessions int

	// DB sizes the database connection pool; zero fields take models'
	// defaults for the dialect.
	DB models.Options
	// AutoMigrate applies pending migrations at start; false only checks
	// that there are none (AUTH_AUTO_MIGRATE).
	AutoMigrate bool

	// Encryption encrypts the secrets kept in the database
	// (AUTH_ENCRYPTION_KEY, AUTH_ENCRYPTION_KEY_PREVIOUS).
	Encryption secret.Keys

	// SyncTimeout is how long a replica that lost its listening connection
	// to PostgreSQL keeps accepting access tokens (see models.Listener).
	SyncTimeout time.Duration

	// AuditRetention is how long audit events are kept.
	AuditRetention time.Duration
	// AuditQueueBytes bounds the audit events waiting for the database
	// (0: audit.DefaultQueueBytes).
	AuditQueueBytes int64

	// EventsRetention is how long live events are kept for the revocation
	// feed to resume from; EventsMaxStreams bounds each user's open feed
	// streams (see config_events.go).
	EventsRetention  time.Duration
	EventsMaxStreams int

	Production    bool // AUTH_ENV=production
	Introspection bool
	Playground    bool
	MaxBodyBytes  int64
	MaxDepth      int
	MaxComplexity int

	// Browser sessions (see auth/cookie.go).
	RefreshCookie  bool
	CookieInsecure bool
	CORSOrigins    []string // exact, lower-case, as browsers send Origin

	// Operations: logs, metrics, shutdown (see httpapi/observe.go, httpapi/metrics.go).
	LogFormat   string // "json", "text", or "": JSON unless stderr is a terminal
	LogLevel    slog.Level
	Metrics     bool   // serve /metrics
	MetricsAddr string // "": on PORT; else a listener of its own
	// MetricsPublic serves /metrics on PORT in production too
	// (AUTH_METRICS_PUBLIC).
	MetricsPublic bool
	// MaxConnsPerClient bounds the open connections of one client address
	// (0: no bound; see httpapi.LimitConns).
	MaxConnsPerClient int
	ShutdownTimeout   time.Duration
	ShutdownDelay     time.Duration // not ready, still serving, before the listener closes
	// ExampleUI serves examples/web at /example/ (see httpapi.ExampleOrigins).
	ExampleUI bool

	socketConfig // AUTH_WS_*: see config_sockets.go

	// Mail is how authql mails (see config_mail.go).
	Mail mailConfig

	// WebAuthnRPID and WebAuthnOrigins are the passkeys' relying party
	// (AUTH_WEBAUTHN_RP_ID, AUTH_WEBAUTHN_ORIGINS), as set; serve fills
	// in their defaults (see config_webauthn.go).
	WebAuthnRPID    string
	WebAuthnOrigins []string

	// Standards: client_id, the audiences of exchanged tokens, the public
	// URL of the discovery document (see config_tokens.go).
	Standards standardsConfig
}

// defaultConfig is the configuration when no variable is set.
func defaultConfig() config {
	return config{
		Port:          "8080",
		DatabaseURL:   "authql.db",
		AutoMigrate:   true,
		AccessTTL:     15 * time.Minute,
		RefreshTTL:    720 * time.Hour,
		ReuseInterval: 10 * time.Second,
		Issuer:        "authql",
		Audience:      "authql",
		Signup:        true,
		Argon2:        auth.DefaultArgon2,
		Limits:        auth.DefaultLimits,
		HashWait:      auth.DefaultHashWait,
		UserCacheSize: auth.DefaultUserCacheSize,
		MaxSessions:   auth.DefaultMaxSessions,
		SyncTimeout:   auth.DefaultSyncTimeout,
		Introspection: graph.DefaultOptions.Introspection,
		Playground:    true,
		MaxBodyBytes:  httpapi.DefaultMaxBodyBytes,
		MaxDepth:      graph.DefaultOptions.MaxDepth,
		MaxComplexity: graph.DefaultOptions.MaxComplexity,

		AuditRetention:    auth.DefaultAuditRetention,
		EventsRetention:   auth.DefaultEventsRetention,
		EventsMaxStreams:  httpapi.DefaultEventsMaxStreams,
		Metrics:           true,
		MaxConnsPerClient: httpapi.DefaultMaxConnsPerClient,
		ShutdownTimeout:   10 * time.Second,
		socketConfig:      defaultSocketConfig(),

		Standards: standardsConfig{ExchangeTTL: auth.DefaultExchangeTTL},
	}
}

// loadConfig reads the configuration from getenv: defaults first, then
// every variable set, then validation, one reader per area. Each error
// names the variable and says how to fix it; all of them are reported at
// once.
func loadConfig(getenv func(string) string) (config, error) {
	c := defaultConfig()
	r := &envReader{getenv: getenv}
	readServer(r, &c)
	readDatabase(r, &c)
	readTokens(r, &c)
	readEncryption(r, &c)
	readAccounts(r, &c)
	readLimits(r, &c)
	readGraphQL(r, &c)
	readSockets(r, &c)
	readBrowser(r, &c)
	readMail(r, &c)
	readWebAuthn(r, &c)
	readAudit(r, &c)
	readEvents(r, &c)
	readOperations(r, &c)
	readStandards(r, &c)
	return c, r.err()
}

// readServer reads the listener's variables and the shutdown's.
func readServer(r *envReader, c *config) {
	r.str("PORT", &c.Port)
	if n, err := strconv.Atoi(c.Port); err != nil || n < 0 || n > 65535 {
		r.bad("PORT", "%q is not a port number (0 to 65535)", c.Port)
	}
	var body int
	r.integer("AUTH_MAX_BODY_BYTES", &body, 1024, 16<<20)
	if body > 0 {
		c.MaxBodyBytes = int64(body)
	}
	r.integer("AUTH_MAX_CONNS_PER_CLIENT", &c.MaxConnsPerClient, 0, 1_000_000)
	r.duration("AUTH_SHUTDOWN_DELAY", &c.ShutdownDelay, 0)
	r.atMost("AUTH_SHUTDOWN_DELAY", c.ShutdownDelay, 5*time.Minute, "a few times the load balancer's probe interval is enough")
	r.duration("AUTH_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout, 0)
	r.atMost("AUTH_SHUTDOWN_TIMEOUT", c.ShutdownTimeout, 10*time.Minute, "orchestrators kill a process long before (Kubernetes after 30s by default)")
}

// readDatabase reads the database's address, its pool and its migrations.
func readDatabase(r *envReader, c *config) {
	r.str("DATABASE_URL", &c.DatabaseURL)
	r.boolean("AUTH_AUTO_MIGRATE", &c.AutoMigrate)
	r.integer("AUTH_DB_MAX_CONNS", &c.DB.MaxConns, 1, 1000)
	r.integer("AUTH_DB_MAX_IDLE_CONNS", &c.DB.MaxIdleConns, 1, 1000)
	if idle := c.DB.MaxIdleConns; idle > 0 {
		limit := c.DB.MaxConns
		if d, _, err := models.ParseDSN(c.DatabaseURL); limit == 0 && err == nil {
			limit = models.DefaultMaxConns(d)
		}
		if limit > 0 && idle > limit {
			r.bad("AUTH_DB_MAX_IDLE_CONNS", "%d is more than the %d connections the pool may open (AUTH_DB_MAX_CONNS); set at most %d, or raise AUTH_DB_MAX_CONNS", idle, limit, limit)
		}
	}
	// At least a minute: a shorter lifetime would have the pool redial
	// under steady load, the very cost the pool is there to avoid.
	r.duration("AUTH_DB_CONN_MAX_LIFETIME", &c.DB.ConnMaxLifetime, time.Minute)
	// At least 100ms: a healthy database answers authql's statements in
	// milliseconds, and a shorter deadline would fail them under load.
	r.duration("AUTH_DB_TIMEOUT", &c.DB.Timeout, 100*time.Millisecond)
	r.atMost("AUTH_DB_TIMEOUT", c.DB.Timeout, 5*time.Minute, "requests would hang that long on a stalled database")
	r.duration("AUTH_SYNC_TIMEOUT", &c.SyncTimeout, 100*time.Millisecond)
	// Past the purge cycle, which re-reads revocations anyway, the bound
	// would bound nothing.
	r.atMost("AUTH_SYNC_TIMEOUT", c.SyncTimeout, 10*time.Minute, "a replica cut off from the others would honour their logouts for that long")
}

// readTokens reads the signing key's variables and the tokens' claims and
// lifetimes.
func readTokens(r *envReader, c *config) {
	if s := r.raw("AUTH_JWT_SECRET"); s != "" {
		if len(s) < keys.MinSecretLen {
			r.bad("AUTH_JWT_SECRET", "is %d bytes; it must be at least %d (generate one with: openssl rand -base64 48), or leave it unset to have one generated and stored in the database", len(s), keys.MinSecretLen)
		}
		c.JWTSecret = []byte(s)
	}
	if v := r.value("AUTH_JWT_ALG"); v != "" {
		if alg, ok := keys.ParseAlg(v); ok {
			c.JWTAlg = alg
		} else {
			r.bad("AUTH_JWT_ALG", "%q is not supported; use HS256, EdDSA or ES256", v)
		}
	}
	if c.JWTSecret != nil && c.JWTAlg != "" && c.JWTAlg != keys.AlgHS256 {
		r.bad("AUTH_JWT_SECRET", "is an HS256 secret, but AUTH_JWT_ALG is %s; unset AUTH_JWT_SECRET (or set AUTH_JWT_ALG=HS256)", c.JWTAlg)
	}
	r.str("AUTH_JWT_PRIVATE_KEY_FILE", &c.JWTPrivateKeyFile)
	if f := c.JWTPrivateKeyFile; f != "" {
		if c.JWTAlg == "" || c.JWTAlg == keys.AlgHS256 {
			r.bad("AUTH_JWT_PRIVATE_KEY_FILE", "needs AUTH_JWT_ALG=EdDSA or ES256 (for HS256 set AUTH_JWT_SECRET instead)")
		} else if data, err := os.ReadFile(f); err != nil {
			r.bad("AUTH_JWT_PRIVATE_KEY_FILE", "cannot read the key: %v", err)
		} else if c.JWTPrivateKey, err = keys.ParsePrivateKeyPEM(data, c.JWTAlg); err != nil {
			r.bad("AUTH_JWT_PRIVATE_KEY_FILE", "%s: %v (AUTH_JWT_ALG is %s)", f, err, c.JWTAlg)
		}
	}
	r.duration("AUTH_ACCESS_TTL", &c.AccessTTL, time.Second)
	r.duration("AUTH_REFRESH_TTL", &c.RefreshTTL, time.Second)
	r.duration("AUTH_REFRESH_REUSE_INTERVAL", &c.ReuseInterval, 0)
	r.atMost("AUTH_REFRESH_REUSE_INTERVAL", c.ReuseInterval, time.Minute, "a stolen, already used refresh token works again for that long")
	r.str("AUTH_ISSUER", &c.Issuer)
	r.str("AUTH_AUDIENCE", &c.Audience)
}

// readEncryption reads the keys that encrypt the secrets kept in the
// database.
func readEncryption(r *envReader, c *config) {
	key := func(name, v string) []byte {
		v = strings.TrimSpace(v)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.Strict().DecodeString(v); err == nil && len(b) == secret.KeySize {
				return b
			}
		}
		r.bad(name, "is not %d bytes in base64; generate one with: openssl rand -base64 32", secret.KeySize)
		return nil
	}
	if r.set("AUTH_ENCRYPTION_KEY") {
		c.Encryption.Current = key("AUTH_ENCRYPTION_KEY", r.value("AUTH_ENCRYPTION_KEY"))
	}
	for _, v := range strings.Split(r.raw("AUTH_ENCRYPTION_KEY_PREVIOUS"), ",") {
		if strings.TrimSpace(v) != "" {
			c.Encryption.Previous = append(c.Encryption.Previous, key("AUTH_ENCRYPTION_KEY_PREVIOUS", v))
		}
	}
	if len(c.Encryption.Previous) > 0 && !r.set("AUTH_ENCRYPTION_KEY") {
		r.bad("AUTH_ENCRYPTION_KEY_PREVIOUS", "is set without AUTH_ENCRYPTION_KEY: it only decrypts during a rotation to the key in AUTH_ENCRYPTION_KEY")
	}
}

// readAccounts reads the variables of accounts and their passwords: the
// admin ensured at start, sign-up, hashing, the user cache and sessions.
func readAccounts(r *envReader, c *config) {
	r.str("AUTH_ADMIN_EMAIL", &c.AdminEmail)
	c.AdminPassword = r.raw("AUTH_ADMIN_PASSWORD")
	if (c.AdminEmail == "") != (c.AdminPassword == "") {
		r.bad("AUTH_ADMIN_EMAIL/AUTH_ADMIN_PASSWORD", "set both to have an admin ensured at start, or neither")
	}
	r.boolean("AUTH_SIGNUP", &c.Signup)
	r.uint32("AUTH_ARGON2_MEMORY", &c.Argon2.Memory, 8, 4<<20)
	r.uint32("AUTH_ARGON2_TIME", &c.Argon2.Time, 1, 64)
	threads := uint32(c.Argon2.Threads)
	r.uint32("AUTH_ARGON2_THREADS", &threads, 1, 255)
	c.Argon2.Threads = uint8(threads)
	if err := c.Argon2.Validate(); err != nil {
		r.bad("AUTH_ARGON2_MEMORY", "%v", err)
	}
	r.integer("AUTH_HASH_WORKERS", &c.HashWorkers, 1, runtime.GOMAXPROCS(0))
	r.duration("AUTH_HASH_WAIT", &c.HashWait, time.Millisecond)
	r.atMost("AUTH_HASH_WAIT", c.HashWait, time.Minute, "waiting logins pile up")
	r.integer("AUTH_USER_CACHE_SIZE", &c.UserCacheSize, 1, 100_000_000)
	// At most a page of users: mySessions lists them all in one answer.
	r.integer("AUTH_MAX_SESSIONS", &c.MaxSessions, 1, models.MaxPageSize)
}

// readLimits reads the rate limits and the proxies trusted to name the
// client they limit.
func readLimits(r *envReader, c *config) {
	r.rate("AUTH_LOGIN_LIMIT_ACCOUNT", &c.Limits.LoginAccount)
	r.rate("AUTH_LOGIN_LIMIT_CLIENT", &c.Limits.LoginClient)
	r.rate("AUTH_REGISTER_LIMIT", &c.Limits.Register)
	r.rate("AUTH_REFRESH_LIMIT", &c.Limits.Refresh)
	r.rate("AUTH_FAILURE_LIMIT", &c.Limits.Failures)
	if v := r.raw("AUTH_TRUSTED_PROXIES"); strings.TrimSpace(v) != "" {
		p, err := auth.ParseTrustedProxies(v)
		if err != nil {
			r.bad("AUTH_TRUSTED_PROXIES", "%v; list the addresses of your reverse proxies, such as 10.0.0.0/8,192.168.1.7", err)
		}
		c.TrustedProxies = p
	}
}

// readGraphQL reads the environment (development or production) and what
// the GraphQL endpoint allows.
func readGraphQL(r *envReader, c *config) {
	switch env := strings.ToLower(r.value("AUTH_ENV")); env {
	case "", "development":
	case "production":
		// Production hides the schema and the playground unless asked:
		// they help an attacker map the API and are no use to end users.
		c.Production, c.Introspection, c.Playground = true, false, false
	default:
		r.bad("AUTH_ENV", "%q is not an environment; use development or production", env)
	}
	r.boolean("AUTH_INTROSPECTION", &c.Introspection)
	r.boolean("AUTH_PLAYGROUND", &c.Playground)
	r.integer("AUTH_MAX_QUERY_DEPTH", &c.MaxDepth, 2, 1000)
	r.integer("AUTH_MAX_COMPLEXITY", &c.MaxComplexity, 10, 1_000_000)
}

// readBrowser reads the browser sessions' variables: the refresh cookie,
// the origins allowed CORS, and the example frontend. It needs
// c.Production.
func readBrowser(r *envReader, c *config) {
	r.boolean("AUTH_REFRESH_COOKIE", &c.RefreshCookie)
	r.boolean("AUTH_EXAMPLE_UI", &c.ExampleUI)
	if c.ExampleUI {
		if r.set("AUTH_REFRESH_COOKIE") && !c.RefreshCookie {
			r.bad("AUTH_REFRESH_COOKIE", "false cannot go with AUTH_EXAMPLE_UI=true: the example frontend keeps its sessions in the refresh cookie; unset one of them")
		}
		// The example keeps its sessions in the refresh cookie: trying it
		// should take one variable, not three.
		c.RefreshCookie = true
	}
	r.boolean("AUTH_COOKIE_INSECURE", &c.CookieInsecure)
	for _, v := range strings.Split(r.raw("AUTH_CORS_ORIGINS"), ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		o, err := parseOrigin(v)
		if err != nil {
			r.bad("AUTH_CORS_ORIGINS", "%q %v", v, err)
			continue
		}
		c.CORSOrigins = append(c.CORSOrigins, o)
	}
	if c.RefreshCookie && len(c.CORSOrigins) == 0 && !c.ExampleUI {
		// Not a hole, but a set-up that cannot work: every cookie refresh
		// would be refused. Better said at start than found in a browser.
		// (With the example, serve adds its origins once the port is known.)
		r.bad("AUTH_REFRESH_COOKIE", "true needs AUTH_CORS_ORIGINS, the origins of the frontends that may use the cookie (such as https://app.example.com); without one every cookie refresh is refused")
	}
	if c.Production && c.CookieInsecure {
		r.bad("AUTH_COOKIE_INSECURE", "true is for local http and is refused with AUTH_ENV=production: a refresh cookie sent over plain http can be read on the network")
	}
	if c.Production && c.ExampleUI {
		r.bad("AUTH_EXAMPLE_UI", "true is for trying authql and is refused with AUTH_ENV=production: it serves a demo page and allows the cookie to the server's own loopback origins")
	}
}

// readAudit reads how long audit events are kept and how many may wait
// for the database.
func readAudit(r *envReader, c *config) {
	// At least an hour: a shorter retention would delete events before
	// anyone had a chance to read them.
	r.duration("AUTH_AUDIT_RETENTION", &c.AuditRetention, time.Hour)
	var queueBytes int
	r.integer("AUTH_AUDIT_QUEUE_BYTES", &queueBytes, 1<<20, 16<<30)
	c.AuditQueueBytes = int64(queueBytes)
}

// readOperations reads the logs' and metrics' variables.
func readOperations(r *envReader, c *config) {
	switch v := strings.ToLower(r.value("AUTH_LOG_FORMAT")); v {
	case "", "json", "text":
		c.LogFormat = v
	default:
		r.bad("AUTH_LOG_FORMAT", "%q is not a format; use json or text", v)
	}
	switch v := strings.ToLower(r.value("AUTH_LOG_LEVEL")); v {
	case "", "info":
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		r.bad("AUTH_LOG_LEVEL", "%q is not a level; use debug, info, warn or error", v)
	}
	r.boolean("AUTH_METRICS", &c.Metrics)
	r.str("AUTH_METRICS_ADDR", &c.MetricsAddr)
	r.boolean("AUTH_METRICS_PUBLIC", &c.MetricsPublic)
	if a := c.MetricsAddr; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			r.bad("AUTH_METRICS_ADDR", "%q is not host:port; use such as 127.0.0.1:9090 or :9090", a)
		} else if !c.Metrics {
			r.bad("AUTH_METRICS_ADDR", "is set but AUTH_METRICS is false; unset one of them")
		}
	}
}

// parseOrigin returns s as browsers write it in an Origin header
// (lower-case, no default port), or an error saying why s is not an origin.
func parseOrigin(s string) (string, error) {
	if strings.Contains(s, "*") {
		// Credentials are allowed for these origins: a wildcard would let
		// every site read the API's answers with the user's session.
		return "", errors.New("is a wildcard: with credentials allowed, every site could act with the user's session; list each frontend's origin, such as https://app.example.com")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "", errors.New("is not an origin; write scheme://host[:port], such as https://app.example.com")
	}
	if u.User != nil || u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", errors.New("has more than scheme://host[:port]; an origin has no path (not even a trailing /), query or fragment")
	}
	host := strings.TrimSuffix(strings.ToLower(u.Host), ":")
	if port := u.Port(); (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		// Browsers leave the default port out of Origin.
		host = strings.TrimSuffix(host, ":"+port)
	}
	return strings.ToLower(u.Scheme) + "://" + host, nil
}
