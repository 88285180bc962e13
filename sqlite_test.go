package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
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
	testdb.Long(t, "a few thousand refreshes for seconds")
	path := filepath.Join(t.TempDir(), "wal.db")
	var log syncBuffer
	// AUTH_DB_TIMEOUT raised: this test measures the log's size, not
	// latency, and under the race detector pure-Go SQLite copies pages back
	// about ten times slower, so a refresh queued behind a checkpoint's
	// write lock can wait past the default 5 s (seen once in CI).
	url, stop := startRunLogging(t, map[string]string{"DATABASE_URL": path, "AUTH_REFRESH_LIMIT": "off", "AUTH_DB_TIMEOUT": "1m"}, &log)
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(log.String(), "\n") {
				if strings.Contains(l, "ERROR") || strings.Contains(l, "WARN") || strings.Contains(l, "error") {
					t.Log(l)
				}
			}
		}
	})
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
	url, stop := startRun(b, map[string]string{"DATABASE_URL": path, "AUTH_REFRESH_LIMIT": "off", "AUTH_DB_TIMEOUT": "1m"})
	s := sampleWAL(path)
	b.ResetTimer()
	refreshLoad(b, url, 8, max(b.N/8, 1))
	b.StopTimer()
	b.ReportMetric(float64(s.Stop()), "wal-peak-bytes")
	if err := stop(); err != nil {
		b.Fatal(err)
	}
}

// TestSQLiteFilesPrivate: the database, its -wal and its -shm are created
// readable by their owner only, whatever the umask lets through; a file
// that others can read, left by an older version or a copy, is warned
// about at start.
func TestSQLiteFilesPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "private.db")
	url, stop := startRun(t, map[string]string{"DATABASE_URL": path})
	gql(t, url, "", `mutation { register(email: "a@example.com", password: "password1") { accessToken } }`).OK(t)
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %v, want -rw-------", filepath.Base(p), mode)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	loose := filepath.Join(dir, "loose.db")
	if err := os.WriteFile(loose, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(loose, 0o644) // whatever the umask
	var log syncBuffer
	_, stop = startRunLogging(t, map[string]string{"DATABASE_URL": loose}, &log)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "readable by others") || !strings.Contains(log.String(), loose) {
		t.Errorf("no warning for a database file others can read; log:\n%s", log.String())
	}
	if strings.Contains(log.String(), path) {
		t.Error("a warning for the private database")
	}
}

// TestDatabaseInMissingDirectory: a DATABASE_URL whose directory does not
// exist stops serve and migrate with a message naming the variable and the
// directory, not SQLite's "out of memory (14)".
func TestDatabaseInMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "no", "such", "dir")
	for _, dsn := range []string{filepath.Join(dir, "authql.db"), "sqlite://" + filepath.Join(dir, "authql.db")} {
		env := map[string]string{"DATABASE_URL": dsn, "PORT": "0"}
		for _, args := range [][]string{nil, {"migrate"}, {"user", "roles", "--email", "a@example.com", "--set", "user"}} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := run(ctx, args, func(k string) string { return env[k] }, nil, io.Discard, io.Discard)
			cancel()
			if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") || !strings.Contains(err.Error(), dir) || strings.Contains(err.Error(), "out of memory") {
				t.Errorf("authql %v with DATABASE_URL=%s: %v, want a message naming DATABASE_URL and %s", args, dsn, err, dir)
			}
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("the missing directory was created")
		}
	}
}
