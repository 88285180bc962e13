// Package keys is authql's key management: the set of signing keys kept in
// the database (generated, configured from a file or secret, rotated,
// retired), the signer and verifier of access tokens over it, and the JWKS
// that publishes its public keys.
package keys

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/internal/periodic"
	"github.com/authql/authql/models"
)

const (
	// ReloadInterval is how often a running server re-reads the key
	// store, to learn of keys added by other processes.
	ReloadInterval = 30 * time.Second
	// unknownKIDReloadInterval throttles the re-reads that a token with an
	// unknown kid triggers: anyone can send such tokens, so without it
	// random kids would turn into one database query each.
	unknownKIDReloadInterval = 5 * time.Second
	// maxKIDLen bounds the kids worth a lookup; authql's are 16 (HS256) or
	// 43 (thumbprint) characters.
	maxKIDLen = 64
)

// retiredKeyGrace is how long after its retirement a key may still have
// signed a token: a replica learns of a rotation only at its next reload,
// and clocks disagree by up to MaxClockSkew.
const retiredKeyGrace = ReloadInterval + MaxClockSkew

// Reasons a token's key is refused. They are all ErrTokenInvalid to
// callers; tests tell them apart.
var (
	errNoKID          = errors.New("token has no kid")
	errUnknownKID     = errors.New("unknown kid")
	errAlgMismatch    = errors.New("token alg is not its key's alg")
	errKeyNotActive   = errors.New("key not active yet")
	errKeyRetired     = errors.New("key retired and past its verification window")
	errIATOutsideKey  = errors.New("token iat outside its key's signing window")
	errNoIssuedAt     = errors.New("token has no iat")
	errNoSigningKey   = errors.New("no signing key usable by this process")
	errExternalRotate = errors.New("the signing key is configured outside the database")
	errHighS          = errors.New("ES256 signature in the high-S form")
)

// Config says which key this process signs with.
type Config struct {
	// Alg is AlgHS256, AlgEdDSA or AlgES256: the algorithm the operator
	// asked for (AUTH_JWT_ALG). "" keeps the algorithm of the key store's
	// current key, and is HS256 only for a new store: a process started
	// without the variable (a command run from another shell) must never
	// switch a running deployment to another algorithm.
	Alg string
	// Secret is an HS256 secret held outside the database
	// (AUTH_JWT_SECRET); nil means one generated and stored there.
	Secret []byte
	// PrivateKey is an Ed25519 or P-256 key held outside the database
	// (AUTH_JWT_PRIVATE_KEY_FILE); nil means one generated and stored there.
	PrivateKey crypto.Signer
	// Encryption encrypts the private material stored in the database.
	Encryption secret.Keys
	// ReadOnly opens the set without adding, replacing or retiring any key
	// and without loading one: for the commands (user, migrate), which sign
	// and verify nothing and must leave the keys as the servers use them.
	ReadOnly bool
}

// Set holds the signing keys of the key store in memory: the newest
// active one signs, each verifies its own tokens. Lookups are a read-locked
// map access.
type Set struct {
	db       *gorm.DB // nil: a fixed key, nothing to reload
	cfg      Config
	external *signingKey // the key of cfg.Secret or cfg.PrivateKey
	ttl      time.Duration
	now      func() time.Time
	log      *slog.Logger
	seal     *secret.Sealer

	mu    sync.RWMutex
	byKID map[string]*signingKey
	keys  []*signingKey // newest first
	ver   atomic.Uint64

	missMu   sync.Mutex
	lastMiss time.Time // of the last reload for an unknown kid (wall clock)
}

// Open makes sure the key store holds a current signing key as cfg asks
// (creating one, or retiring the current one for one of another algorithm
// or from another file), and loads it. ttl is the access-token lifetime: a
// retired key verifies for that long after its retirement.
func Open(ctx context.Context, db *gorm.DB, cfg Config, ttl time.Duration, now func() time.Time, log *slog.Logger) (*Set, error) {
	ks, err := newSet(db, cfg, ttl, now, log)
	if err != nil {
		return nil, err
	}
	if cfg.ReadOnly {
		return ks, nil
	}
	if err := ks.ensure(ctx); err != nil {
		return nil, err
	}
	if err := ks.reseal(ctx); err != nil {
		return nil, err
	}
	if err := ks.Reload(ctx); err != nil {
		return nil, err
	}
	if k := ks.current(); k == nil || k.signKey == nil {
		return nil, errNoSigningKey
	}
	return ks, nil
}

func newSet(db *gorm.DB, cfg Config, ttl time.Duration, now func() time.Time, log *slog.Logger) (*Set, error) {
	if cfg.Alg != "" {
		alg, ok := ParseAlg(cfg.Alg)
		if !ok {
			return nil, fmt.Errorf("unsupported signing algorithm %q", cfg.Alg)
		}
		cfg.Alg = alg
	} else if cfg.Secret != nil {
		cfg.Alg = AlgHS256 // the operator's secret says it
	}
	alg := cfg.Alg
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	seal, err := secret.NewSealer(cfg.Encryption)
	if err != nil {
		return nil, err
	}
	ks := &Set{db: db, cfg: cfg, ttl: ttl, now: func() time.Time { return now().UTC() }, log: log, seal: seal, byKID: map[string]*signingKey{}}
	switch {
	case cfg.Secret != nil && cfg.PrivateKey != nil:
		return nil, errors.New("both an HS256 secret and a private key are configured")
	case cfg.Secret != nil:
		if alg != AlgHS256 {
			return nil, fmt.Errorf("an HS256 secret is configured but the algorithm is %s", alg)
		}
		ks.external, err = newKey(AlgHS256, cfg.Secret)
	case cfg.PrivateKey != nil:
		if alg == "" {
			return nil, errors.New("a private key is configured without its algorithm")
		}
		ks.external, err = newKey(alg, cfg.PrivateKey)
	}
	return ks, err
}

// Reload re-reads the key store. A key that cannot be used (corrupt, or
// whose kid does not match its material) is logged and left out.
func (ks *Set) Reload(ctx context.Context) error {
	if ks.db == nil {
		return nil
	}
	rows, err := models.SigningKeys(ctx, ks.db)
	if err != nil {
		return err
	}
	byKID := make(map[string]*signingKey, len(rows))
	keys := make([]*signingKey, 0, len(rows))
	ks.mu.RLock()
	loaded := ks.byKID
	ks.mu.RUnlock()
	for i := len(rows) - 1; i >= 0; i-- {
		k, err := ks.loadRow(&rows[i])
		if old := loaded[rows[i].KID]; err != nil && old != nil && old.signKey != nil {
			// Encrypted again by a server started with a newer
			// AUTH_ENCRYPTION_KEY than this one's: a kid names its
			// material, which this process holds already. Only the
			// times may have changed.
			c := *old
			c.notBefore, c.retiredAt = rows[i].NotBefore.UTC(), time.Time{}
			if rows[i].RetiredAt != nil {
				c.retiredAt = rows[i].RetiredAt.UTC()
			}
			k, err = &c, nil
		}
		if err != nil {
			ks.log.ErrorContext(ctx, "signing key unusable", "kid", rows[i].KID, "err", err)
			continue
		}
		byKID[k.kid] = k
		keys = append(keys, k)
	}
	ks.mu.Lock()
	ks.byKID, ks.keys = byKID, keys
	ks.mu.Unlock()
	// After the swap: a token verified with the old set while this ran
	// was tagged with the old version, and is verified again.
	ks.ver.Add(1)
	return nil
}

// Version changes whenever the set is reloaded; verified tokens are reused
// only under the version they were verified with.
func (ks *Set) Version() uint64 { return ks.ver.Load() }

// loadRow turns a stored key into a usable one, taking the material of
// keys held outside the database from the configuration.
func (ks *Set) loadRow(r *models.SigningKey) (*signingKey, error) {
	var k *signingKey
	switch {
	case ks.external != nil && r.KID == ks.external.kid:
		c := *ks.external
		k = &c
	case r.PrivateKey != "":
		plain, _, err := ks.seal.Open(secret.SigningKeyAAD(r.KID), r.PrivateKey)
		if err != nil {
			return nil, err
		}
		material, err := decodePrivate(r.Alg, plain)
		if err != nil {
			return nil, err
		}
		if k, err = newKey(r.Alg, material); err != nil {
			return nil, err
		}
	case r.Alg == AlgHS256:
		// Another process's AUTH_JWT_SECRET, or a key past its window:
		// nothing here can verify it.
		m, _ := jwtMethod(AlgHS256)
		k = &signingKey{kid: r.KID, alg: AlgHS256, method: m}
	default:
		pub, err := decodePublic(r.PublicKey)
		if err != nil {
			return nil, err
		}
		if k, err = newKey(r.Alg, pub); err != nil {
			return nil, err
		}
	}
	if k.alg != r.Alg || k.kid != r.KID {
		return nil, fmt.Errorf("stored as %s kid %s, but the material is %s kid %s", r.Alg, r.KID, k.alg, k.kid)
	}
	k.seq = r.Seq
	k.notBefore = r.NotBefore.UTC()
	if r.RetiredAt != nil {
		k.retiredAt = r.RetiredAt.UTC()
	}
	return k, nil
}

// RunReload calls Reload every interval until ctx is done, logging its
// failures: the set keeps the keys it has until a reload succeeds.
func (ks *Set) RunReload(ctx context.Context, interval time.Duration) {
	periodic.Run(ctx, interval, ks.Reload, func(err error) {
		ks.log.ErrorContext(ctx, "reload signing keys failed", "err", err)
	})
}

// lookup returns the key named kid, reloading the store (throttled) when
// it is unknown: it may be a key just added by another process.
func (ks *Set) lookup(ctx context.Context, kid string) *signingKey {
	ks.mu.RLock()
	k := ks.byKID[kid]
	ks.mu.RUnlock()
	if k != nil || ks.db == nil || kid == "" || len(kid) > maxKIDLen {
		return k
	}
	ks.missMu.Lock()
	defer ks.missMu.Unlock()
	ks.mu.RLock()
	k = ks.byKID[kid]
	ks.mu.RUnlock()
	// Wall-clock time, not the service clock: this limits database load.
	if k != nil || time.Since(ks.lastMiss) < unknownKIDReloadInterval {
		return k
	}
	ks.lastMiss = time.Now()
	// Not cancelled with the request: the reload serves every request
	// waiting for the kid, and a failed one spends the throttle interval.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := ks.Reload(ctx); err != nil {
		ks.log.ErrorContext(ctx, "reload signing keys for an unknown kid failed", "err", err)
		return nil
	}
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.byKID[kid]
}

// current returns the key to sign with now: the newest active one.
func (ks *Set) current() *signingKey {
	now := ks.now()
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	for _, k := range ks.keys {
		if k.activeAt(now) {
			return k
		}
	}
	return nil
}

// JWKS returns the JSON Web Key Set of the public keys that verify tokens
// now or will soon: active keys, keys not yet active (published ahead so
// that relying parties have them when they start signing) and retired keys
// still in their verification window. HS256 keys are secrets and never
// appear.
func (ks *Set) JWKS() []byte {
	now := ks.now()
	set := struct {
		Keys []JWK `json:"keys"`
	}{Keys: []JWK{}}
	ks.mu.RLock()
	for i := len(ks.keys) - 1; i >= 0; i-- {
		k := ks.keys[i]
		if k.jwk == nil {
			continue
		}
		if err := k.verifiesAt(now, ks.ttl); err != nil && !errors.Is(err, errKeyNotActive) {
			continue
		}
		set.Keys = append(set.Keys, *k.jwk)
	}
	ks.mu.RUnlock()
	b, _ := json.Marshal(set) // cannot fail: strings only
	return b
}

// WipeRetired erases the private material of the keys whose verification
// window has ended, and returns how many it erased. Their public keys stay:
// a kid once used is never taken into use again.
func (ks *Set) WipeRetired(ctx context.Context) (int64, error) {
	if ks.db == nil {
		return 0, nil
	}
	return models.WipeRetiredKeys(ctx, ks.db, ks.now().Add(-(retiredKeyGrace + ks.ttl + MaxClockSkew)))
}
