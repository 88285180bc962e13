package httpapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// eachBenchDB runs f on SQLite and, with TEST_DATABASE_URL, on PostgreSQL.
func eachBenchDB(b *testing.B, f func(b *testing.B, dsn string)) {
	b.Run("sqlite", func(b *testing.B) { f(b, testdb.SQLite(b)) })
	if os.Getenv("TEST_DATABASE_URL") != "" {
		b.Run("postgres", func(b *testing.B) { f(b, testdb.Postgres(b)) })
	}
}

// BenchmarkLogin compares a failed login for an existing email with one for
// an unknown email, at the default argon2id cost: the unknown email is
// verified against a dummy hash, so the two should take about as long.
func BenchmarkLogin(b *testing.B) {
	eachBenchDB(b, func(b *testing.B, dsn string) {
		ts := authtest.NewServer(b, dsn, nil, func(c *authtest.Config) { c.Auth.Argon2 = auth.DefaultArgon2 })
		ts.Register(b, "user@example.com", "password1")
		for _, bc := range []struct{ name, email, password string }{
			{"WrongPassword", "user@example.com", "wrong-password"},
			{"UnknownEmail", "nobody@example.com", "wrong-password"},
			{"Success", "user@example.com", "password1"},
		} {
			b.Run(bc.name, func(b *testing.B) {
				for b.Loop() {
					ts.Login(b, bc.email, bc.password)
				}
			})
		}
	})
}

// BenchmarkMe measures { me { id email } } over HTTP with 2×GOMAXPROCS
// concurrent clients.
func BenchmarkMe(b *testing.B) {
	eachBenchDB(b, func(b *testing.B, dsn string) {
		ts := authtest.NewServer(b, dsn, nil)
		u := ts.Register(b, "user@example.com", "password1")
		b.ReportAllocs()
		// The server's start and the sign-up are not what is measured.
		b.ResetTimer()
		b.SetParallelism(2)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ts.Do(b, u.Access, `{ me { id email } }`, nil).OK(b)
			}
		})
	})
}

// BenchmarkRefresh measures chained refreshes: each feeds the refresh token
// it got into the next.
func BenchmarkRefresh(b *testing.B) {
	eachBenchDB(b, func(b *testing.B, dsn string) {
		ts := authtest.NewServer(b, dsn, nil)
		token := ts.Register(b, "user@example.com", "password1").Refresh
		b.ReportAllocs()
		for b.Loop() {
			token = ts.Refresh(b, token).OK(b).Str("refresh", "refreshToken")
		}
	})
}

// BenchmarkMeDuringLoginFlood measures the latency of { me { id } } (one
// request at a time, reported as p50/p99) while 64 clients log in as fast
// as they can at the default argon2id cost, many times what the hashing
// pool can serve, and without the flood for comparison; with the default
// hashing workers (the cores but one) and with one worker per core. It also reports the
// logins served and refused per second. Rate limits are off, so that the
// hashing pool alone stands between the flood and the rest; each flooder
// is a client address of its own (through a trusted proxy), so that the
// per-client share of the pool does not turn the flood away before it
// reaches the pool.
func BenchmarkMeDuringLoginFlood(b *testing.B) {
	eachBenchDB(b, func(b *testing.B, dsn string) {
		for _, workers := range slices.Compact([]int{auth.DefaultHashWorkers(), runtime.GOMAXPROCS(0)}) {
			for _, flooders := range []int{0, 64} {
				b.Run(fmt.Sprintf("workers=%d/flooders=%d", workers, flooders), func(b *testing.B) {
					meDuringLoginFlood(b, dsn, workers, flooders)
				})
			}
		}
	})
}

func meDuringLoginFlood(b *testing.B, dsn string, workers, flooders int) {
	ts := authtest.NewServer(b, dsn, nil, loopbackProxy, func(c *authtest.Config) {
		c.Auth.Argon2, c.Auth.HashWorkers = auth.DefaultArgon2, workers
	})
	email := fmt.Sprintf("user-w%d-f%d@example.com", workers, flooders)
	u := ts.Register(b, email, "password1")
	stop := make(chan struct{})
	var ok, limited, other atomic.Int64
	var wg sync.WaitGroup
	for i := range flooders {
		wg.Go(func() {
			ip := fmt.Sprintf("203.0.113.%d", i+1)
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := loginAs(b, ts, ip, email, "password1")
				switch {
				case len(r.Errors) == 0:
					ok.Add(1)
				case r.Errors[0].Extensions["code"] == models.RateLimited:
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	if flooders > 0 {
		time.Sleep(2 * time.Second) // let the flood fill the pool and its queue
	}
	ok.Store(0)
	limited.Store(0)
	start := time.Now()
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		ts.Me(b, u.Access).OK(b)
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	if flooders > 0 {
		b.ReportMetric(float64(ok.Load())/elapsed.Seconds(), "logins/s")
		b.ReportMetric(float64(limited.Load())/elapsed.Seconds(), "refused/s")
	}
	if n := other.Load(); n > 0 {
		b.Errorf("%d logins failed with neither success nor RATE_LIMITED", n)
	}
}

// BenchmarkMeHandler is the server's own cost of { me { id email } }: the
// request goes straight into the handler (no network, no client), so a CPU
// profile of it shows only authql.
func BenchmarkMeHandler(b *testing.B) {
	ts := authtest.NewServer(b, testdb.SQLite(b), nil)
	u := ts.Register(b, "user@example.com", "password1")
	body := []byte(`{"query":"{ me { id email } }"}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+u.Access)
			w := httptest.NewRecorder()
			ts.Handler.ServeHTTP(w, req)
			if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"email"`)) {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}
