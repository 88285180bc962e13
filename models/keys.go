package models

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// SigningKey is one access-token signing key. Keys form a sequence: each
// new key (Seq one higher than the last) signs from NotBefore on and retires
// every earlier key at that moment. A retired key keeps verifying the tokens
// it signed until they have expired.
type SigningKey struct {
	KID string `gorm:"column:kid;primaryKey;size:64"`
	// Seq orders the keys. Its unique index is what makes concurrent starts
	// and rotations converge: of two processes adding key n+1, one insert
	// wins and the other sees the winner.
	Seq int64  `gorm:"not null;uniqueIndex"`
	Alg string `gorm:"size:16;not null"`
	// PrivateKey is a PKCS#8 PEM key (EdDSA, ES256) or a base64 secret
	// (HS256). It is empty for keys held outside the database (a key file,
	// AUTH_JWT_SECRET) and once a retired key can no longer verify anything.
	PrivateKey string `gorm:"size:4096;not null"`
	// PublicKey is the PKIX PEM public key of an asymmetric key; empty for
	// HS256.
	PublicKey string     `gorm:"size:4096;not null"`
	CreatedAt time.Time  `gorm:"not null"`
	NotBefore time.Time  `gorm:"not null"`
	RetiredAt *time.Time ``
}

// SigningKeys returns every signing key, oldest first.
func SigningKeys(ctx context.Context, db *gorm.DB) (_ []SigningKey, err error) {
	defer Wrap(&err, "SigningKeys")
	var keys []SigningKey
	err = db.WithContext(ctx).Order("seq").Find(&keys).Error
	return keys, err
}

// AddSigningKey inserts k, whose Seq must be one more than the last key's,
// and retires every other key not already retired by k.NotBefore at
// k.NotBefore. It returns false, having changed nothing, when a key with
// k's Seq or KID exists already: another process got there first, and the
// caller should re-read the keys and decide again.
// A key added publishes EventKeysChanged and is recorded in the audit log
// (KEY_ROTATED, detail its kid).
func AddSigningKey(ctx context.Context, db *gorm.DB, k *SigningKey) (added bool, err error) {
	defer Wrap(&err, "AddSigningKey(%q)", k.KID)
	return addSigningKey(ctx, db, k, false)
}

// AdoptLegacySigningKey is AddSigningKey for the key made of the HS256
// secret of LegacyHS256Setting, which it deletes in the same transaction,
// whether k was added or another process's key came first: from then on the
// key store is the secret's one place. One transaction, so that a process
// stopped between the two never leaves the secret in plaintext beside the
// key store (which may encrypt it): once the store holds a key, nothing
// would delete the setting any more.
func AdoptLegacySigningKey(ctx context.Context, db *gorm.DB, k *SigningKey) (added bool, err error) {
	defer Wrap(&err, "AdoptLegacySigningKey(%q)", k.KID)
	return addSigningKey(ctx, db, k, true)
}

func addSigningKey(ctx context.Context, db *gorm.DB, k *SigningKey, adoptLegacy bool) (added bool, err error) {
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if adoptLegacy {
			if err := tx.Where("name = ?", LegacyHS256Setting).Delete(&Setting{}).Error; err != nil {
				return err
			}
		}
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(k)
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		added = true
		err := tx.Model(&SigningKey{}).
			Where("kid <> ? AND (retired_at IS NULL OR retired_at > ?)", k.KID, k.NotBefore).
			Update("retired_at", k.NotBefore).Error
		if err != nil {
			return err
		}
		// Here, in the key's own transaction, so that every key added
		// (generated at first start, replaced for a new configuration,
		// rotated by `authql keys rotate`) is audited exactly once.
		at := k.CreatedAt
		if at.IsZero() {
			at = Now()
		}
		e := NewAuditEvent(at, AuditKeyRotated, AuditSuccess)
		e.Detail = &k.KID
		if err := tx.Create(&e).Error; err != nil {
			return err
		}
		return Publish(tx, Event{Kind: EventKeysChanged, ID: k.KID})
	})
	return added, err
}

// WipeRetiredKeys erases the private material of keys retired before
// `before` (by then none of their tokens can still be valid), so that a
// later leak of the database does not yield them. The rows stay, so that a
// retired key is never taken into use again.
func WipeRetiredKeys(ctx context.Context, db *gorm.DB, before time.Time) (n int64, err error) {
	defer Wrap(&err, "WipeRetiredKeys")
	res := db.WithContext(ctx).Model(&SigningKey{}).
		Where("retired_at < ? AND private_key <> ''", before).
		Update("private_key", "")
	return res.RowsAffected, res.Error
}

// ReplaceSigningKeyPrivate sets the stored private material of kid to
// value if it is still old (as when it is encrypted again under a new key),
// and reports whether it did: another process may have done it first.
func ReplaceSigningKeyPrivate(ctx context.Context, db *gorm.DB, kid, old, value string) (replaced bool, err error) {
	defer Wrap(&err, "ReplaceSigningKeyPrivate(%q)", kid)
	res := db.WithContext(ctx).Model(&SigningKey{}).
		Where("kid = ? AND private_key = ?", kid, old).
		Update("private_key", value)
	return res.RowsAffected > 0, res.Error
}
