// Package ratelimit counts operations under keys against rates (the
// generic cell rate algorithm), in the database when replicas share it and
// in memory otherwise. Its callers name the keys; it knows nothing of what
// they count.
package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/models"
)

// Rate is a limit of N operations per window. Up to N may come at once;
// after that one more is allowed every Per/N (the generic cell rate
// algorithm: a burst of N, then a steady pace), so there is no window edge
// at which twice the limit gets through. A zero N disables the limit.
type Rate struct {
	N   int
	Per time.Duration
}

// Enabled reports whether r limits anything.
func (r Rate) Enabled() bool { return r.N > 0 && r.Per > 0 }

// String is the form ParseRate reads: "10/15m", or "off".
func (r Rate) String() string {
	if !r.Enabled() {
		return "off"
	}
	return fmt.Sprintf("%d/%s", r.N, r.Per)
}

// interval is the steady pace: one operation per interval.
func (r Rate) interval() time.Duration { return r.Per / time.Duration(r.N) }

// ParseRate reads "N/DURATION" (such as "10/15m") or "off" (or "0").
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%q is not a rate; use COUNT/DURATION such as 10/15m, or off", s)
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || count < 1 || count > 1_000_000 {
		return Rate{}, fmt.Errorf("%q: the count must be a whole number from 1 to 1000000", s)
	}
	d, err := time.ParseDuration(strings.TrimSpace(per))
	if err != nil || d < time.Second || d > 7*24*time.Hour {
		return Rate{}, fmt.Errorf("%q: the window must be a Go duration from 1s to 168h", s)
	}
	return Rate{N: count, Per: d}, nil
}

// Limiter counts operations against rates. Its counters live in the
// database when replicas share it (see models.SharedRateLimits), so that
// every replica enforces one limit (a per-replica limit would multiply by
// the number of replicas); otherwise, on SQLite, which one process serves,
// they live in memory.
type Limiter struct {
	db *gorm.DB // the database holding the counters; nil: in memory

	mu  sync.Mutex
	tat map[string]time.Time // theoretical arrival time of the next operation
	// swept is when expired entries were last dropped.
	swept time.Time
}

// maxMemoryKeys bounds the limiter's map between sweeps: many clients each
// making one attempt must not grow it without limit.
const maxMemoryKeys = 100_000

// New returns the limiter for db.
func New(db *gorm.DB) *Limiter {
	if models.SharedRateLimits(db) {
		return newShared(db)
	}
	return newMemory()
}

// newShared returns a limiter keeping its counters in db's rate_limits
// table.
func newShared(db *gorm.DB) *Limiter { return &Limiter{db: db} }

// newMemory returns a limiter keeping its counters in this process.
func newMemory() *Limiter { return &Limiter{tat: map[string]time.Time{}} }

// Take reserves one operation for key at now under r, and returns how long
// to wait when r is exhausted (zero when the operation may go ahead). A
// refused operation changes nothing.
func (l *Limiter) Take(ctx context.Context, key string, r Rate, now time.Time) (retryAfter time.Duration, err error) {
	if l.db != nil {
		return models.TakeRate(ctx, l.db, key, now, r.interval(), r.Per)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.tat) >= maxMemoryKeys && now.Sub(l.swept) > time.Second {
		l.sweepLocked(now)
	}
	next := l.tat[key]
	if next.Before(now) {
		next = now
	}
	next = next.Add(r.interval())
	if over := next.Sub(now) - r.Per; over > 0 {
		return over, nil
	}
	l.tat[key] = next
	return 0, nil
}

// Give returns an operation reserved by Take.
func (l *Limiter) Give(ctx context.Context, key string, r Rate, now time.Time) error {
	if l.db != nil {
		return models.GiveRate(ctx, l.db, key, r.interval())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.tat[key]; ok {
		l.tat[key] = t.Add(-r.interval())
	}
	return nil
}

// Clear forgets the operations counted under key.
func (l *Limiter) Clear(ctx context.Context, key string) error {
	if l.db != nil {
		return models.ClearRate(ctx, l.db, key)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.tat, key)
	return nil
}

// Sweep drops the counters kept in memory that have run down: their next
// operation would be allowed as if they had never been seen. The counters
// in the database are purged with the other expired rows (see
// models.PurgeExpired).
func (l *Limiter) Sweep(now time.Time) {
	if l.db != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
}

func (l *Limiter) sweepLocked(now time.Time) {
	for k, t := range l.tat {
		if !t.After(now) {
			delete(l.tat, k)
		}
	}
	l.swept = now
}
