package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/authql/authql/graph"
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
		if err := conn.Subscribe(ctx, "s", `subscription { sessionEvents { type current } }`, nil); err != nil {
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
	// sign-in of the user on A.
	loginAt(t, a, "ada@example.com", "password1")
	for _, conn := range []*wsclient.Conn{onB, onC} {
		if m, err := conn.Next(ctx); err != nil || m.Type != "next" {
			t.Fatalf("SESSION_CREATED: %+v %v", m, err)
		}
	}
	gql(t, a, u.Access, `mutation { logout }`).OK(t)
	for _, conn := range []*wsclient.Conn{onB, noSub} {
		cl, seen, err := conn.WaitClose(ctx)
		if err != nil || cl.Code != graph.CloseSessionEnded {
			t.Fatalf("socket on B: %v %v (read %+v), want 4401", cl, err, seen)
		}
		// The event, then the subscription's complete, then the close.
		if conn == onB && (len(seen) == 0 || string(seen[0].Payload) != `{"data":{"sessionEvents":{"type":"SESSION_REVOKED","current":true}}}`) {
			t.Fatalf("before 4401 on B: %+v", seen)
		}
	}
	m, err := onC.Next(ctx)
	if err != nil || string(m.Payload) != `{"data":{"sessionEvents":{"type":"SESSION_REVOKED","current":false}}}` {
		t.Fatalf("on C: %s %v", m.Payload, err)
	}
	var cl *wsclient.Closed
	if errors.As(err, &cl) {
		t.Fatalf("C's socket closed: %v", cl)
	}
}
