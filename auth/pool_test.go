package auth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// withClient is ctx as a request of the client at ip.
func withClient(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, clientKey, Client{IP: ip})
}

// TestHashPoolShare: a client with its share of the pool in flight is
// refused at once, without queueing, while another client waits for the
// next worker as before; and the pool forgets a client once its hashes
// are done.
func TestHashPoolShare(t *testing.T) {
	obs := &waits{}
	p := newHashPool(2, time.Minute, obs) // a long wait: nothing here may time out
	if p.workers() < 2 {
		t.Skip("needs 2 cores")
	}
	if p.share() != 1 {
		t.Fatalf("share of 2 workers = %d, want 1", p.share())
	}
	a, b := withClient(context.Background(), "192.0.2.1"), withClient(context.Background(), "192.0.2.2")
	refused := map[string]int{}
	p.refused = func(_ context.Context, client string) { refused[client]++ }

	release, started := make(chan struct{}), make(chan struct{}, 2)
	done := make(chan error, 3)
	go func() { done <- p.do(a, func() { started <- struct{}{}; <-release }) }()
	<-started
	// A's second hash, while a worker is free: refused, its share is one.
	if err := p.do(a, func() { t.Error("a second hash of A ran") }); !errors.Is(err, errHashShare) {
		t.Fatalf("A's second hash: %v, want errHashShare", err)
	}
	// B takes the other worker; a third client would now wait.
	go func() { done <- p.do(b, func() { started <- struct{}{}; <-release }) }()
	<-started
	for i := range 10 {
		if err := p.do(a, func() { t.Error("A's hash ran past its share") }); !errors.Is(err, errHashShare) {
			t.Fatalf("A's hash %d on a busy pool: %v, want errHashShare", i, err)
		}
	}
	if refused["192.0.2.1"] != 11 || len(refused) != 1 {
		t.Errorf("refusals reported %v, want 11 of A's", refused)
	}
	c := withClient(context.Background(), "2001:db8::1")
	ran := make(chan struct{})
	go func() { done <- p.do(c, func() { close(ran) }) }()
	close(release)
	<-ran
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.inFlight) != 0 {
		t.Errorf("inFlight after every hash ended: %v, want empty", p.inFlight)
	}
}

// TestHashPoolShareBoundsState: many clients' hashes leave no state behind.
func TestHashPoolShareBoundsState(t *testing.T) {
	p := newHashPool(1, time.Second, nil)
	for i := range 1000 {
		ctx := withClient(context.Background(), fmt.Sprintf("10.0.%d.%d", i/256, i%256))
		if err := p.do(ctx, func() {}); err != nil {
			t.Fatal(err)
		}
	}
	if len(p.inFlight) != 0 {
		t.Errorf("inFlight holds %d clients after their hashes ended, want 0", len(p.inFlight))
	}
}

// TestHashPoolCollectsAfterEachHash checks that a pool for costly hashes
// runs a collection after each one, so that the next hash reuses the
// buffer instead of the heap growing to hold several.
func TestHashPoolCollectsAfterEachHash(t *testing.T) {
	p := newHashPool(1, time.Second, nil)
	p.collect = true
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := p.do(context.Background(), func() {}); err != nil {
		t.Fatal(err)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if after.NumGC == before.NumGC {
		t.Errorf("no garbage collection after the hash (NumGC %d)", after.NumGC)
	}
}
