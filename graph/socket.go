package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/models"
)

// Close codes of the sockets on /query (graphql-transport-ws). The 44xx
// codes are the contract; graphql-ws's client retries none of
// them except 4403 (after its connectionParams ran again) and 4408, and
// retries 1001 and 1013 with back-off.
const (
	// CloseBadMessage: a message the protocol does not allow.
	CloseBadMessage = 4400
	// CloseSessionEnded: the session was revoked or the account disabled;
	// the client must not reconnect with it.
	CloseSessionEnded = 4401
	// CloseBadToken: connection_init carried no token, or an invalid or
	// expired one, or the socket's token expired without a refresh of its
	// session: refresh, then reconnect.
	CloseBadToken = 4403
	// CloseInitTimeout: no connection_init within SocketOptions.InitTimeout.
	CloseInitTimeout = 4408
	// CloseTooMany: too many sockets of one user, or operations running
	// on one socket.
	CloseTooMany = 4429
	// CloseGoingAway: the server is shutting down.
	CloseGoingAway = int(websocket.StatusGoingAway)
	// CloseTooBig: a message over SocketOptions.MaxMessageBytes.
	CloseTooBig = int(websocket.StatusMessageTooBig)
	// CloseTryLater: this replica is out of sync with the others (it
	// refuses every token, as over HTTP), or the socket fell so far behind
	// its events that some were dropped; the client reconnects later and
	// reads the state afresh.
	CloseTryLater = int(websocket.StatusTryAgainLater)
	// closeGone: the connection ended without a close frame.
	closeGone = int(websocket.StatusAbnormalClosure)
)

// wsProtocol is the one subprotocol served: graphql-transport-ws. The
// legacy subscriptions-transport-ws ("graphql-ws") is refused: it has no
// close codes of its own and clients of it would ignore ours.
const wsProtocol = "graphql-transport-ws"

// SocketOptions bound the websockets of /query.
type SocketOptions struct {
	// MaxPerUser bounds the sockets one user holds open on a replica
	// (AUTH_WS_MAX_SOCKETS_PER_USER); past it connection_init closes 4429.
	MaxPerUser int
	// MaxSubscriptions bounds the operations running at once on one
	// socket, subscriptions included (AUTH_WS_MAX_SUBSCRIPTIONS); one more
	// closes the socket with 4429. gqlgen runs every operation of a socket
	// on a goroutine of its own: queries and mutations count too, or one
	// socket could start any number at once.
	MaxSubscriptions int
	// MaxMessageBytes bounds a message from the client
	// (AUTH_WS_MAX_MESSAGE_BYTES); a larger one closes the socket, 1009.
	MaxMessageBytes int64
	// PingInterval is how often the server pings; a client that has not
	// answered within two intervals is disconnected (AUTH_WS_PING_INTERVAL).
	PingInterval time.Duration
	// InitTimeout is how long the server waits for connection_init (4408).
	InitTimeout time.Duration
	// OriginAllowed decides whether a browser page of this Origin may
	// open a socket; a request with no Origin is not a browser's.
	OriginAllowed func(origin string) bool
	// OnClose, when set, is told the code of every socket that closes.
	OnClose func(code int)
	// ClockPoll, when set, bounds how long a socket waits before looking
	// at the service's clock again: tests that move a settable clock on
	// need it, a real clock does not.
	ClockPoll time.Duration
}

// DefaultSocketOptions are the limits when no variable is set.
var DefaultSocketOptions = SocketOptions{
	MaxPerUser:       20,
	MaxSubscriptions: 10,
	MaxMessageBytes:  64 << 10,
	PingInterval:     25 * time.Second,
	InitTimeout:      10 * time.Second,
}

// Sockets are the open websockets of one handler: the count of each user's
// (MaxPerUser) and the way to close them all at shutdown.
type Sockets struct {
	svc     *auth.Service
	opts    SocketOptions
	mu      sync.Mutex
	open    map[*socket]struct{}
	perUser map[string]int
	closing bool
	// listening counts the sessionEvents subscriptions receiving events.
	listening atomic.Int64
}

// NewSockets returns the socket set of a handler over svc. Zero fields of
// opts take DefaultSocketOptions' values.
func NewSockets(svc *auth.Service, opts SocketOptions) *Sockets {
	d := DefaultSocketOptions
	if opts.MaxPerUser <= 0 {
		opts.MaxPerUser = d.MaxPerUser
	}
	if opts.MaxSubscriptions <= 0 {
		opts.MaxSubscriptions = d.MaxSubscriptions
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = d.MaxMessageBytes
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = d.PingInterval
	}
	if opts.InitTimeout <= 0 {
		opts.InitTimeout = d.InitTimeout
	}
	if opts.OriginAllowed == nil {
		opts.OriginAllowed = svc.OriginAllowed
	}
	return &Sockets{svc: svc, opts: opts, open: map[*socket]struct{}{}, perUser: map[string]int{}}
}

// Open is the number of sockets open now.
func (m *Sockets) Open() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.open)
}

// Listening is the number of sessionEvents subscriptions receiving events.
func (m *Sockets) Listening() int { return int(m.listening.Load()) }

// CloseAll closes every open socket with 1001 (going away) and refuses new
// ones: the server is shutting down. http.Server.Shutdown does not wait for
// hijacked connections, so without this they would be cut without a close
// frame when the process exits.
func (m *Sockets) CloseAll() {
	m.mu.Lock()
	m.closing = true
	open := make([]*socket, 0, len(m.open))
	for s := range m.open {
		open = append(open, s)
	}
	m.mu.Unlock()
	for _, s := range open {
		s.closeWith(CloseGoingAway, "server shutting down")
	}
}

// add registers a socket that is being accepted; false while shutting down.
func (m *Sockets) add(s *socket) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return false
	}
	m.open[s] = struct{}{}
	return true
}

// admit counts a socket of userID, unless the user has MaxPerUser already.
func (m *Sockets) admit(userID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.perUser[userID] >= m.opts.MaxPerUser {
		return false
	}
	m.perUser[userID]++
	return true
}

// remove forgets a socket that ended.
func (m *Sockets) remove(s *socket, userID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.open, s)
	if userID == "" {
		return
	}
	if m.perUser[userID]--; m.perUser[userID] <= 0 {
		delete(m.perUser, userID)
	}
}

// socketTransport serves the websocket upgrades of GET /query: gqlgen's
// websocket transport behind the checks it does not make (Origin, the
// subprotocol) and the socket's state in the context.
type socketTransport struct {
	m  *Sockets
	ws transport.Websocket
}

var _ graphql.Transport = socketTransport{}

func newSocketTransport(m *Sockets) socketTransport {
	limit := m.opts.MaxMessageBytes
	return socketTransport{m: m, ws: transport.Websocket{
		Implementation: socketAccept{inner: transport.CoderWebsocketImplementation{
			AcceptOptions: websocket.AcceptOptions{
				Subprotocols: []string{wsProtocol},
				// The Origin was checked by Do, against the allowed
				// origins, before the upgrade; coder's own check allows
				// only the request's Host, which a proxy may rewrite.
				InsecureSkipVerify: true,
			},
		}},
		InitFunc:         m.initFunc,
		PingPongInterval: m.opts.PingInterval,
		PayloadReadLimit: &limit,
		// InitTimeout stays 0: gqlgen closes a late connection_init with
		// 1002; the socket's own timer closes it with 4408 (see attach).
	}}
}

func (socketTransport) Supports(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func (t socketTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	// A page of another origin must not open a socket in the user's name:
	// the browser sends its Origin, and no CORS protects a websocket. A
	// request without Origin does not come from a browser page.
	if origin := r.Header.Get("Origin"); origin != "" && !t.m.opts.OriginAllowed(origin) {
		refuseUpgrade(w, r, exec, http.StatusForbidden, models.Forbidden, "this origin may not open a socket")
		return
	}
	if !offers(r, wsProtocol) {
		refuseUpgrade(w, r, exec, http.StatusBadRequest, models.BadRequest, "websockets on /query speak graphql-transport-ws only (Sec-WebSocket-Protocol)")
		return
	}
	// The server's read and write timeouts are for requests: a socket
	// lives on, watched by ping and pong.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	ctx, holder := t.m.svc.SocketContext(r)
	s := &socket{m: t.m, svc: t.m.svc, holder: holder, done: make(chan struct{}), wake: make(chan struct{}, 1), info: RequestInfoFrom(ctx)}
	// The upgrade's RequestInfo is the socket's one log line; the
	// operations run on the socket concurrently and fill none.
	ctx = WithRequestInfo(ctx, nil)
	// Whole before it is added: CloseAll may close it from then on, and
	// must find the context to cancel (the connection, not accepted yet,
	// is closed by attach).
	ctx, s.cancel = context.WithCancel(context.WithValue(ctx, socketKey{}, s))
	if !t.m.add(s) {
		s.cancel()
		refuseUpgrade(w, r, exec, http.StatusServiceUnavailable, models.ServiceUnavailable, "the server is shutting down")
		return
	}
	if testHookAdded != nil {
		testHookAdded(t.m)
	}
	defer s.end()
	t.ws.Do(w, r.WithContext(ctx), exec)
}

// testHookAdded, set by tests only, runs once a socket is added.
var testHookAdded func(*Sockets)

// offers reports whether the request offers subprotocol proto.
func offers(r *http.Request, proto string) bool {
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if strings.TrimSpace(p) == proto {
				return true
			}
		}
	}
	return false
}

// refuseUpgrade answers an upgrade it will not make, with a GraphQL error
// through the error presenter.
func refuseUpgrade(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, status int, code, msg string) {
	err := gqlerror.WrapIfUnwrapped(models.Errorf(code, "%s", msg))
	b, _ := json.Marshal(exec.DispatchError(r.Context(), gqlerror.List{err}))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// socketAccept accepts the upgrade with gqlgen's coder adapter and wraps
// the connection, so that the socket can close it with its own codes and
// count how it closed.
type socketAccept struct {
	inner transport.CoderWebsocketImplementation
}

func (a socketAccept) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	c, err := a.inner.Accept(w, r, opts)
	if err != nil {
		return nil, err
	}
	s := socketFrom(r.Context())
	conn := &socketConn{WebsocketConn: c, s: s}
	s.attach(conn)
	return conn, nil
}

// socketConn is the accepted connection as gqlgen sees it.
type socketConn struct {
	transport.WebsocketConn
	s *socket
}

// WriteClose closes with the first code asked for; gqlgen's own closes
// after the socket closed (its "terminated" 1000 when the context ends)
// change nothing. gqlgen closes a message it cannot read or does not
// expect with 1002 (protocol error): the contract's code for it is 4400,
// as graphql-ws's own server sends.
func (c *socketConn) WriteClose(code int, msg string) error {
	if code == int(websocket.StatusProtocolError) {
		code = CloseBadMessage
	}
	c.s.closeWith(code, msg)
	return nil
}

// NextReader notes how the connection ended when reading fails, and
// closes with 4400 on a message that is not one of the protocol's: gqlgen
// leaves a bad message after connection_init without a close code.
func (c *socketConn) NextReader() (int, io.Reader, error) {
	typ, rd, err := c.WebsocketConn.NextReader()
	if err != nil {
		c.s.readFailed(err)
		return typ, rd, err
	}
	b, err := io.ReadAll(rd) // the adapter has read the whole message already
	if err != nil {
		return typ, nil, err
	}
	var m struct{ Type string }
	if json.Unmarshal(b, &m) != nil || !clientMessages[m.Type] {
		c.s.closeWith(CloseBadMessage, "invalid message")
	}
	return typ, bytes.NewReader(b), nil
}

// clientMessages are the types of message a graphql-transport-ws client
// sends.
var clientMessages = map[string]bool{"connection_init": true, "ping": true, "pong": true, "subscribe": true, "complete": true}

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

// readFailed records how the peer or the network ended the socket.
func (s *socket) readFailed(err error) {
	code := closeGone
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig):
		code = CloseTooBig // coder closed it with 1009 already
	case errors.Is(err, transport.ErrWebsocketClosed):
		code = int(websocket.StatusNormalClosure)
	case websocket.CloseStatus(err) != -1:
		code = int(websocket.CloseStatus(err))
	}
	s.closed(code)
}

type socketKey struct{}

// socketFrom returns the socket an operation runs on, nil over HTTP.
func socketFrom(ctx context.Context) *socket {
	s, _ := ctx.Value(socketKey{}).(*socket)
	return s
}
