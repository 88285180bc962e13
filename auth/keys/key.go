package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authql/authql/auth/secret"
)

// signingKey is one loaded key.
type signingKey struct {
	kid       string
	alg       string
	seq       int64
	method    jwt.SigningMethod
	signKey   any // nil: this process cannot sign with it
	verifyKey any // nil: the HS256 secret is held by another process
	notBefore time.Time
	retiredAt time.Time // zero: not retired
	jwk       *JWK      // nil for HS256: a secret is never published
}

// activeAt reports whether k is the key to sign with at now, were it the
// newest.
func (k *signingKey) activeAt(now time.Time) bool {
	return !now.Before(k.notBefore) && (k.retiredAt.IsZero() || now.Before(k.retiredAt))
}

// verifiesAt reports whether k still verifies tokens at now: from its
// activation (less the clock skew) until the last token it can have signed
// has expired.
func (k *signingKey) verifiesAt(now time.Time, ttl time.Duration) error {
	if now.Before(k.notBefore.Add(-MaxClockSkew)) {
		return errKeyNotActive
	}
	if end := k.verifiesUntil(ttl); !end.IsZero() && now.After(end) {
		return errKeyRetired
	}
	return nil
}

// verifiesUntil is the end of k's verify window (zero while not retired).
func (k *signingKey) verifiesUntil(ttl time.Duration) time.Time {
	if k.retiredAt.IsZero() {
		return time.Time{}
	}
	return k.retiredAt.Add(retiredKeyGrace + ttl + MaxClockSkew)
}

// signedDuring reports whether iat lies in k's signing window. A token of a
// retired key issued after the retirement was not made by authql: only
// someone holding the old private key (say, from an old backup) could have.
func (k *signingKey) signedDuring(iat time.Time) error {
	if iat.Before(k.notBefore.Add(-MaxClockSkew)) {
		return errIATOutsideKey
	}
	if !k.retiredAt.IsZero() && iat.After(k.retiredAt.Add(retiredKeyGrace)) {
		return errIATOutsideKey
	}
	return nil
}

// JWK is a public key as RFC 7517 writes it (OKP per RFC 8037, EC per
// RFC 7518 §6.2).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y,omitempty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// Thumbprint is the RFC 7638 thumbprint of the key: the base64url SHA-256
// of its required members, in lexicographic order, without white space.
func (j *JWK) Thumbprint() string {
	var canon string
	switch j.Kty {
	case "OKP":
		canon = fmt.Sprintf(`{"crv":%q,"kty":"OKP","x":%q}`, j.Crv, j.X)
	default:
		canon = fmt.Sprintf(`{"crv":%q,"kty":%q,"x":%q,"y":%q}`, j.Crv, j.Kty, j.X, j.Y)
	}
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// newKey wraps key material: an HS256 secret ([]byte), an Ed25519 or P-256
// private key (signs and verifies) or public key (verifies only).
func newKey(alg string, material any) (*signingKey, error) {
	method, err := jwtMethod(alg)
	if err != nil {
		return nil, err
	}
	k := &signingKey{alg: alg, method: method}
	switch m := material.(type) {
	case []byte:
		if alg != AlgHS256 {
			return nil, fmt.Errorf("a secret is not an %s key", alg)
		}
		if len(m) < MinSecretLen {
			return nil, fmt.Errorf("signing key is %d bytes; it must be at least %d", len(m), MinSecretLen)
		}
		key := append([]byte(nil), m...)
		k.signKey, k.verifyKey, k.kid = key, key, hsKeyID(key)
		return k, nil
	case ed25519.PrivateKey:
		k.signKey = m
		material = m.Public()
	case *ecdsa.PrivateKey:
		k.signKey = m
		material = &m.PublicKey
	}
	if k.jwk, err = publicJWK(alg, material); err != nil {
		return nil, err
	}
	k.verifyKey = material
	k.kid = k.jwk.Thumbprint()
	k.jwk.Kid, k.jwk.Alg, k.jwk.Use = k.kid, alg, "sig"
	return k, nil
}

// publicJWK is the JWK of an Ed25519 or P-256 public key, which must be of
// alg.
func publicJWK(alg string, material any) (*JWK, error) {
	switch pub := material.(type) {
	case ed25519.PublicKey:
		if alg != AlgEdDSA || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("an Ed25519 key is not an %s key", alg)
		}
		return &JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub)}, nil
	case *ecdsa.PublicKey:
		if alg != AlgES256 || pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("an ECDSA key on %s is not an %s key (ES256 needs P-256)", pub.Curve.Params().Name, alg)
		}
		e, err := pub.ECDH()
		if err != nil {
			return nil, err
		}
		pt := e.Bytes() // 0x04 || X || Y, each 32 bytes
		return &JWK{Kty: "EC", Crv: "P-256", X: base64.RawURLEncoding.EncodeToString(pt[1:33]), Y: base64.RawURLEncoding.EncodeToString(pt[33:])}, nil
	}
	return nil, fmt.Errorf("unsupported key type %T for %s", material, alg)
}

// hsKeyID names an HS256 key without revealing it: a truncated hash of it.
// It is the kid authql has always used, so tokens survive upgrades.
func hsKeyID(secret []byte) string {
	sum := sha256.Sum256(append([]byte("authql kid\x00"), secret...))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// generateKey returns a new random key of alg.
func generateKey(alg string) (*signingKey, error) {
	switch alg {
	case AlgHS256:
		return newKey(alg, secret.Random())
	case AlgEdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return newKey(alg, priv)
	case AlgES256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return newKey(alg, priv)
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
}
