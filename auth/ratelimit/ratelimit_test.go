package ratelimit

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Rate
		ok   bool
	}{
		{"10/15m", Rate{10, 15 * time.Minute}, true},
		{" 600 / 1m ", Rate{600, time.Minute}, true},
		{"off", Rate{}, true},
		{"0", Rate{}, true},
		{"10", Rate{}, false},
		{"-1/1m", Rate{}, false},
		{"10/0s", Rate{}, false},
		{"10/1ms", Rate{}, false},
		{"ten/1m", Rate{}, false},
		{"10/200h", Rate{}, false},
	} {
		got, err := ParseRate(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if s := (Rate{10, 15 * time.Minute}).String(); s != "10/15m0s" {
		t.Errorf("String = %q", s)
	}
}

// eachLimiter runs f on the memory limiter and on the database limiter over
// SQLite and (with TEST_DATABASE_URL) PostgreSQL: the two must agree.
func eachLimiter(t *testing.T, f func(t *testing.T, l *Limiter)) {
	t.Run("memory", func(t *testing.T) { f(t, newMemory()) })
	testdb.Each(t, func(t *testing.T, dsn string) {
		f(t, newShared(testdb.Open(t, dsn)))
	})
}

func TestLimiterCellRate(t *testing.T) {
	eachLimiter(t, func(t *testing.T, l *Limiter) {
		ctx := context.Background()
		r := Rate{N: 3, Per: time.Minute} // a burst of 3, then one per 20 s
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		take := func(key string) time.Duration {
			t.Helper()
			wait, err := l.Take(ctx, key, r, now)
			if err != nil {
				t.Fatal(err)
			}
			return wait
		}
		for i := range 3 {
			if wait := take("k"); wait != 0 {
				t.Fatalf("take %d: wait %s, want allowed", i+1, wait)
			}
		}
		if wait := take("k"); wait != 20*time.Second {
			t.Errorf("4th take: wait %s, want 20s", wait)
		}
		if wait := take("other"); wait != 0 {
			t.Errorf("another key: wait %s, want allowed", wait)
		}
		// Refused takes spend nothing: the wait does not grow.
		if wait := take("k"); wait != 20*time.Second {
			t.Errorf("5th take: wait %s, want still 20s", wait)
		}
		now = now.Add(15 * time.Second)
		if wait := take("k"); wait != 5*time.Second {
			t.Errorf("15 s later: wait %s, want 5s", wait)
		}
		now = now.Add(5 * time.Second)
		if wait := take("k"); wait != 0 {
			t.Errorf("20 s later: wait %s, want allowed", wait)
		}
		if wait := take("k"); wait == 0 {
			t.Error("right after: allowed, want refused (no window edge lets a second burst through)")
		}
		// Give returns an operation.
		if err := l.Give(ctx, "k", r, now); err != nil {
			t.Fatal(err)
		}
		if wait := take("k"); wait != 0 {
			t.Errorf("after Give: wait %s, want allowed", wait)
		}
		// A long pause refills the whole burst, and no more.
		now = now.Add(time.Hour)
		for i := range 3 {
			if wait := take("k"); wait != 0 {
				t.Fatalf("after an hour, take %d: wait %s", i+1, wait)
			}
		}
		if wait := take("k"); wait == 0 {
			t.Error("4th take after an hour allowed: the burst must not exceed N")
		}
	})
}

func TestLimiterConcurrentTakes(t *testing.T) {
	eachLimiter(t, func(t *testing.T, l *Limiter) {
		// 40 concurrent takes against a burst of 10: exactly 10 get
		// through, however they interleave.
		r := Rate{N: 10, Per: time.Hour}
		now := time.Now()
		var mu sync.Mutex
		allowed := 0
		var wg sync.WaitGroup
		for range 40 {
			wg.Go(func() {
				wait, err := l.Take(context.Background(), "shared", r, now)
				if err != nil {
					t.Error(err)
					return
				}
				if wait == 0 {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if allowed != 10 {
			t.Errorf("%d takes allowed, want 10", allowed)
		}
	})
}

func TestMemoryLimiterSweep(t *testing.T) {
	l := newMemory()
	now := time.Now()
	r := Rate{N: 2, Per: time.Minute}
	l.Take(context.Background(), "a", r, now)
	l.Take(context.Background(), "b", r, now.Add(50*time.Second))
	l.Sweep(now.Add(45 * time.Second)) // a ran down at +30 s, b runs until +80 s
	if _, ok := l.tat["a"]; ok {
		t.Error("a not swept")
	}
	if _, ok := l.tat["b"]; !ok {
		t.Error("b swept while still counting")
	}
}

// TestNewSharesCountersOfPostgres: replicas share a PostgreSQL database, so
// the counters live there; an SQLite file has one process, which counts in
// memory.
func TestNewSharesCountersOfPostgres(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		l := New(testdb.Open(t, dsn))
		if shared, want := l.db != nil, strings.HasPrefix(dsn, "postgres"); shared != want {
			t.Errorf("counters in the database: %v, want %v", shared, want)
		}
	})
}
