package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/graph"
	"github.com/authql/authql/httpapi"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/internal/wsclient"
	"github.com/authql/authql/models"
)

// appOrigin is the one origin the socket tests' servers allow.
const appOrigin = "https://app.example.com"

const sessionEventsDoc = `subscription { sessionEvents { type at sessionId current roles } }`

// withSockets gives a test server sockets that look at its settable clock
// often (see graph.SocketOptions.ClockPoll) and appOrigin as allowed.
func withSockets(adjust func(c *authtest.Config)) authtest.Option {
	return func(c *authtest.Config) {
		c.HTTP.WSClockPoll = 10 * time.Millisecond
		c.Auth.AllowedOrigins = []string{appOrigin}
		if adjust != nil {
			adjust(c)
		}
	}
}

// socketCtx bounds one test's socket reads.
func socketCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial opens a socket to ts, failing the test if the upgrade is refused.
func dial(t *testing.T, ts *authtest.Server, opts wsclient.Options) *wsclient.Conn {
	t.Helper()
	c, status, err := wsclient.Dial(socketCtx(t), ts.URL+"/query", opts)
	if err != nil {
		t.Fatalf("dial: status %d: %v", status, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// openSocket dials ts and authenticates with token.
func openSocket(t *testing.T, ts *authtest.Server, token string) *wsclient.Conn {
	t.Helper()
	c := dial(t, ts, wsclient.Options{})
	if err := c.InitToken(socketCtx(t), token); err != nil {
		t.Fatalf("init: %v", err)
	}
	return c
}

// wantClose reads until the server closes c and checks the code.
func wantClose(t *testing.T, c *wsclient.Conn, code int) []wsclient.Message {
	t.Helper()
	cl, seen, err := c.WaitClose(socketCtx(t))
	if err != nil {
		t.Fatalf("waiting for close %d: %v (read %+v)", code, err, seen)
	}
	if cl.Code != code {
		t.Fatalf("closed %d %q, want %d (read %+v)", cl.Code, cl.Reason, code, seen)
	}
	return seen
}

// sessionEvent is one sessionEvents payload.
type sessionEvent struct {
	Type      string   `json:"type"`
	At        string   `json:"at"`
	SessionID *string  `json:"sessionId"`
	Current   bool     `json:"current"`
	Roles     []string `json:"roles"`
}

// nextEvent reads the next message of c, which must be an event of
// operation id.
func nextEvent(t *testing.T, c *wsclient.Conn, id string) sessionEvent {
	t.Helper()
	m, err := c.Next(socketCtx(t))
	if err != nil {
		t.Fatalf("next event: %v", err)
	}
	return eventOf(t, m, id)
}

func eventOf(t *testing.T, m wsclient.Message, id string) sessionEvent {
	t.Helper()
	var p struct {
		Data   struct{ SessionEvents sessionEvent } `json:"data"`
		Errors []authtest.GQLError                  `json:"errors"`
	}
	if m.Type != "next" || m.ID != id || json.Unmarshal(m.Payload, &p) != nil || len(p.Errors) > 0 {
		t.Fatalf("want an event of %s, got %s %s %s", id, m.Type, m.ID, m.Payload)
	}
	return p.Data.SessionEvents
}

// record records e as a flow does, in a transaction: delivered to this
// server's hub at commit (and to other replicas by notification).
func record(t *testing.T, ts *authtest.Server, e models.LiveEvent) {
	t.Helper()
	if err := ts.DB.Transaction(func(tx *gorm.DB) error { return models.RecordLive(tx, e) }); err != nil {
		t.Fatal(err)
	}
}

// run sends one query or mutation over c and returns its result payload.
func run(t *testing.T, c *wsclient.Conn, id, doc string, vars map[string]any) authtest.Response {
	t.Helper()
	ctx := socketCtx(t)
	if err := c.Subscribe(ctx, id, doc, vars); err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	var r authtest.Response
	if m.Type != "next" || json.Unmarshal(m.Payload, &r) != nil {
		t.Fatalf("%s: %s %s", id, m.Type, m.Payload)
	}
	if m, err := c.Next(ctx); err != nil || m.Type != "complete" {
		t.Fatalf("%s: want complete, got %+v %v", id, m, err)
	}
	r.Status = http.StatusOK
	return r
}

func TestSocketInit(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil, withSockets(func(c *authtest.Config) { c.HTTP.WSInitTimeout = 200 * time.Millisecond }))
		u := ts.Register(t, "ada@example.com", "password1")

		t.Run("TokenInConnectionInit", func(t *testing.T) {
			c := dial(t, ts, wsclient.Options{Origin: appOrigin})
			// The key is case-insensitive, as a header name.
			if err := c.Init(socketCtx(t), map[string]any{"Authorization": "Bearer " + u.Access}); err != nil {
				t.Fatal(err)
			}
			r := run(t, c, "me", `{ me { id email } }`, nil).OK(t)
			if r.Str("me", "id") != u.UserID {
				t.Fatalf("me over the socket: %v", r.Data)
			}
		})
	})
}

// TestSocketInitRefused: connection_init without a good token closes with
// the contract's codes.
func TestSocketInitRefused(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil, withSockets(func(c *authtest.Config) { c.HTTP.WSInitTimeout = 200 * time.Millisecond }))
		u := ts.Register(t, "ada@example.com", "password1")
		refusals := []struct {
			name    string
			payload map[string]any
			code    int
		}{
			{"NoPayload", nil, graph.CloseBadToken},
			{"NoToken", map[string]any{"token": u.Access}, graph.CloseBadToken},
			{"NotBearer", map[string]any{"authorization": u.Access}, graph.CloseBadToken},
			{"BadToken", map[string]any{"authorization": "Bearer " + u.Access[:len(u.Access)-4] + "AAAA"}, graph.CloseBadToken},
			{"Garbage", map[string]any{"authorization": "Bearer x.y.z"}, graph.CloseBadToken},
		}
		for _, tc := range refusals {
			t.Run(tc.name, func(t *testing.T) {
				c := dial(t, ts, wsclient.Options{})
				err := c.Init(socketCtx(t), tc.payload)
				var cl *wsclient.Closed
				if !errors.As(err, &cl) || cl.Code != tc.code {
					t.Fatalf("init: %v, want close %d", err, tc.code)
				}
			})
		}
		t.Run("TokenOnlyFromConnectionInit", func(t *testing.T) {
			// A token in the upgrade's header, query string or cookie is
			// not read: connection_init without one is refused.
			c, status, err := wsclient.Dial(socketCtx(t), ts.URL+"/query?access_token="+u.Access+"&authorization=Bearer+"+u.Access, wsclient.Options{
				Header: http.Header{"Authorization": {"Bearer " + u.Access}, "Cookie": {"authql_refresh=" + u.Refresh}},
			})
			if err != nil {
				t.Fatalf("dial: %d %v", status, err)
			}
			defer c.CloseNow()
			var cl *wsclient.Closed
			if err := c.Init(socketCtx(t), map[string]any{}); !errors.As(err, &cl) || cl.Code != graph.CloseBadToken {
				t.Fatalf("init without a token in its payload: %v, want 4403", err)
			}
		})
		t.Run("NoConnectionInit", func(t *testing.T) {
			c := dial(t, ts, wsclient.Options{})
			wantClose(t, c, graph.CloseInitTimeout)
		})
		t.Run("OriginRefused", func(t *testing.T) {
			_, status, err := wsclient.Dial(socketCtx(t), ts.URL+"/query", wsclient.Options{Origin: "https://evil.example"})
			if err == nil || status != http.StatusForbidden {
				t.Fatalf("dial from another origin: status %d, err %v; want 403", status, err)
			}
		})
		t.Run("LegacyProtocolRefused", func(t *testing.T) {
			for _, protos := range [][]string{{"graphql-ws"}, {}} {
				_, status, err := wsclient.Dial(socketCtx(t), ts.URL+"/query", wsclient.Options{Subprotocols: protos})
				if err == nil || status != http.StatusBadRequest {
					t.Fatalf("dial with %v: status %d, err %v; want 400", protos, status, err)
				}
			}
		})
		t.Run("ExpiredToken", func(t *testing.T) {
			old := ts.Login(t, "ada@example.com", "password1")
			ts.Clock.Advance(16 * time.Minute)
			t.Cleanup(func() { ts.Clock.Advance(-16 * time.Minute) })
			c := dial(t, ts, wsclient.Options{})
			var cl *wsclient.Closed
			if err := c.InitToken(socketCtx(t), authtest.TokensOf(old, "login").Access); !errors.As(err, &cl) || cl.Code != graph.CloseBadToken {
				t.Fatalf("init with an expired token: %v, want 4403", err)
			}
		})
		t.Run("RevokedToken", func(t *testing.T) {
			v := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1"), "login")
			ts.Do(t, v.Access, `mutation { logout }`, nil).OK(t)
			c := dial(t, ts, wsclient.Options{})
			var cl *wsclient.Closed
			if err := c.InitToken(socketCtx(t), v.Access); !errors.As(err, &cl) || cl.Code != graph.CloseSessionEnded {
				t.Fatalf("init with a revoked token: %v, want 4401", err)
			}
		})
	})
}

func TestSessionEvents(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil, withSockets(nil))
		u := ts.Register(t, "ada@example.com", "password1")
		other := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1"), "login")
		sid, otherSID := authtest.SID(t, u.Access), authtest.SID(t, other.Access)
		c := openSocket(t, ts, u.Access)
		ctx := socketCtx(t)
		if err := c.Subscribe(ctx, "a", sessionEventsDoc, nil); err != nil {
			t.Fatal(err)
		}
		waitListening(t, ts, 1)
		// Every type but the one that ends the socket, then that one.
		for _, e := range []models.LiveEvent{
			models.NewLiveEvent(models.LiveSessionCreated, u.UserID, otherSID, nil),
			models.NewLiveEvent(models.LiveRolesChanged, u.UserID, "", []string{"user", "auditor"}),
			models.NewLiveEvent(models.LivePasswordChanged, u.UserID, "", nil),
			models.NewLiveEvent(models.LiveEmailChanged, u.UserID, "", nil),
			models.NewLiveEvent(models.LiveMfaChanged, u.UserID, "", nil),
			models.NewLiveEvent(models.LiveSessionRevoked, u.UserID, otherSID, nil),
			models.NewLiveEvent(models.LiveSessionCreated, "someone-else", "x", nil), // not this user's
			models.NewLiveEvent(models.LiveMfaChanged, u.UserID, sid, nil),
		} {
			record(t, ts, e)
			if e.UserID != u.UserID {
				continue
			}
			got := nextEvent(t, c, "a")
			if got.Type != e.Type || got.Current != (e.SessionID != nil && *e.SessionID == sid) {
				t.Fatalf("event %s: got %+v", e.Type, got)
			}
			if e.Type == models.LiveRolesChanged && strings.Join(got.Roles, ",") != "user,auditor" {
				t.Fatalf("roles: %v", got.Roles)
			}
		}
		// TOKEN_EXPIRING, a minute before the token's expiry (15 min).
		ts.Clock.Advance(14*time.Minute + time.Second)
		if got := nextEvent(t, c, "a"); got.Type != "TOKEN_EXPIRING" || !got.Current {
			t.Fatalf("want TOKEN_EXPIRING, got %+v", got)
		}
		// ACCOUNT_DISABLED: delivered, then 4401.
		record(t, ts, models.NewLiveEvent(models.LiveAccountDisabled, u.UserID, "", nil))
		seen := wantClose(t, c, graph.CloseSessionEnded)
		if len(seen) == 0 || eventOf(t, seen[0], "a").Type != models.LiveAccountDisabled {
			t.Fatalf("before 4401: %+v, want ACCOUNT_DISABLED", seen)
		}
	})
}

func TestSocketRevocation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil, withSockets(nil))
		u := ts.Register(t, "ada@example.com", "password1")
		t.Run("OwnSessionRevokedDeliversThenCloses", func(t *testing.T) {
			v := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1"), "login")
			c := openSocket(t, ts, v.Access)
			for _, id := range []string{"a", "b"} { // both subscriptions get it
				if err := c.Subscribe(socketCtx(t), id, sessionEventsDoc, nil); err != nil {
					t.Fatal(err)
				}
			}
			waitListening(t, ts, 2)
			record(t, ts, models.NewLiveEvent(models.LiveSessionRevoked, u.UserID, authtest.SID(t, v.Access), nil))
			seen := wantClose(t, c, graph.CloseSessionEnded)
			got := map[string]bool{}
			for _, m := range seen {
				if m.Type == "next" && eventOf(t, m, m.ID).Type == models.LiveSessionRevoked {
					got[m.ID] = eventOf(t, m, m.ID).Current
				}
			}
			if !got["a"] || !got["b"] {
				t.Fatalf("before 4401: %+v, want SESSION_REVOKED (current) on a and b", seen)
			}
		})
		t.Run("WithoutSubscription", func(t *testing.T) {
			v := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1"), "login")
			c := openSocket(t, ts, v.Access)
			record(t, ts, models.NewLiveEvent(models.LiveSessionRevoked, u.UserID, authtest.SID(t, v.Access), nil))
			wantClose(t, c, graph.CloseSessionEnded)
		})
		t.Run("LogoutOverHTTP", func(t *testing.T) {
			v := authtest.TokensOf(ts.Login(t, "ada@example.com", "password1"), "login")
			c := openSocket(t, ts, v.Access)
			ts.Do(t, v.Access, `mutation { logout }`, nil).OK(t)
			wantClose(t, c, graph.CloseSessionEnded)
		})
		t.Run("RolesChangedByAdmin", func(t *testing.T) {
			c := openSocket(t, ts, u.Access)
			if err := c.Subscribe(socketCtx(t), "r", sessionEventsDoc, nil); err != nil {
				t.Fatal(err)
			}
			waitListening(t, ts, 1)
			admin := ts.Admin(t)
			ts.Do(t, admin.Access, `mutation($id: ID!) { setUserRoles(userId: $id, roles: ["user", "admin"]) { id } }`, map[string]any{"id": u.UserID}).OK(t)
			if got := nextEvent(t, c, "r"); got.Type != models.LiveRolesChanged || strings.Join(got.Roles, ",") != "admin,user" {
				t.Fatalf("want ROLES_CHANGED [admin user], got %+v", got)
			}
		})
		t.Run("LaggingClosesTryLater", func(t *testing.T) {
			// Far more events at once than a subscriber may have waiting
			// (a transaction's worth for AUTH_MAX_SESSIONS sessions, and
			// 64 more), faster than the socket writes them: the hub drops
			// the socket's watch, and the socket closes 1013 (the client
			// reconnects and reads its state afresh).
			c := openSocket(t, ts, u.Access)
			events := make([]models.LiveEvent, 5000)
			for i := range events {
				events[i] = models.NewLiveEvent(models.LiveMfaChanged, u.UserID, "", nil)
			}
			if err := ts.DB.Transaction(func(tx *gorm.DB) error { return models.RecordLive(tx, events...) }); err != nil {
				t.Fatal(err)
			}
			wantClose(t, c, graph.CloseTryLater)
		})
		t.Run("OtherSessionRevokedKeepsSocket", func(t *testing.T) {
			c := openSocket(t, ts, u.Access)
			record(t, ts, models.NewLiveEvent(models.LiveSessionRevoked, u.UserID, "another-session", nil))
			run(t, c, "me", `{ me { id } }`, nil).OK(t)
		})
	})
}

// waitListening waits until ts has n sessionEvents subscriptions
// receiving events: an event recorded before would not be theirs.
func waitListening(t *testing.T, ts *authtest.Server, n int) {
	t.Helper()
	h := ts.Handler.(*httpapi.Handler)
	authtest.WaitFor(t, "subscriptions to listen", func() bool { return h.ListeningSockets() >= n })
}
