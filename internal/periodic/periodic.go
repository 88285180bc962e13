// Package periodic runs the server's background chores (the purge, the
// signing keys' reload, the SQLite write-ahead log's bound) on one loop.
package periodic

import (
	"context"
	"time"
)

// Run calls f every interval until ctx is done, and failed with each error
// f returns while ctx is not done (the next tick tries again).
func Run(ctx context.Context, interval time.Duration, f func(context.Context) error, failed func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := f(ctx); err != nil && ctx.Err() == nil {
				failed(err)
			}
		}
	}
}
