package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// propagationWait bounds how long a test waits for a change made on one
// replica to show on another. It is not a latency assertion (see
// TestRevocationPropagationLatency for the figures): it only has to be
// shorter than the fallbacks that would make the test pass without the
// push, the 10-minute purge that re-reads revocations and the 30 s key
// reload.
const propagationWait = 10 * time.Second

// cluster is several replicas started through run() on one PostgreSQL
// database, with a connection of the test's own to its server.
type cluster struct {
	dsn, dbName string
	admin       *pgx.Conn
	env         map[string]string
	// listeners maps each replica's URL to the backend PID of its
	// listening connection.
	listeners map[string]int32
	// links maps each replica's URL to its own way to the database.
	links map[string]*dbLink
}

// dbLink is one replica's own TCP path to PostgreSQL, so that a test can
// cut that replica off alone: while cut, new connections are closed as
// soon as they open, and those already open go on working, as when a
// replica's network to the database fails for new connections. Cutting
// the whole database off instead (ALLOW_CONNECTIONS false) also refused
// the other replicas' dials, and failed a logout on A whenever A's pool
// happened to need a new connection (seen on a loaded machine).
type dbLink struct {
	ln  net.Listener
	cut atomic.Bool
}

// newDBLink forwards a local port to target (host:port) until the test ends.
func newDBLink(t *testing.T, target string) *dbLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &dbLink{ln: ln}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		conns.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if l.cut.Load() {
				c.Close()
				continue
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				l.forward(c, target)
			}()
		}
	}()
	return l
}

// forward copies c to a new connection to target and back until either
// side closes.
func (l *dbLink) forward(c net.Conn, target string) {
	defer c.Close()
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); up.Close(); done <- struct{}{} }()
	go func() { io.Copy(c, up); c.Close(); done <- struct{}{} }()
	<-done
	<-done
}

func newCluster(t *testing.T, env map[string]string) *cluster {
	t.Helper()
	dsn := testdb.Postgres(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// On the server's maintenance database: a database cannot refuse
	// connections while the session asking is on it.
	admin, err := pgx.Connect(ctx, os.Getenv("TEST_DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	base := map[string]string{
		"DATABASE_URL":        dsn,
		"AUTH_ADMIN_EMAIL":    "root@example.com",
		"AUTH_ADMIN_PASSWORD": "root-password",
	}
	maps.Copy(base, env)
	return &cluster{dsn: dsn, dbName: strings.TrimPrefix(u.Path, "/"), admin: admin, env: base,
		listeners: map[string]int32{}, links: map[string]*dbLink{}}
}

// start runs one more replica with the cluster's environment plus env and
// returns its URL. run() returns only once its listener is connected, so
// the one new listening backend is this replica's.
func (c *cluster) start(t *testing.T, env map[string]string) string {
	t.Helper()
	e := maps.Clone(c.env)
	maps.Copy(e, env)
	dsn, err := url.Parse(c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	target := dsn.Host
	if dsn.Port() == "" {
		target = net.JoinHostPort(dsn.Hostname(), "5432")
	}
	link := newDBLink(t, target)
	dsn.Host = link.ln.Addr().String()
	e["DATABASE_URL"] = dsn.String()
	before := c.listenerPIDs(t)
	u, _ := startRun(t, e)
	c.listeners[u] = c.newListener(t, before)
	c.links[u] = link
	return u
}

// listenerPIDs returns the backends of the listening connections on the
// cluster's database.
func (c *cluster) listenerPIDs(t *testing.T) []int32 {
	t.Helper()
	rows, err := c.admin.Query(context.Background(),
		"SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'authql-listener'", c.dbName)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// newListener waits for a listening backend not in known and returns it.
func (c *cluster) newListener(t *testing.T, known []int32) int32 {
	t.Helper()
	var pid int32
	waitFor(t, "a new listening connection", func() bool {
		for _, p := range c.listenerPIDs(t) {
			if !slices.Contains(known, p) {
				pid = p
				return true
			}
		}
		return false
	})
	return pid
}

// exec runs a statement on the test's own connection.
func (c *cluster) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := c.admin.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// cutOff kills the listening connection of the replica at u and keeps it
// from reconnecting: its new connections to the database fail (its pool
// keeps the ones it has, and the other replicas are not touched) until the
// returned function is called.
func (c *cluster) cutOff(t *testing.T, u string) (restore func()) {
	t.Helper()
	link := c.links[u]
	link.cut.Store(true)
	restore = func() { link.cut.Store(false) }
	t.Cleanup(restore)
	pid := c.listeners[u]
	c.exec(t, "SELECT pg_terminate_backend($1)", pid)
	waitFor(t, "the listening connection to end", func() bool { return !slices.Contains(c.listenerPIDs(t), pid) })
	return restore
}

// meError returns the code and message of `me` with token on the server at
// u, or "" and "" when it succeeds.
func meError(t *testing.T, u, token string) (code, message string) {
	t.Helper()
	r := gql(t, u, token, `{ me { id } }`)
	if len(r.Errors) == 0 {
		return "", ""
	}
	return r.Code(t), r.Errors[0].Message
}

// waitRevoked waits until the server at u refuses token as revoked.
func waitRevoked(t *testing.T, u, token string) {
	t.Helper()
	waitFor(t, "the token to be refused as revoked at "+u, func() bool {
		code, msg := meError(t, u, token)
		if code != "" && (code != models.Unauthenticated || msg != "access token revoked") {
			t.Fatalf("me: %s %q, want UNAUTHENTICATED \"access token revoked\"", code, msg)
		}
		return code != ""
	})
}

func loginAt(t *testing.T, u, email, password string) tokens {
	t.Helper()
	r := postGraphQL(t, u, nil, `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { `+payloadFields+` } }`,
		map[string]any{"e": email, "p": password}).OK(t)
	return tokensOf(r, "login")
}

func registerAt(t *testing.T, u, email, password string) tokens {
	t.Helper()
	r := postGraphQL(t, u, nil, `mutation($e: String!, $p: String!) { register(email: $e, password: $p) { `+payloadFields+` } }`,
		map[string]any{"e": email, "p": password}).OK(t)
	return tokensOf(r, "register")
}

func refreshAt(t *testing.T, u, refreshToken string) gqlResponse {
	t.Helper()
	return postGraphQL(t, u, nil, `mutation($t: String!) { refresh(refreshToken: $t) { `+payloadFields+` } }`,
		map[string]any{"t": refreshToken})
}

// TestReplicas runs three servers through run() on one PostgreSQL database
// and makes changes on one that the others must apply without restarting,
// polling or waiting for the purge cycle.
func TestReplicas(t *testing.T) {
	t.Run("LogoutOnAIsRefusedOnBAndC", func(t *testing.T) {
		c := newCluster(t, nil)
		a, b, cc := c.start(t, nil), c.start(t, nil), c.start(t, nil)
		u := registerAt(t, a, "ada@example.com", "password1")
		for _, srv := range []string{a, b, cc} {
			if code, msg := meError(t, srv, u.Access); code != "" {
				t.Fatalf("me before logout at %s: %s %s", srv, code, msg)
			}
		}
		gql(t, a, u.Access, `mutation { logout }`).OK(t)
		waitRevoked(t, b, u.Access)
		waitRevoked(t, cc, u.Access)
	})

	t.Run("LogoutOfAllSessionsOnAIsRefusedOnBAndC", func(t *testing.T) {
		// 150 sessions of one user: past the default session limit.
		c := newCluster(t, map[string]string{"AUTH_MAX_SESSIONS": "500"})
		a, b, cc := c.start(t, nil), c.start(t, nil), c.start(t, nil)
		registerAt(t, a, "ada@example.com", "password1")
		// Enough sessions that their revocations take several
		// notifications (PostgreSQL caps a payload under 8000 bytes).
		var sessions []tokens
		for range 150 {
			sessions = append(sessions, loginAt(t, b, "ada@example.com", "password1"))
		}
		gql(t, a, sessions[0].Access, `mutation { logout(allSessions: true) }`).OK(t)
		for _, srv := range []string{b, cc} {
			waitRevoked(t, srv, sessions[len(sessions)-1].Access)
			for i, s := range sessions {
				if code, _ := meError(t, srv, s.Access); code != models.Unauthenticated {
					t.Errorf("session %d at %s: me code %q, want UNAUTHENTICATED", i, srv, code)
				}
			}
		}
	})

	t.Run("ReuseDetectedOnAIsRefusedOnB", func(t *testing.T) {
		c := newCluster(t, map[string]string{"AUTH_REFRESH_REUSE_INTERVAL": "0"})
		a, b := c.start(t, nil), c.start(t, nil)
		first := registerAt(t, b, "ada@example.com", "password1")
		second := tokensOf(refreshAt(t, a, first.Refresh).OK(t), "refresh")
		third := tokensOf(refreshAt(t, b, second.Refresh).OK(t), "refresh") // the successor is used
		if code, msg := meError(t, b, third.Access); code != "" {
			t.Fatalf("me at B before reuse: %s %s", code, msg)
		}
		// The spent token again, on A: theft, the session is revoked.
		if code := refreshAt(t, a, first.Refresh).Code(t); code != models.Unauthenticated {
			t.Fatalf("reuse: code %s, want UNAUTHENTICATED", code)
		}
		waitRevoked(t, b, third.Access)
	})

	t.Run("RoleRemovedOnAIsRefusedOnBAtTheNextRequest", func(t *testing.T) {
		c := newCluster(t, nil)
		a, b := c.start(t, nil), c.start(t, nil)
		root := loginAt(t, a, "root@example.com", "root-password")
		other := registerAt(t, a, "ada@example.com", "password1")
		gql(t, a, root.Access, fmt.Sprintf(`mutation { setUserRoles(userId: %q, roles: ["admin", "user"]) { id } }`, other.UserID)).OK(t)
		admin := loginAt(t, b, "ada@example.com", "password1")
		gql(t, b, admin.Access, `{ users { id } }`).OK(t)
		gql(t, a, root.Access, fmt.Sprintf(`mutation { setUserRoles(userId: %q, roles: ["user"]) { id } }`, other.UserID)).OK(t)
		waitFor(t, "users to be refused at B", func() bool {
			r := gql(t, b, admin.Access, `{ users { id } }`)
			return len(r.Errors) > 0 && r.Code(t) == models.Forbidden
		})
	})

	t.Run("KeyRotatedIsUsedByEveryReplica", func(t *testing.T) {
		c := newCluster(t, map[string]string{"AUTH_JWT_ALG": "EdDSA"})
		a, b := c.start(t, nil), c.start(t, nil)
		var out strings.Builder
		env := maps.Clone(c.env)
		if err := run(context.Background(), []string{"keys", "rotate"}, func(k string) string { return env[k] }, nil, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		kid := strings.TrimSpace(out.String())
		// Before any token names it, so that B cannot have learnt of it
		// by looking up an unknown kid: only the push tells it.
		waitFor(t, "the new key in B's JWKS", func() bool { return getJWKS(t, b).key(kid) != nil })
		// B signs with it at once, not after its 30 s reload, and A
		// verifies what B signed.
		tok := loginAt(t, b, "root@example.com", "root-password")
		if got := jwtSegment(t, tok.Access, 0)["kid"]; got != kid {
			t.Fatalf("B signs with kid %v, want the rotated %s", got, kid)
		}
		if code, msg := meError(t, a, tok.Access); code != "" {
			t.Fatalf("me at A with B's token: %s %s", code, msg)
		}
	})

	t.Run("LogoutWhileListenerIsDownIsRefusedAfterItIsRestored", func(t *testing.T) {
		c := newCluster(t, nil)
		// B keeps serving while cut off, for this test to see what it
		// missed.
		a, b, cc := c.start(t, nil), c.start(t, map[string]string{"AUTH_SYNC_TIMEOUT": "10m"}), c.start(t, nil)
		u := registerAt(t, a, "ada@example.com", "password1")
		if code, msg := meError(t, b, u.Access); code != "" {
			t.Fatalf("me at B: %s %s", code, msg)
		}
		restore := c.cutOff(t, b)
		gql(t, a, u.Access, `mutation { logout }`).OK(t)
		waitRevoked(t, cc, u.Access)
		// B's listening connection is gone and cannot come back: the
		// notification was lost on it, and B still honours the token.
		if code, msg := meError(t, b, u.Access); code != "" {
			t.Fatalf("me at B while cut off: %s %s; want success, the logout not yet known", code, msg)
		}
		restore()
		waitRevoked(t, b, u.Access)
		c.newListener(t, slices.Collect(maps.Values(c.listeners)))
	})

	t.Run("ReplicaThatCannotResyncRefusesTokensThenRecovers", func(t *testing.T) {
		c := newCluster(t, nil)
		a, b := c.start(t, nil), c.start(t, map[string]string{"AUTH_SYNC_TIMEOUT": "500ms"})
		u := registerAt(t, b, "ada@example.com", "password1")
		restore := c.cutOff(t, b)
		waitFor(t, "B to refuse tokens", func() bool {
			code, _ := meError(t, b, u.Access)
			return code != ""
		})
		r := gql(t, b, u.Access, `{ me { id } }`)
		if code := r.Code(t); code != models.ServiceUnavailable || r.Errors[0].Extensions["retryAfter"] != float64(1) ||
			!strings.Contains(r.Errors[0].Message, "temporarily unavailable") {
			t.Fatalf("me at B cut off: %+v, want SERVICE_UNAVAILABLE with retryAfter 1", r.Errors)
		}
		// Public operations go to the database, through the connections
		// B's pool already has: they keep working.
		next := tokensOf(refreshAt(t, b, u.Refresh).OK(t), "refresh")
		if code, _ := meError(t, b, next.Access); code != models.ServiceUnavailable {
			t.Fatalf("me at B with a fresh token: code %q, want SERVICE_UNAVAILABLE", code)
		}
		// A heard everything and serves as usual.
		if code, msg := meError(t, a, next.Access); code != "" {
			t.Fatalf("me at A: %s %s", code, msg)
		}
		restore()
		waitFor(t, "B to accept tokens again", func() bool {
			code, _ := meError(t, b, next.Access)
			return code == ""
		})
	})
}

// TestRevocationPropagationLatency measures how long a logout on A takes to
// be refused on B, over 200 logouts, and logs the figures; it asserts only
// that every one arrives. Run it with -v to see them.
func TestRevocationPropagationLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("200 logins and logouts")
	}
	c := newCluster(t, nil)
	a, b := c.start(t, nil), c.start(t, nil)
	registerAt(t, a, "ada@example.com", "password1")
	const n = 200
	var lat []time.Duration
	first := 0 // refusals seen by the very first request to B
	for range n {
		u := loginAt(t, a, "ada@example.com", "password1")
		if code, msg := meError(t, b, u.Access); code != "" {
			t.Fatalf("me at B before logout: %s %s", code, msg)
		}
		gql(t, a, u.Access, `mutation { logout }`).OK(t)
		// From the moment A has answered: the logout is committed.
		start := time.Now()
		// Back to back, no sleep between polls: the resolution is one
		// request to B (a few hundred microseconds here).
		polls := 0
		for {
			polls++
			if code, _ := meError(t, b, u.Access); code != "" {
				break
			}
			if time.Since(start) > propagationWait {
				t.Fatalf("logout on A not refused on B after %s", propagationWait)
			}
		}
		lat = append(lat, time.Since(start))
		if polls == 1 {
			first++
		}
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	t.Logf("logout on A refused on B, %d logouts: p50 %s p90 %s p99 %s max %s; refused by the first request after A answered: %d/%d",
		n, q(0.50), q(0.90), q(0.99), lat[len(lat)-1], first, n)
}
