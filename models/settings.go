package models

import (
	"context"
	"errors"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ErrSettingDeleted is returned by SettingValue when the setting was
// deleted by another process between this one's insert, which found it
// there already, and its read of the value that won.
var ErrSettingDeleted = errors.New("setting deleted concurrently")

// SettingValue returns the persisted value of name, storing gen() first if it
// has none. Concurrent callers, on one process or several sharing a
// database, all get the same value: the first insert wins. A caller that
// lost to an insert and then finds the setting deleted gets
// ErrSettingDeleted (for a setting that is taken over and deleted, such as
// LegacyHS256Setting, it means the taking over happened).
func SettingValue(ctx context.Context, db *gorm.DB, name string, gen func() (string, error)) (_ string, err error) {
	defer Wrap(&err, "SettingValue(%q)", name)
	db = db.WithContext(ctx)
	var s Setting
	if err := db.Where("name = ?", name).Take(&s).Error; err == nil {
		return s.Value, nil
	} else if !errors.Is(err, gorm.ErrRecordNotFound) {
		return "", err
	}
	v, err := gen()
	if err != nil {
		return "", err
	}
	res := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&Setting{Name: name, Value: v})
	if res.Error != nil {
		return "", res.Error
	}
	if res.RowsAffected > 0 {
		return v, nil // this insert won
	}
	if err := db.Where("name = ?", name).Take(&s).Error; errors.Is(err, gorm.ErrRecordNotFound) {
		return "", ErrSettingDeleted
	} else if err != nil {
		return "", err
	}
	return s.Value, nil
}

// ReplaceSetting sets name to value if it is still old, and reports
// whether it did: another process may have done it first.
func ReplaceSetting(ctx context.Context, db *gorm.DB, name, old, value string) (replaced bool, err error) {
	defer Wrap(&err, "ReplaceSetting(%q)", name)
	res := db.WithContext(ctx).Model(&Setting{}).Where("name = ? AND value = ?", name, old).Update("value", value)
	return res.RowsAffected > 0, res.Error
}
