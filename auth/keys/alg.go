package keys

import (
	"crypto/elliptic"
	"fmt"
	"math/big"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Signing algorithms.
const (
	AlgHS256 = "HS256"
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
)

// validMethods are the only algorithms a token may name. Each key then
// narrows that to its own one.
var validMethods = []string{AlgHS256, AlgEdDSA, AlgES256}

// ParseAlg returns the canonical name of a supported algorithm, given in
// any case; "" is HS256.
func ParseAlg(s string) (string, bool) {
	if strings.TrimSpace(s) == "" {
		return AlgHS256, true
	}
	for _, a := range validMethods {
		if strings.EqualFold(strings.TrimSpace(s), a) {
			return a, true
		}
	}
	return "", false
}

func jwtMethod(alg string) (jwt.SigningMethod, error) {
	switch alg {
	case AlgHS256:
		return jwt.SigningMethodHS256, nil
	case AlgEdDSA:
		return jwt.SigningMethodEdDSA, nil
	case AlgES256:
		return es256LowS{jwt.SigningMethodES256}, nil
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
}

// p256HalfOrder is n/2 for P-256's group order n. An ECDSA signature (r, s)
// verifies just as well as (r, n-s); of the two, authql issues and accepts
// only the one with s <= n/2 ("low S"), so that every ES256 token has one
// spelling, as EdDSA's and HS256's do.
var p256HalfOrder = new(big.Int).Rsh(elliptic.P256().Params().N, 1)

// es256LowS signs ES256 in the low-S form. Go's ECDSA signer returns either
// form at random, and Verify refuses the high one.
type es256LowS struct{ *jwt.SigningMethodECDSA }

// Sign signs as ES256 does, then turns a high-S signature into its low-S
// twin (r, n-s).
func (m es256LowS) Sign(signingString string, key any) ([]byte, error) {
	sig, err := m.SigningMethodECDSA.Sign(signingString, key)
	if err != nil {
		return nil, err
	}
	if len(sig) != 64 {
		return nil, fmt.Errorf("ES256 signature of %d bytes", len(sig))
	}
	if s := new(big.Int).SetBytes(sig[32:]); s.Cmp(p256HalfOrder) > 0 {
		s.Sub(elliptic.P256().Params().N, s)
		s.FillBytes(sig[32:])
	}
	return sig, nil
}

// highS reports whether an ES256 signature (r || s, 32 bytes each) is in
// the high-S form authql never issues.
func highS(sig []byte) bool {
	return len(sig) == 64 && new(big.Int).SetBytes(sig[32:]).Cmp(p256HalfOrder) > 0
}
