package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2Params are argon2id cost parameters. Memory is in KiB.
type Argon2Params struct {
	Memory  uint32
	Time    uint32
	Threads uint8
}

// DefaultArgon2 is OWASP's minimum recommendation for argon2id
// (m=19 MiB, t=2, p=1).
var DefaultArgon2 = Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
	// maxArgon2Memory (KiB) and maxBcryptCost bound the cost of verifying a
	// stored hash, whatever the database says.
	maxArgon2Memory = 256 * 1024
	maxBcryptCost   = 14
)

// Validate reports parameters argon2 cannot use or that are too weak to be
// a password hash.
func (p Argon2Params) Validate() error {
	switch {
	case p.Memory < 8*uint32(p.Threads) || p.Memory < 8:
		return fmt.Errorf("argon2 memory must be at least 8 KiB per thread, got %d KiB", p.Memory)
	case p.Time < 1:
		return fmt.Errorf("argon2 time must be at least 1, got %d", p.Time)
	case p.Threads < 1:
		return fmt.Errorf("argon2 threads must be at least 1, got %d", p.Threads)
	}
	return nil
}

// Hasher hashes passwords with argon2id into PHC strings
// ($argon2id$v=19$m=…,t=…,p=…$salt$hash) and verifies argon2id hashes of any
// parameters as well as bcrypt hashes imported from other systems.
type Hasher struct {
	params Argon2Params
	// dummy is a hash of a random password with the current parameters.
	// Logins for unknown emails verify against it, so that they take as long
	// as a wrong password for a known email and timing does not reveal which
	// emails have accounts.
	dummy string
}

// NewHasher returns a Hasher that hashes with p.
func NewHasher(p Argon2Params) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	h := &Hasher{params: p}
	dummy, err := h.Hash(rand.Text())
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

// Hash returns the PHC string of password under a fresh random salt.
func (h *Hasher) Hash(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	p := h.params
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// errMalformedHash is returned for a stored hash that is neither a valid
// argon2id PHC string nor a bcrypt hash.
var errMalformedHash = errors.New("malformed password hash")

// Verify reports whether password matches the stored hash, and whether the
// hash should be replaced by a new Hash(password) because it was made with
// other parameters or another algorithm. It returns an error only for a
// malformed stored hash.
func (h *Hasher) Verify(stored, password string) (ok, rehash bool, err error) {
	switch {
	case strings.HasPrefix(stored, "$argon2id$"):
		p, salt, key, err := parseArgon2id(stored)
		if err != nil {
			return false, false, err
		}
		got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
		ok := subtle.ConstantTimeCompare(got, key) == 1
		return ok, ok && (p != h.params || len(salt) != saltLen || len(key) != keyLen), nil
	case strings.HasPrefix(stored, "$2a$"), strings.HasPrefix(stored, "$2b$"), strings.HasPrefix(stored, "$2y$"):
		// bcrypt is accepted for hashes imported from other systems only;
		// a successful login upgrades it to argon2id. A stored cost above
		// maxBcryptCost is refused: a tampered row must not make one login
		// take hours.
		if cost, err := bcrypt.Cost([]byte(stored)); err != nil || cost > maxBcryptCost {
			return false, false, errMalformedHash
		}
		err := bcrypt.CompareHashAndPassword([]byte(stored), []byte(password))
		switch {
		case err == nil:
			return true, true, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, false, nil
		default:
			return false, false, errMalformedHash
		}
	}
	return false, false, errMalformedHash
}

func parseArgon2id(s string) (p Argon2Params, salt, key []byte, err error) {
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, key
	parts := strings.Split(s, "$")
	if len(parts) != 6 {
		return p, nil, nil, errMalformedHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version || parts[2] != fmt.Sprintf("v=%d", version) {
		return p, nil, nil, errMalformedHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || p.Validate() != nil ||
		parts[3] != fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, p.Threads) {
		return p, nil, nil, errMalformedHash
	}
	// Refuse absurd stored costs: a tampered row must not make one login
	// allocate gigabytes or run for minutes.
	if p.Memory > maxArgon2Memory || p.Time > 64 {
		return p, nil, nil, errMalformedHash
	}
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, errMalformedHash
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errMalformedHash
	}
	return p, salt, key, nil
}
