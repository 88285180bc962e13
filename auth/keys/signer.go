package keys

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

const (
	// accessTokenType is the JWT "typ" of access tokens (RFC 9068). Requiring
	// it keeps a JWT minted for another purpose with the same key from being
	// accepted as an access token.
	accessTokenType = "at+jwt"
	// MaxClockSkew is how far token times may disagree with this clock.
	MaxClockSkew = 30 * time.Second
	// MinSecretLen is the shortest HS256 secret accepted: 256 bits, the size
	// of the HMAC-SHA256 output (RFC 7518 §3.2).
	MinSecretLen = 32
)

// Claims are the claims of an access token.
type Claims struct {
	jwt.RegisteredClaims
	SessionID string   `json:"sid"`
	Roles     []string `json:"roles"`
	// ACR, AMR and AuthTime say how the session last authenticated
	// (OpenID Connect Core §2; RFC 8176 for AMR's values): "aal1" or
	// "aal2", the methods, and when. They are as of the token's issue;
	// authql's own step-up checks read the session's current state.
	ACR      string           `json:"acr,omitempty"`
	AMR      []string         `json:"amr,omitempty"`
	AuthTime *jwt.NumericDate `json:"auth_time,omitempty"`
	// ClientID is the client the token was issued to (RFC 9068 §2.2):
	// AUTH_CLIENT_ID, the issuer unless set.
	ClientID string `json:"client_id"`
	// Scope is the user's permissions at issue, sorted, in one
	// space-separated string (RFC 8693 §4.2, RFC 9068 §2.2.3), for
	// services that cannot ask authql; authql itself authorizes with the
	// user's current roles, never with it.
	Scope string `json:"scope,omitempty"`
	// AalMax is "aal2" when the user had a second factor at issue, else
	// "aal1": with it, a service without a database applies authql's
	// @auth(aal: 2) rule (level 2 only of users who have a factor).
	AalMax string `json:"aal_max,omitempty"`

	// keyUntil is when the key that verified the token stops verifying
	// (zero: not retired), set by Verify.
	keyUntil time.Time
}

// KeyUntil is when the key that verified the token stops verifying it
// (zero: the key is not retired). A verified token must be refused past
// it, even before it expires.
func (c *Claims) KeyUntil() time.Time { return c.keyUntil }

// Signer issues and verifies access tokens with the keys of a Set.
type Signer struct {
	keys     *Set
	issuer   string
	audience string
	now      func() time.Time
	parser   *jwt.Parser
}

// Signer returns a Signer of tokens for issuer and audience with the keys
// of ks, on the clock now (nil: time.Now).
func (ks *Set) Signer(issuer, audience string, now func() time.Time) *Signer {
	if now == nil {
		now = time.Now
	}
	s := &Signer{keys: ks, issuer: issuer, audience: audience, now: now}
	s.parser = jwt.NewParser(
		// Pinning the algorithms rejects "none" and any algorithm authql
		// does not use before a key is looked at; the keyfunc then narrows
		// it to the one algorithm of the token's key.
		jwt.WithValidMethods(validMethods),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(MaxClockSkew),
		jwt.WithTimeFunc(now),
		// Each token has one spelling: without this, the ignored low bits
		// of a segment's last base64 character give every signature four
		// spellings that verify (found by FuzzVerify).
		jwt.WithStrictDecoding(),
	)
	return s
}

// Keys returns the key set s signs and verifies with.
func (s *Signer) Keys() *Set { return s.keys }

// KeyID returns the kid of the key signing now, or "".
func (s *Signer) KeyID() string {
	if k := s.keys.current(); k != nil {
		return k.kid
	}
	return ""
}

// Subject is whom an access token is for: the user, the session, the
// roles, and how the session last authenticated (see Claims).
type Subject struct {
	UserID, SessionID string
	Roles             []string
	ACR               string
	AMR               []string
	AuthTime          time.Time // zero: none
	ClientID          string
	Scope             string // space-separated
	AalMax            string
	// Audience is the token's one audience; "" is the signer's own. A
	// token for another audience is for a downstream service: this
	// signer's Verify refuses it.
	Audience string
}

// IssueAt returns a signed access token for sub, valid for ttl, and its
// claims. The token is issued at `at`, not now: at the time its session
// recorded as its issue (see models.Session's AccessExpiresAt), so that it
// cannot expire later than recorded.
func (s *Signer) IssueAt(at time.Time, sub Subject, ttl time.Duration) (string, *Claims, error) {
	k := s.keys.current()
	if k == nil || k.signKey == nil {
		return "", nil, errNoSigningKey
	}
	now := at.Truncate(time.Second)
	aud := sub.Audience
	if aud == "" {
		aud = s.audience
	}
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Audience:  jwt.ClaimStrings{aud},
			Subject:   sub.UserID,
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ID:        uuid.NewString(),
		},
		SessionID: sub.SessionID,
		Roles:     sub.Roles,
		ACR:       sub.ACR,
		AMR:       sub.AMR,
		ClientID:  sub.ClientID,
		Scope:     sub.Scope,
		AalMax:    sub.AalMax,
	}
	if !sub.AuthTime.IsZero() {
		c.AuthTime = jwt.NewNumericDate(sub.AuthTime.Truncate(time.Second))
	}
	t := jwt.NewWithClaims(k.method, c)
	t.Header["typ"] = accessTokenType
	t.Header["kid"] = k.kid
	signed, err := t.SignedString(k.signKey)
	return signed, c, err
}

// Token verification failures. They are all "unauthenticated" to clients;
// ErrTokenExpired is told apart so that a client knows to refresh.
var (
	ErrTokenInvalid = errors.New("invalid access token")
	ErrTokenExpired = errors.New("access token expired")
)

// Verify checks an access token's signature, algorithm, type, key id,
// issuer, audience and times, and returns its claims. It returns an error
// wrapping ErrTokenExpired when expiry is the token's one fault, and one
// wrapping ErrTokenInvalid for any other.
func (s *Signer) Verify(ctx context.Context, token string) (*Claims, error) {
	// Go's base64 decoder skips CR and LF even in strict mode, so a token
	// with a newline inside would verify as another spelling of itself
	// (found by FuzzVerify). A compact JWS is base64url and dots only.
	if strings.ContainsFunc(token, notCompactJWS) {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrTokenInvalid)
	}
	var c Claims
	_, err := s.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		return s.verifyKey(ctx, t, &c)
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired) && !errors.Is(err, jwt.ErrTokenInvalidIssuer) &&
		!errors.Is(err, jwt.ErrTokenInvalidAudience) && !errors.Is(err, jwt.ErrTokenUsedBeforeIssued) &&
		!errors.Is(err, jwt.ErrTokenNotValidYet):
		// "Expired" tells the client to refresh; say it only when
		// expiry is the token's one fault.
		return nil, ErrTokenExpired
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrTokenInvalid, err)
	case c.Subject == "" || c.ID == "" || c.SessionID == "":
		return nil, fmt.Errorf("%w: missing sub, jti or sid", ErrTokenInvalid)
	}
	return &c, nil
}

// verifyKey is Verify's keyfunc: the key that verifies t, whose claims c
// are decoded already, or why there is none.
func (s *Signer) verifyKey(ctx context.Context, t *jwt.Token, c *Claims) (any, error) {
	if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, accessTokenType) && !strings.EqualFold(typ, "application/"+accessTokenType) {
		return nil, fmt.Errorf("token typ %q is not %q", typ, accessTokenType)
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errNoKID
	}
	k := s.keys.lookup(ctx, kid)
	if k == nil || k.verifyKey == nil {
		return nil, errUnknownKID
	}
	// The key, never the token, decides the algorithm: otherwise a
	// token saying HS256 could be checked with a public key, which
	// everyone has, used as the HMAC secret.
	if t.Method.Alg() != k.alg {
		return nil, errAlgMismatch
	}
	// (r, n-s) verifies as well as (r, s): refusing the high form
	// leaves each ES256 token one spelling, so that a token cannot be
	// made to look new (another jti cache entry, another audit line)
	// without the key. The signature is decoded before the keyfunc runs.
	if k.alg == AlgES256 && highS(t.Signature) {
		return nil, errHighS
	}
	if err := k.verifiesAt(s.now(), s.keys.ttl); err != nil {
		return nil, err
	}
	// The claims are decoded before the keyfunc runs.
	if c.IssuedAt == nil {
		return nil, errNoIssuedAt
	}
	if err := k.signedDuring(c.IssuedAt.Time); err != nil {
		return nil, err
	}
	c.keyUntil = k.verifiesUntil(s.keys.ttl)
	return k.verifyKey, nil
}

// notCompactJWS reports whether r is outside the base64url alphabet and ".".
func notCompactJWS(r rune) bool {
	return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.')
}
