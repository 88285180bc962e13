package authz

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
)

// Websocket returns gqlgen's websocket transport ws with InitFunc set to
// v.InitFunc, closing each socket itself with authql's codes:
// CloseSessionEnded (4401) as soon as the feed revokes its session, and
// CloseBadToken (4403) when its token expires (the client refreshes and
// reconnects: authz has no authenticateSocket). gqlgen's transport alone
// can only close a socket from outside with 1000, so this wraps the
// connection it accepts.
func (v *Verifier) Websocket(ws transport.Websocket) graphql.Transport {
	ws.InitFunc = v.InitFunc
	inner := ws.Implementation
	if inner == nil {
		inner = transport.CoderWebsocketImplementation{}
	}
	ws.Implementation = socketAccept{inner: inner}
	return socketTransport{ws}
}

type holderKey struct{}

// socketHolder is where a socket's connection is found by InitFunc's
// watch: the request's context carries it from Do to Accept and InitFunc.
type socketHolder struct {
	mu   sync.Mutex
	conn *socketConn
}

// closeWith closes the socket with code, if it was accepted.
func (h *socketHolder) closeWith(code int, reason string) {
	h.mu.Lock()
	c := h.conn
	h.mu.Unlock()
	if c != nil {
		c.WriteClose(code, reason)
	}
}

type socketTransport struct{ transport.Websocket }

func (t socketTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ctx := context.WithValue(r.Context(), holderKey{}, &socketHolder{})
	t.Websocket.Do(w, r.WithContext(ctx), exec)
}

type socketAccept struct {
	inner transport.WebsocketImplementation
}

func (a socketAccept) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	c, err := a.inner.Accept(w, r, opts)
	if err != nil {
		return nil, err
	}
	sc := &socketConn{WebsocketConn: c}
	if h, ok := r.Context().Value(holderKey{}).(*socketHolder); ok {
		h.mu.Lock()
		h.conn = sc
		h.mu.Unlock()
	}
	return sc, nil
}

// socketConn closes with the first code asked for: gqlgen's own close
// (1000 "terminated" when the socket's context ends) after authz's 4401
// must not replace it.
type socketConn struct {
	transport.WebsocketConn
	once sync.Once
}

func (c *socketConn) WriteClose(code int, msg string) error {
	var err error
	c.once.Do(func() { err = c.WebsocketConn.WriteClose(code, msg) })
	return err
}

func (c *socketConn) SetReadLimit(n int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(n)
	}
}

func (c *socketConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

// watchSocket ends the socket of p when its session is revoked (4401) or
// its token expires (4403), until ctx ends; cancel ends the socket's
// context (the closing for a transport that is not v.Websocket's).
func (v *Verifier) watchSocket(ctx context.Context, cancel context.CancelCauseFunc, p *Principal) {
	h, _ := ctx.Value(holderKey{}).(*socketHolder)
	ended, stop := v.revs.watch(p.SessionID)
	expiry := time.NewTimer(p.ExpiresAt.Add(MaxClockSkew).Sub(v.cfg.Now()))
	go func() {
		defer stop()
		defer expiry.Stop()
		select {
		case <-ended:
			if h != nil {
				h.closeWith(CloseSessionEnded, "session revoked")
			}
			cancel(errSessionRevoked)
		case <-expiry.C:
			if h != nil {
				h.closeWith(CloseBadToken, "token expired")
			}
			cancel(errSocketExpired)
		case <-ctx.Done():
		}
	}()
}
