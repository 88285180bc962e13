package models_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// TestAdoptLegacySigningKey: taking the legacy HS256 secret over deletes
// its setting with the key's insert, and also when another process's key
// came first (the store holds the secret's successor either way); a lost
// insert after the deletion reads as ErrSettingDeleted, not as a failure.
func TestAdoptLegacySigningKey(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := testdb.Open(t, dsn)
		ctx := context.Background()
		now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
		legacy := func() string {
			t.Helper()
			v, err := models.SettingValue(ctx, db, models.LegacyHS256Setting, func() (string, error) { return "c2VjcmV0", nil })
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		settingLeft := func() bool {
			t.Helper()
			var n int64
			if err := db.Model(&models.Setting{}).Where("name = ?", models.LegacyHS256Setting).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n > 0
		}
		key := func(kid string) *models.SigningKey {
			return &models.SigningKey{KID: kid, Seq: 1, Alg: "HS256", PrivateKey: legacy(), CreatedAt: now, NotBefore: now}
		}
		if added, err := models.AdoptLegacySigningKey(ctx, db, key("legacy-kid")); err != nil || !added {
			t.Fatalf("first adoption: added %v, %v", added, err)
		}
		if settingLeft() {
			t.Error("the setting outlived its adoption")
		}
		// A start that read the store empty comes second, with a secret
		// stored again in between.
		if added, err := models.AdoptLegacySigningKey(ctx, db, key("other-kid")); err != nil || added {
			t.Fatalf("second adoption: added %v, %v; want not added", added, err)
		}
		if settingLeft() {
			t.Error("a lost adoption left the setting")
		}
		rows, err := models.SigningKeys(ctx, db)
		if err != nil || len(rows) != 1 || rows[0].KID != "legacy-kid" {
			t.Errorf("keys = %+v, %v; want the first adoption's alone", rows, err)
		}
	})
}

// TestSettingValueDeleted: SettingValue whose insert lost and whose read
// then finds the setting gone says so with ErrSettingDeleted.
func TestSettingValueDeleted(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := testdb.Open(t, dsn)
		_, err := models.SettingValue(context.Background(), db, "a_setting", func() (string, error) {
			// Another process stores the setting, and it is gone again
			// before this call reads what won.
			if err := db.Create(&models.Setting{Name: "a_setting", Value: "theirs"}).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Callback().Query().Before("gorm:query").Register("test:delete", func(tx *gorm.DB) {
				if err := db.Exec("DELETE FROM settings WHERE name = 'a_setting'").Error; err != nil {
					t.Error(err)
				}
			}); err != nil {
				t.Fatal(err)
			}
			return "ours", nil
		})
		if !errors.Is(err, models.ErrSettingDeleted) {
			t.Errorf("err = %v, want ErrSettingDeleted", err)
		}
	})
}
