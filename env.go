package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/authql/authql/auth"
)

// variable is one environment variable authql reads. The table below is
// the one list of them: --help is built from it, and a test fails when the
// code reads a variable it does not list, or when a Default differs from
// what loadConfig does with the variable unset.
type variable struct {
	Name string
	// Default is the value that behaves as the variable unset does, as it
	// would be written; "" when the default depends on something else
	// (Meaning says on what) or there is none.
	Default string
	Meaning string
}

// variables lists every variable, in the order --help shows them.
var variables = []variable{
	{"PORT", "8080", "listen port"},
	{"DATABASE_URL", "authql.db", "postgres://… or postgresql://… for PostgreSQL; sqlite://PATH or a file path for SQLite"},
	{"AUTH_DB_MAX_CONNS", "", "open database connections at most (default 20 on PostgreSQL, 8 on SQLite)"},
	{"AUTH_DB_MAX_IDLE_CONNS", "", "connections kept open while idle, at most AUTH_DB_MAX_CONNS (default AUTH_DB_MAX_CONNS)"},
	{"AUTH_DB_CONN_MAX_LIFETIME", "", "close and redial a connection this old, at least 1m (default 30m)"},
	{"AUTH_DB_TIMEOUT", "", "deadline of every database statement and transaction; past it the request fails with SERVICE_UNAVAILABLE (default 5s)"},
	{"AUTH_AUTO_MIGRATE", "true", "false: serve and the other commands do not migrate the database but refuse to start unless authql migrate has"},
	{"AUTH_JWT_SECRET", "", "HS256 secret, at least 32 bytes (default: generated on first start and kept in the database)"},
	{"AUTH_JWT_ALG", "", "access token algorithm: HS256, EdDSA (Ed25519) or ES256 (P-256); serve switches to it at start (default: keep the database's, HS256 for a new one); keys are generated and kept in the database"},
	{"AUTH_JWT_PRIVATE_KEY_FILE", "", "PEM private key (PKCS#8; SEC 1 also for ES256) to sign with instead of a generated one; needs AUTH_JWT_ALG EdDSA or ES256 matching the key"},
	{"AUTH_ENCRYPTION_KEY", "", "32 random bytes in base64 (openssl rand -base64 32) that encrypt, with AES-256-GCM, the private signing keys and secrets authql keeps in the database; those stored before are encrypted at the next start (default: stored unencrypted)"},
	{"AUTH_ENCRYPTION_KEY_PREVIOUS", "", "comma-separated earlier AUTH_ENCRYPTION_KEYs, to rotate it: what they encrypted is encrypted again under the new key at start; remove them once every server has started"},
	{"AUTH_ACCESS_TTL", "15m", "access token lifetime"},
	{"AUTH_REFRESH_TTL", "720h", "refresh token and session lifetime"},
	{"AUTH_REFRESH_REUSE_INTERVAL", "10s", "grace for presenting a just-rotated refresh token again"},
	{"AUTH_ISSUER", "authql", "iss of tokens"},
	{"AUTH_AUDIENCE", "authql", "aud of tokens"},
	{"AUTH_CLIENT_ID", "", "client_id of access tokens (RFC 9068) (default AUTH_ISSUER)"},
	{"AUTH_AUDIENCES", "", "comma-separated audiences of downstream services that exchangeToken may issue tokens for (default none: exchangeToken refuses every audience); never AUTH_AUDIENCE"},
	{"AUTH_EXCHANGE_TTL", "5m", "lifetime of exchanged tokens, at most 1h (they also expire with the caller's token)"},
	{"AUTH_PUBLIC_URL", "", "the server's external base URL (such as https://auth.example.com), from which the discovery document builds its URLs; required with AUTH_ENV=production; set AUTH_ISSUER to it (default outside production: each request's scheme and host)"},
	{"AUTH_ADMIN_EMAIL", "", "with AUTH_ADMIN_PASSWORD (both or neither): create this admin at start unless an account has the email; start fails if that account is not an admin: it is never promoted (see authql user roles)"},
	{"AUTH_ADMIN_PASSWORD", "", "the password of the admin of AUTH_ADMIN_EMAIL"},
	{"AUTH_SIGNUP", "true", "false disables register"},
	{"AUTH_ARGON2_MEMORY", "19456", "argon2id memory in KiB"},
	{"AUTH_ARGON2_TIME", "2", "argon2id passes"},
	{"AUTH_ARGON2_THREADS", "1", "argon2id lanes"},
	{"AUTH_LOGIN_LIMIT_ACCOUNT", "10/15m", "failed logins per account and client (off disables)"},
	{"AUTH_LOGIN_LIMIT_CLIENT", "100/15m", "failed logins per client"},
	{"AUTH_REGISTER_LIMIT", "20/1h", "registrations per client"},
	{"AUTH_REFRESH_LIMIT", "600/1m", "refreshes per client"},
	{"AUTH_FAILURE_LIMIT", "30/1m", "failed calls per user of revokeSession, setUserRoles, deleteUser, disableUser, enableUser, removeMfaFactor, deletePasskey, finishPasskeyRegistration and confirmTotp"},
	{"AUTH_MAX_SESSIONS", "50", "live sessions per user, 1 to 500; a sign-in past it ends the user's least recently used session"},
	{"AUTH_TRUSTED_PROXIES", "", "proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client (default none: the connection's address)"},
	{"AUTH_HASH_WORKERS", "", "concurrent password hashes, at most the cores (default: the cores but one, at least one)"},
	{"AUTH_HASH_WAIT", "1s", "how long a login waits for a hashing worker"},
	{"AUTH_SYNC_TIMEOUT", "5s", "on PostgreSQL, how long a replica that lost its connection listening for other replicas' changes keeps accepting access tokens before refusing them with SERVICE_UNAVAILABLE until it has re-read what it missed"},
	{"AUTH_AUDIT_RETENTION", "2160h", "how long audit events are kept before the periodic purge deletes them, at least 1h (2160h: 90 days)"},
	{"AUTH_EVENTS_RETENTION", "1h", "how long live events (sign-outs, revocations, role changes) are kept for the revocation feed (GET /events) to resume from Last-Event-ID; at least AUTH_ACCESS_TTL"},
	{"AUTH_EVENTS_MAX_STREAMS", "10", "open revocation-feed streams (GET /events) per user, 1 to 1000; more are refused with 429"},
	{"AUTH_AUDIT_QUEUE_BYTES", "", "memory for audit events waiting for the database during an outage; at 90% of it sign-ins get SERVICE_UNAVAILABLE (default 67108864: 64 MiB, at least 1048576)"},
	{"AUTH_ENV", "development", "production turns introspection and the playground off unless enabled below"},
	{"AUTH_INTROSPECTION", "", "allow __schema/__type queries (default true, false in production)"},
	{"AUTH_PLAYGROUND", "", "serve the playground at / (default true, false in production)"},
	{"AUTH_MAX_BODY_BYTES", "65536", "largest request body; larger gets HTTP 413"},
	{"AUTH_MAX_QUERY_DEPTH", "20", "deepest field nesting of a document"},
	{"AUTH_MAX_COMPLEXITY", "6500", "largest complexity of an operation: each field counts one plus its selection times the rows it may return (a list's page size); 6500 is auditLog(first: 500) with every field"},
	{"AUTH_USER_CACHE_SIZE", "100000", "users kept in memory for me and role checks"},
	{"AUTH_REFRESH_COOKIE", "false", "true also keeps the refresh token in an HttpOnly cookie for browsers; needs AUTH_CORS_ORIGINS"},
	{"AUTH_COOKIE_INSECURE", "false", "true leaves Secure off that cookie, for local http only"},
	{"AUTH_CORS_ORIGINS", "", "comma-separated origins (https://app.example.com) of the frontends allowed CORS with credentials and the cookie (default none)"},
	{"AUTH_SMTP_URL", "", "the SMTP server mails go through: smtp://user:pass@host:587 (STARTTLS required, except to a loopback address) or smtps://user:pass@host:465 (TLS); required in production; unset in development, mails are written as .eml files to AUTH_MAIL_DIR"},
	{"AUTH_SMTP_INSECURE", "false", "true allows smtp:// without STARTTLS to a host that is not loopback, without credentials: a mail catcher such as Mailpit in development; refused in production"},
	{"AUTH_MAIL_FROM", "", "the sender of mails, such as \"Example <no-reply@example.com>\"; required in production (default outside production: authql <no-reply@localhost>)"},
	{"AUTH_APP_URL", "", "your app's base URL, which mailed links start with (${AUTH_APP_URL}/reset#token=…), never taken from a request; absolute http(s) without query or fragment, https in production; required in production (default outside production: http://localhost:PORT/example, the example frontend)"},
	{"AUTH_WEBAUTHN_RP_ID", "", "the passkeys' relying party id: the domain they are bound to, your app's host or a parent domain of it, such as example.com (default: the host of AUTH_APP_URL)"},
	{"AUTH_WEBAUTHN_ORIGINS", "", "comma-separated exact origins (https://app.example.com) passkey ceremonies may come from, each on AUTH_WEBAUTHN_RP_ID or a subdomain of it; https in production, except localhost (default: the origin of AUTH_APP_URL and AUTH_CORS_ORIGINS)"},
	{"AUTH_MAIL_DIR", "", "without AUTH_SMTP_URL (development only), the directory mails are written to as <time>-<id>.eml files, private (0600) (default: mail/ beside the SQLite file, or in the working directory for PostgreSQL)"},
	{"AUTH_MAIL_TEMPLATES", "", "a directory of mail templates replacing the embedded ones of the same name (see README's Mail templates); checked at start (default: the embedded ones only)"},
	{"AUTH_RESET_TTL", "15m", "how long a password-reset link and code work, 1m to 24h"},
	{"AUTH_VERIFY_TTL", "24h", "how long an email-verification link and code work, 1m to 720h"},
	{"AUTH_REQUIRE_VERIFIED_EMAIL", "false", "true: register mails a verification and fails with EMAIL_NOT_VERIFIED instead of signing in, and login refuses unverified accounts with EMAIL_NOT_VERIFIED"},
	{"AUTH_MAIL_LIMIT", "5/1h", "mails requested per address (resets, verifications, email changes; off disables); answers the same for addresses without an account"},
	{"AUTH_MAIL_CLIENT_LIMIT", "30/1h", "mails requested per client (off disables)"},
	{"AUTH_LOG_FORMAT", "", "json or text (default json, text when stderr is a terminal)"},
	{"AUTH_LOG_LEVEL", "info", "debug, info, warn or error; debug adds a line per /healthz, /readyz and /metrics request"},
	{"AUTH_METRICS", "true", "false stops serving Prometheus metrics"},
	{"AUTH_METRICS_ADDR", "", "serve /metrics on this address (such as 127.0.0.1:9090) instead of on PORT: they are not for the public, so either use this or block /metrics at the proxy"},
	{"AUTH_METRICS_PUBLIC", "false", "true serves /metrics on PORT with AUTH_ENV=production too; false leaves them, in production, to AUTH_METRICS_ADDR alone"},
	{"AUTH_WS_MAX_SOCKETS_PER_USER", "20", "websockets (subscriptions on /query) one user may hold open on a replica; past it connection_init closes 4429"},
	{"AUTH_WS_MAX_SUBSCRIPTIONS", "10", "operations running at once on one websocket (subscriptions included); one more closes it with 4429"},
	{"AUTH_WS_MAX_MESSAGE_BYTES", "65536", "largest message a client may send on a websocket; larger closes it with 1009"},
	{"AUTH_WS_PING_INTERVAL", "25s", "how often the server pings each websocket; one that has not answered within two intervals is dropped"},
	{"AUTH_MAX_CONNS_PER_CLIENT", "256", "open connections of one client address (an IPv6 /64) at once; past it a new connection is closed at once; addresses in AUTH_TRUSTED_PROXIES are exempt; 0 disables"},
	{"AUTH_SHUTDOWN_DELAY", "0s", "on SIGTERM or SIGINT, how long to keep serving with /readyz answering 503 before closing the listener, so that load balancers stop sending first"},
	{"AUTH_SHUTDOWN_TIMEOUT", "10s", "then, how long requests in flight get to finish before their connections are closed"},
	{"AUTH_EXAMPLE_UI", "false", "true serves the example frontend at /example/, for trying authql at http://localhost:PORT/example/; turns AUTH_REFRESH_COOKIE on and allows the server's own loopback origins (http://localhost:PORT, http://127.0.0.1:PORT); refused with AUTH_ENV=production"},
}

// configHelp documents every variable, for --help.
var configHelp = variablesHelp(variables)

// variablesHelp lists vars as --help shows them: each name, then its
// meaning and default wrapped beside it.
func variablesHelp(vars []variable) string {
	const indent, width = 32, 92
	var b strings.Builder
	b.WriteString("Configuration (environment variables):\n")
	for _, v := range vars {
		text := v.Meaning
		if v.Default != "" {
			text += " (default " + v.Default + ")"
		}
		line := fmt.Sprintf("  %-*s", indent-2, v.Name)
		if len(line) > indent {
			line = "  " + v.Name + "\n" + strings.Repeat(" ", indent)
		}
		col := indent
		for i, word := range strings.Fields(text) {
			if i > 0 && col+1+len(word) > width {
				line += "\n" + strings.Repeat(" ", indent)
				col = indent
			} else if i > 0 {
				line += " "
				col++
			}
			line += word
			col += len(word)
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// envReader reads variables through getenv into typed values, collecting
// an error for each bad one; each error names the variable and says how to
// fix it.
type envReader struct {
	getenv func(string) string
	errs   []error
}

// bad records that the variable name is wrong, saying why.
func (r *envReader) bad(name, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

// err is every error recorded, joined, or nil.
func (r *envReader) err() error { return errors.Join(r.errs...) }

// raw is the variable's value as set, spaces included (secrets, passwords).
func (r *envReader) raw(name string) string { return r.getenv(name) }

// value is the variable's value without surrounding spaces.
func (r *envReader) value(name string) string { return strings.TrimSpace(r.getenv(name)) }

// set reports whether the variable has a value other than spaces.
func (r *envReader) set(name string) bool { return r.value(name) != "" }

// str sets *dst to the variable's value, if set.
func (r *envReader) str(name string, dst *string) {
	if v := r.value(name); v != "" {
		*dst = v
	}
}

// duration sets *dst to the variable's duration, if set, of at least min.
func (r *envReader) duration(name string, dst *time.Duration, min time.Duration) {
	v := r.value(name)
	if v == "" {
		return
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		r.bad(name, "%q is not a duration; use Go syntax such as 15m, 720h or 10s", v)
	case d < min:
		r.bad(name, "%s is too short; it must be at least %s", d, min)
	default:
		*dst = d
	}
}

// atMost records an error unless the variable's duration d is at most max.
func (r *envReader) atMost(name string, d, max time.Duration, why string) {
	if d > max {
		r.bad(name, "%s is too long: %s; use at most %s", d, why, shortDuration(max))
	}
}

// shortDuration writes d as people do: 1m, not 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// uint32 sets *dst to the variable's whole number, if set, from min to max.
func (r *envReader) uint32(name string, dst *uint32, min, max uint64) {
	v := r.value(name)
	if v == "" {
		return
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n < min || n > max {
		r.bad(name, "%q must be a whole number from %d to %d", v, min, max)
		return
	}
	*dst = uint32(n)
}

// integer sets *dst to the variable's whole number, if set, from min to max.
func (r *envReader) integer(name string, dst *int, min, max int) {
	v := r.value(name)
	if v == "" {
		return
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		r.bad(name, "%q must be a whole number from %d to %d", v, min, max)
		return
	}
	*dst = n
}

// boolean sets *dst to the variable's boolean, if set.
func (r *envReader) boolean(name string, dst *bool) {
	v := r.value(name)
	if v == "" {
		return
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.bad(name, "%q is not a boolean; use true or false", v)
	}
	*dst = b
}

// rate sets *dst to the variable's rate (COUNT/DURATION or off), if set.
func (r *envReader) rate(name string, dst *auth.Rate) {
	v := r.value(name)
	if v == "" {
		return
	}
	rt, err := auth.ParseRate(v)
	if err != nil {
		r.bad(name, "%v", err)
	}
	*dst = rt
}

// usage is the help of authql --help.
var usage = `Usage:
  authql [serve]              serve the GraphQL API: POST /query, playground at GET /,
                              public keys at GET /.well-known/jwks.json (and the
                              example frontend at /example/ with AUTH_EXAMPLE_UI=true)
  authql migrate              apply the database migrations and exit
  authql user add [flags]     add a user (see authql user --help)
  authql user roles [flags]   set a user's roles
  authql user reset|disable|enable|delete --email EMAIL
                              mail a password reset; disable, enable or delete an account
  authql user mfa reset --email EMAIL
                              remove every second factor of a user (lost factors)
  authql keys rotate [flags]  add a new signing key (see authql keys --help)
  authql mail test --to ADDR  send a test mail through the configured SMTP server
  authql health [flags]       exit 0 if the local server is ready (for container health checks)
  authql version              print the version and build information

Each command takes --help. All read the configuration below.

` + configHelp
