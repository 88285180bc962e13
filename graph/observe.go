package graph

import (
	"context"
	"slices"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/models"
)

// RequestInfo is what the GraphQL handler learned about one request, for the
// HTTP layer's log line and metrics. The HTTP layer puts an empty one in the
// request context (WithRequestInfo) before the handler runs and reads it
// after; the handler's observe extension fills it in between, on the
// request's goroutine.
type RequestInfo struct {
	// ID is the request id, set by the HTTP layer.
	ID string
	// Operation names the operation by its root fields (see
	// OperationLabel); empty when the request never reached the handler.
	Operation string
	// Name is the operationName of a valid document, at most 64 bytes.
	Name string
	// UserID is the authenticated caller's, or the user a register, login
	// or refresh signed in.
	UserID string
	// SignedIn is the user a register, login, verifyMfa or refresh of
	// this request signed in, whose own fields its answer may show (see
	// signedInOrCaller).
	SignedIn string
	// Outcome is "ok" or the code of the response's first error (see
	// Outcome).
	Outcome string
	// RetryAfter is the largest retryAfter, in seconds, of the response's
	// RATE_LIMITED and SERVICE_UNAVAILABLE errors (0: none), for the HTTP
	// layer's Retry-After header. It is set before the response is
	// written.
	RetryAfter int
}

type requestInfoKey struct{}

// WithRequestInfo returns ctx carrying info.
func WithRequestInfo(ctx context.Context, info *RequestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, info)
}

// RequestInfoFrom returns the RequestInfo of ctx, or nil.
func RequestInfoFrom(ctx context.Context) *RequestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*RequestInfo)
	return info
}

// Operation labels.
const (
	// OperationInvalid labels a request with no valid operation: a body
	// that is not a GraphQL request, a document that does not parse or
	// validate, an unknown operationName.
	OperationInvalid = "invalid"
	// OperationMany labels an operation with more than maxLabelFields
	// distinct root fields.
	OperationMany  = "many"
	maxLabelFields = 3
	maxNameLen     = 64
)

// OperationLabel names the operation of opCtx by its root fields: sorted,
// without duplicates, comma-joined ("login", "me,roles"). The client's
// operationName would be the obvious label, but it is chosen by the client
// without bound: used as a metric label it would let anyone create series
// until the server runs out of memory. Root fields of a validated document
// are names from the schema, so the labels are bounded; past
// maxLabelFields fields the label is OperationMany, which keeps the number
// of combinations small (a few hundred with this schema) too.
func OperationLabel(opCtx *graphql.OperationContext) string {
	if opCtx == nil || opCtx.Operation == nil || opCtx.Doc == nil {
		// The executor sets Operation only once the document has parsed
		// and validated.
		return OperationInvalid
	}
	var names []string
	collectRootFields(opCtx.Doc, opCtx.Operation.SelectionSet, &names, 0)
	slices.Sort(names)
	names = slices.Compact(names)
	switch {
	case len(names) == 0:
		return OperationInvalid
	case len(names) > maxLabelFields:
		return OperationMany
	case len(names) == 1:
		return names[0]
	}
	return strings.Join(names, ",")
}

// collectRootFields appends the names (not aliases) of the fields of set,
// looking through fragments. Validation has ruled out fragment cycles; the
// depth bound is there all the same, since this runs before any limit.
func collectRootFields(doc *ast.QueryDocument, set ast.SelectionSet, names *[]string, depth int) {
	if depth > 10 {
		return
	}
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			*names = append(*names, sel.Name)
		case *ast.InlineFragment:
			collectRootFields(doc, sel.SelectionSet, names, depth+1)
		case *ast.FragmentSpread:
			if f := doc.Fragments.ForName(sel.Name); f != nil {
				collectRootFields(doc, f.SelectionSet, names, depth+1)
			}
		}
	}
}

// outcomes are the error codes Outcome passes through: models' vocabulary
// and the codes gqlgen and this package give documents they refuse.
var outcomes = map[string]bool{
	models.Unauthenticated: true, models.Forbidden: true, models.BadUserInput: true,
	models.BadRequest: true, models.NotFound: true, models.RateLimited: true,
	models.ServiceUnavailable: true, models.Internal: true,
	errcode.ParseFailed: true, errcode.ValidationFailed: true,
	codeDepthLimit: true, codeComplexityLimit: true,
	"PERSISTED_QUERY_NOT_FOUND": true,
}

// Outcome is "ok" for a response without errors, else the code of its first
// error when the code is one of a known few, else "error": codes are labels
// of metrics too, so they must come from a bounded set.
func Outcome(resp *graphql.Response) string {
	if resp == nil || len(resp.Errors) == 0 {
		return "ok"
	}
	if code, _ := resp.Errors[0].Extensions["code"].(string); outcomes[code] {
		return code
	}
	return "error"
}

// RetryAfter returns the largest extensions.retryAfter (whole seconds) of
// the RATE_LIMITED and SERVICE_UNAVAILABLE errors of resp, or 0: when the
// client may try again, which HTTP clients and proxies read from the
// Retry-After header without parsing GraphQL errors.
func RetryAfter(resp *graphql.Response) int {
	if resp == nil {
		return 0
	}
	most := 0
	for _, e := range resp.Errors {
		if code, _ := e.Extensions["code"].(string); code != models.RateLimited && code != models.ServiceUnavailable {
			continue
		}
		switch s := e.Extensions["retryAfter"].(type) {
		case int:
			most = max(most, s)
		case int64:
			most = max(most, int(min(s, 1<<31)))
		case float64:
			most = max(most, int(min(s, 1<<31)))
		}
	}
	return most
}

// observe is the extension that fills the request's RequestInfo. It sees
// every response, refusals included: the executor passes the responses to
// its own errors (parse, validation, limits, a body that is not a GraphQL
// request) through the same interceptors as executed ones.
type observe struct{}

var (
	_ graphql.HandlerExtension    = observe{}
	_ graphql.ResponseInterceptor = observe{}
)

func (observe) ExtensionName() string                   { return "Observe" }
func (observe) Validate(graphql.ExecutableSchema) error { return nil }

func (observe) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	info := RequestInfoFrom(ctx)
	if info == nil || resp == nil {
		return resp
	}
	var opCtx *graphql.OperationContext
	if graphql.HasOperationContext(ctx) {
		opCtx = graphql.GetOperationContext(ctx)
	}
	info.Operation = OperationLabel(opCtx)
	if opCtx != nil && opCtx.Operation != nil {
		// The name of an operation the document declares: a GraphQL Name,
		// not whatever string the client sent as operationName.
		info.Name = opCtx.Operation.Name[:min(len(opCtx.Operation.Name), maxNameLen)]
	}
	info.Outcome = Outcome(resp)
	info.RetryAfter = RetryAfter(resp)
	if p, err := auth.PrincipalFrom(ctx); err == nil && p != nil && info.UserID == "" {
		info.UserID = p.UserID
	}
	return resp
}
