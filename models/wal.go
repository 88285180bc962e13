package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// BoundWAL keeps SQLite's write-ahead log bounded under load: it calls
// CheckpointWAL every WALCheckInterval until ctx is done, telling failed
// of each failure (it tries again at the next tick). On PostgreSQL, which
// has no such log to bound, it returns at once.
func BoundWAL(ctx context.Context, db *gorm.DB, failed func(error)) {
	if db.Dialector.Name() != string(SQLite) {
		return
	}
	t := time.NewTicker(WALCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := CheckpointWAL(ctx, db); err != nil && ctx.Err() == nil {
				failed(err)
			}
		}
	}
}
