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
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

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
	db := testdb.Open(t, testdb.SQLite(t))
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
			s, err := NewService(context.Background(), testdb.Open(t, dsn), []byte(strings.Repeat("k", 32)), Config{
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
