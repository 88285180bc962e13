package models

import (
	"context"

	"gorm.io/gorm"

	"github.com/authql/authql/internal/periodic"
)

// BoundWAL keeps SQLite's write-ahead log bounded under load: it calls
// CheckpointWAL every WALCheckInterval until ctx is done, telling failed
// of each failure (it tries again at the next tick). On PostgreSQL, which
// has no such log to bound, it returns at once.
func BoundWAL(ctx context.Context, db *gorm.DB, failed func(error)) {
	if db.Dialector.Name() != string(SQLite) {
		return
	}
	periodic.Run(ctx, WALCheckInterval, func(ctx context.Context) error {
		_, err := CheckpointWAL(ctx, db)
		return err
	}, failed)
}
