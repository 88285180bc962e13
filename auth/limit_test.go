package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
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
func eachLimiter(t *testing.T, f func(t *testing.T, l Limiter)) {
	t.Run("memory", func(t *testing.T) { f(t, newMemoryLimiter()) })
	testdb.Each(t, func(t *testing.T, dsn string) {
		f(t, dbLimiter{db: openDB(t, dsn)})
	})
}

func TestLimiterCellRate(t *testing.T) {
	eachLimiter(t, func(t *testing.T, l Limiter) {
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
	eachLimiter(t, func(t *testing.T, l Limiter) {
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
	l := newMemoryLimiter()
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

func TestClientIP(t *testing.T) {
	proxies, err := ParseTrustedProxies("10.0.0.0/8, 192.168.1.7 ,::1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"PeerWithoutProxies", "203.0.113.5:4711", nil, nil, "203.0.113.5"},
		{"HeaderIgnoredWithoutProxies", "203.0.113.5:4711", []string{"1.2.3.4"}, nil, "203.0.113.5"},
		{"HeaderIgnoredFromUntrustedPeer", "203.0.113.5:4711", []string{"1.2.3.4"}, proxies, "203.0.113.5"},
		{"ClientBehindProxy", "10.1.2.3:80", []string{"198.51.100.9"}, proxies, "198.51.100.9"},
		{"ForgedLeftPartIgnored", "10.1.2.3:80", []string{"6.6.6.6, 198.51.100.9"}, proxies, "198.51.100.9"},
		{"ProxyChain", "10.1.2.3:80", []string{"198.51.100.9, 192.168.1.7", "10.9.9.9"}, proxies, "198.51.100.9"},
		{"AllTrusted", "10.1.2.3:80", []string{"10.0.0.1"}, proxies, "10.0.0.1"},
		{"GarbageHop", "10.1.2.3:80", []string{"198.51.100.9, not-an-ip"}, proxies, "10.1.2.3"},
		{"IPv6Peer", "[::1]:80", []string{"2001:db8::7"}, proxies, "2001:db8::7"},
		{"MappedIPv4", "[::ffff:203.0.113.5]:80", nil, nil, "203.0.113.5"},
		{"NoHeaderFromProxy", "10.1.2.3:80", nil, proxies, "10.1.2.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPost, "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientIP(r, tc.trusted); got != tc.want {
				t.Errorf("clientIP = %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := ParseTrustedProxies("10.0.0.0/8,example.com"); err == nil {
		t.Error("a host name accepted as a trusted proxy")
	}
}

func TestClientLimitKey(t *testing.T) {
	for ip, want := range map[string]string{
		"203.0.113.5":          "203.0.113.5",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2::ffff":   "2001:db8:1:2::/64",
	} {
		if got := (Client{IP: ip}).limitKey(); got != want {
			t.Errorf("limitKey(%s) = %s, want %s", ip, got, want)
		}
	}
}

// newPoolService is a Service on SQLite with one hashing worker.
func newPoolService(t *testing.T) *Service {
	t.Helper()
	db := openDB(t, testdb.SQLite(t))
	s, err := NewService(context.Background(), db, []byte(strings.Repeat("k", 32)), Config{
		Issuer: "authql", Audience: "authql", AccessTTL: time.Minute, RefreshTTL: time.Hour,
		Signup: true, Argon2: Argon2Params{Memory: 64, Time: 1, Threads: 1},
		HashWorkers: 1, HashWait: 20 * time.Millisecond,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// occupyPool takes every hashing worker until the test ends.
func occupyPool(t *testing.T, s *Service) {
	release := make(chan struct{})
	started := make(chan struct{})
	go s.pool.do(context.Background(), func() { close(started); <-release })
	<-started
	t.Cleanup(func() { close(release) })
}

func TestHashPoolFailsFast(t *testing.T) {
	s := newPoolService(t)
	ctx := context.Background()
	if _, err := s.Register(ctx, "known@example.com", "password1"); err != nil {
		t.Fatal(err)
	}
	occupyPool(t, s)

	t.Run("LoginKnownEmail", func(t *testing.T) {
		_, err := s.Login(ctx, "known@example.com", "password1")
		checkCode(t, err, models.RateLimited)
	})
	t.Run("LoginUnknownEmail", func(t *testing.T) {
		// The dummy verification queues like a real one, so a full pool
		// does not tell known emails from unknown ones either.
		_, err := s.Login(ctx, "unknown@example.com", "password1")
		checkCode(t, err, models.RateLimited)
	})
	t.Run("Register", func(t *testing.T) {
		_, err := s.Register(ctx, "new@example.com", "password1")
		checkCode(t, err, models.RateLimited)
	})
	t.Run("LongPasswordRefusedBeforeHashing", func(t *testing.T) {
		// With every worker taken, anything that reached the hasher
		// would be RateLimited: BadUserInput proves it never got there.
		long := strings.Repeat("x", MaxPasswordBytes+1)
		_, err := s.Login(ctx, "known@example.com", long)
		checkCode(t, err, models.BadUserInput)
		_, err = s.Register(ctx, "long@example.com", long)
		checkCode(t, err, models.BadUserInput)
	})
}

func TestHashPoolBound(t *testing.T) {
	cores := runtime.GOMAXPROCS(0)
	for _, tc := range []struct{ asked, want int }{{0, max(1, cores-1)}, {1, 1}, {cores + 10, cores}} {
		if got := newHashPool(tc.asked, 0, nil).workers(); got != tc.want {
			t.Errorf("newHashPool(%d) has %d workers, want %d", tc.asked, got, tc.want)
		}
	}
}

// TestLimitKeysAreKeyed: a counter's name is an HMAC under a secret kept in
// the database, not a hash anyone can recompute from an email and an
// address: replicas of one database name a counter alike, another database
// names it otherwise, and neither is the unkeyed hash. The kind stays
// readable in front.
func TestLimitKeysAreKeyed(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		open := func(dsn string) *Service {
			t.Helper()
			s, err := NewService(context.Background(), openDB(t, dsn), []byte(strings.Repeat("k", 32)), Config{
				Issuer: "authql", Audience: "authql", AccessTTL: time.Minute, RefreshTTL: time.Hour,
				Argon2: Argon2Params{Memory: 64, Time: 1, Threads: 1},
			}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close(context.Background()) })
			return s
		}
		a, b, other := open(dsn), open(dsn), open(testdb.SQLite(t))
		parts := []string{"victim@example.com", "192.0.2.1"}
		key := a.limitKey("login-account", parts...)
		if !strings.HasPrefix(key, "login-account:") {
			t.Errorf("key %q lost its readable kind", key)
		}
		if got := b.limitKey("login-account", parts...); got != key {
			t.Errorf("two services on one database name a counter %q and %q: replicas would not share limits", key, got)
		}
		if got := other.limitKey("login-account", parts...); got == key {
			t.Errorf("another database names the counter alike (%q): the name is not keyed", got)
		}
		h := sha256.New()
		for _, p := range parts {
			h.Write([]byte(p))
			h.Write([]byte{0})
		}
		if unkeyed := "login-account:" + hex.EncodeToString(h.Sum(nil)[:16]); key == unkeyed {
			t.Errorf("the counter's name is the unkeyed hash of what was typed")
		}
		v, err := models.SettingValue(context.Background(), a.db, rateLimitSetting, func() (string, error) { return "", errors.New("not stored") })
		if err != nil || v == "" {
			t.Errorf("rate-limit key not stored in the database: %v", err)
		}
	})
}
