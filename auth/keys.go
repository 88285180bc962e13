package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"github.com/authql/authql/models"
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

const (
	// KeyReloadInterval is how often a running server re-reads the key
	// store, to learn of keys added by other processes.
	KeyReloadInterval = 30 * time.Second
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
const retiredKeyGrace = KeyReloadInterval + MaxClockSkew

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

// KeyConfig says which key this process signs with.
type KeyConfig struct {
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
	Encryption EncryptionKeys
	// ReadOnly opens the set without adding, replacing or retiring any key
	// and without loading one: for the commands (user, migrate), which sign
	// and verify nothing and must leave the keys as the servers use them.
	ReadOnly bool
}

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

// KeySet holds the signing keys of the key store in memory: the newest
// active one signs, each verifies its own tokens. Lookups are a read-locked
// map access.
type KeySet struct {
	db       *gorm.DB // nil: a fixed key, nothing to reload
	cfg      KeyConfig
	external *signingKey // the key of cfg.Secret or cfg.PrivateKey
	ttl      time.Duration
	now      func() time.Time
	log      *slog.Logger
	seal     *sealer

	mu    sync.RWMutex
	byKID map[string]*signingKey
	keys  []*signingKey // newest first
	ver   atomic.Uint64

	missMu   sync.Mutex
	lastMiss time.Time // of the last reload for an unknown kid (wall clock)
}

// staticKeySet is a set of one HS256 key that never changes.
func staticKeySet(secret []byte) (*KeySet, error) {
	k, err := newKey(AlgHS256, secret)
	if err != nil {
		return nil, err
	}
	return &KeySet{byKID: map[string]*signingKey{k.kid: k}, keys: []*signingKey{k}, now: time.Now}, nil
}

// OpenKeySet makes sure the key store holds a current signing key as cfg
// asks (creating one, or retiring the current one for one of another
// algorithm or from another file), and loads it. ttl is the access-token
// lifetime: a retired key verifies for that long after its retirement.
func OpenKeySet(ctx context.Context, db *gorm.DB, cfg KeyConfig, ttl time.Duration, now func() time.Time, log *slog.Logger) (*KeySet, error) {
	ks, err := newKeySet(db, cfg, ttl, now, log)
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

func newKeySet(db *gorm.DB, cfg KeyConfig, ttl time.Duration, now func() time.Time, log *slog.Logger) (*KeySet, error) {
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
	seal, err := newSealer(cfg.Encryption)
	if err != nil {
		return nil, err
	}
	ks := &KeySet{db: db, cfg: cfg, ttl: ttl, now: func() time.Time { return now().UTC() }, log: log, seal: seal, byKID: map[string]*signingKey{}}
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

// ensure makes the key store's current signing key one this configuration
// signs with. Concurrent starts converge: models.AddSigningKey lets one
// insert of each sequence number win, and the losers re-read and find the
// winner acceptable.
func (ks *KeySet) ensure(ctx context.Context) error {
	for range 5 {
		rows, err := models.SigningKeys(ctx, ks.db)
		if err != nil {
			return err
		}
		now := ks.now()
		cur := currentRow(rows, now)
		if cur != nil && ks.acceptable(cur) {
			return nil
		}
		row, legacy, err := ks.candidate(ctx, rows)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.KID == row.KID {
				// A key once retired may have been retired because it
				// leaked; it is never silently taken into use again.
				return fmt.Errorf("the configured %s key (kid %s) was retired from use before; configure a new key", r.Alg, r.KID)
			}
		}
		row.Seq = nextSeq(rows)
		row.CreatedAt, row.NotBefore = now, now
		if len(rows) == 0 && row.Alg == AlgHS256 {
			// The first HS256 key of a store created by an upgrade has
			// signed tokens before now (as the generated or configured
			// secret of an older version); those must keep verifying, so
			// its signing window has no known start.
			row.NotBefore = time.Unix(0, 0).UTC()
		}
		if row.PrivateKey, err = ks.seal.seal(signingKeyAAD(row.KID), row.PrivateKey); err != nil {
			return err
		}
		added, err := models.AddSigningKey(ctx, ks.db, &row)
		if err != nil {
			return err
		}
		if legacy {
			// Taken over, by this process or by the one that won: the key
			// store is the secret's one place from now on.
			if err := models.DeleteSetting(ctx, ks.db, models.LegacyHS256Setting); err != nil {
				return err
			}
		}
		if added {
			if cur != nil {
				ks.log.InfoContext(ctx, "signing key replaced", "kid", row.KID, "alg", row.Alg, "retired_kid", cur.KID, "retired_alg", cur.Alg)
			} else {
				ks.log.InfoContext(ctx, "signing key created", "kid", row.KID, "alg", row.Alg)
			}
			return nil
		}
	}
	return errors.New("could not settle on a signing key: the key store keeps changing")
}

// acceptable reports whether this configuration signs with the current key
// cur as it is. Without an algorithm configured, any key of the store that
// this process can sign with is.
func (ks *KeySet) acceptable(cur *models.SigningKey) bool {
	if ks.external != nil {
		return cur.KID == ks.external.kid
	}
	return (ks.cfg.Alg == "" || cur.Alg == ks.cfg.Alg) && cur.PrivateKey != ""
}

// newAlg is the algorithm of a key generated for this configuration given
// the store's rows: the configured one, else the newest key's (a key
// configured elsewhere, say, that this process cannot sign with), else
// HS256 for a new store.
func (ks *KeySet) newAlg(rows []models.SigningKey) string {
	switch {
	case ks.cfg.Alg != "":
		return ks.cfg.Alg
	case len(rows) > 0:
		return rows[len(rows)-1].Alg
	}
	return AlgHS256
}

// candidate is the key to add when the current one is not acceptable, and
// whether it is the secret of models.LegacyHS256Setting.
func (ks *KeySet) candidate(ctx context.Context, rows []models.SigningKey) (models.SigningKey, bool, error) {
	if ks.external != nil {
		// Only the public key is recorded: verification of HS256 needs
		// the secret, which stays where the operator put it.
		r, err := keyRow(ks.external, false)
		return r, false, err
	}
	alg := ks.newAlg(rows)
	if alg == AlgHS256 && len(rows) == 0 {
		// The HS256 secret that authql generated before it had a key store:
		// taking it over keeps the tokens issued before the upgrade valid,
		// and replicas still running the old version agree on it.
		s, err := models.SettingValue(ctx, ks.db, models.LegacyHS256Setting, func() (string, error) {
			return base64.RawStdEncoding.EncodeToString(randomSecret()), nil
		})
		if err != nil {
			return models.SigningKey{}, false, err
		}
		secret, err := base64.RawStdEncoding.DecodeString(s)
		if err != nil {
			return models.SigningKey{}, false, fmt.Errorf("stored signing key is corrupt: %w", err)
		}
		k, err := newKey(AlgHS256, secret)
		if err != nil {
			return models.SigningKey{}, false, err
		}
		r, err := keyRow(k, true)
		return r, true, err
	}
	k, err := generateKey(alg)
	if err != nil {
		return models.SigningKey{}, false, err
	}
	r, err := keyRow(k, true)
	return r, false, err
}

// reseal makes every private key stored in the database encrypted under
// the current encryption key: those stored in plaintext (before
// AUTH_ENCRYPTION_KEY was set) and those of a previous key. A key that
// does not decrypt stops the start, with a message naming the variable: a
// server that went on would sign with a key the others do not have, or
// with none.
func (ks *KeySet) reseal(ctx context.Context) error {
	rows, err := models.SigningKeys(ctx, ks.db)
	if err != nil {
		return err
	}
	n := 0
	for _, r := range rows {
		if r.PrivateKey == "" {
			continue
		}
		plain, stale, err := ks.seal.open(signingKeyAAD(r.KID), r.PrivateKey)
		if err != nil {
			return fmt.Errorf("signing key %s: %w", r.KID, err)
		}
		if !stale {
			continue
		}
		sealed, err := ks.seal.seal(signingKeyAAD(r.KID), plain)
		if err != nil {
			return err
		}
		// Only if unchanged: a concurrent start may have sealed it first,
		// under the same key (a nonce of its own, so another value).
		done, err := models.ReplaceSigningKeyPrivate(ctx, ks.db, r.KID, r.PrivateKey, sealed)
		if err != nil {
			return err
		}
		if done {
			n++
		}
	}
	if n > 0 {
		ks.log.InfoContext(ctx, "signing keys encrypted under AUTH_ENCRYPTION_KEY", "keys", n, "fingerprint", ks.seal.currentFP())
	}
	return nil
}

// RotateKey adds a new generated signing key of cfg.Alg (when "", of the
// current key's algorithm) that signs from now+activateIn on, when every
// earlier key is retired; it returns the new kid. Keys configured outside
// the database (cfg.Secret, cfg.PrivateKey) cannot be rotated here: the
// operator replaces them and restarts.
func RotateKey(ctx context.Context, db *gorm.DB, cfg KeyConfig, activateIn time.Duration, now func() time.Time, log *slog.Logger) (string, error) {
	if cfg.Secret != nil || cfg.PrivateKey != nil {
		return "", errExternalRotate
	}
	if activateIn < 0 {
		return "", errors.New("activation delay must not be negative")
	}
	ks, err := newKeySet(db, cfg, 0, now, log)
	if err != nil {
		return "", err
	}
	// A key that does not decrypt here stops the rotation, as it stops a
	// start: run without AUTH_ENCRYPTION_KEY, the new key would be stored
	// in plaintext beside encrypted ones.
	if err := ks.reseal(ctx); err != nil {
		return "", err
	}
	rows, err := models.SigningKeys(ctx, db)
	if err != nil {
		return "", err
	}
	if currentRow(rows, ks.now()) == nil {
		// Rotating a store with no current key would leave nothing to
		// sign with until the new key activates: start from one. With a
		// current key, whatever its algorithm, the new key alone changes
		// anything, and only from its activation.
		if err := ks.ensure(ctx); err != nil {
			return "", err
		}
		if rows, err = models.SigningKeys(ctx, db); err != nil {
			return "", err
		}
	}
	alg := ks.cfg.Alg
	if alg == "" {
		if cur := currentRow(rows, ks.now()); cur != nil {
			alg = cur.Alg
		} else {
			alg = ks.newAlg(rows)
		}
	}
	k, err := generateKey(alg)
	if err != nil {
		return "", err
	}
	row, err := keyRow(k, true)
	if err != nil {
		return "", err
	}
	if row.PrivateKey, err = ks.seal.seal(signingKeyAAD(row.KID), row.PrivateKey); err != nil {
		return "", err
	}
	for range 5 {
		rows, err := models.SigningKeys(ctx, db)
		if err != nil {
			return "", err
		}
		row.Seq = nextSeq(rows)
		row.CreatedAt = ks.now()
		row.NotBefore = row.CreatedAt.Add(activateIn)
		added, err := models.AddSigningKey(ctx, db, &row)
		if err != nil {
			return "", err
		}
		if added {
			return row.KID, nil
		}
	}
	return "", errors.New("could not add the key: the key store keeps changing")
}

// currentRow is the newest key signing at now, or nil.
func currentRow(rows []models.SigningKey, now time.Time) *models.SigningKey {
	for i := len(rows) - 1; i >= 0; i-- {
		r := &rows[i]
		if !now.Before(r.NotBefore) && (r.RetiredAt == nil || now.Before(*r.RetiredAt)) {
			return r
		}
	}
	return nil
}

func nextSeq(rows []models.SigningKey) int64 {
	if len(rows) == 0 {
		return 1
	}
	return rows[len(rows)-1].Seq + 1
}

// Reload re-reads the key store. A key that cannot be used (corrupt, or
// whose kid does not match its material) is logged and left out.
func (ks *KeySet) Reload(ctx context.Context) error {
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

// version changes whenever the set is reloaded; verified tokens are reused
// only under the version they were verified with.
func (ks *KeySet) version() uint64 { return ks.ver.Load() }

// loadRow turns a stored key into a usable one, taking the material of
// keys held outside the database from the configuration.
func (ks *KeySet) loadRow(r *models.SigningKey) (*signingKey, error) {
	var k *signingKey
	switch {
	case ks.external != nil && r.KID == ks.external.kid:
		c := *ks.external
		k = &c
	case r.PrivateKey != "":
		plain, _, err := ks.seal.open(signingKeyAAD(r.KID), r.PrivateKey)
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

// RunReload calls Reload every interval until ctx is done.
func (ks *KeySet) RunReload(ctx context.Context, interval time.Duration) {
	runEvery(ctx, interval, ks.log, "reload signing keys", ks.Reload)
}

// lookup returns the key named kid, reloading the store (throttled) when
// it is unknown: it may be a key just added by another process. The
// reload is bounded by ctx, and by 5 s.
func (ks *KeySet) lookup(ctx context.Context, kid string) *signingKey {
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
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := ks.Reload(ctx); err != nil {
		ks.log.Error("reload signing keys for an unknown kid failed", "err", err)
		return nil
	}
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.byKID[kid]
}

// current returns the key to sign with now: the newest active one.
func (ks *KeySet) current() *signingKey {
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

// JWKS returns the JSON Web Key Set of the public keys that verify tokens
// now or will soon: active keys, keys not yet active (published ahead so
// that relying parties have them when they start signing) and retired keys
// still in their verification window. HS256 keys are secrets and never
// appear.
func (ks *KeySet) JWKS() []byte {
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

// CurrentKID returns the kid of the key signing now, or "".
func (ks *KeySet) CurrentKID() string {
	if k := ks.current(); k != nil {
		return k.kid
	}
	return ""
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
		secret := append([]byte(nil), m...)
		k.signKey, k.verifyKey, k.kid = secret, secret, hsKeyID(secret)
		return k, nil
	case ed25519.PrivateKey:
		k.signKey = m
		material = m.Public()
	case *ecdsa.PrivateKey:
		k.signKey = m
		material = &m.PublicKey
	}
	switch pub := material.(type) {
	case ed25519.PublicKey:
		if alg != AlgEdDSA || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("an Ed25519 key is not an %s key", alg)
		}
		k.verifyKey = pub
		k.jwk = &JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub)}
	case *ecdsa.PublicKey:
		if alg != AlgES256 || pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("an ECDSA key on %s is not an %s key (ES256 needs P-256)", pub.Curve.Params().Name, alg)
		}
		e, err := pub.ECDH()
		if err != nil {
			return nil, err
		}
		pt := e.Bytes() // 0x04 || X || Y, each 32 bytes
		k.verifyKey = pub
		k.jwk = &JWK{Kty: "EC", Crv: "P-256", X: base64.RawURLEncoding.EncodeToString(pt[1:33]), Y: base64.RawURLEncoding.EncodeToString(pt[33:])}
	default:
		return nil, fmt.Errorf("unsupported key type %T for %s", material, alg)
	}
	k.kid = k.jwk.Thumbprint()
	k.jwk.Kid, k.jwk.Alg, k.jwk.Use = k.kid, alg, "sig"
	return k, nil
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

// hsKeyID names an HS256 key without revealing it: a truncated hash of it.
// It is the kid authql has always used, so tokens survive upgrades.
func hsKeyID(secret []byte) string {
	sum := sha256.Sum256(append([]byte("authql kid\x00"), secret...))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

func randomSecret() []byte {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return b
}

// generateKey returns a new random key of alg.
func generateKey(alg string) (*signingKey, error) {
	switch alg {
	case AlgHS256:
		return newKey(alg, randomSecret())
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
