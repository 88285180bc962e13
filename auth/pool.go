package auth

import (
	"context"
	"runtime"
	"time"

	"github.com/authql/authql/models"
)

// DefaultHashWait is how long a password hash waits for a worker before the
// operation is refused.
const DefaultHashWait = time.Second

// hashPool bounds how many password hashes run at once. A hash takes tens
// of milliseconds of one core and megabytes of memory by design; without a
// bound, a flood of logins would queue without limit, take every core and
// the memory with it, and starve the requests that only check a token. With
// at most one worker per core, and a short wait for one, a flood turns into
// fast RATE_LIMITED answers instead.
type hashPool struct {
	slots chan struct{}
	wait  time.Duration
	obs   Observer
}

// newHashPool returns a pool of workers (at most the number of usable
// cores; 0 means DefaultHashWorkers) that waits up to wait for a free
// worker and tells obs how long each hash waited.
func newHashPool(workers int, wait time.Duration, obs Observer) *hashPool {
	cores := runtime.GOMAXPROCS(0)
	if workers <= 0 {
		workers = DefaultHashWorkers()
	}
	workers = min(workers, cores)
	if wait <= 0 {
		wait = DefaultHashWait
	}
	if obs == nil {
		obs = nopObserver{}
	}
	return &hashPool{slots: make(chan struct{}, workers), wait: wait, obs: obs}
}

// DefaultHashWorkers is one worker per core but one, and at least one.
// The core left over keeps token checks fast while logins flood: measured
// on 2 cores (BENCHMARKS.md), a login flood with a worker on each core
// raised the p99 of { me } from about 1 ms to 40 ms, because Go's scheduler
// gives a waiting request a core only when a hash's 10 ms time slice ends;
// with one worker it stayed at 1.6 ms, for 57% of the login throughput.
func DefaultHashWorkers() int { return max(1, runtime.GOMAXPROCS(0)-1) }

// errHashBusy is returned when no worker frees up in time.
var errHashBusy = models.RateLimitedf(time.Second, "the server is busy; try again shortly")

// do runs f on a worker, or returns a RateLimited error when none frees up
// within the pool's wait (or ctx ends first). Every wait is observed, the
// zero ones and the refused ones too: the histogram is then the share of
// logins that queued, and its top bucket the ones turned away.
func (p *hashPool) do(ctx context.Context, f func()) error {
	select {
	case p.slots <- struct{}{}:
		p.obs.HashWait(0)
	default:
		start := time.Now()
		t := time.NewTimer(p.wait)
		defer t.Stop()
		select {
		case p.slots <- struct{}{}:
			p.obs.HashWait(time.Since(start))
		case <-t.C:
			p.obs.HashWait(time.Since(start))
			return errHashBusy
		case <-ctx.Done():
			p.obs.HashWait(time.Since(start))
			return errHashBusy
		}
	}
	defer func() { <-p.slots }()
	f()
	return nil
}

// workers is the pool's size.
func (p *hashPool) workers() int { return cap(p.slots) }
