package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// RateLimit is one rate-limit counter, kept as the theoretical arrival time
// of the next operation (the generic cell rate algorithm): an operation at
// now is allowed when max(TAT, now) + interval <= now + window, and then
// moves TAT there. One integer per key, updated in one statement, so every
// replica sharing the database enforces one limit without a lock.
type RateLimit struct {
	ID  string `gorm:"primaryKey;size:64"`
	TAT int64  `gorm:"not null;index"` // Unix microseconds
}

// SharedRateLimits reports whether the rate-limit counters of db's users
// must live in db (TakeRate, GiveRate) rather than in each process: on
// PostgreSQL, which replicas share, a per-process count would multiply
// every limit by the number of replicas; an SQLite file is served by one
// process, which counts faster in memory.
func SharedRateLimits(db *gorm.DB) bool {
	return db.Dialector.Name() == string(Postgres)
}

// TakeRate reserves one operation for key at pace interval with a burst of
// window/interval. It returns zero when the operation is allowed, else how
// long until it would be; a refused operation changes nothing.
func TakeRate(ctx context.Context, db *gorm.DB, key string, now time.Time, interval, window time.Duration) (_ time.Duration, err error) {
	defer Wrap(&err, "TakeRate")
	db = db.WithContext(ctx)
	n, t, w := now.UnixMicro(), interval.Microseconds(), window.Microseconds()
	// GREATEST is PostgreSQL's two-argument max; SQLite's scalar max()
	// does the same.
	greatest := "GREATEST"
	if db.Dialector.Name() == string(SQLite) {
		greatest = "MAX"
	}
	var got []int64
	err = db.Raw(`INSERT INTO rate_limits (id, tat) VALUES (?, ?)
		ON CONFLICT (id) DO UPDATE SET tat = `+greatest+`(rate_limits.tat, ?) + ?
		WHERE `+greatest+`(rate_limits.tat, ?) + ? <= ?
		RETURNING tat`, key, n+t, n, t, n, t, n+w).Scan(&got).Error
	if err != nil {
		return 0, err
	}
	if len(got) > 0 {
		return 0, nil
	}
	var tat int64
	if err := db.Raw(`SELECT tat FROM rate_limits WHERE id = ?`, key).Scan(&tat).Error; err != nil {
		return 0, err
	}
	over := max(tat, n) + t - (n + w)
	return time.Duration(max(over, 1)) * time.Microsecond, nil
}

// GiveRate returns one operation reserved by TakeRate.
func GiveRate(ctx context.Context, db *gorm.DB, key string, interval time.Duration) (err error) {
	defer Wrap(&err, "GiveRate")
	return db.WithContext(ctx).Exec(`UPDATE rate_limits SET tat = tat - ? WHERE id = ?`, interval.Microseconds(), key).Error
}

// ClearRate forgets the operations counted under key: the next one is
// counted as if it were the first.
func ClearRate(ctx context.Context, db *gorm.DB, key string) (err error) {
	defer Wrap(&err, "ClearRate")
	return db.WithContext(ctx).Exec(`DELETE FROM rate_limits WHERE id = ?`, key).Error
}
