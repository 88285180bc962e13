package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"testing"
)

// pemOf encodes key as a PEM block of typ: PKCS#8, SEC 1 or PKIX.
func pemOf(tb testing.TB, typ string, key any) []byte {
	tb.Helper()
	var der []byte
	var err error
	switch typ {
	case "PRIVATE KEY":
		der, err = x509.MarshalPKCS8PrivateKey(key)
	case "EC PRIVATE KEY":
		der, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	case "PUBLIC KEY":
		der, err = x509.MarshalPKIXPublicKey(key)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestJWKThumbprintRFC8037(t *testing.T) {
	// RFC 8037 appendix A.1-A.3: an Ed25519 key and its RFC 7638
	// thumbprint.
	seed, _ := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	k, err := newKey(AlgEdDSA, ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	if k.jwk.X != "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" {
		t.Errorf("x = %s, want RFC 8037's", k.jwk.X)
	}
	if want := "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; k.kid != want {
		t.Errorf("kid = %s, want RFC 8037's thumbprint %s", k.kid, want)
	}
}

func TestJWKEncodingES256(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k, err := newKey(AlgES256, priv)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := base64.RawURLEncoding.DecodeString(k.jwk.X)
	y, _ := base64.RawURLEncoding.DecodeString(k.jwk.Y)
	// Fixed-length coordinates (RFC 7518 §6.2.1.2), so that a leading zero
	// byte is not dropped.
	if len(x) != 32 || len(y) != 32 {
		t.Fatalf("len(x), len(y) = %d, %d, want 32, 32", len(x), len(y))
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(&priv.PublicKey) {
		t.Error("x, y do not give back the public key")
	}
	if k.jwk.Kty != "EC" || k.jwk.Crv != "P-256" || k.jwk.Alg != "ES256" || k.jwk.Use != "sig" || k.jwk.Kid != k.kid {
		t.Errorf("jwk = %+v", k.jwk)
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPEM := pemOf(t, "PRIVATE KEY", ed)
	p256PEM := pemOf(t, "PRIVATE KEY", p256)
	p256SEC1 := pemOf(t, "EC PRIVATE KEY", p256)
	p384PEM := pemOf(t, "PRIVATE KEY", p384)
	rsaPEM := pemOf(t, "PRIVATE KEY", rsaKey)
	pubPEM := pemOf(t, "PUBLIC KEY", ed.Public())
	for _, tc := range []struct {
		name, alg string
		data      []byte
		ok        bool
	}{
		{"Ed25519ForEdDSA", AlgEdDSA, edPEM, true},
		{"P256ForES256", AlgES256, p256PEM, true},
		{"P256SEC1ForES256", AlgES256, p256SEC1, true},
		{"Ed25519ForES256", AlgES256, edPEM, false},
		{"P256ForEdDSA", AlgEdDSA, p256PEM, false},
		{"P256ForHS256", AlgHS256, p256PEM, false},
		{"P384", AlgES256, p384PEM, false},
		{"RSA", AlgES256, rsaPEM, false},
		{"PublicKey", AlgEdDSA, pubPEM, false},
		{"NotPEM", AlgEdDSA, []byte("not a key"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParsePrivateKeyPEM(tc.data, tc.alg)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if tc.ok {
				if _, err := newKey(tc.alg, k); err != nil {
					t.Errorf("newKey: %v", err)
				}
			}
		})
	}
}

func TestParseAlg(t *testing.T) {
	for in, want := range map[string]string{"": "HS256", "hs256": "HS256", "EDDSA": "EdDSA", "eddsa": "EdDSA", " es256 ": "ES256"} {
		if got, ok := ParseAlg(in); !ok || got != want {
			t.Errorf("ParseAlg(%q) = %q, %v, want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"none", "RS256", "HS512", "ES384", "Ed25519"} {
		if _, ok := ParseAlg(in); ok {
			t.Errorf("ParseAlg(%q) accepted", in)
		}
	}
}
