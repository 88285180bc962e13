package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/authzcases"
	"github.com/authql/authql/internal/testdb"
)

// TestServiceSockets: the example service's graphql-transport-ws sockets
// take the token from connection_init only: a missing or bad one closes
// 4403; a good one subscribes, and a logout on authql closes the socket
// 4401 (the feed revoked its session).
func TestServiceSockets(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := authzcases.NewEnv(t, dsn)
		svc := authzcases.StartService(t, e)
		wsURL := "ws" + strings.TrimPrefix(svc.URL, "http") + "/query"

		t.Run("NoToken", func(t *testing.T) {
			c := dial(t, wsURL)
			send(t, c, map[string]any{"type": "connection_init", "payload": map[string]any{}})
			if code := closeCode(t, c); code != 4403 {
				t.Errorf("close %d, want 4403", code)
			}
		})
		t.Run("BadToken", func(t *testing.T) {
			c := dial(t, wsURL)
			send(t, c, map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + e.User.Access + "x"}})
			if code := closeCode(t, c); code != 4403 {
				t.Errorf("close %d, want 4403", code)
			}
		})
		t.Run("LogoutCloses4401", func(t *testing.T) {
			victim := authtest.TokensOf(e.TS.Login(t, "user@example.com", "user-password").OK(t), "login")
			c := dial(t, wsURL)
			send(t, c, map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + victim.Access}})
			if m := read(t, c); m["type"] != "connection_ack" {
				t.Fatalf("got %v, want connection_ack", m)
			}
			send(t, c, map[string]any{"type": "subscribe", "id": "1", "payload": map[string]any{"query": "subscription { ticks(count: 60) }"}})
			for m := read(t, c); m["type"] != "next"; m = read(t, c) {
				if m["type"] != "ping" && m["type"] != "ka" {
					t.Fatalf("got %v, want a tick", m)
				}
			}
			e.TS.Do(t, victim.Access, `mutation { logout }`, nil).OK(t)
			if code := closeCode(t, c); code != 4401 {
				t.Errorf("close %d after the logout, want 4401", code)
			}
		})
	})
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func send(t *testing.T, c *websocket.Conn, m map[string]any) {
	t.Helper()
	b, _ := json.Marshal(m)
	if err := c.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// read returns the next message, failing on a close or after 10 s.
func read(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// closeCode reads until the socket closes and returns its close code
// (-1: it did not close within 10 s or not with a close frame).
func closeCode(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return int(ce.Code)
			}
			t.Logf("read: %v", err)
			return -1
		}
	}
}
