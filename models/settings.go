package models

import (
	"context"
	"errors"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// SettingValue returns the persisted value of name, storing gen() first if it
// has none. Concurrent callers, on one process or several sharing a
// database, all get the same value: the first insert wins.
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
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&Setting{Name: name, Value: v}).Error; err != nil {
		return "", err
	}
	if err := db.Where("name = ?", name).Take(&s).Error; err != nil {
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

// DeleteSetting deletes name, if it exists.
func DeleteSetting(ctx context.Context, db *gorm.DB, name string) (err error) {
	defer Wrap(&err, "DeleteSetting(%q)", name)
	return db.WithContext(ctx).Where("name = ?", name).Delete(&Setting{}).Error
}
