// Package softkey is a software WebAuthn authenticator for tests: ECDSA
// P-256 keys, attestation "none", flags and counter as a test sets them.
// It imports nothing of authql, so auth's own tests can use it too;
// internal/authtest re-exports it with the test servers' relying party.
package softkey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

// RPID and Origin are the relying party the test servers are configured
// with and the origin an Authenticator claims by default.
const (
	RPID   = "app.test"
	Origin = "https://app.test"
)

// Authenticator is a software WebAuthn authenticator and client in one:
// it answers the options authql's ceremonies return (beginPasskey*'s
// options, webauthnOptions) with the credential JSON a browser's
// navigator.credentials.create or get would give, signing with ECDSA
// P-256 keys and attestation "none". Its fields set what the next answer
// claims, so tests can break one rule at a time.
type Authenticator struct {
	// Origin is the clientDataJSON's origin (default Origin).
	Origin string
	// RPID, when set, replaces the options' RP ID in the authenticator
	// data's rpIdHash.
	RPID string
	// Type, when set, replaces the clientDataJSON's type
	// ("webauthn.create" or "webauthn.get").
	Type string
	// UV, BE and BS are the flags user verified, backup eligible and
	// backed up (UP is always set). New sets UV.
	UV, BE, BS bool
	// NoCounter keeps the signature counter at zero, as some platform
	// authenticators do; otherwise each assertion raises it by one.
	NoCounter bool

	Credentials []*Credential
}

// Credential is a credential an Authenticator holds.
type Credential struct {
	ID         []byte
	Key        *ecdsa.PrivateKey
	RPID       string
	UserHandle []byte
	SignCount  uint32
}

// New returns an Authenticator that verifies its user.
func New() *Authenticator {
	return &Authenticator{Origin: Origin, UV: true}
}

// b64 is base64url without padding, as WebAuthn's JSON writes bytes.
var b64 = base64.RawURLEncoding

type creationOptions struct {
	Challenge string `json:"challenge"`
	RP        struct {
		ID string `json:"id"`
	} `json:"rp"`
	User struct {
		ID string `json:"id"`
	} `json:"user"`
}

type requestOptions struct {
	Challenge string `json:"challenge"`
	RPID      string `json:"rpId"`
	Allow     []struct {
		ID string `json:"id"`
	} `json:"allowCredentials"`
}

// Create answers creation options (JSON of publicKey) with a new
// credential, which it keeps, and returns its JSON.
func (a *Authenticator) Create(optionsJSON string) (string, error) {
	var o creationOptions
	if err := json.Unmarshal([]byte(optionsJSON), &o); err != nil {
		return "", err
	}
	handle, err := b64.DecodeString(o.User.ID)
	if err != nil {
		return "", fmt.Errorf("user.id: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	c := &Credential{ID: make([]byte, 32), Key: key, RPID: o.RP.ID, UserHandle: handle}
	rand.Read(c.ID)
	point, err := key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		return "", err
	}
	x, y := point[1:33], point[33:65]
	cose, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         1, XCoord: x, YCoord: y, // P-256
	})
	if err != nil {
		return "", err
	}
	attested := make([]byte, 0, 18+len(c.ID)+len(cose))
	attested = append(attested, make([]byte, 16)...) // AAGUID: none
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(c.ID)))
	attested = append(append(attested, c.ID...), cose...)
	authData := a.authData(c, 0x40, attested) // AT: attested credential data
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": authData})
	if err != nil {
		return "", err
	}
	client, err := a.clientData("webauthn.create", o.Challenge)
	if err != nil {
		return "", err
	}
	a.Credentials = append(a.Credentials, c)
	return marshal(map[string]any{
		"id": b64.EncodeToString(c.ID), "rawId": b64.EncodeToString(c.ID), "type": "public-key",
		"authenticatorAttachment": "platform",
		"response": map[string]any{
			"clientDataJSON": b64.EncodeToString(client), "attestationObject": b64.EncodeToString(att),
			"transports": []string{"internal", "hybrid"},
		},
		"clientExtensionResults": map[string]any{},
	})
}

// Get answers request options (JSON of publicKey) with an assertion of
// the credential they allow (or, with none named, the last one created
// for their RP ID) and returns its JSON.
func (a *Authenticator) Get(optionsJSON string) (string, error) {
	var o requestOptions
	if err := json.Unmarshal([]byte(optionsJSON), &o); err != nil {
		return "", err
	}
	var c *Credential
	for _, k := range slices.Backward(a.Credentials) {
		allowed := len(o.Allow) == 0
		for _, d := range o.Allow {
			allowed = allowed || d.ID == b64.EncodeToString(k.ID)
		}
		if allowed && k.RPID == o.RPID {
			c = k
			break
		}
	}
	if c == nil {
		return "", fmt.Errorf("no credential for %q", o.RPID)
	}
	return a.Assert(c, o.Challenge, o.RPID)
}

// Assert signs an assertion of c for the challenge (base64url, as the
// options give it), raising c's counter unless NoCounter.
func (a *Authenticator) Assert(c *Credential, challenge, rpID string) (string, error) {
	if !a.NoCounter {
		c.SignCount++
	}
	authData := a.authData(c, 0, nil)
	client, err := a.clientData("webauthn.get", challenge)
	if err != nil {
		return "", err
	}
	digest := sha256.Sum256(slices.Concat(authData, hash(client)))
	sig, err := ecdsa.SignASN1(rand.Reader, c.Key, digest[:])
	if err != nil {
		return "", err
	}
	return marshal(map[string]any{
		"id": b64.EncodeToString(c.ID), "rawId": b64.EncodeToString(c.ID), "type": "public-key",
		"authenticatorAttachment": "platform",
		"response": map[string]any{
			"clientDataJSON": b64.EncodeToString(client), "authenticatorData": b64.EncodeToString(authData),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(c.UserHandle),
		},
		"clientExtensionResults": map[string]any{},
	})
}

// authData is the authenticator data of c: rpIdHash, flags (UP, and UV,
// BE, BS as set, with extra), the counter and attested.
func (a *Authenticator) authData(c *Credential, extra byte, attested []byte) []byte {
	rp := c.RPID
	if a.RPID != "" {
		rp = a.RPID
	}
	flags := 0x01 | extra // UP
	if a.UV {
		flags |= 0x04
	}
	if a.BE {
		flags |= 0x08
	}
	if a.BS {
		flags |= 0x10
	}
	d := append(hash([]byte(rp)), flags)
	d = binary.BigEndian.AppendUint32(d, c.SignCount)
	return append(d, attested...)
}

// clientData is the clientDataJSON of a ceremony of typ.
func (a *Authenticator) clientData(typ, challenge string) ([]byte, error) {
	if a.Type != "" {
		typ = a.Type
	}
	return json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.Origin, "crossOrigin": false})
}

func hash(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

func marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
