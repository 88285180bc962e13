package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/graph"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/internal/wsclient"
)

// TestReplicasSocketRevocation: a logout on replica A closes the session's
// socket on replica B with 4401, after B's socket delivered the
// SESSION_REVOKED; the user's other session's socket on C stays open and
// hears of it (current: false).
func TestReplicasSocketRevocation(t *testing.T) {
	c := newCluster(t, nil)
	a, b, cc := c.start(t, nil), c.start(t, nil), c.start(t, nil)
	u := registerAt(t, a, "ada@example.com", "password1")
	other := loginAt(t, a, "ada@example.com", "password1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func(url, token string) *wsclient.Conn {
		t.Helper()
		conn, status, err := wsclient.Dial(ctx, url+"/query", wsclient.Options{})
		if err != nil {
			t.Fatalf("dial %s: %d %v", url, status, err)
		}
		t.Cleanup(func() { conn.CloseNow() })
		if err := conn.InitToken(ctx, token); err != nil {
			t.Fatal(err)
		}
		if err := conn.Subscribe(ctx, "s", `subscription { sessionEvents { type current sessionId } }`, nil); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	onB, onC := open(b, u.Access), open(cc, other.Access)
	noSub, _, err := wsclient.Dial(ctx, b+"/query", wsclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := noSub.InitToken(ctx, u.Access); err != nil {
		t.Fatal(err)
	}
	// Wait until both subscriptions run: an event reaches them, a
	// sign-in of the user on A (a session of neither socket). Events of
	// earlier sign-ins may come first: they were committed before the
	// subscriptions began, but a replica hears of them by notification,
	// and under load that can be later. Notifications arrive in commit
	// order, so once this one has come, every earlier one has too.
	waitSID := sid(t, loginAt(t, a, "ada@example.com", "password1").Access)
	for _, conn := range []*wsclient.Conn{onB, onC} {
		for {
			m, err := conn.Next(ctx)
			if err != nil || m.Type != "next" {
				t.Fatalf("SESSION_CREATED: %+v %v", m, err)
			}
			var e struct {
				Data struct {
					SessionEvents struct{ Type, SessionID string }
				}
			}
			if err := json.Unmarshal(m.Payload, &e); err != nil || e.Data.SessionEvents.Type != "SESSION_CREATED" {
				t.Fatalf("before the sign-in's SESSION_CREATED: %s %v", m.Payload, err)
			}
			if e.Data.SessionEvents.SessionID == waitSID {
				break
			}
		}
	}
	gql(t, a, u.Access, `mutation { logout }`).OK(t)
	for _, conn := range []*wsclient.Conn{onB, noSub} {
		cl, seen, err := conn.WaitClose(ctx)
		if err != nil || cl.Code != graph.CloseSessionEnded {
			t.Fatalf("socket on B: %v %v (read %+v), want 4401", cl, err, seen)
		}
		// The event, then the subscription's complete, then the close.
		if conn == onB && (len(seen) == 0 || string(seen[0].Payload) != `{"data":{"sessionEvents":{"type":"SESSION_REVOKED","current":true,"sessionId":"`+sid(t, u.Access)+`"}}}`) {
			t.Fatalf("before 4401 on B: %+v", seen)
		}
	}
	m, err := onC.Next(ctx)
	if err != nil || string(m.Payload) != `{"data":{"sessionEvents":{"type":"SESSION_REVOKED","current":false,"sessionId":"`+sid(t, u.Access)+`"}}}` {
		t.Fatalf("on C: %s %v", m.Payload, err)
	}
	var cl *wsclient.Closed
	if errors.As(err, &cl) {
		t.Fatalf("C's socket closed: %v", cl)
	}
}

// TestShutdownClosesSockets: a shutdown closes the open sockets with 1001
// (going away) at once, and run returns without waiting out
// AUTH_SHUTDOWN_TIMEOUT for them (http.Server.Shutdown does not track
// hijacked connections).
func TestShutdownClosesSockets(t *testing.T) {
	url, stop := startRun(t, map[string]string{"DATABASE_URL": testdb.SQLite(t), "AUTH_SHUTDOWN_TIMEOUT": "10m"})
	token := gql(t, url, "", `mutation { register(email: "ada@example.com", password: "password1") { accessToken } }`).OK(t).Str("register", "accessToken")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, _, err := wsclient.Dial(ctx, url+"/query", wsclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if err := conn.InitToken(ctx, token); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	cl, seen, err := conn.WaitClose(ctx)
	if err != nil || cl.Code != graph.CloseGoingAway {
		t.Fatalf("socket at shutdown: %v %v (read %+v), want 1001", cl, err, seen)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("run = %v, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("run did not return within a minute of the shutdown with a socket open (AUTH_SHUTDOWN_TIMEOUT is 10m)")
	}
}

// TestSocketOutOfSync: a replica cut off from the database past
// AUTH_SYNC_TIMEOUT refuses every token, over HTTP with
// SERVICE_UNAVAILABLE and at connection_init with 1013 (try again later).
func TestSocketOutOfSync(t *testing.T) {
	c := newCluster(t, nil)
	b := c.start(t, map[string]string{"AUTH_SYNC_TIMEOUT": "500ms"})
	u := registerAt(t, b, "ada@example.com", "password1")
	restore := c.cutOff(t, b)
	defer restore()
	waitFor(t, "B to refuse tokens", func() bool { return len(gql(t, b, u.Access, `{ me { id } }`).Errors) > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := wsclient.Dial(ctx, b+"/query", wsclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	var cl *wsclient.Closed
	if err := conn.InitToken(ctx, u.Access); !errors.As(err, &cl) || cl.Code != graph.CloseTryLater {
		t.Fatalf("init at B out of sync: %v, want close 1013", err)
	}
}

// TestOpenSocketOutOfSync: a socket opened on B before B was cut off is
// refused every operation (SERVICE_UNAVAILABLE, as over HTTP) and closed
// with 1013 once B refuses tokens.
func TestOpenSocketOutOfSync(t *testing.T) {
	c := newCluster(t, nil)
	b := c.start(t, map[string]string{"AUTH_SYNC_TIMEOUT": "500ms"})
	u := registerAt(t, b, "ada@example.com", "password1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := wsclient.Dial(ctx, b+"/query", wsclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if err := conn.InitToken(ctx, u.Access); err != nil {
		t.Fatal(err)
	}
	restore := c.cutOff(t, b)
	defer restore()
	waitFor(t, "B to refuse tokens", func() bool { return len(gql(t, b, u.Access, `{ me { id } }`).Errors) > 0 })
	// The socket may be closed already (its watch looks once a second);
	// if not, the query is refused as over HTTP.
	if err := conn.Subscribe(ctx, "me", `{ me { id } }`, nil); err == nil {
		if m, err := conn.Next(ctx); err == nil && (m.Type != "next" || !strings.Contains(string(m.Payload), `"SERVICE_UNAVAILABLE"`) || strings.Contains(string(m.Payload), u.UserID)) {
			t.Fatalf("query on a socket of B out of sync: %s %s", m.Type, m.Payload)
		}
	}
	cl, seen, err := conn.WaitClose(ctx)
	if err != nil || cl.Code != graph.CloseTryLater {
		t.Fatalf("socket at B out of sync: %v %v (read %+v), want 1013", cl, err, seen)
	}
}
