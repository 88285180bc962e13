package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/authql/authql/auth"
)

func TestWorkerAddr(t *testing.T) {
	n := 1<<(32-workerNet.Bits()) - 2
	t.Run("DistinctInBenchmarkRange", func(t *testing.T) {
		seen := make(map[string]bool, n)
		for i := range n {
			s := workerAddr(i)
			a, err := netip.ParseAddr(s)
			if err != nil || !workerNet.Contains(a) {
				t.Fatalf("workerAddr(%d) = %q, not in %s", i, s, workerNet)
			}
			if seen[s] {
				t.Fatalf("workerAddr(%d) = %s, given to an earlier worker", i, s)
			}
			seen[s] = true
		}
		if seen["198.18.0.0"] || seen["198.19.255.255"] {
			t.Error("the network's first or last address was given out")
		}
	})
	t.Run("First", func(t *testing.T) {
		if got := workerAddr(0); got != "198.18.0.1" {
			t.Errorf("workerAddr(0) = %s, want 198.18.0.1", got)
		}
	})
	t.Run("WrapsPastTheRange", func(t *testing.T) {
		if workerAddr(n) != workerAddr(0) {
			t.Errorf("workerAddr(%d) = %s, want workerAddr(0) = %s", n, workerAddr(n), workerAddr(0))
		}
	})
}

// The started server must take loopback as a proxy and the workers'
// addresses as its clients.
func TestTrustedLoopbackNotWorkers(t *testing.T) {
	trusted, err := auth.ParseTrustedProxies(trustedLoopback)
	if err != nil {
		t.Fatal(err)
	}
	isTrusted := func(s string) bool {
		a := netip.MustParseAddr(s)
		return slices.ContainsFunc(trusted, func(p netip.Prefix) bool { return p.Contains(a) })
	}
	for _, a := range []string{"127.0.0.1", "::1"} {
		if !isTrusted(a) {
			t.Errorf("%s is not trusted by AUTH_TRUSTED_PROXIES=%s", a, trustedLoopback)
		}
	}
	for _, i := range []int{0, 1, 1000} {
		if a := workerAddr(i); isTrusted(a) {
			t.Errorf("worker address %s is trusted as a proxy", a)
		}
	}
}

// Every worker of a scenario sends an X-Forwarded-For of its own, the same
// for its user in every scenario; the client the users register with sends
// none.
func TestWorkersSendTheirOwnAddress(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Values("X-Forwarded-For")
		mu.Unlock()
		w.Write([]byte(`{"data":{"me":{"id":"1","email":"a@example.com"}}}`))
	}))
	defer srv.Close()
	sent := func(c *client) []string {
		t.Helper()
		var buf bytes.Buffer
		if _, err := c.post(meBody, "token", &buf); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return got
	}

	spec := scenarioSpec{Conns: 3, SlowConns: 2, Flooders: 2}
	users := make([]*user, spec.usersNeeded())
	for i := range users {
		users[i] = &user{}
	}
	c := newClient(srv.URL, 8)
	if h := sent(c); len(h) != 0 {
		t.Errorf("the shared client sent X-Forwarded-For %q", h)
	}
	for _, s := range scenarios(spec) {
		t.Run(s.Name, func(t *testing.T) {
			seen := map[string]bool{}
			for _, g := range s.groups(c, users) {
				for _, w := range g.workers {
					want := workerAddr(slices.Index(users, w.u))
					if h := sent(w.c); !slices.Equal(h, []string{want}) {
						t.Errorf("worker of user %d sent X-Forwarded-For %q, want %q", slices.Index(users, w.u), h, want)
					}
					if seen[want] {
						t.Errorf("two workers send %s", want)
					}
					seen[want] = true
				}
			}
		})
	}
}
