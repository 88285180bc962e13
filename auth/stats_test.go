package auth

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/models"
)

// waits records the hash waits an Observer is told of.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) AuthEvent(string, string) {}
func (w *waits) HashWait(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.d = append(w.d, d)
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

func TestHashPoolObservesWaits(t *testing.T) {
	obs := &waits{}
	p := newHashPool(1, 5*time.Millisecond, obs)
	ctx := context.Background()

	if err := p.do(ctx, func() {}); err != nil {
		t.Fatal(err)
	}
	if got := obs.all(); len(got) != 1 || got[0] != 0 {
		t.Fatalf("free worker: observed %v, want one wait of 0", got)
	}

	release, started := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() { done <- p.do(ctx, func() { close(started); <-release }) }()
	<-started
	// The others wait as another client: this one has its share in
	// flight (see TestHashPoolShare).
	ctx = withClient(ctx, "192.0.2.2")
	t.Run("TimedOut", func(t *testing.T) {
		if err := p.do(ctx, func() { t.Error("ran without a worker") }); models.ErrorCode(err) != models.RateLimited {
			t.Fatalf("busy pool: err = %v, want RATE_LIMITED", err)
		}
		got := obs.all()
		// The refusal is observed too, after a wait of at least the
		// pool's: a timer never fires early.
		if len(got) != 3 || got[2] < 5*time.Millisecond {
			t.Fatalf("observed %v, want a third wait of at least 5ms", got)
		}
	})
	t.Run("Cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := p.do(cctx, func() { t.Error("ran without a worker") }); models.ErrorCode(err) != models.RateLimited {
			t.Fatalf("cancelled: err = %v, want RATE_LIMITED", err)
		}
		if got := obs.all(); len(got) != 4 {
			t.Fatalf("observed %v, want a fourth wait", got)
		}
	})
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestStats(t *testing.T) {
	s := newPoolService(t)
	ctx := context.Background()
	g, err := s.Register(ctx, "user@example.com", "password1")
	if err != nil {
		t.Fatal(err)
	}
	before := s.RevokedCount()
	p, err := s.Authenticate(ctx, g.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Logout(ctx, p, false); err != nil {
		t.Fatal(err)
	}
	if got := s.RevokedCount(); got <= before {
		t.Errorf("RevokedCount after a logout = %d, want more than %d", got, before)
	}

	if s.SyncRefusing() {
		t.Error("a fresh service refuses tokens")
	}
	s.sync.markStale(time.Now().Add(-time.Hour))
	if !s.SyncRefusing() {
		t.Error("out of sync for an hour (timeout 5s): SyncRefusing = false")
	}
	s.sync.markSynced()
	if s.SyncRefusing() {
		t.Error("resynced: SyncRefusing = true")
	}
}
