package auth

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/authql/authql/models"
)

// collectMinKiB is the argon2id memory cost from which the hashing pool
// collects after each hash (hashPool.collect): below it a buffer is too
// small to matter (the tests' cheap costs).
const collectMinKiB = 1024

// DefaultHashWait is how long a password hash waits for a worker before the
// operation is refused.
const DefaultHashWait = time.Second

// hashPool bounds how many password hashes run at once. A hash takes tens
// of milliseconds of one core and megabytes of memory by design; without a
// bound, a flood of logins would queue without limit, take every core and
// the memory with it, and starve the requests that only check a token. With
// at most one worker per core, and a short wait for one, a flood turns into
// fast RATE_LIMITED answers instead.
//
// That alone would let one client take the whole pool: its flood fills the
// queue, and everyone else's login waits behind it until refused. So each
// client (by the address rate limits count, Client.limitKey) gets a share:
// at most share() hashes waiting or running at once, and none waiting when
// one is in flight already. Past it the client's hash is refused at once,
// RATE_LIMITED, without queueing; the waiting line then holds at most one
// hash per client, and a client with no hash in flight gets the next free
// worker after at most one hash of each other client. Every hash counts,
// a successful login's too: otherwise a flood of right passwords would be
// a free way around it.
type hashPool struct {
	slots chan struct{}
	wait  time.Duration
	obs   Observer
	// refused, when set, is told of each hash refused for its client's
	// share (for the audit log).
	refused func(ctx context.Context, client string)
	// collect makes each hash end with a garbage collection (see do); set
	// for argon2id costs of collectMinKiB and up.
	collect bool

	mu sync.Mutex
	// inFlight counts each client's hashes waiting or running. An entry
	// lives only while it is not zero, so the map is never larger than the
	// hashes in flight: at most the workers plus one waiter per client
	// that has a request open.
	inFlight map[string]int
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
	return &hashPool{slots: make(chan struct{}, workers), wait: wait, obs: obs, inFlight: map[string]int{}}
}

// share is how many hashes one client may have waiting or running: half
// the workers, rounded up, so that a lone client on an idle pool still
// leaves workers to the others.
func (p *hashPool) share() int { return (p.workers() + 1) / 2 }

// DefaultHashWorkers is one worker per core but one, and at least one.
// The core left over keeps token checks fast while logins flood: measured
// on 2 cores (BENCHMARKS.md), a login flood with a worker on each core
// raised the p99 of { me } from about 1 ms to 40 ms, because Go's scheduler
// gives a waiting request a core only when a hash's 10 ms time slice ends;
// with one worker it stayed at 1.6 ms, for 57% of the login throughput.
func DefaultHashWorkers() int { return max(1, runtime.GOMAXPROCS(0)-1) }

// errHashBusy is returned when no worker frees up in time.
var errHashBusy = models.RateLimitedf(time.Second, "the server is busy; try again shortly")

// errHashShare is returned when the client has its share of the pool in
// flight already.
var errHashShare = models.RateLimitedf(time.Second, "too many attempts at once from your address; try again shortly")

// do runs f on a worker, or returns a RateLimited error when the client of
// ctx has its share of the pool in flight already, or when no worker frees
// up within the pool's wait (or ctx ends first). Every wait is observed,
// the zero ones and the refused ones too: the histogram is then the share
// of logins that queued, and its top bucket the ones turned away.
func (p *hashPool) do(ctx context.Context, f func()) error {
	client := ClientFrom(ctx).limitKey()
	p.mu.Lock()
	n := p.inFlight[client]
	if n >= p.share() {
		p.mu.Unlock()
		p.refuse(ctx, client)
		return errHashShare
	}
	p.inFlight[client] = n + 1
	p.mu.Unlock()
	// Deferred first, so it runs last: after the worker and the client's
	// share are given back, so that nobody waits for the collection.
	ran := false
	defer func() {
		if ran && p.collect {
			// The hash's buffer (19 MiB at the default cost) is garbage
			// now. Collected at once, it is free for the next hash, so
			// the heap holds only the buffers in flight. Left to GOGC, a
			// collection that ran during a hash counted its buffer as
			// live, the heap grew to twice that, and after a burst of
			// sign-ins it held three or four freed buffers that the
			// runtime returns only gradually (82 MiB resident under `me`
			// after the benchmark's 48 registrations, 45 MiB with this;
			// BENCHMARKS.md). With a live heap of a few MiB a collection
			// costs about a millisecond, next to the hash's tens. Not
			// debug.FreeOSMemory: the buffer stays with the runtime, for
			// the next hash to reuse, and goes back to the system at the
			// runtime's own pace when sign-ins stop.
			runtime.GC()
		}
	}()
	defer p.done(client)
	select {
	case p.slots <- struct{}{}:
		p.obs.HashWait(0)
	default:
		if n > 0 {
			// The pool is busy and this client has a hash in flight: it
			// waits for that one, not in the line ahead of others.
			p.refuse(ctx, client)
			return errHashShare
		}
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
	ran = true
	return nil
}

// refuse reports a hash refused for client's share. It observes no wait:
// the hash never queued (the refusal is counted with the audit's
// RATE_LIMITED events).
func (p *hashPool) refuse(ctx context.Context, client string) {
	if p.refused != nil {
		p.refused(ctx, client)
	}
}

// done ends one of client's hashes.
func (p *hashPool) done(client string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inFlight[client]--; p.inFlight[client] <= 0 {
		delete(p.inFlight, client)
	}
}

// workers is the pool's size.
func (p *hashPool) workers() int { return cap(p.slots) }
