package authz

import (
	"context"
	"crypto/elliptic"
	"errors"
	"math/big"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// accessTokenType is the JWT "typ" of access tokens (RFC 9068): requiring
// it keeps a JWT minted for another purpose with the same key from being
// accepted as an access token.
const accessTokenType = "at+jwt"

// claims are the claims of an authql access token.
type claims struct {
	jwt.RegisteredClaims
	SessionID string           `json:"sid"`
	Roles     []string         `json:"roles"`
	ClientID  string           `json:"client_id"`
	Scope     string           `json:"scope"`
	ACR       string           `json:"acr"`
	AMR       []string         `json:"amr"`
	AuthTime  *jwt.NumericDate `json:"auth_time"`
	AalMax    string           `json:"aal_max"`
}

var (
	errNoKID      = errors.New("token has no kid")
	errUnknownKID = errors.New("unknown kid")
	errAlgKey     = errors.New("token alg is not its key's")
	errHighS      = errors.New("ES256 signature in the high-S form")
	errBadTyp     = errors.New("token typ is not at+jwt")
)

// parser returns the JWT parser of v: the checks of authql's own verifier
// (auth/keys/signer.go).
func (v *Verifier) parser() *jwt.Parser {
	return jwt.NewParser(
		// Only the algorithms of published keys: HS256 secrets are never
		// published, and "none" is never accepted. The keyfunc then
		// narrows it to the one algorithm of the token's key.
		jwt.WithValidMethods([]string{"EdDSA", "ES256"}),
		jwt.WithIssuer(v.cfg.Issuer),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(MaxClockSkew),
		jwt.WithTimeFunc(v.cfg.Now),
		// One spelling per token: the ignored low bits of a segment's
		// last base64 character would otherwise give each four.
		jwt.WithStrictDecoding(),
	)
}

// Verify checks an access token as authql does (signature by a key of the
// JWKS with that key's algorithm, typ, iss, aud containing
// Config.Audience, exp/iat/nbf with MaxClockSkew, one spelling) and then
// against the revocation feed, and returns its principal. Errors: the
// UNAUTHENTICATED reasons TOKEN_EXPIRED (expiry is the token's one fault),
// TOKEN_REVOKED (its session was revoked or its account disabled) and
// TOKEN_INVALID; SERVICE_UNAVAILABLE while the feed has been down longer
// than FeedMaxLag.
func (v *Verifier) Verify(ctx context.Context, token string) (*Principal, error) {
	p, err := v.verify(ctx, token)
	if err != nil {
		return nil, err.gql()
	}
	return p, nil
}

func (v *Verifier) verify(ctx context.Context, token string) (*Principal, *authError) {
	if v.feedDown() {
		return nil, errFeedDown
	}
	// Go's base64 decoder skips CR and LF even when strict: a compact JWS
	// is base64url and dots only.
	if len(token) > 8<<10 || strings.ContainsFunc(token, notCompactJWS) {
		return nil, errTokenInvalid
	}
	var c claims
	_, err := v.jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		return v.keyFor(ctx, t)
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired) && !errors.Is(err, jwt.ErrTokenInvalidIssuer) &&
		!errors.Is(err, jwt.ErrTokenInvalidAudience) && !errors.Is(err, jwt.ErrTokenUsedBeforeIssued) &&
		!errors.Is(err, jwt.ErrTokenNotValidYet):
		// "Expired" tells the client to refresh: only when expiry is the
		// token's one fault.
		return nil, errTokenExpired
	case err != nil, c.Subject == "", c.ID == "", c.SessionID == "", c.IssuedAt == nil,
		// A token that could outlive the memory of its session's
		// revocation is refused (see Config.MaxTokenLife).
		c.ExpiresAt.Sub(c.IssuedAt.Time) > v.cfg.MaxTokenLife:
		return nil, errTokenInvalid
	}
	if v.revs.refused(c.SessionID, c.Subject, c.IssuedAt.Time) {
		return nil, errTokenRevoked
	}
	return principalOf(&c), nil
}

func principalOf(c *claims) *Principal {
	p := &Principal{
		UserID: c.Subject, SessionID: c.SessionID, TokenID: c.ID,
		Roles: c.Roles, Scope: strings.Fields(c.Scope), ClientID: c.ClientID,
		ACR: c.ACR, AMR: c.AMR, AalMax: c.AalMax,
		ExpiresAt: c.ExpiresAt.Time, IssuedAt: c.IssuedAt.Time,
	}
	if c.AuthTime != nil {
		p.AuthTime = c.AuthTime.Time
	}
	return p
}

// keyFor is Verify's keyfunc: the key of t's kid, whose algorithm must be
// t's.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, accessTokenType) && !strings.EqualFold(typ, "application/"+accessTokenType) {
		return nil, errBadTyp
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errNoKID
	}
	k, ok := v.keys.lookup(ctx, kid)
	if !ok {
		return nil, errUnknownKID
	}
	// The key, never the token, decides the algorithm.
	if t.Method.Alg() != k.alg {
		return nil, errAlgKey
	}
	// (r, n-s) verifies as well as (r, s); authql issues only low S, so
	// each token has one spelling and cannot be made to look new.
	if k.alg == "ES256" && highS(t.Signature) {
		return nil, errHighS
	}
	return k.pub, nil
}

var p256HalfOrder = new(big.Int).Rsh(elliptic.P256().Params().N, 1)

func highS(sig []byte) bool {
	return len(sig) == 64 && new(big.Int).SetBytes(sig[32:]).Cmp(p256HalfOrder) > 0
}

func notCompactJWS(r rune) bool {
	return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.')
}

// expired reports whether p's token has expired on v's clock (with the
// skew Verify allows): a socket outlives the check of its token at init.
func (v *Verifier) expired(p *Principal) bool {
	return v.cfg.Now().After(p.ExpiresAt.Add(MaxClockSkew))
}
