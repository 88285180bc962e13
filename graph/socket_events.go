package graph

import (
	"context"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/graph/model"
	"github.com/authql/authql/models"
)

// errSocketOnly answers the socket's own operations over HTTP.
func errSocketOnly(field string) error {
	return models.Errorf(models.BadRequest, "%s runs over a websocket only (graphql-transport-ws on /query)", field)
}

// sessionEvents is the resolver of Subscription.sessionEvents: the events
// of the caller's account, from its socket's watch (see socket.deliver).
// Before each event the field's @auth is checked again with the socket's
// current principal, so a subscription outlives no account change that
// would refuse it; the event that ends the socket is sent regardless, as
// it is the news of that very change.
func sessionEvents(ctx context.Context, svc *auth.Service) (<-chan *model.SessionEvent, error) {
	s := socketFrom(ctx)
	if s == nil {
		return nil, errSocketOnly("sessionEvents")
	}
	l := s.listen()
	out := make(chan *model.SessionEvent)
	go func() {
		defer s.unlisten(l)
		for {
			var it liveItem
			select {
			case <-ctx.Done():
				close(out)
				return
			case it = <-l.c:
			}
			if !it.terminal && svc.Authorize(ctx, auth.Rule{}) != nil {
				close(out)
				return
			}
			select {
			case out <- sessionEvent(it.e, s.holder.Get()):
			case <-ctx.Done():
				close(out)
				return
			}
			if it.terminal {
				finishDelivery(ctx, out, it.delivered)
				return
			}
		}
	}()
	return out, nil
}

// finishDelivery ends a subscription after its last event: gqlgen cancels
// the subscription's context once it has written that event and the
// subscription's complete, and only then may the socket close.
func finishDelivery(ctx context.Context, out chan *model.SessionEvent, delivered chan struct{}) {
	close(out)
	t := time.NewTimer(deliveryWait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	close(delivered)
}

// sessionEvent is the GraphQL form of e for the socket of principal p.
func sessionEvent(e models.LiveEvent, p *auth.Principal) *model.SessionEvent {
	ev := &model.SessionEvent{Type: model.SessionEventType(e.Type), At: e.At, SessionID: e.SessionID}
	if e.SessionID != nil && p != nil {
		ev.Current = *e.SessionID == p.SessionID
	}
	if e.Type == models.LiveRolesChanged {
		ev.Roles = e.RoleList()
	}
	return ev
}

// authenticateSocket is the resolver of Mutation.authenticateSocket: the
// socket goes on with accessToken, a token of the same user, and is bound
// to its session and expiry.
func authenticateSocket(ctx context.Context, svc *auth.Service, accessToken string) (*model.SocketAuth, error) {
	s := socketFrom(ctx)
	if s == nil {
		return nil, errSocketOnly("authenticateSocket")
	}
	p, err := svc.Authenticate(ctx, accessToken)
	if err != nil {
		return nil, err
	}
	// Another user's token would turn this socket, and the subscriptions
	// running on it, into theirs: a new user needs a new socket.
	if cur := s.holder.Get(); cur == nil || cur.UserID != p.UserID {
		return nil, models.Errorf(models.Forbidden, "the token is another user's: open a new socket for them")
	}
	s.rebind(p)
	return &model.SocketAuth{SessionID: p.SessionID, ExpiresAt: p.ExpiresAt}, nil
}

// socketLimits bounds the operations running at once on one socket,
// subscriptions, queries and mutations together
// (SocketOptions.MaxSubscriptions); one more closes the socket with 4429.
// It also refuses a socket's new operations past its token.
type socketLimits struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
} = socketLimits{}

func (socketLimits) ExtensionName() string                          { return "SocketLimits" }
func (socketLimits) Validate(schema graphql.ExecutableSchema) error { return nil }

func (socketLimits) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	s := socketFrom(ctx)
	oc := graphql.GetOperationContext(ctx)
	if s == nil || oc.Operation == nil {
		return next(ctx)
	}
	// A socket lives as long as its session, refreshed over HTTP or not;
	// the token it proved does not. A stolen token must not act past its
	// exp through a socket the victim's refreshes keep alive: once it
	// expired, the subscriptions running go on, and of new operations
	// only authenticateSocket (with a token of now) runs; a new
	// subscription (auditEvents, say) is refused too.
	if s.tokenExpired() && !onlyAuthenticateSocket(oc.Operation) {
		return refuse(models.Unauthenticatedf(models.ReasonTokenExpired, "the socket's token expired: send a fresh one with authenticateSocket"))
	}
	// gqlgen runs each operation of a socket on a goroutine of its own and
	// reads its handler until nil: counted until then.
	if !s.beginOperation() {
		s.closeWith(CloseTooMany, "too many operations on this socket")
		return refuse(models.Errorf(models.RateLimited, "too many operations on this socket"))
	}
	h := next(ctx)
	var once sync.Once
	return func(ctx context.Context) *graphql.Response {
		r := h(ctx)
		if r == nil {
			once.Do(s.endOperation)
		}
		return r
	}
}

// onlyAuthenticateSocket reports whether op selects authenticateSocket
// (and __typename) alone.
func onlyAuthenticateSocket(op *ast.OperationDefinition) bool {
	if op.Operation != ast.Mutation || len(op.SelectionSet) == 0 {
		return false
	}
	for _, sel := range op.SelectionSet {
		f, ok := sel.(*ast.Field)
		if !ok || (f.Name != "authenticateSocket" && f.Name != "__typename") {
			return false
		}
	}
	return true
}

// refuse answers an operation with e alone, as the error presenter would.
func refuse(e *models.Error) graphql.ResponseHandler {
	err := gqlerror.Errorf("%s", e.Message)
	err.Extensions = map[string]any{"code": e.Code}
	for k, v := range e.Extensions {
		err.Extensions[k] = v
	}
	return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{err}})
}
