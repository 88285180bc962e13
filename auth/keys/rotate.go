package keys

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/models"
)

// ensure makes the key store's current signing key one this configuration
// signs with. Concurrent starts converge: models.AddSigningKey lets one
// insert of each sequence number win, and the losers re-read and find the
// winner acceptable.
func (ks *Set) ensure(ctx context.Context) error {
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
		if errors.Is(err, models.ErrSettingDeleted) {
			// Another start took the legacy secret over into the key
			// store since the rows were read: its key is there now.
			continue
		}
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
		if row.PrivateKey, err = ks.seal.Seal(secret.SigningKeyAAD(row.KID), row.PrivateKey); err != nil {
			return err
		}
		add := models.AddSigningKey
		if legacy {
			// Taken over, by this process or by the one that won: the key
			// store is the secret's one place from now on.
			add = models.AdoptLegacySigningKey
		}
		added, err := add(ctx, ks.db, &row)
		if err != nil {
			return err
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
func (ks *Set) acceptable(cur *models.SigningKey) bool {
	if ks.external != nil {
		return cur.KID == ks.external.kid
	}
	return (ks.cfg.Alg == "" || cur.Alg == ks.cfg.Alg) && cur.PrivateKey != ""
}

// newAlg is the algorithm of a key generated for this configuration given
// the store's rows: the configured one, else the newest key's (a key
// configured elsewhere, say, that this process cannot sign with), else
// HS256 for a new store.
func (ks *Set) newAlg(rows []models.SigningKey) string {
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
func (ks *Set) candidate(ctx context.Context, rows []models.SigningKey) (models.SigningKey, bool, error) {
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
			return base64.RawStdEncoding.EncodeToString(secret.Random()), nil
		})
		if err != nil {
			return models.SigningKey{}, false, err
		}
		legacy, err := base64.RawStdEncoding.DecodeString(s)
		if err != nil {
			return models.SigningKey{}, false, fmt.Errorf("stored signing key is corrupt: %w", err)
		}
		k, err := newKey(AlgHS256, legacy)
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
func (ks *Set) reseal(ctx context.Context) error {
	rows, err := models.SigningKeys(ctx, ks.db)
	if err != nil {
		return err
	}
	n := 0
	for _, r := range rows {
		if r.PrivateKey == "" {
			continue
		}
		aad := secret.SigningKeyAAD(r.KID)
		plain, stale, err := ks.seal.Open(aad, r.PrivateKey)
		if err != nil {
			return fmt.Errorf("signing key %s: %w", r.KID, err)
		}
		if !stale {
			continue
		}
		sealed, err := ks.seal.Seal(aad, plain)
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
		ks.log.InfoContext(ctx, "signing keys encrypted under AUTH_ENCRYPTION_KEY", "keys", n, "fingerprint", ks.seal.Fingerprint())
	}
	return nil
}

// Rotate adds a new generated signing key of cfg.Alg (when "", of the
// current key's algorithm) that signs from now+activateIn on, when every
// earlier key is retired; it returns the new kid. Keys configured outside
// the database (cfg.Secret, cfg.PrivateKey) cannot be rotated here: the
// operator replaces them and restarts.
func Rotate(ctx context.Context, db *gorm.DB, cfg Config, activateIn time.Duration, now func() time.Time, log *slog.Logger) (string, error) {
	if cfg.Secret != nil || cfg.PrivateKey != nil {
		return "", errExternalRotate
	}
	if activateIn < 0 {
		return "", errors.New("activation delay must not be negative")
	}
	ks, err := newSet(db, cfg, 0, now, log)
	if err != nil {
		return "", err
	}
	// A key that does not decrypt here stops the rotation, as it stops a
	// start: run without AUTH_ENCRYPTION_KEY, the new key would be stored
	// in plaintext beside encrypted ones.
	if err := ks.reseal(ctx); err != nil {
		return "", err
	}
	alg, err := ks.rotationAlg(ctx)
	if err != nil {
		return "", err
	}
	k, err := generateKey(alg)
	if err != nil {
		return "", err
	}
	row, err := keyRow(k, true)
	if err != nil {
		return "", err
	}
	if row.PrivateKey, err = ks.seal.Seal(secret.SigningKeyAAD(row.KID), row.PrivateKey); err != nil {
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

// rotationAlg is the algorithm of the key Rotate adds: the configured one,
// else the current key's. A store with no current key gets one first.
func (ks *Set) rotationAlg(ctx context.Context) (string, error) {
	rows, err := models.SigningKeys(ctx, ks.db)
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
		if rows, err = models.SigningKeys(ctx, ks.db); err != nil {
			return "", err
		}
	}
	if ks.cfg.Alg != "" {
		return ks.cfg.Alg, nil
	}
	if cur := currentRow(rows, ks.now()); cur != nil {
		return cur.Alg, nil
	}
	return ks.newAlg(rows), nil
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
