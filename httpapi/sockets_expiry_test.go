package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/graph"
	"github.com/authql/authql/httpapi"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/internal/wsclient"
	"github.com/authql/authql/models"
)

// TestSocketExpiry moves the server's clock past the socket's token: the
// socket closes 4403 unless its session was refreshed, over HTTP or with
// authenticateSocket.
func TestSocketExpiry(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Run("NoRefreshCloses4403", func(t *testing.T) {
			ts, _, c := expiringSocket(t, dsn)
			ts.Clock.Advance(time.Minute)
			wantClose(t, c, graph.CloseBadToken)
		})
		t.Run("RefreshOverHTTPLivesOn", func(t *testing.T) {
			ts, u, c := expiringSocket(t, dsn)
			ts.Refresh(t, u.Refresh).OK(t)
			ts.Clock.Advance(time.Minute)
			// Past the old token's expiry, the socket still delivers:
			// the next event is this one, not a close.
			record(t, ts, models.NewLiveEvent(models.LiveMfaChanged, u.UserID, "", nil))
			if got := nextEvent(t, c, "a"); got.Type != models.LiveMfaChanged {
				t.Fatalf("after the refresh: %+v", got)
			}
			// And it warns again before the refreshed token's expiry
			// (the refresh was at 14:30, its token expires at 29:30).
			ts.Clock.Advance(13*time.Minute + 15*time.Second)
			if got := nextEvent(t, c, "a"); got.Type != "TOKEN_EXPIRING" {
				t.Fatalf("want TOKEN_EXPIRING of the refreshed token, got %+v", got)
			}
		})
		t.Run("RefreshOverHTTPGivesNoPowers", func(t *testing.T) {
			// A stolen token must not act past its exp through a socket
			// the victim's refreshes keep alive.
			ts, u, c := expiringSocket(t, dsn, withAudiences("orders"))
			next := authtest.TokensOf(ts.Refresh(t, u.Refresh).OK(t), "refresh")
			ts.Clock.Advance(time.Minute + time.Second) // past the socket's token, with the leeway
			record(t, ts, models.NewLiveEvent(models.LiveMfaChanged, u.UserID, "", nil))
			if got := nextEvent(t, c, "a"); got.Type != models.LiveMfaChanged {
				t.Fatalf("after the refresh: %+v", got)
			}
			for id, doc := range map[string]string{
				"me":       `{ me { id } }`,
				"exchange": `mutation { exchangeToken(audience: "orders") { expiresIn } }`,
				"both":     `mutation($t: String!) { authenticateSocket(accessToken: $t) { sessionId } logout }`,
				"sub":      `subscription { sessionEvents { type } }`,
			} {
				r := run(t, c, id, doc, map[string]any{"t": next.Access})
				if r.Code(t) != models.Unauthenticated || r.Reason(t) != models.ReasonTokenExpired {
					t.Fatalf("%s past the socket's token: %s %s, want UNAUTHENTICATED TOKEN_EXPIRED (%v)", id, r.Code(t), r.Reason(t), r.Errors)
				}
			}
			run(t, c, "auth", `mutation($t: String!) { authenticateSocket(accessToken: $t) { sessionId } }`, map[string]any{"t": next.Access}).OK(t)
			run(t, c, "me2", `{ me { id } }`, nil).OK(t)
			run(t, c, "exchange2", `mutation { exchangeToken(audience: "orders") { expiresIn } }`, nil).OK(t)
			record(t, ts, models.NewLiveEvent(models.LiveMfaChanged, u.UserID, "", nil))
			if got := nextEvent(t, c, "a"); got.Type != models.LiveMfaChanged {
				t.Fatalf("after authenticateSocket: %+v", got)
			}
		})
		t.Run("AuthenticateSocketLivesOn", func(t *testing.T) {
			ts := authtest.NewServer(t, dsn, nil, withSockets(nil))
			u := ts.Register(t, "cy@example.com", "password1")
			c := openSocket(t, ts, u.Access)
			ts.Clock.Advance(10 * time.Minute)
			next := authtest.TokensOf(ts.Refresh(t, u.Refresh).OK(t), "refresh")
			r := run(t, c, "auth", `mutation($t: String!) { authenticateSocket(accessToken: $t) { sessionId expiresAt } }`, map[string]any{"t": next.Access}).OK(t)
			if r.Str("authenticateSocket", "sessionId") != authtest.SID(t, u.Access) {
				t.Fatalf("authenticateSocket: %v", r.Data)
			}
			exp, err := time.Parse(time.RFC3339, r.Str("authenticateSocket", "expiresAt"))
			if err != nil || !exp.Equal(ts.Clock.Now().Add(15*time.Minute)) {
				t.Fatalf("expiresAt %v (%v), want %v", exp, err, ts.Clock.Now().Add(15*time.Minute))
			}
			ts.Clock.Advance(6 * time.Minute) // past the first token
			run(t, c, "me", `{ me { id } }`, nil).OK(t)
			ts.Clock.Advance(10 * time.Minute) // past the second
			wantClose(t, c, graph.CloseBadToken)
		})
	})
}

// expiringSocket opens a socket of a new user subscribed to sessionEvents
// as "a", and moves the clock to half a minute before its token expires,
// past the TOKEN_EXPIRING that it checks.
func expiringSocket(t *testing.T, dsn string, opts ...authtest.Option) (*authtest.Server, authtest.Tokens, *wsclient.Conn) {
	t.Helper()
	ts := authtest.NewServer(t, dsn, nil, append(opts, withSockets(nil))...)
	// One database for every subtest of dsn: an address of the test's own.
	email := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "@example.com"
	u := ts.Register(t, email, "password1")
	c := openSocket(t, ts, u.Access)
	if err := c.Subscribe(socketCtx(t), "a", sessionEventsDoc, nil); err != nil {
		t.Fatal(err)
	}
	waitListening(t, ts, 1)
	ts.Clock.Advance(14*time.Minute + 30*time.Second)
	if got := nextEvent(t, c, "a"); got.Type != "TOKEN_EXPIRING" {
		t.Fatalf("want TOKEN_EXPIRING, got %+v", got)
	}
	return ts, u, c
}

func TestAuthenticateSocket(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil, withSockets(nil))
		u := ts.Register(t, "ada@example.com", "password1")
		other := ts.Register(t, "bob@example.com", "password1")
		const doc = `mutation($t: String!) { authenticateSocket(accessToken: $t) { sessionId } }`
		t.Run("AnotherUsersTokenForbidden", func(t *testing.T) {
			c := openSocket(t, ts, u.Access)
			if code := run(t, c, "x", doc, map[string]any{"t": other.Access}).Code(t); code != models.Forbidden {
				t.Fatalf("code %s, want FORBIDDEN", code)
			}
			// The socket is still Ada's.
			if r := run(t, c, "me", `{ me { id } }`, nil).OK(t); r.Str("me", "id") != u.UserID {
				t.Fatalf("me: %v", r.Data)
			}
		})
		t.Run("InvalidTokenUnauthenticated", func(t *testing.T) {
			c := openSocket(t, ts, u.Access)
			if code := run(t, c, "x", doc, map[string]any{"t": "x.y.z"}).Code(t); code != models.Unauthenticated {
				t.Fatalf("code %s, want UNAUTHENTICATED", code)
			}
		})
		t.Run("OverHTTPBadRequest", func(t *testing.T) {
			if code := ts.Do(t, u.Access, doc, map[string]any{"t": u.Access}).Code(t); code != models.BadRequest {
				t.Fatalf("code %s, want BAD_REQUEST", code)
			}
		})
	})
}

func TestSocketLimits(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil, withSockets(func(c *authtest.Config) {
			c.HTTP.WSMaxSocketsPerUser = 2
			c.HTTP.WSMaxSubscriptions = 2
			c.HTTP.WSMaxMessageBytes = 2048
		}))
		u := ts.Register(t, "ada@example.com", "password1")
		t.Run("SocketsPerUser", func(t *testing.T) {
			a, b := openSocket(t, ts, u.Access), openSocket(t, ts, u.Access)
			c := dial(t, ts, wsclient.Options{})
			if err := c.InitToken(socketCtx(t), u.Access); err == nil || !strings.Contains(err.Error(), "4429") {
				t.Fatalf("third socket: %v, want 4429", err)
			}
			// Closing one makes room.
			a.Close()
			b.Close()
			h := ts.Handler.(*httpapi.Handler)
			authtest.WaitFor(t, "sockets to close", func() bool { return h.OpenSockets() == 0 })
			openSocket(t, ts, u.Access).Close()
		})
		t.Run("SubscriptionsPerSocket", func(t *testing.T) {
			c := openSocket(t, ts, u.Access)
			for _, id := range []string{"a", "b", "c"} {
				if err := c.Subscribe(socketCtx(t), id, sessionEventsDoc, nil); err != nil {
					t.Fatal(err)
				}
			}
			wantClose(t, c, graph.CloseTooMany)
		})
		t.Run("OperationsPerSocket", func(t *testing.T) {
			// Queries and mutations count with the subscriptions, while
			// they run: one subscription leaves room for any number of
			// queries one after another, two leave none.
			c := openSocket(t, ts, u.Access)
			if err := c.Subscribe(socketCtx(t), "a", sessionEventsDoc, nil); err != nil {
				t.Fatal(err)
			}
			waitListening(t, ts, 1)
			for _, id := range []string{"q1", "q2", "q3"} {
				run(t, c, id, `{ me { id } }`, nil).OK(t)
			}
			if err := c.Subscribe(socketCtx(t), "b", sessionEventsDoc, nil); err != nil {
				t.Fatal(err)
			}
			waitListening(t, ts, 2)
			if err := c.Subscribe(socketCtx(t), "q4", `{ me { id } }`, nil); err != nil {
				t.Fatal(err)
			}
			wantClose(t, c, graph.CloseTooMany)
		})
		t.Run("MessageSize", func(t *testing.T) {
			c := openSocket(t, ts, u.Access)
			if err := c.Subscribe(socketCtx(t), "a", `{ me { id } }`+strings.Repeat(" ", 4096), nil); err != nil {
				t.Fatal(err)
			}
			wantClose(t, c, graph.CloseTooBig)
		})
		t.Run("BadMessage", func(t *testing.T) {
			for _, msg := range []string{`not json`, `{"type":"subscribe","id":"a","payload":{"query":"{ me { id } }"}}`} {
				c := dial(t, ts, wsclient.Options{})
				if err := c.SendRaw(socketCtx(t), []byte(msg)); err != nil {
					t.Fatal(err)
				}
				wantClose(t, c, graph.CloseBadMessage)
			}
			c := openSocket(t, ts, u.Access)
			if err := c.SendRaw(socketCtx(t), []byte(`{"type":"what"}`)); err != nil {
				t.Fatal(err)
			}
			wantClose(t, c, graph.CloseBadMessage)
		})
		t.Run("DocumentGate", func(t *testing.T) {
			c := openSocket(t, ts, u.Access)
			// Over MaxComplexity (6,500): 24 × 501. Refused before it runs,
			// as over HTTP.
			var doc strings.Builder
			doc.WriteString("{")
			for i := range 24 {
				fmt.Fprintf(&doc, " u%d: users(first: 500) { id }", i)
			}
			doc.WriteString(" }")
			ctx := socketCtx(t)
			if err := c.Subscribe(ctx, "deep", doc.String(), nil); err != nil {
				t.Fatal(err)
			}
			m, err := c.Next(ctx)
			if err != nil || !strings.Contains(string(m.Payload), "complexity") || strings.Contains(string(m.Payload), `"data"`) {
				t.Fatalf("costly document: %s %s %v", m.Type, m.Payload, err)
			}
		})
	})
}

// TestSocketMetrics counts the sockets open and their closes by code.
func TestSocketMetrics(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil, withSockets(nil))
		u := ts.Register(t, "ada@example.com", "password1")
		c := openSocket(t, ts, u.Access)
		bad := dial(t, ts, wsclient.Options{})
		bad.Init(socketCtx(t), map[string]any{"authorization": "Bearer nope"})
		waitMetric(t, ts, `authql_websocket_closes_total{code="4403"} 1`)
		// A peer's own codes are not labels of their own.
		for _, code := range []int{4999, 3000} {
			p := openSocket(t, ts, u.Access)
			if err := p.CloseWith(code, "mine"); err != nil {
				t.Fatal(err)
			}
		}
		waitMetric(t, ts, `authql_websocket_closes_total{code="other"} 2`)
		waitMetric(t, ts, `authql_websockets_open 1`)
		ts.Handler.(*httpapi.Handler).CloseSockets()
		wantClose(t, c, graph.CloseGoingAway)
		waitMetric(t, ts, `authql_websocket_closes_total{code="1001"} 1`)
		waitMetric(t, ts, `authql_websockets_open 0`)
	})
}

// waitMetric waits until /metrics shows line.
func waitMetric(t *testing.T, ts *authtest.Server, line string) {
	t.Helper()
	var last string
	authtest.WaitFor(t, line, func() bool {
		resp, err := http.Get(ts.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		last = b.String()
		return strings.Contains(last, "\n"+line+"\n")
	})
}
