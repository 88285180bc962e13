package main

import (
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
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
	JWTAlg      string // keys.AlgHS256, keys.AlgEdDSA or keys.AlgES256; "": keep the database's
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
	// to PostgreSQL keeps accepting access tokens (see auth.Listener).
	SyncTimeout time.Duration

	// AuditRetention is how long audit events are kept.
	AuditRetention time.Duration
	// AuditQueueBytes bounds the audit events waiting for the database
	// (0: auth.DefaultAuditQueueBytes).
	AuditQueueBytes int64

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
}

// configHelp documents every variable loadConfig reads, for --help.
const configHelp = `Configuration (environment variables):
  PORT                          listen port (default 8080)
  DATABASE_URL                  postgres://… or postgresql://… for PostgreSQL;
                                sqlite://PATH or a file path for SQLite (default authql.db)
  AUTH_DB_MAX_CONNS             open database connections at most (default 20 on
                                PostgreSQL, 8 on SQLite)
  AUTH_DB_MAX_IDLE_CONNS        connections kept open while idle, at most
                                AUTH_DB_MAX_CONNS (default AUTH_DB_MAX_CONNS)
  AUTH_DB_CONN_MAX_LIFETIME     close and redial a connection this old, at least 1m
                                (default 30m)
  AUTH_DB_TIMEOUT               deadline of every database statement and transaction; past
                                it the request fails with SERVICE_UNAVAILABLE (default 5s)
  AUTH_AUTO_MIGRATE             false: serve and the other commands do not migrate the database
                                but refuse to start unless authql migrate has (default true)
  AUTH_JWT_SECRET               HS256 secret, at least 32 bytes (default: generated
                                on first start and kept in the database)
  AUTH_JWT_ALG                  access token algorithm: HS256, EdDSA (Ed25519) or
                                ES256 (P-256); serve switches to it at start (default:
                                keep the database's, HS256 for a new one); keys are
                                generated and kept in the database
  AUTH_JWT_PRIVATE_KEY_FILE     PEM private key (PKCS#8; SEC 1 also for ES256) to sign
                                with instead of a generated one; needs AUTH_JWT_ALG
                                EdDSA or ES256 matching the key
  AUTH_ENCRYPTION_KEY           32 random bytes in base64 (openssl rand -base64 32) that
                                encrypt, with AES-256-GCM, the private signing keys and
                                secrets authql keeps in the database; those stored before
                                are encrypted at the next start (default: stored unencrypted)
  AUTH_ENCRYPTION_KEY_PREVIOUS  comma-separated earlier AUTH_ENCRYPTION_KEYs, to rotate it:
                                what they encrypted is encrypted again under the new key
                                at start; remove them once every server has started
  AUTH_ACCESS_TTL               access token lifetime (default 15m)
  AUTH_REFRESH_TTL              refresh token and session lifetime (default 720h)
  AUTH_REFRESH_REUSE_INTERVAL   grace for presenting a just-rotated refresh token again (default 10s)
  AUTH_ISSUER, AUTH_AUDIENCE    iss and aud of tokens (default authql, authql)
  AUTH_ADMIN_EMAIL,
  AUTH_ADMIN_PASSWORD           create this admin at start unless an account has the email
                                (both or neither); start fails if that account is not an
                                admin: it is never promoted (see authql user roles)
  AUTH_SIGNUP                   false disables register (default true)
  AUTH_ARGON2_MEMORY            argon2id memory in KiB (default 19456)
  AUTH_ARGON2_TIME              argon2id passes (default 2)
  AUTH_ARGON2_THREADS           argon2id lanes (default 1)
  AUTH_LOGIN_LIMIT_ACCOUNT      failed logins per account and client (default 10/15m; off disables)
  AUTH_LOGIN_LIMIT_CLIENT       failed logins per client (default 100/15m)
  AUTH_REGISTER_LIMIT           registrations per client (default 20/1h)
  AUTH_REFRESH_LIMIT            refreshes per client (default 600/1m)
  AUTH_FAILURE_LIMIT            failed revokeSession and setUserRoles calls per user
                                (default 30/1m)
  AUTH_MAX_SESSIONS             live sessions per user, 1 to 500; a sign-in past it ends
                                the user's least recently used session (default 50)
  AUTH_TRUSTED_PROXIES          proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For
                                names the client (default none: the connection's address)
  AUTH_HASH_WORKERS             concurrent password hashes, at most the cores
                                (default: the cores but one, at least one)
  AUTH_HASH_WAIT                how long a login waits for a hashing worker (default 1s)
  AUTH_SYNC_TIMEOUT             on PostgreSQL, how long a replica that lost its connection
                                listening for other replicas' changes keeps accepting access
                                tokens before refusing them with SERVICE_UNAVAILABLE until
                                it has re-read what it missed (default 5s)
  AUTH_AUDIT_RETENTION          how long audit events are kept before the periodic purge
                                deletes them, at least 1h (default 2160h: 90 days)
  AUTH_AUDIT_QUEUE_BYTES        memory for audit events waiting for the database during an
                                outage; at 90% of it sign-ins get SERVICE_UNAVAILABLE
                                (default 67108864: 64 MiB, at least 1048576)
  AUTH_ENV                      production turns introspection and the playground off
                                unless enabled below (default development)
  AUTH_INTROSPECTION            allow __schema/__type queries (default true, false in production)
  AUTH_PLAYGROUND               serve the playground at / (default true, false in production)
  AUTH_MAX_BODY_BYTES           largest request body; larger gets HTTP 413 (default 65536)
  AUTH_MAX_QUERY_DEPTH          deepest field nesting of a document (default 20)
  AUTH_MAX_COMPLEXITY           largest complexity of an operation: each field counts one plus
                                its selection times the rows it may return (a list's page
                                size) (default 6500: auditLog(first: 500) with every field)
  AUTH_USER_CACHE_SIZE          users kept in memory for me and role checks (default 100000)
  AUTH_REFRESH_COOKIE           true also keeps the refresh token in an HttpOnly cookie
                                for browsers; needs AUTH_CORS_ORIGINS (default false)
  AUTH_COOKIE_INSECURE          true leaves Secure off that cookie, for local http only
                                (default false)
  AUTH_CORS_ORIGINS             comma-separated origins (https://app.example.com) of the
                                frontends allowed CORS with credentials and the cookie
                                (default none)
  AUTH_LOG_FORMAT               json or text (default json, text when stderr is a terminal)
  AUTH_LOG_LEVEL                debug, info, warn or error (default info); debug adds a
                                line per /healthz, /readyz and /metrics request
  AUTH_METRICS                  false stops serving Prometheus metrics (default true)
  AUTH_METRICS_ADDR             serve /metrics on this address (such as 127.0.0.1:9090)
                                instead of on PORT: they are not for the public, so
                                either use this or block /metrics at the proxy
  AUTH_METRICS_PUBLIC           true serves /metrics on PORT with AUTH_ENV=production too
                                (default false: in production only AUTH_METRICS_ADDR serves them)
  AUTH_MAX_CONNS_PER_CLIENT     open connections of one client address (an IPv6 /64) at once;
                                past it a new connection is closed at once; addresses in
                                AUTH_TRUSTED_PROXIES are exempt; 0 disables (default 256)
  AUTH_SHUTDOWN_DELAY           on SIGTERM or SIGINT, how long to keep serving with /readyz
                                answering 503 before closing the listener, so that load
                                balancers stop sending first (default 0s)
  AUTH_SHUTDOWN_TIMEOUT         then, how long requests in flight get to finish before
                                their connections are closed (default 10s)
  AUTH_EXAMPLE_UI               true serves the example frontend at /example/, for trying
                                authql at http://localhost:PORT/example/; turns
                                AUTH_REFRESH_COOKIE on and allows the server's own loopback
                                origins (http://localhost:PORT, http://127.0.0.1:PORT);
                                refused with AUTH_ENV=production (default false)
`

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
		Metrics:           true,
		MaxConnsPerClient: httpapi.DefaultMaxConnsPerClient,
		ShutdownTimeout:   10 * time.Second,
	}
}

// loadConfig reads the configuration from getenv: defaults first, then
// every variable set, then validation. Each error names the variable and
// says how to fix it; all of them are reported at once.
func loadConfig(getenv func(string) string) (config, error) {
	c := defaultConfig()
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	str := func(name string, dst *string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			*dst = v
		}
	}
	duration := func(name string, dst *time.Duration, min time.Duration) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			bad(name, "%q is not a duration; use Go syntax such as 15m, 720h or 10s", v)
		case d < min:
			bad(name, "%s is too short; it must be at least %s", d, min)
		default:
			*dst = d
		}
	}
	number := func(name string, dst *uint32, min, max uint64) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n < min || n > max {
			bad(name, "%q must be a whole number from %d to %d", v, min, max)
			return
		}
		*dst = uint32(n)
	}

	str("PORT", &c.Port)
	if n, err := strconv.Atoi(c.Port); err != nil || n < 0 || n > 65535 {
		bad("PORT", "%q is not a port number (0 to 65535)", c.Port)
	}
	str("DATABASE_URL", &c.DatabaseURL)
	if s := getenv("AUTH_JWT_SECRET"); s != "" {
		if len(s) < keys.MinSecretLen {
			bad("AUTH_JWT_SECRET", "is %d bytes; it must be at least %d (generate one with: openssl rand -base64 48), or leave it unset to have one generated and stored in the database", len(s), keys.MinSecretLen)
		}
		c.JWTSecret = []byte(s)
	}
	if v := strings.TrimSpace(getenv("AUTH_JWT_ALG")); v != "" {
		if alg, ok := keys.ParseAlg(v); ok {
			c.JWTAlg = alg
		} else {
			bad("AUTH_JWT_ALG", "%q is not supported; use HS256, EdDSA or ES256", v)
		}
	}
	if c.JWTSecret != nil && c.JWTAlg != "" && c.JWTAlg != keys.AlgHS256 {
		bad("AUTH_JWT_SECRET", "is an HS256 secret, but AUTH_JWT_ALG is %s; unset AUTH_JWT_SECRET (or set AUTH_JWT_ALG=HS256)", c.JWTAlg)
	}
	str("AUTH_JWT_PRIVATE_KEY_FILE", &c.JWTPrivateKeyFile)
	if f := c.JWTPrivateKeyFile; f != "" {
		if c.JWTAlg == "" || c.JWTAlg == keys.AlgHS256 {
			bad("AUTH_JWT_PRIVATE_KEY_FILE", "needs AUTH_JWT_ALG=EdDSA or ES256 (for HS256 set AUTH_JWT_SECRET instead)")
		} else if data, err := os.ReadFile(f); err != nil {
			bad("AUTH_JWT_PRIVATE_KEY_FILE", "cannot read the key: %v", err)
		} else if c.JWTPrivateKey, err = keys.ParsePrivateKeyPEM(data, c.JWTAlg); err != nil {
			bad("AUTH_JWT_PRIVATE_KEY_FILE", "%s: %v (AUTH_JWT_ALG is %s)", f, err, c.JWTAlg)
		}
	}
	encryptionKey := func(name, v string) []byte {
		v = strings.TrimSpace(v)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.Strict().DecodeString(v); err == nil && len(b) == secret.KeySize {
				return b
			}
		}
		bad(name, "is not %d bytes in base64; generate one with: openssl rand -base64 32", secret.KeySize)
		return nil
	}
	if v := getenv("AUTH_ENCRYPTION_KEY"); strings.TrimSpace(v) != "" {
		c.Encryption.Current = encryptionKey("AUTH_ENCRYPTION_KEY", v)
	}
	for _, v := range strings.Split(getenv("AUTH_ENCRYPTION_KEY_PREVIOUS"), ",") {
		if strings.TrimSpace(v) != "" {
			c.Encryption.Previous = append(c.Encryption.Previous, encryptionKey("AUTH_ENCRYPTION_KEY_PREVIOUS", v))
		}
	}
	if len(c.Encryption.Previous) > 0 && strings.TrimSpace(getenv("AUTH_ENCRYPTION_KEY")) == "" {
		bad("AUTH_ENCRYPTION_KEY_PREVIOUS", "is set without AUTH_ENCRYPTION_KEY: it only decrypts during a rotation to the key in AUTH_ENCRYPTION_KEY")
	}
	duration("AUTH_ACCESS_TTL", &c.AccessTTL, time.Second)
	duration("AUTH_REFRESH_TTL", &c.RefreshTTL, time.Second)
	duration("AUTH_REFRESH_REUSE_INTERVAL", &c.ReuseInterval, 0)
	if c.ReuseInterval > time.Minute {
		bad("AUTH_REFRESH_REUSE_INTERVAL", "%s is too long: a stolen, already used refresh token works again for that long; use at most 1m", c.ReuseInterval)
	}
	str("AUTH_ISSUER", &c.Issuer)
	str("AUTH_AUDIENCE", &c.Audience)
	str("AUTH_ADMIN_EMAIL", &c.AdminEmail)
	c.AdminPassword = getenv("AUTH_ADMIN_PASSWORD")
	if (c.AdminEmail == "") != (c.AdminPassword == "") {
		bad("AUTH_ADMIN_EMAIL/AUTH_ADMIN_PASSWORD", "set both to have an admin ensured at start, or neither")
	}
	boolean := func(name string, dst *bool) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad(name, "%q is not a boolean; use true or false", v)
		}
		*dst = b
	}
	boolean("AUTH_REFRESH_COOKIE", &c.RefreshCookie)
	boolean("AUTH_EXAMPLE_UI", &c.ExampleUI)
	if c.ExampleUI {
		if strings.TrimSpace(getenv("AUTH_REFRESH_COOKIE")) != "" && !c.RefreshCookie {
			bad("AUTH_REFRESH_COOKIE", "false cannot go with AUTH_EXAMPLE_UI=true: the example frontend keeps its sessions in the refresh cookie; unset one of them")
		}
		// The example keeps its sessions in the refresh cookie: trying it
		// should take one variable, not three.
		c.RefreshCookie = true
	}
	boolean("AUTH_COOKIE_INSECURE", &c.CookieInsecure)
	for _, v := range strings.Split(getenv("AUTH_CORS_ORIGINS"), ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		o, err := parseOrigin(v)
		if err != nil {
			bad("AUTH_CORS_ORIGINS", "%q %v", v, err)
			continue
		}
		c.CORSOrigins = append(c.CORSOrigins, o)
	}
	if c.RefreshCookie && len(c.CORSOrigins) == 0 && !c.ExampleUI {
		// Not a hole, but a set-up that cannot work: every cookie refresh
		// would be refused. Better said at start than found in a browser.
		// (With the example, serve adds its origins once the port is known.)
		bad("AUTH_REFRESH_COOKIE", "true needs AUTH_CORS_ORIGINS, the origins of the frontends that may use the cookie (such as https://app.example.com); without one every cookie refresh is refused")
	}
	number("AUTH_ARGON2_MEMORY", &c.Argon2.Memory, 8, 4<<20)
	number("AUTH_ARGON2_TIME", &c.Argon2.Time, 1, 64)
	threads := uint32(c.Argon2.Threads)
	number("AUTH_ARGON2_THREADS", &threads, 1, 255)
	c.Argon2.Threads = uint8(threads)
	if err := c.Argon2.Validate(); err != nil {
		bad("AUTH_ARGON2_MEMORY", "%v", err)
	}
	integer := func(name string, dst *int, min, max int) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < min || n > max {
				bad(name, "%q must be a whole number from %d to %d", v, min, max)
				return
			}
			*dst = n
		}
	}
	rate := func(name string, dst *auth.Rate) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			r, err := auth.ParseRate(v)
			if err != nil {
				bad(name, "%v", err)
			}
			*dst = r
		}
	}
	rate("AUTH_LOGIN_LIMIT_ACCOUNT", &c.Limits.LoginAccount)
	rate("AUTH_LOGIN_LIMIT_CLIENT", &c.Limits.LoginClient)
	rate("AUTH_REGISTER_LIMIT", &c.Limits.Register)
	rate("AUTH_REFRESH_LIMIT", &c.Limits.Refresh)
	rate("AUTH_FAILURE_LIMIT", &c.Limits.Failures)
	if v := getenv("AUTH_TRUSTED_PROXIES"); strings.TrimSpace(v) != "" {
		p, err := auth.ParseTrustedProxies(v)
		if err != nil {
			bad("AUTH_TRUSTED_PROXIES", "%v; list the addresses of your reverse proxies, such as 10.0.0.0/8,192.168.1.7", err)
		}
		c.TrustedProxies = p
	}
	integer("AUTH_HASH_WORKERS", &c.HashWorkers, 1, runtime.GOMAXPROCS(0))
	duration("AUTH_HASH_WAIT", &c.HashWait, time.Millisecond)
	if c.HashWait > time.Minute {
		bad("AUTH_HASH_WAIT", "%s is too long: waiting logins pile up; use at most 1m", c.HashWait)
	}
	duration("AUTH_SYNC_TIMEOUT", &c.SyncTimeout, 100*time.Millisecond)
	if c.SyncTimeout > 10*time.Minute {
		// Past the purge cycle, which re-reads revocations anyway, the
		// bound would bound nothing.
		bad("AUTH_SYNC_TIMEOUT", "%s is too long: a replica cut off from the others would honour their logouts for that long; use at most 10m", c.SyncTimeout)
	}

	// At least an hour: a shorter retention would delete events before
	// anyone had a chance to read them.
	duration("AUTH_AUDIT_RETENTION", &c.AuditRetention, time.Hour)

	switch env := strings.ToLower(strings.TrimSpace(getenv("AUTH_ENV"))); env {
	case "", "development":
	case "production":
		// Production hides the schema and the playground unless asked:
		// they help an attacker map the API and are no use to end users.
		c.Production, c.Introspection, c.Playground = true, false, false
	default:
		bad("AUTH_ENV", "%q is not an environment; use development or production", env)
	}
	if c.Production && c.CookieInsecure {
		bad("AUTH_COOKIE_INSECURE", "true is for local http and is refused with AUTH_ENV=production: a refresh cookie sent over plain http can be read on the network")
	}
	if c.Production && c.ExampleUI {
		bad("AUTH_EXAMPLE_UI", "true is for trying authql and is refused with AUTH_ENV=production: it serves a demo page and allows the cookie to the server's own loopback origins")
	}
	boolean("AUTH_SIGNUP", &c.Signup)
	boolean("AUTH_AUTO_MIGRATE", &c.AutoMigrate)
	boolean("AUTH_INTROSPECTION", &c.Introspection)
	boolean("AUTH_PLAYGROUND", &c.Playground)
	var body int
	integer("AUTH_MAX_BODY_BYTES", &body, 1024, 16<<20)
	if body > 0 {
		c.MaxBodyBytes = int64(body)
	}
	integer("AUTH_USER_CACHE_SIZE", &c.UserCacheSize, 1, 100_000_000)
	// At most a page of users: mySessions lists them all in one answer.
	integer("AUTH_MAX_SESSIONS", &c.MaxSessions, 1, models.MaxPageSize)
	integer("AUTH_MAX_QUERY_DEPTH", &c.MaxDepth, 2, 1000)
	integer("AUTH_MAX_COMPLEXITY", &c.MaxComplexity, 10, 1_000_000)
	integer("AUTH_DB_MAX_CONNS", &c.DB.MaxConns, 1, 1000)
	integer("AUTH_DB_MAX_IDLE_CONNS", &c.DB.MaxIdleConns, 1, 1000)
	if idle := c.DB.MaxIdleConns; idle > 0 {
		limit := c.DB.MaxConns
		if d, _, err := models.ParseDSN(c.DatabaseURL); limit == 0 && err == nil {
			limit = models.DefaultMaxConns(d)
		}
		if limit > 0 && idle > limit {
			bad("AUTH_DB_MAX_IDLE_CONNS", "%d is more than the %d connections the pool may open (AUTH_DB_MAX_CONNS); set at most %d, or raise AUTH_DB_MAX_CONNS", idle, limit, limit)
		}
	}
	// At least a minute: a shorter lifetime would have the pool redial
	// under steady load, the very cost the pool is there to avoid.
	duration("AUTH_DB_CONN_MAX_LIFETIME", &c.DB.ConnMaxLifetime, time.Minute)
	// At least 100ms: a healthy database answers authql's statements in
	// milliseconds, and a shorter deadline would fail them under load.
	duration("AUTH_DB_TIMEOUT", &c.DB.Timeout, 100*time.Millisecond)
	if c.DB.Timeout > 5*time.Minute {
		bad("AUTH_DB_TIMEOUT", "%s is too long: requests would hang that long on a stalled database; use at most 5m", c.DB.Timeout)
	}
	var queueBytes int
	integer("AUTH_AUDIT_QUEUE_BYTES", &queueBytes, 1<<20, 16<<30)
	c.AuditQueueBytes = int64(queueBytes)

	switch v := strings.ToLower(strings.TrimSpace(getenv("AUTH_LOG_FORMAT"))); v {
	case "", "json", "text":
		c.LogFormat = v
	default:
		bad("AUTH_LOG_FORMAT", "%q is not a format; use json or text", v)
	}
	switch v := strings.ToLower(strings.TrimSpace(getenv("AUTH_LOG_LEVEL"))); v {
	case "", "info":
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		bad("AUTH_LOG_LEVEL", "%q is not a level; use debug, info, warn or error", v)
	}
	boolean("AUTH_METRICS", &c.Metrics)
	str("AUTH_METRICS_ADDR", &c.MetricsAddr)
	boolean("AUTH_METRICS_PUBLIC", &c.MetricsPublic)
	integer("AUTH_MAX_CONNS_PER_CLIENT", &c.MaxConnsPerClient, 0, 1_000_000)
	if a := c.MetricsAddr; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			bad("AUTH_METRICS_ADDR", "%q is not host:port; use such as 127.0.0.1:9090 or :9090", a)
		} else if !c.Metrics {
			bad("AUTH_METRICS_ADDR", "is set but AUTH_METRICS is false; unset one of them")
		}
	}
	duration("AUTH_SHUTDOWN_DELAY", &c.ShutdownDelay, 0)
	if c.ShutdownDelay > 5*time.Minute {
		bad("AUTH_SHUTDOWN_DELAY", "%s is too long: a few times the load balancer's probe interval is enough; use at most 5m", c.ShutdownDelay)
	}
	duration("AUTH_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout, 0)
	if c.ShutdownTimeout > 10*time.Minute {
		bad("AUTH_SHUTDOWN_TIMEOUT", "%s is too long: orchestrators kill a process long before (Kubernetes after 30s by default); use at most 10m", c.ShutdownTimeout)
	}
	return c, errors.Join(errs...)
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
