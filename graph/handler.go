package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/graph/model"
	"github.com/authql/authql/models"
)

// Options bound what one GraphQL document may ask for.
type Options struct {
	// Introspection allows __schema and __type queries.
	Introspection bool
	// MaxDepth bounds how deeply fields nest (0: no limit).
	MaxDepth int
	// MaxComplexity bounds the complexity of an operation: each field
	// counts one plus its selections, each fragment spread in full
	// (0: no limit).
	MaxComplexity int
}

// DefaultOptions allow every document this schema's clients need with room
// to spare: its own operations nest 3 deep; the playground's introspection
// query nests 15 deep (with graphql-js's deepest type references) and has
// complexity 230.
var DefaultOptions = Options{Introspection: true, MaxDepth: 20, MaxComplexity: 1000}

// NewHandler returns the GraphQL HTTP handler (POST only) over svc.
// Requests must pass through svc.Middleware first.
func NewHandler(svc *auth.Service, log *slog.Logger, opts Options) *handler.Server {
	cfg := Config{Resolvers: &Resolver{Auth: svc}}
	cfg.Directives.Auth = authDirective(svc)
	srv := handler.New(NewExecutableSchema(cfg))
	// POST only: a GET query could be triggered cross-site by a link or an
	// image, and every operation here is either a mutation or private.
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(documentLimits{maxDepth: opts.MaxDepth, maxComplexity: opts.MaxComplexity, introspection: opts.Introspection})
	if opts.Introspection {
		srv.Use(extension.Introspection{})
	}
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](100)})
	srv.SetErrorPresenter(errorPresenter(log))
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		return errors.New("internal error")
	})
	return srv
}

// authDirective implements @auth: it lets the field resolve only when the
// request's principal satisfies the rule; otherwise the field is null with
// an UNAUTHENTICATED or FORBIDDEN error at its path.
func authDirective(svc *auth.Service) func(ctx context.Context, obj any, next graphql.Resolver, role, permission *string) (any, error) {
	return func(ctx context.Context, _ any, next graphql.Resolver, role, permission *string) (any, error) {
		var rule auth.Rule
		if role != nil {
			rule.Role = *role
		}
		if permission != nil {
			rule.Permission = *permission
		}
		if err := svc.Authorize(ctx, rule); err != nil {
			return nil, err
		}
		return next(ctx)
	}
}

// errorPresenter is the one place errors become GraphQL errors. A coded
// *models.Error shows its message and code; gqlgen's own errors (parse and
// validation) keep theirs; anything else is logged with its cause and shown
// only as "internal error", so nothing internal leaks.
func errorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gerr := graphql.DefaultErrorPresenter(ctx, err)
		var coded *models.Error
		switch {
		case errors.As(err, &coded):
			gerr.Message = coded.Message
			gerr.Extensions = map[string]any{"code": coded.Code}
			if coded.RetryAfter > 0 {
				gerr.Extensions["retryAfter"] = coded.RetryAfterSeconds()
			}
		case gerr.Extensions["code"] != nil:
			// A parse, validation or argument error from gqlgen.
		default:
			log.ErrorContext(ctx, "internal error", "path", gerr.Path.String(), "err", err)
			gerr.Message = "internal error"
			gerr.Extensions = map[string]any{"code": models.Internal}
		}
		return gerr
	}
}

// payload turns a grant into the GraphQL AuthPayload.
func payload(g *auth.Grant, err error) (*model.AuthPayload, error) {
	if err != nil {
		return nil, err
	}
	return &model.AuthPayload{
		AccessToken:  g.AccessToken,
		RefreshToken: g.RefreshToken,
		TokenType:    "Bearer",
		ExpiresIn:    g.ExpiresIn,
		User:         g.User,
	}, nil
}
