package graph

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/authql/authql/models"
)

// The two media types of a GraphQL response (GraphQL over HTTP, §7).
const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
)

// post is the POST transport, answering as the GraphQL over HTTP spec
// asks (checked by the graphql-http audit suite, TestGraphQLOverHTTPAudit):
//
//   - the response's media type is the one the Accept header prefers of
//     application/graphql-response+json and application/json (*/*, no
//     Accept or one naming neither: application/json, which every
//     client reads);
//   - a request error (the document does not parse or validate, the
//     variables do not coerce, a document limit refuses it: nothing ran)
//     answers without a data entry (the GraphQL spec: data is absent when
//     execution did not start), with 200 under application/json, whose
//     clients read the errors of any 200 and may treat a 4xx as a network
//     failure, and 400 under application/graphql-response+json, whose
//     status says the request failed;
//   - a subscription is a request error (BAD_REQUEST): it is served over
//     the websocket only;
//   - a body that is not a GraphQL request at all (not a JSON object, no
//     query) is 400 under both.
//
// gqlgen's POST transport answered 422 to application/json clients and
// sent "data": null with request errors.
type post struct{}

// maxAcceptParts bounds the media ranges of Accept that are parsed.
const maxAcceptParts = 32

// subscriptionOverPOST is the message of a subscription sent over POST.
const subscriptionOverPOST = "subscriptions are served over a websocket (graphql-transport-ws) on /query"

var _ graphql.Transport = post{}

func (post) Supports(r *http.Request) bool { return transport.POST{}.Supports(r) }

func (post) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ctx := r.Context()
	media := responseMedia(r.Header.Values("Accept"))
	w.Header().Set("Content-Type", media)
	start := graphql.Now()
	body, err := io.ReadAll(r.Body) // in memory already: limitBody bounded it
	var params graphql.RawParams
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		err = dec.Decode(&params)
	}
	if err != nil {
		// gqlgen's message quoted the whole body: the password of a
		// garbled login, sent back and logged.
		writeRequestError(w, exec.DispatchError(ctx, badRequest("the request body is not a JSON GraphQL request")), http.StatusBadRequest)
		return
	}
	if params.Query == "" && params.Extensions["persistedQuery"] == nil {
		writeRequestError(w, exec.DispatchError(ctx, badRequest("the request has no query")), http.StatusBadRequest)
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	oc, errs := exec.CreateOperationContext(ctx, &params)
	// A subscription over POST would hold this handler until its first
	// event (or for ever), outside the websocket's limits on sockets and
	// subscriptions: refuse it as a request error, before it runs.
	if errs == nil && oc.Operation != nil && oc.Operation.Operation == ast.Subscription {
		errs = badRequest(subscriptionOverPOST)
	}
	if errs != nil {
		status := http.StatusOK
		if media == mediaGraphQLResponse {
			status = http.StatusBadRequest
		}
		writeRequestError(w, exec.DispatchError(graphql.WithOperationContext(ctx, oc), errs), status)
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, oc)
	b, err := json.Marshal(responses(ctx))
	if err != nil {
		b, _ = json.Marshal(exec.DispatchError(ctx, gqlerror.List{gqlerror.Errorf("internal error")}))
	}
	w.Write(b)
}

// badRequest is a BAD_REQUEST error for a body that is not a GraphQL
// request, as the error presenter shows it.
func badRequest(msg string) gqlerror.List {
	return gqlerror.List{gqlerror.WrapIfUnwrapped(models.Errorf(models.BadRequest, "%s", msg))}
}

// writeRequestError writes the response of a request that did not run:
// its errors (and extensions), without a data entry.
func writeRequestError(w http.ResponseWriter, resp *graphql.Response, status int) {
	b, _ := json.Marshal(struct {
		Errors     gqlerror.List  `json:"errors"`
		Extensions map[string]any `json:"extensions,omitempty"`
	}{resp.Errors, resp.Extensions})
	w.WriteHeader(status)
	w.Write(b)
}

// responseMedia is the media type of the response for the Accept field
// values: of the two GraphQL response types, the one with the higher
// weight, the first listed on a tie; application/json when the header is
// absent or names neither (the spec lets a server disregard an Accept it
// cannot satisfy and answer in application/json, which legacy clients
// read), */* and application/* included.
//
// Only the first maxAcceptParts media ranges are read, across all the
// field's values: the header's size alone would allow thousands, each
// parsed.
func responseMedia(accept []string) string {
	best, bestQ := mediaJSON, -1.0
	n := 0
	for _, v := range accept {
		for part := range strings.SplitSeq(v, ",") {
			if n++; n > maxAcceptParts {
				return best
			}
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if s, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(s, 64); err != nil {
					continue
				}
			}
			var m string
			switch mt {
			case mediaGraphQLResponse:
				m = mediaGraphQLResponse
			case mediaJSON, "*/*", "application/*":
				m = mediaJSON
			default:
				continue
			}
			if q > 0 && q > bestQ {
				best, bestQ = m, q
			}
		}
	}
	return best
}
