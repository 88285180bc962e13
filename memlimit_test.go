package main

import "testing"

func TestMemoryLimitStaysAboveTheLiveHeap(t *testing.T) {
	const mib = 1 << 20
	hashes := hashMemory(1, 19*1024) // one worker at the default cost
	if hashes != 19*mib {
		t.Fatalf("hashMemory(1, 19 MiB) = %d, want %d", hashes, 19*mib)
	}
	for _, c := range []struct {
		name       string
		live, want int64
	}{
		// Idle or under `me`: the hashes' room and the headroom.
		{"Idle", 3 * mib, hashes + memoryHeadroom},
		// During a hash the buffer is live: still the same bound, so that
		// the next hash reuses the freed buffer.
		{"DuringAHash", 3*mib + hashes, hashes + memoryHeadroom},
		// A large live heap (caches, revocations): twice what is not the
		// hashes, as GOGC would allow, plus the hashes.
		{"LargeHeap", 60 * mib, 2*(60*mib-hashes) + hashes},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := memoryLimit(c.live, hashes)
			if got != c.want {
				t.Errorf("memoryLimit(%d MiB) = %d MiB, want %d MiB", c.live/mib, got/mib, c.want/mib)
			}
			if got <= c.live {
				t.Errorf("memoryLimit(%d MiB) = %d MiB, not above the live heap", c.live/mib, got/mib)
			}
		})
	}
}
