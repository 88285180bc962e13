package authz

import (
	"context"
	"errors"

	"github.com/99designs/gqlgen/graphql/handler/transport"
)

// Socket close codes: authql's (see its README, "Subscriptions").
const (
	// CloseSessionEnded: the session was revoked or the account disabled;
	// clients must not reconnect with the same credentials.
	CloseSessionEnded = 4401
	// CloseBadToken: a missing, invalid or expired token; the client
	// refreshes and reconnects.
	CloseBadToken = 4403
	// CloseTryAgainLater (RFC 6455's 1013): the feed is down, nothing
	// about the token is known; the client retries later.
	CloseTryAgainLater = 1013
)

// InitFunc is gqlgen's websocket InitFunc: it reads the access token from
// connection_init's payload ("authorization": "Bearer …") and nowhere else
// (a token in a URL ends up in logs), verifies it as Middleware does, and
// refuses the socket with CloseBadToken, CloseSessionEnded or
// CloseTryAgainLater. The socket's context carries the principal
// (PrincipalFrom) and is cancelled when the feed revokes the session or
// the token expires. Use it through Websocket, which then closes the
// socket with 4401 or 4403; set alone on a transport.Websocket, the socket
// closes with gqlgen's 1000 instead. @auth on a subscription field is
// checked at subscribe; a resolver may call Authorize before each event.
func (v *Verifier) InitFunc(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	h := payload.GetString("authorization")
	if h == "" {
		h = payload.GetString("Authorization")
	}
	p, aerr := (*Principal)(nil), errNoToken
	if token, ok := bearerToken(h); ok {
		p, aerr = v.verify(ctx, token)
	} else if h != "" {
		aerr = errMalformed
	}
	if aerr != nil {
		code := CloseBadToken
		switch {
		case aerr.reason == ReasonTokenRevoked:
			code = CloseSessionEnded
		case aerr.code == CodeServiceUnavailable:
			code = CloseTryAgainLater
		}
		ctx = transport.WithWebsocketCloseCode(ctx, code)
		ctx = transport.AppendCloseReason(ctx, aerr.msg)
		return ctx, nil, errors.New(aerr.msg)
	}
	ctx = context.WithValue(ctx, ctxKey{}, authResult{p: p})
	ctx, cancel := context.WithCancelCause(ctx)
	v.watchSocket(ctx, cancel, p)
	return ctx, nil, nil
}

var (
	errSessionRevoked = errors.New("session revoked")
	errSocketExpired  = errors.New("the socket's token expired")
)

// WatchSession returns a channel closed when the feed revokes the session
// (at once when it already has), and a function ending the watch. A
// transport other than gqlgen's closes its socket on it with
// CloseSessionEnded.
func (v *Verifier) WatchSession(sessionID string) (<-chan struct{}, func()) {
	return v.revs.watch(sessionID)
}
