package main

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"

	"github.com/authql/authql/auth"
)

// memoryHeadroom is what boundMemory's limit leaves above the password
// hashes' buffers at the least: the runtime's own memory (stacks, span
// metadata, the minimum 4 MiB heap goal) and the live heap of an idle
// server (together about 12 MiB resident under `me`, of which 3 MiB of
// live heap), with a little room.
const memoryHeadroom = 16 << 20

// lazyGCPercent is the GOGC boundMemory sets under its limit.
const lazyGCPercent = 400

// memoryLimitEvery is how often boundMemory follows the live heap.
const memoryLimitEvery = 500 * time.Millisecond

// boundMemory sets a soft memory limit until ctx ends, unless one was set
// already (GOMEMLIMIT), and keeps it above the live heap.
//
// Why: with GOGC alone the heap may grow to twice the live heap measured at
// the last collection, and a collection that runs during a password hash
// counts the hash's buffer (19 MiB at the default argon2id cost) as live.
// After a burst of sign-ins the heap therefore held three or four freed
// buffers, returned to the system only gradually: 82 MiB resident for
// about 5 MiB of live heap (BENCHMARKS.md). The limit caps that transient
// growth at what the hashing pool can have in flight (hashMemory) plus
// memoryHeadroom, so that the collector reuses a freed buffer rather than
// asking the system for another, and returns the rest promptly.
//
// A fixed limit below the live heap (a full user cache, many revocations)
// would make the collector run continuously, which is why authql did not
// set one before. This one follows the live heap: it is never below twice
// the live heap outside the hashes' buffers plus the buffers themselves,
// which is what GOGC would allow anyway, so it only ever binds on the
// growth that hashes cause. It is updated every memoryLimitEvery: a heap
// that outgrows it in between (revocations loaded at start) makes the
// collector work harder until the next update, which the runtime caps at
// half the CPU.
func boundMemory(ctx context.Context, hashMemory int64) {
	if debug.SetMemoryLimit(-1) != math.MaxInt64 {
		return // GOMEMLIMIT: the operator's limit stands
	}
	defer debug.SetMemoryLimit(math.MaxInt64)
	// With the limit in place, GOGC's doubling of a live heap of a few
	// MiB (a collection every 50 ms under `me`, about a tenth of its CPU)
	// is no longer what keeps memory in check: the limit is. So the
	// collector may wait longer while the heap is small; a large heap is
	// still collected at twice its live size, where the limit lies. An
	// operator's GOGC (anything but the default) stands.
	if old := debug.SetGCPercent(lazyGCPercent); old != 100 {
		debug.SetGCPercent(old)
	} else {
		defer debug.SetGCPercent(old)
	}
	live := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(memoryLimitEvery)
	defer t.Stop()
	for {
		rtmetrics.Read(live)
		var heap int64
		if live[0].Value.Kind() == rtmetrics.KindUint64 {
			heap = int64(live[0].Value.Uint64())
		}
		debug.SetMemoryLimit(memoryLimit(heap, hashMemory))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// memoryLimit is boundMemory's limit for a live heap of live bytes, of
// which up to hashMemory may be password hashes' buffers: at least
// hashMemory + memoryHeadroom, and never below 2 × (live − hashMemory) +
// hashMemory, which exceeds live whenever live exceeds hashMemory.
func memoryLimit(live, hashMemory int64) int64 {
	return max(hashMemory+memoryHeadroom, 2*(live-hashMemory)+hashMemory)
}

// hashMemory is the memory the hashing pool's workers (0: the default
// number) can have in flight at once at argon2id's memory cost of
// memoryKiB.
func hashMemory(workers int, memoryKiB uint32) int64 {
	if workers <= 0 {
		workers = auth.DefaultHashWorkers()
	}
	workers = min(workers, runtime.GOMAXPROCS(0))
	return int64(workers) * int64(memoryKiB) << 10
}
