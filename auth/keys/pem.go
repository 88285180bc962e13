package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/authql/authql/models"
)

// keyRow is the stored form of k, with its private material only if
// withPrivate.
func keyRow(k *signingKey, withPrivate bool) (models.SigningKey, error) {
	r := models.SigningKey{KID: k.kid, Alg: k.alg}
	if k.jwk != nil {
		der, err := x509.MarshalPKIXPublicKey(k.verifyKey)
		if err != nil {
			return r, err
		}
		r.PublicKey = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	if !withPrivate {
		return r, nil
	}
	if secret, ok := k.signKey.([]byte); ok {
		r.PrivateKey = base64.RawStdEncoding.EncodeToString(secret)
		return r, nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.signKey)
	if err != nil {
		return r, err
	}
	r.PrivateKey = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	return r, nil
}

func decodePrivate(alg, s string) (any, error) {
	if alg == AlgHS256 {
		return base64.RawStdEncoding.DecodeString(s)
	}
	return ParsePrivateKeyPEM([]byte(s), alg)
}

func decodePublic(s string) (any, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "PUBLIC KEY" {
		return nil, errors.New("public key is not a PEM PUBLIC KEY")
	}
	return x509.ParsePKIXPublicKey(b.Bytes)
}

// ParsePrivateKeyPEM parses a PEM private key for alg: PKCS#8 ("PRIVATE
// KEY") holding an Ed25519 key for EdDSA or a P-256 key for ES256, or, for
// ES256, SEC 1 ("EC PRIVATE KEY").
func ParsePrivateKeyPEM(data []byte, alg string) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM block found")
	}
	var key any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key; use PKCS#8 (openssl genpkey)", b.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case ed25519.PrivateKey:
		if alg != AlgEdDSA {
			return nil, fmt.Errorf("the file holds an Ed25519 key, which signs EdDSA, not %s", alg)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("the file holds an ECDSA key on %s; only P-256 (ES256) is supported", k.Curve.Params().Name)
		}
		if alg != AlgES256 {
			return nil, fmt.Errorf("the file holds a P-256 key, which signs ES256, not %s", alg)
		}
		return k, nil
	}
	return nil, fmt.Errorf("the file holds a %T; only Ed25519 (EdDSA) and P-256 (ES256) keys are supported", key)
}
