// Package secret encrypts the secrets authql keeps in its database (the
// private material of generated signing keys, generated HS256 secrets, the
// rate-limit key), so that a copy of the database or of a backup does not
// yield them (AUTH_ENCRYPTION_KEY, AUTH_ENCRYPTION_KEY_PREVIOUS).
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Keys are the encryption keys of the secrets at rest.
type Keys struct {
	// Current encrypts, and decrypts what it encrypted: 32 bytes, for
	// AES-256-GCM. Nil stores secrets as they are.
	Current []byte
	// Previous only decrypt: the keys of a rotation in progress. What they
	// encrypted is encrypted again under Current at the next start.
	Previous [][]byte
}

// KeySize is the size of an encryption key: AES-256.
const KeySize = 32

// sealedPrefix starts every encrypted value. The stored form is
//
//	enc:v1:<fingerprint>:<base64url(nonce || AES-256-GCM ciphertext and tag)>
//
// self-describing, so that plaintext from before encryption was turned on
// is told apart, and the key it needs is named (by a fingerprint that
// reveals nothing of it) when it is missing. v1 leaves room for another
// scheme later.
const sealedPrefix = "enc:v1:"

// Sealer encrypts and decrypts stored secrets.
type Sealer struct {
	current *sealKey            // nil: secrets are stored as they are
	byFP    map[string]*sealKey // current and previous, by fingerprint
}

type sealKey struct {
	fp   string
	aead cipher.AEAD
}

// NewSealer returns a Sealer for k. It fails for a key that is not
// KeySize bytes.
func NewSealer(k Keys) (*Sealer, error) {
	s := &Sealer{byFP: map[string]*sealKey{}}
	for _, p := range k.Previous {
		if _, err := s.add(p); err != nil {
			return nil, err
		}
	}
	if k.Current != nil {
		var err error
		if s.current, err = s.add(k.Current); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// add makes key one the Sealer decrypts with.
func (s *Sealer) add(key []byte) (*sealKey, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("an encryption key is %d bytes; it must be %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sk := &sealKey{fp: Fingerprint(key), aead: aead}
	s.byFP[sk.fp] = sk
	return sk, nil
}

// Fingerprint names an encryption key without revealing it: 8 characters
// of a hash of it.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(append([]byte("authql encryption key\x00"), key...))
	return base64.RawURLEncoding.EncodeToString(sum[:6])
}

// Where a sealed value lives. It is the additional data of its encryption:
// a value decrypts only in the row it was written to, so that someone who
// can write to the database cannot move one key's material to another
// row, or a secret from one setting to another. Every place is named here,
// in one list, so that no two places can share a name.

// SigningKeyAAD is the place of the private material of signing key kid.
func SigningKeyAAD(kid string) string { return "authql signing_keys.private_key " + kid }

// SettingAAD is the place of the secret kept in setting name.
func SettingAAD(name string) string { return "authql settings.value " + name }

// Seal returns plain encrypted under the current key for the place aad, or
// plain itself when there is no current key.
func (s *Sealer) Seal(aad, plain string) (string, error) {
	if s.current == nil || plain == "" {
		return plain, nil
	}
	nonce := make([]byte, s.current.aead.NonceSize())
	rand.Read(nonce) // never fails (crypto/rand)
	out := s.current.aead.Seal(nonce, nonce, []byte(plain), []byte(aad))
	return sealedPrefix + s.current.fp + ":" + base64.RawURLEncoding.EncodeToString(out), nil
}

// Errors of Open. The messages name the variables, for the operator whose
// start they stop.
var (
	errSealedNoKey = errors.New("the database holds secrets encrypted with AUTH_ENCRYPTION_KEY, which is not set")
	errSealedOther = errors.New("the database holds secrets encrypted with a key that is neither AUTH_ENCRYPTION_KEY nor one of AUTH_ENCRYPTION_KEY_PREVIOUS")
	errSealedBad   = errors.New("an encrypted secret does not decrypt: it was altered or moved to another row")
)

// Open returns the secret stored at aad, decrypted, and whether it should
// be stored again (sealed under the current key): true for plaintext while
// a key is set, and for a value sealed under a previous key.
func (s *Sealer) Open(aad, stored string) (plain string, stale bool, err error) {
	if !strings.HasPrefix(stored, sealedPrefix) {
		return stored, s.current != nil && stored != "", nil
	}
	fp, data, ok := strings.Cut(strings.TrimPrefix(stored, sealedPrefix), ":")
	if !ok {
		return "", false, errSealedBad
	}
	k := s.byFP[fp]
	switch {
	case k == nil && len(s.byFP) == 0:
		return "", false, fmt.Errorf("%w (key fingerprint %s)", errSealedNoKey, fp)
	case k == nil:
		return "", false, fmt.Errorf("%w (key fingerprint %s; AUTH_ENCRYPTION_KEY is %s)", errSealedOther, fp, s.Fingerprint())
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(data)
	if err != nil || len(raw) < k.aead.NonceSize() {
		return "", false, errSealedBad
	}
	out, err := k.aead.Open(nil, raw[:k.aead.NonceSize()], raw[k.aead.NonceSize():], []byte(aad))
	if err != nil {
		return "", false, errSealedBad
	}
	return string(out), k != s.current, nil
}

// Fingerprint is the fingerprint of the current key, or "not set".
func (s *Sealer) Fingerprint() string {
	if s.current == nil {
		return "not set"
	}
	return s.current.fp
}

// Random returns a new random 32-byte secret.
func Random() []byte {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return b
}
