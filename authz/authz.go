// Package authz is authql's authorization for any other Go GraphQL service:
// a Verifier of authql's access tokens that configures itself from
// authql's discovery document and JWKS, follows authql's revocation feed,
// and offers HTTP middleware, gqlgen's @auth directive and a websocket
// InitFunc with the same semantics and error codes as authql's own.
//
// It needs no database: roles and permissions come from the token's claims
// (`roles`, `scope`), revocations and role changes from the feed. It
// imports no authql package that pulls in GORM (a test keeps it so).
package authz

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of a Config.
const (
	DefaultFeedMaxLag   = 10 * time.Second
	DefaultMaxTokenLife = time.Hour
	// MaxClockSkew is how far token times may disagree with this clock:
	// authql's own leeway (auth/keys.MaxClockSkew).
	MaxClockSkew = 30 * time.Second
)

// Config configures a Verifier.
type Config struct {
	// Issuer is authql's base URL: its AUTH_ISSUER, which operators set to
	// its AUTH_PUBLIC_URL. The discovery document is read from
	// Issuer + "/.well-known/oauth-authorization-server" and its `issuer`
	// must equal this (RFC 8414 §3.3).
	Issuer string
	// Audience is the `aud` a token must hold to be accepted here: authql's
	// AUTH_AUDIENCE, or this service's own audience for exchanged tokens.
	Audience string
	// HTTPClient fetches the discovery document, the JWKS and the feed
	// (default: a client with a 10 s timeout for the documents and none for
	// the feed's stream).
	HTTPClient *http.Client
	// FeedToken returns an access token of a user holding `events:read`
	// (authql's role `service`), asked again for each connection of the
	// feed. Required unless NoRevocationFeed is set.
	FeedToken func(ctx context.Context) (string, error)
	// NoRevocationFeed runs without the feed, FeedToken nil: revoked
	// tokens, sessions and disabled accounts are then refused only when
	// the tokens expire, and role changes are not seen. It must be asked
	// for explicitly, so that a forgotten FeedToken is an error at New
	// rather than a silent loss of every revocation; New logs a warning.
	NoRevocationFeed bool
	// FeedMaxLag is how long the feed may be down before every token check
	// fails with SERVICE_UNAVAILABLE (default DefaultFeedMaxLag).
	FeedMaxLag time.Duration
	// MaxTokenLife bounds exp - iat of the tokens accepted (default
	// DefaultMaxTokenLife); it must be at least authql's AUTH_ACCESS_TTL.
	// A revocation is remembered for this long after it happened, and a
	// token that could outlive that memory is refused.
	MaxTokenLife time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger logs failed fetches and the feed's reconnects (default: none).
	Logger *slog.Logger
}

// Principal is the verified caller: the claims of a valid access token.
type Principal struct {
	UserID, SessionID, TokenID string
	Roles                      []string
	// Scope is the token's permissions (its `scope` claim, split).
	Scope    []string
	ClientID string
	// ACR, AMR and AuthTime say how the session last authenticated, as of
	// the token's issue; AalMax is "aal2" when the user had a second factor.
	ACR       string
	AMR       []string
	AuthTime  time.Time // zero: absent
	AalMax    string
	ExpiresAt time.Time
	IssuedAt  time.Time
}

// Verifier verifies authql's access tokens. It is safe for concurrent use.
type Verifier struct {
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	meta    metadata
	keys    *keySet
	jwt     *jwt.Parser
	revs    *revocations
	feed    *feedState
	stop    context.CancelFunc
	runCtx  context.Context // ends with stop: the feed, the keys' background refetch
	stopped sync.WaitGroup
}

// New reads the discovery document and the JWKS of cfg.Issuer and, with
// cfg.FeedToken, starts following the revocation feed until ctx ends or
// Close is called. It fails when the discovery document or the JWKS cannot
// be read, when the document names another issuer, and when FeedToken is
// nil without NoRevocationFeed (or set with it).
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("authz: Config.Issuer and Config.Audience are required")
	}
	// Without the feed no revocation is ever seen: refuse to run so unless
	// the caller said so, rather than fail open silently.
	if cfg.FeedToken == nil && !cfg.NoRevocationFeed {
		return nil, errors.New("authz: Config.FeedToken is nil: without the revocation feed revoked tokens are accepted until they expire; set FeedToken, or NoRevocationFeed to run without it")
	}
	if cfg.FeedToken != nil && cfg.NoRevocationFeed {
		return nil, errors.New("authz: Config.FeedToken and Config.NoRevocationFeed are both set")
	}
	if cfg.FeedMaxLag <= 0 {
		cfg.FeedMaxLag = DefaultFeedMaxLag
	}
	if cfg.MaxTokenLife <= 0 {
		cfg.MaxTokenLife = DefaultMaxTokenLife
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{cfg: cfg, log: cfg.Logger, client: cfg.HTTPClient}
	if v.log == nil {
		v.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if v.client == nil {
		v.client = &http.Client{}
	}
	meta, err := v.discover(ctx)
	if err != nil {
		return nil, err
	}
	v.meta = meta
	v.jwt = v.parser()
	v.keys = newKeySet(v, meta.JWKSURI)
	if err := v.keys.refresh(ctx); err != nil {
		return nil, fmt.Errorf("authz: JWKS %s: %w", meta.JWKSURI, err)
	}
	v.revs = newRevocations(cfg.MaxTokenLife + MaxClockSkew)
	if cfg.NoRevocationFeed {
		v.log.WarnContext(ctx, "authz: NoRevocationFeed: no revocation feed; revoked tokens are accepted until they expire", "issuer", cfg.Issuer)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	v.stop, v.runCtx = stop, runCtx
	context.AfterFunc(ctx, stop)
	if cfg.FeedToken != nil {
		if meta.EventsEndpoint == "" {
			stop()
			return nil, errors.New("authz: the discovery document has no events_endpoint, and Config.FeedToken asks for the feed")
		}
		v.feed = &feedState{}
		v.stopped.Add(1)
		go func() {
			defer v.stopped.Done()
			v.follow(runCtx)
		}()
	}
	return v, nil
}

// Close stops following the feed and waits for it to end.
func (v *Verifier) Close() {
	v.stop()
	v.stopped.Wait()
}

// GraphQLEndpoint is authql's /query URL, from its discovery document.
func (v *Verifier) GraphQLEndpoint() string { return v.meta.GraphQLEndpoint }

// trimIssuer is an issuer URL without a trailing slash, as the discovery
// document's path is built (RFC 8414 §3).
func trimIssuer(s string) string { return strings.TrimSuffix(s, "/") }
