package graph

import (
	"context"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/models"
)

// tokenExpiring is the event type sent a minute before the socket's token
// expires (it is not recorded: it concerns one socket only).
const tokenExpiring = "TOKEN_EXPIRING"

// expiringNotice is how long before its token's expiry a socket warns.
const expiringNotice = time.Minute

// deliveryWait bounds how long a socket waits for its subscriptions to send
// the event that ends it (SESSION_REVOKED, ACCOUNT_DISABLED) before it
// closes: a client too slow to take one message does not hold it open.
const deliveryWait = 2 * time.Second

// syncPoll is how often a socket looks whether its replica has been out
// of sync past AUTH_SYNC_TIMEOUT (it then closes 1013, as connection_init
// would be refused).
const syncPoll = time.Second

// socket is one websocket of /query: its principal, the expiry of its
// token, its sessionEvents subscriptions and its watch on the user's
// events.
type socket struct {
	m      *Sockets
	svc    *auth.Service
	holder *auth.SocketPrincipal
	conn   *socketConn
	cancel context.CancelFunc
	done   chan struct{} // closed when the socket closes
	wake   chan struct{} // the expiry changed

	initTimer *time.Timer
	info      *RequestInfo // the upgrade request's, or nil

	mu        sync.Mutex
	code      int    // the close code, once closing
	reason    string // the close reason, once closing
	userID    string // set at init, counted in Sockets.perUser
	expiry    time.Time
	warned    bool // TOKEN_EXPIRING sent for this expiry
	nops      int  // operations running (SocketOptions.MaxSubscriptions)
	listeners map[*liveListener]struct{}
}

// liveListener is one sessionEvents subscription of a socket.
type liveListener struct {
	c chan liveItem
}

// liveItem is one event for a listener. For the event that ends the
// socket, the listener closes delivered once it has been sent.
type liveItem struct {
	e         models.LiveEvent
	terminal  bool
	delivered chan struct{}
}

// attach starts the wait for connection_init, or closes the connection
// if the socket was closed (by CloseAll) before it was accepted.
func (s *socket) attach(c *socketConn) {
	s.mu.Lock()
	s.conn = c
	code, reason := s.code, s.reason
	s.mu.Unlock()
	if code != 0 {
		_ = c.WebsocketConn.WriteClose(code, reason)
		return
	}
	s.initTimer = time.AfterFunc(s.m.opts.InitTimeout, func() {
		s.closeWith(CloseInitTimeout, "connection initialisation timeout")
	})
}

// initFunc authenticates connection_init's token exactly as a request's
// (auth.Service.Authenticate, then the account's state as @auth checks
// it), and starts the socket's watch of the user's events.
func (m *Sockets) initFunc(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	s := socketFrom(ctx)
	if s.initTimer == nil || !s.initTimer.Stop() {
		return refuseInit(ctx, CloseInitTimeout, "connection initialisation timeout")
	}
	// The token comes from connection_init alone, never from the URL (it
	// would be logged by every proxy) nor a cookie (any page could use it).
	token, ok := auth.BearerToken(auth.InitAuthorization(payload))
	if !ok {
		return refuseInit(ctx, CloseBadToken, "connection_init must carry {\"authorization\": \"Bearer <access token>\"}")
	}
	p, err := m.svc.Authenticate(ctx, token)
	if err == nil {
		s.holder.Set(p)
		err = m.svc.Authorize(ctx, auth.Rule{})
	}
	if err != nil {
		s.holder.Set(nil)
		switch auth.SocketRefusal(err) {
		case "revoked":
			return refuseInit(ctx, CloseSessionEnded, "session ended")
		case "unavailable":
			return refuseInit(ctx, CloseTryLater, "temporarily unavailable; retry shortly")
		}
		return refuseInit(ctx, CloseBadToken, "invalid or expired token")
	}
	if !m.admit(p.UserID) {
		s.holder.Set(nil)
		return refuseInit(ctx, CloseTooMany, "too many sockets of this user")
	}
	s.mu.Lock()
	s.userID, s.expiry = p.UserID, p.ExpiresAt
	s.mu.Unlock()
	if s.info != nil {
		// Read only once the upgrade's handler has returned; initFunc runs
		// on its goroutine.
		s.info.UserID = p.UserID
	}
	sub := m.svc.Live().Subscribe(p.UserID)
	// A revocation applied between Authenticate and Subscribe was not
	// seen by the subscription: look again now that it runs.
	if _, err := auth.PrincipalFrom(ctx); err != nil {
		sub.Cancel()
		return refuseInit(ctx, CloseSessionEnded, "session ended")
	}
	go s.watch(sub)
	return ctx, nil, nil
}

// refuseInit is InitFunc's refusal, closing with code.
func refuseInit(ctx context.Context, code int, reason string) (context.Context, *transport.InitPayload, error) {
	ctx = transport.WithWebsocketCloseCode(ctx, code)
	ctx = transport.AppendCloseReason(ctx, reason)
	why := models.ReasonTokenInvalid
	if code == CloseSessionEnded {
		why = models.ReasonTokenRevoked
	}
	return ctx, nil, models.Unauthenticatedf(why, "%s", reason)
}

// closeWith closes the socket with code, once; later calls do nothing.
func (s *socket) closeWith(code int, reason string) {
	if !s.closedWith(code, reason) {
		return
	}
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	if conn != nil {
		_ = conn.WebsocketConn.WriteClose(code, reason)
	}
	s.cancel()
}

// closed records that the socket closes with code; false if it had already.
func (s *socket) closed(code int) bool { return s.closedWith(code, "") }

// closedWith is closed, recording the reason sent with code.
func (s *socket) closedWith(code int, reason string) bool {
	s.mu.Lock()
	if s.code != 0 {
		s.mu.Unlock()
		return false
	}
	s.code, s.reason = code, reason
	s.mu.Unlock()
	close(s.done)
	if s.m.opts.OnClose != nil {
		s.m.opts.OnClose(code)
	}
	return true
}

// end forgets the socket once gqlgen is done with it.
func (s *socket) end() {
	s.closed(closeGone) // a socket gqlgen left without a close: count it
	if s.initTimer != nil {
		s.initTimer.Stop()
	}
	s.cancel()
	s.mu.Lock()
	userID := s.userID
	s.mu.Unlock()
	s.m.remove(s, userID)
}

// watch follows the user's events and the token's expiry until the
// socket closes. It watches per socket, not per subscription: a socket
// with no subscription running closes on a revocation too.
func (s *socket) watch(sub *auth.LiveSub) {
	defer sub.Cancel()
	timer := time.NewTimer(s.untilDue())
	defer timer.Stop()
	sync := time.NewTicker(syncPoll)
	defer sync.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-sync.C:
			// Out of sync, this replica cannot know what other replicas
			// revoked: the socket's operations are refused already (see
			// auth.SocketPrincipal), and its events may be missing. The
			// client reconnects, to a replica in sync or later.
			if s.svc.SyncRefusing() {
				s.closeWith(CloseTryLater, "temporarily unavailable; retry shortly")
				return
			}
			continue
		case e, ok := <-sub.C:
			if !ok {
				// Dropped for lagging (or the hub closed): events were lost,
				// so the client must reconnect and read its state afresh.
				s.closeWith(CloseTryLater, "too far behind: events were dropped")
				return
			}
			if s.deliver(e) {
				return
			}
		case <-timer.C:
			if s.checkExpiry() {
				return
			}
		case <-s.wake:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(s.untilDue())
	}
}

// untilDue is how long until the socket must look at its token's expiry:
// the warning a minute before, then the end of the token's use.
func (s *socket) untilDue() time.Duration {
	s.mu.Lock()
	due := tokenEnd(s.expiry)
	if !s.warned {
		due = s.expiry.Add(-expiringNotice)
	}
	s.mu.Unlock()
	d := max(due.Sub(s.svc.Now()), 0)
	if poll := s.m.opts.ClockPoll; poll > 0 && d > poll {
		d = poll
	}
	return d
}

// tokenEnd is when a token expiring at exp stops being accepted: with the
// leeway for clocks that HTTP requests get too (auth.Authenticate), so
// that a socket lasts exactly as long as its token would over HTTP.
func tokenEnd(exp time.Time) time.Time { return exp.Add(auth.MaxClockSkew) }

// checkExpiry warns of the token's expiry a minute before it, and at it
// lets the socket live on if its session was refreshed (the session's
// access expiry moved past the socket's), and closes it 4403 if not. It
// reports whether the socket closed.
func (s *socket) checkExpiry() bool {
	now := s.svc.Now()
	s.mu.Lock()
	exp, warned := s.expiry, s.warned
	s.mu.Unlock()
	end := tokenEnd(exp)
	if now.Before(exp.Add(-expiringNotice)) || (warned && now.Before(end)) {
		return false
	}
	p := s.holder.Get()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	next, err := s.svc.SessionAccessExpiry(ctx, p.UserID, p.SessionID)
	switch {
	case err != nil && auth.SocketRefusal(err) == "revoked":
		s.closeWith(CloseSessionEnded, "session ended")
		return true
	case err != nil:
		s.closeWith(CloseTryLater, "temporarily unavailable; retry shortly")
		return true
	case next.After(exp):
		// Refreshed (over HTTP, or authenticateSocket on another socket):
		// the socket lives as long as its session, for its subscriptions.
		// Its principal keeps the expiry of the token the socket proved:
		// past it, queries and mutations are refused (see socketLimits)
		// and exchangeToken is capped at it.
		s.extend(next)
		return false
	case !warned && now.Before(end):
		// A warning at or past the expiry (the clock jumped) would only
		// arrive with the close, or be lost in it.
		s.mu.Lock()
		s.warned = true
		s.mu.Unlock()
		return s.fanOut(liveItem{e: models.NewLiveEvent(tokenExpiring, p.UserID, p.SessionID, nil)})
	}
	s.closeWith(CloseBadToken, "token expired")
	return true
}

// rebind makes p, a token the socket proved (authenticateSocket), its
// principal, and the socket lives until p's expiry.
func (s *socket) rebind(p *auth.Principal) {
	s.holder.Set(p)
	s.extend(p.ExpiresAt)
}

// extend lets the socket live until exp. Its principal, and so the token
// it proved, is unchanged: a refresh of the session over HTTP keeps the
// socket's subscriptions going, it does not give the socket a new token.
func (s *socket) extend(exp time.Time) {
	s.mu.Lock()
	s.expiry, s.warned = exp, false
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// tokenExpired reports whether the token the socket itself proved (at
// connection_init or its latest authenticateSocket) is past its expiry.
func (s *socket) tokenExpired() bool {
	p := s.holder.Get()
	return p != nil && s.svc.Now().After(tokenEnd(p.ExpiresAt))
}

// deliver hands a user's event to the socket's sessionEvents
// subscriptions. After the event that ends the socket's session (its
// SESSION_REVOKED, or ACCOUNT_DISABLED) has been sent, the socket closes
// with 4401. It reports whether the socket closed.
func (s *socket) deliver(e models.LiveEvent) bool {
	p := s.holder.Get()
	terminal := e.Type == models.LiveAccountDisabled ||
		(e.Type == models.LiveSessionRevoked && (e.SessionID == nil || p == nil || *e.SessionID == p.SessionID))
	if !terminal {
		return s.fanOut(liveItem{e: e})
	}
	it := liveItem{e: e, terminal: true}
	var waits []chan struct{}
	s.mu.Lock()
	for l := range s.listeners {
		d := make(chan struct{})
		it.delivered = d
		select {
		case l.c <- it:
			waits = append(waits, d)
		default: // too far behind to be waited for
		}
	}
	s.mu.Unlock()
	deadline := time.NewTimer(deliveryWait)
	defer deadline.Stop()
	for _, d := range waits {
		select {
		case <-d:
		case <-deadline.C:
		case <-s.done:
		}
	}
	s.closeWith(CloseSessionEnded, "session ended")
	return true
}

// fanOut gives it to every listener; one too far behind closes the socket
// (1013), and fanOut reports so.
func (s *socket) fanOut(it liveItem) bool {
	s.mu.Lock()
	lagging := false
	for l := range s.listeners {
		select {
		case l.c <- it:
		default:
			lagging = true
		}
	}
	s.mu.Unlock()
	if lagging {
		s.closeWith(CloseTryLater, "too far behind: events were dropped")
	}
	return lagging
}

// listen adds a sessionEvents listener.
func (s *socket) listen() *liveListener {
	l := &liveListener{c: make(chan liveItem, 16)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listeners == nil {
		s.listeners = map[*liveListener]struct{}{}
	}
	s.listeners[l] = struct{}{}
	s.m.listening.Add(1)
	return l
}

// unlisten removes a listener.
func (s *socket) unlisten(l *liveListener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.listeners[l]; ok {
		delete(s.listeners, l)
		s.m.listening.Add(-1)
	}
}

// beginOperation counts an operation starting, unless the socket runs
// MaxSubscriptions already.
func (s *socket) beginOperation() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nops >= s.m.opts.MaxSubscriptions {
		return false
	}
	s.nops++
	return true
}

// endOperation counts an operation that ended.
func (s *socket) endOperation() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nops--
}
