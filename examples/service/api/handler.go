package api

import (
	"context"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/authql/authql/authz"
)

// maxTicks bounds a ticks subscription.
const maxTicks = 60

// NewHandler is the service's /query: POST and graphql-transport-ws
// subscriptions, with @auth enforced by v. Wrap it in v.Middleware, which
// puts the caller in each request's context; sockets get theirs from
// connection_init (v.Websocket), and close with 4401 when the session is
// revoked on authql.
func NewHandler(v *authz.Verifier) http.Handler {
	cfg := Config{Resolvers: &Resolver{Verifier: v}}
	cfg.Directives.Auth = v.Directive
	srv := handler.New(NewExecutableSchema(cfg))
	srv.AddTransport(transport.POST{})
	srv.AddTransport(v.Websocket(transport.Websocket{
		KeepAlivePingInterval: 15 * time.Second,
		// authql's limit: a socket that has not sent connection_init
		// within 10 s is closed.
		InitTimeout: 10 * time.Second,
	}))
	return srv
}

// ticks sends count ticks, one a second, checking the caller again before
// each: a session revoked or a token expired ends the subscription.
func (r *Resolver) ticks(ctx context.Context, count int) <-chan int {
	ch := make(chan int)
	go func() {
		defer close(ch)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for i := 1; i <= count; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if r.Verifier.Authorize(ctx, authz.Rule{}) != nil {
				return
			}
			select {
			case ch <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
