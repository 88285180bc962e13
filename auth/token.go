package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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

	// keyUntil is when the key that verified the token stops verifying
	// (zero: not retired), set by Verify.
	keyUntil time.Time
}

// Signer issues and verifies access tokens with the keys of a KeySet.
type Signer struct {
	keys     *KeySet
	issuer   string
	audience string
	now      func() time.Time
	parser   *jwt.Parser
}

// NewSigner returns a Signer for one fixed HS256 key, which must be at
// least MinSecretLen bytes.
func NewSigner(key []byte, issuer, audience string, now func() time.Time) (*Signer, error) {
	ks, err := staticKeySet(key)
	if err != nil {
		return nil, err
	}
	if now != nil {
		ks.now = now
	}
	return newSigner(ks, issuer, audience, now), nil
}

func newSigner(keys *KeySet, issuer, audience string, now func() time.Time) *Signer {
	if now == nil {
		now = time.Now
	}
	s := &Signer{keys: keys, issuer: issuer, audience: audience, now: now}
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

// KeyID returns the kid of the key signing now.
func (s *Signer) KeyID() string { return s.keys.CurrentKID() }

// Issue returns a signed access token for the user's session, valid for ttl,
// and its claims.
func (s *Signer) Issue(userID, sessionID string, roles []string, ttl time.Duration) (string, *Claims, error) {
	return s.issueAt(s.now(), userID, sessionID, roles, ttl)
}

// issueAt is Issue with the token issued at `at` rather than now: at the
// time its session recorded as its issue (see models.Session's
// AccessExpiresAt), so that it cannot expire later than recorded.
func (s *Signer) issueAt(at time.Time, userID, sessionID string, roles []string, ttl time.Duration) (string, *Claims, error) {
	k := s.keys.current()
	if k == nil || k.signKey == nil {
		return "", nil, errNoSigningKey
	}
	now := at.Truncate(time.Second)
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Audience:  jwt.ClaimStrings{s.audience},
			Subject:   userID,
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ID:        uuid.NewString(),
		},
		SessionID: sessionID,
		Roles:     roles,
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
// issuer, audience and times, and returns its claims. ctx bounds the
// reload of the key store that an unknown key id triggers.
func (s *Signer) Verify(ctx context.Context, token string) (*Claims, error) {
	// Go's base64 decoder skips CR and LF even in strict mode, so a token
	// with a newline inside would verify as another spelling of itself
	// (found by FuzzVerify). A compact JWS is base64url and dots only.
	if strings.ContainsFunc(token, notCompactJWS) {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrTokenInvalid)
	}
	var c Claims
	_, err := s.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
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

// notCompactJWS reports whether r is outside the base64url alphabet and ".".
func notCompactJWS(r rune) bool {
	return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.')
}

// refreshTokenBytes is the entropy of a refresh token: 256 bits.
const refreshTokenBytes = 32

// newRefreshToken returns a new opaque refresh token and the hash under
// which it is stored.
func newRefreshToken() (token, hash string) {
	b := make([]byte, refreshTokenBytes)
	rand.Read(b) // never fails (crypto/rand)
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, hashRefreshToken(token)
}

// hashRefreshToken returns the stored form of a refresh token. A plain
// SHA-256 suffices (no salt, no slow hash): the token has 256 bits of
// entropy, so it cannot be guessed from its hash.
func hashRefreshToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// wellFormedRefreshToken reports whether s could be a refresh token, so that
// garbage is refused without a database query.
func wellFormedRefreshToken(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == refreshTokenBytes
}
