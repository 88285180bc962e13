package periodic

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls, failures := 0, 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, time.Millisecond, func(context.Context) error {
			calls++
			if calls == 3 {
				cancel()
				// Failing once ctx is done is not reported: the chore
				// was stopped, not broken.
				return errors.New("stopped")
			}
			return errors.New("failed")
		}, func(error) { failures++ })
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return once ctx was done")
	}
	if calls != 3 || failures != 2 {
		t.Errorf("calls %d, failures reported %d; want 3 and 2", calls, failures)
	}
}
