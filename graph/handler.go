package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
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
	// counts one plus its selections' complexity times the rows it may
	// return (a list's page size: users(first: 500) counts 500 times its
	// selection), each fragment spread in full (0: no limit).
	MaxComplexity int
	// MaxSessions is the most sessions a user holds (AUTH_MAX_SESSIONS),
	// hence the rows mySessions may return (0: DefaultMaxSessions).
	MaxSessions int
	// NoSuggestions leaves "Did you mean ...?" out of validation errors
	// (AUTH_ENV=production): they name fields and types of the schema that
	// disabled introspection hides.
	NoSuggestions bool
	// DocumentCache keeps the documents that passed every limit (nil: one
	// of DefaultDocumentCacheBytes).
	DocumentCache *DocumentCache
	// Sockets, when set, serves subscriptions over websockets (GET /query
	// upgraded, graphql-transport-ws); nil: POST only.
	Sockets *Sockets
}

// DefaultOptions allow every document this schema's clients need with room
// to spare: its own operations nest 3 deep; the playground's introspection
// query nests 15 deep (with graphql-js's deepest type references) and has
// complexity 230.
//
// The complexity limit is set by the largest page the contract allows with
// every scalar field of its rows: auditLog(first: 500) with the 12 scalars
// of AuditEvent is 1 + 500 × 12 = 6,001 (an admin's users(first: 500) with
// the 9 of User is 4,501; mySessions with the 10 of Session, 1 + 50 × 10
// = 501; a page of users with their mfa counts 17 more per user for the
// factors and passkeys its resolver reads, so 300 fit and 500 do not).
// 6,500 lets the largest through with room for a few more fields,
// and refuses a few dozen aliased lists: 24 aliased users(first: 500)
// { id } are 24 × 501 = 12,024, 24 default pages of auditLog with every
// scalar 24 × 601 = 14,424.
var DefaultOptions = Options{Introspection: true, MaxDepth: 20, MaxComplexity: 6500}

// NewHandler returns the GraphQL HTTP handler over svc: POST, and the
// websockets of opts.Sockets.
// Requests must pass through svc.Middleware first. It fills the
// RequestInfo of the request's context, when there is one.
func NewHandler(svc *auth.Service, log *slog.Logger, opts Options) *handler.Server {
	cfg := Config{Resolvers: &Resolver{Auth: svc}}
	cfg.Directives.Auth = authDirective(svc)
	es := NewExecutableSchema(cfg)
	srv := handler.New(es)
	// POST only: a GET query could be triggered cross-site by a link or an
	// image, and every operation here is either a mutation or private.
	srv.AddTransport(utf8Body{})
	if opts.Sockets != nil {
		srv.AddTransport(newSocketTransport(opts.Sockets))
	}
	srv.AddTransport(notGraphQL{})
	docs := opts.DocumentCache
	if docs == nil {
		docs = NewDocumentCache(DefaultDocumentCacheBytes)
	}
	maxSessions := opts.MaxSessions
	if maxSessions <= 0 {
		maxSessions = DefaultMaxSessions
	}
	gate := &documentGate{
		schema:        es.Schema(),
		maxDepth:      opts.MaxDepth,
		maxComplexity: opts.MaxComplexity,
		maxSessions:   maxSessions,
		introspection: opts.Introspection,
		docs:          docs,
		apq:           &persistedQueries{lru: newSizedLRU[string](persistedQueriesBytes)},
	}
	srv.SetQueryCache(docs)
	srv.SetParserTokenLimit(ParserTokenLimit)
	srv.SetDisableSuggestion(opts.NoSuggestions)
	srv.SetValidationRulesFn(validationRules(!opts.NoSuggestions))
	// The order matters: extensions' hooks run in the order they are
	// added. observe sees the response as sent (after the gate has capped
	// its errors); the persisted-query extension puts the document of a
	// hash in the request before the gate measures it; the gate's check
	// after validation comes last, so that a document it keeps has passed
	// every other.
	srv.Use(observe{})
	srv.Use(extension.AutomaticPersistedQuery{Cache: gate.apq})
	// Before the gate: a document refused for its bytes is not kept.
	srv.Use(inputBytes{})
	if opts.Introspection {
		srv.Use(extension.Introspection{})
	}
	srv.Use(gate)
	if opts.Sockets != nil {
		srv.Use(socketLimits{})
	}
	srv.SetErrorPresenter(errorPresenter(log))
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		return errors.New("internal error")
	})
	return srv
}

// authDirective implements @auth: it lets the field resolve only when the
// request's principal satisfies the rule; otherwise the field is null with
// an UNAUTHENTICATED, FORBIDDEN or INSUFFICIENT_USER_AUTHENTICATION error
// at its path.
func authDirective(svc *auth.Service) func(ctx context.Context, obj any, next graphql.Resolver, role, permission *string, aal, maxAge *int) (any, error) {
	return func(ctx context.Context, _ any, next graphql.Resolver, role, permission *string, aal, maxAge *int) (any, error) {
		var rule auth.Rule
		if role != nil {
			rule.Role = *role
		}
		if permission != nil {
			rule.Permission = *permission
		}
		if aal != nil {
			rule.AAL = *aal
		}
		if maxAge != nil {
			rule.MaxAge = time.Duration(*maxAge) * time.Second
		}
		if err := svc.Authorize(ctx, rule); err != nil {
			return nil, err
		}
		return next(ctx)
	}
}

// errorPresenter is the one place errors become GraphQL errors. A coded
// *models.Error shows its message and code, and so does a database outage
// (SERVICE_UNAVAILABLE, see models.Unavailable); gqlgen's own errors (parse and
// validation) keep theirs; anything else is logged with its cause and shown
// only as "internal error", so nothing internal leaks.
func errorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	var outage outageLog
	return func(ctx context.Context, err error) *gqlerror.Error {
		gerr := graphql.DefaultErrorPresenter(ctx, err)
		var coded *models.Error
		switch {
		case errors.As(err, &coded):
			gerr.Message = coded.Message
			gerr.Extensions = map[string]any{"code": coded.Code}
			for k, v := range coded.Extensions {
				gerr.Extensions[k] = v
			}
			if coded.RetryAfter > 0 {
				gerr.Extensions["retryAfter"] = coded.RetryAfterSeconds()
			}
			if coded.Code == models.Unauthenticated && gerr.Extensions["reason"] == nil {
				// Clients refresh only on TOKEN_EXPIRED and sign out on the
				// other reasons; an UNAUTHENTICATED without one would leave
				// them guessing (Apollo's usual link refreshed after a wrong
				// password). TestUnauthenticatedHasReason keeps the code
				// from reaching this; should it, the answer still has a
				// reason, the safe one (sign in again), and the log says so.
				log.ErrorContext(ctx, "UNAUTHENTICATED without a reason", "path", gerr.Path.String(), "err", err)
				gerr.Extensions["reason"] = models.ReasonTokenInvalid
			}
		case gerr.Extensions["code"] != nil:
			// A parse, validation or argument error from gqlgen.
		case refusedRequest(err, gerr):
			// gqlgen refused the request before running it: a body that is
			// not a JSON GraphQL request, or a bad persisted-query
			// extension. The client's fault, so not logged as ours.
			gerr.Extensions = map[string]any{"code": models.BadRequest}
			if !graphql.HasOperationContext(ctx) {
				// The body could not be read or decoded. gqlgen's message
				// quotes the whole body: sent back it doubles the response,
				// and logged it would write the password of a garbled
				// login into the log.
				gerr.Message = "the request body is not a JSON GraphQL request"
			}
		case models.Unavailable(err):
			// The database is down or cannot write: SERVICE_UNAVAILABLE
			// with retryAfter, so that clients retry rather than report a
			// bug. The cause is logged here, once; never sent.
			if n, ok := outage.due(time.Now()); ok {
				log.WarnContext(ctx, "database unavailable", "path", gerr.Path.String(), "err", err, "since_last_line", n)
			}
			gerr.Message = models.ErrUnavailable.Message
			gerr.Extensions = map[string]any{"code": models.ErrUnavailable.Code, "retryAfter": models.ErrUnavailable.RetryAfterSeconds()}
		case errors.Is(err, context.Canceled) && ctx.Err() != nil:
			// The client went away: nobody reads this answer, and the
			// access log says so (CLIENT_CLOSED). Not an error of ours.
			gerr.Message = "request cancelled"
			gerr.Extensions = map[string]any{"code": models.Internal}
		default:
			log.ErrorContext(ctx, "internal error", "path", gerr.Path.String(), "err", err)
			gerr.Message = "internal error"
			gerr.Extensions = map[string]any{"code": models.Internal}
		}
		return gerr
	}
}

// outageLog coalesces the "database unavailable" lines: during an outage
// every request fails alike, and a line for each would be a flood of its
// own. One a second is logged, with the count of failures since the
// previous line.
type outageLog struct {
	mu   sync.Mutex
	last time.Time
	n    int
}

// due counts one failure at now and reports whether to log it, with how
// many failures the line stands for.
func (o *outageLog) due(now time.Time) (int, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n++
	if now.Sub(o.last) < time.Second {
		return 0, false
	}
	n := o.n
	o.last, o.n = now, 0
	return n, true
}

// refusedRequest reports whether err is gqlgen's own refusal of a request
// before any resolver ran: a bare *gqlerror.Error with no cause and no path.
// Resolver and directive errors always have a path (and ours are coded),
// and gqlgen's parse and validation errors carry a code already.
func refusedRequest(err error, gerr *gqlerror.Error) bool {
	raw, ok := err.(*gqlerror.Error)
	return ok && raw == gerr && raw.Unwrap() == nil && len(raw.Path) == 0
}

// notGraphQL answers every request the POST transport does not take (a
// Content-Type other than application/json) with 415. gqlgen's own answer
// ("transport not supported") bypasses the error presenter and carries no
// code; this one goes through it like every other error.
type notGraphQL struct{}

var _ graphql.Transport = notGraphQL{}

func (notGraphQL) Supports(*http.Request) bool { return true }

func (notGraphQL) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	err := gqlerror.WrapIfUnwrapped(models.Errorf(models.BadRequest, "POST /query takes Content-Type: application/json"))
	b, _ := json.Marshal(exec.DispatchError(r.Context(), gqlerror.List{err}))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnsupportedMediaType)
	w.Write(b)
}

// proof gathers the arguments that answer a mailed request.
func proof(token, requestID, code *string) auth.Proof {
	var p auth.Proof
	if token != nil {
		p.Token = *token
	}
	if requestID != nil {
		p.RequestID = *requestID
	}
	if code != nil {
		p.Code = *code
	}
	return p
}

// mfaProof is the service's form of an MfaProof argument.
func mfaProof(p *model.MfaProof) auth.MfaProof {
	return auth.MfaProof{TOTPCode: deref(p.TotpCode), RecoveryCode: deref(p.RecoveryCode), WebAuthnResponse: deref(p.WebauthnResponse)}
}

// ceremony turns a begun WebAuthn ceremony into its GraphQL type.
func ceremony(c *auth.Ceremony, err error) (*model.WebAuthnCeremony, error) {
	if err != nil {
		return nil, err
	}
	return &model.WebAuthnCeremony{CeremonyID: c.ID, Options: c.Options, ExpiresAt: c.ExpiresAt}, nil
}

// deref is *s, or "" for nil.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// signedInOrCaller is whom a user's own fields are shown to: the
// request's caller or, in the answer of a register, login, verifyMfa or
// refresh, the user it signed in (named by payload in the request's
// RequestInfo), whose request carried no token of theirs yet. Without the
// latter, login { user { mfa } } would fail, and the non-null error would
// take the tokens of the sign-in down with it.
func signedInOrCaller(ctx context.Context, u *models.User) (*auth.Principal, error) {
	if info := RequestInfoFrom(ctx); info != nil && info.SignedIn == u.ID {
		return &auth.Principal{UserID: u.ID}, nil
	}
	return auth.PrincipalFrom(ctx)
}

// payload turns a grant into the GraphQL AuthPayload.
func payload(ctx context.Context, g *auth.Grant, err error) (*model.AuthPayload, error) {
	if err != nil {
		return nil, err
	}
	// The request carried no principal: its log line names the user it
	// signed in.
	if info := RequestInfoFrom(ctx); info != nil {
		info.UserID, info.SignedIn = g.User.ID, g.User.ID
	}
	return &model.AuthPayload{
		AccessToken:  g.AccessToken,
		RefreshToken: g.RefreshToken,
		TokenType:    "Bearer",
		ExpiresIn:    g.ExpiresIn,
		User:         g.User,
	}, nil
}
