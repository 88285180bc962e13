package main

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authql/authql/models"
)

// walSampler records the largest size an SQLite write-ahead log reaches,
// looking every few milliseconds until stopped.
type walSampler struct {
	peak atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func sampleWAL(path string) *walSampler {
	s := &walSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > s.peak.Load() {
				s.peak.Store(fi.Size())
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop stops sampling and returns the peak size in bytes.
func (s *walSampler) Stop() int64 {
	close(s.stop)
	<-s.done
	return s.peak.Load()
}

// refreshLoad runs n chained refreshes on each of workers sessions at once,
// as clients refreshing in parallel do, against the server at url.
func refreshLoad(tb testing.TB, url string, workers, n int) {
	tb.Helper()
	var wg sync.WaitGroup
	for w := range workers {
		r := postGraphQL(tb, url, nil, `mutation($e: String!, $p: String!) { register(email: $e, password: $p) { refreshToken } }`,
			map[string]any{"e": "wal" + string(rune('a'+w)) + "@example.com", "p": "password1"}).OK(tb)
		token := r.Str("register", "refreshToken")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				r := postGraphQL(tb, url, nil, `mutation($t: String!) { refresh(refreshToken: $t) { accessToken refreshToken } }`, map[string]any{"t": token})
				if len(r.Errors) > 0 {
					tb.Errorf("refresh: %v", r.Errors)
					return
				}
				token = r.Str("refresh", "refreshToken")
			}
		}()
	}
	wg.Wait()
}

// TestWALStaysBounded: under refreshes from several clients at once, the
// server's SQLite write-ahead log stays within a few times its size limit
// instead of growing for as long as the load lasts (SQLite's passive
// automatic checkpoints cannot start the log over while readers overlap).
func TestWALStaysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("a few thousand refreshes")
	}
	path := filepath.Join(t.TempDir(), "wal.db")
	url, stop := startRun(t, map[string]string{"DATABASE_URL": path, "AUTH_REFRESH_LIMIT": "off"})
	s := sampleWAL(path)
	refreshLoad(t, url, 8, 600)
	peak := s.Stop()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("peak WAL %d bytes", peak)
	if limit := int64(3 * models.WALSizeLimit); peak > limit {
		t.Errorf("the WAL reached %d bytes under refresh load, want at most %d", peak, limit)
	}
}

// BenchmarkRefreshWAL runs refreshes from 8 clients at once through the
// whole server (run) on SQLite and reports the largest size its
// write-ahead log reached, as wal-peak-bytes.
func BenchmarkRefreshWAL(b *testing.B) {
	path := filepath.Join(b.TempDir(), "wal.db")
	url, stop := startRun(b, map[string]string{"DATABASE_URL": path, "AUTH_REFRESH_LIMIT": "off"})
	s := sampleWAL(path)
	b.ResetTimer()
	refreshLoad(b, url, 8, max(b.N/8, 1))
	b.StopTimer()
	b.ReportMetric(float64(s.Stop()), "wal-peak-bytes")
	if err := stop(); err != nil {
		b.Fatal(err)
	}
}
