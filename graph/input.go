package graph

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/authql/authql/models"
)

// Bad bytes are refused here, once for every field, before any resolver
// runs: a NUL or invalid UTF-8 in a string argument is BAD_USER_INPUT.
// No email, password, role, id or cursor holds either, and PostgreSQL
// refuses both in text: unchecked, they failed requests with an internal
// error, after the password had been hashed, and register after it had
// committed the user. They come in three ways, all checked:
//
//   - invalid UTF-8 in the JSON body: encoding/json would silently turn each
//     bad byte into U+FFFD, making different values one (two different
//     garbled passwords the same password), so the body is checked as bytes
//     before decoding (utf8Body);
//   - "\u0000" escapes in the JSON variables, decoded into NUL;
//   - "\u0000" escapes inside the document's string literals, in arguments
//     and variables' defaults alike (lone surrogates such as "\ud800"
//     become U+FFFD there, as in JSON: valid UTF-8, left to the fields'
//     own checks).
//
// The auth service checks the same for callers that are not GraphQL (the
// CLI).

// utf8Body is the POST transport, refusing a body that is not UTF-8 (which
// JSON must be, RFC 8259 §8.1) before it is decoded.
type utf8Body struct{ post }

var _ graphql.Transport = utf8Body{}

func (t utf8Body) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	// The body is in memory already (limitBody read it, within its limit)
	// and offers its bytes: checked where they are, not copied again.
	var body []byte
	var err error
	if rb, ok := r.Body.(readBody); ok {
		body = rb.Bytes()
	} else {
		body, err = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if err == nil && !utf8.Valid(body) {
		err := gqlerror.WrapIfUnwrapped(models.Errorf(models.BadUserInput, "the request body is not valid UTF-8"))
		writeRefusal(w, r, exec, http.StatusBadRequest, err)
		return
	}
	t.post.Do(w, r, exec)
}

// readBody is a request body already in memory that hands out its bytes
// (httpapi's limitBody makes one) so that they need not be read again.
type readBody interface {
	io.ReadCloser
	Bytes() []byte
}

// writeRefusal answers a request refused before gqlgen parsed it, through
// the error presenter like every other error.
func writeRefusal(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, status int, err *gqlerror.Error) {
	w.Header().Set("Content-Type", responseMedia(r.Header.Values("Accept")))
	writeRequestError(w, exec.DispatchError(r.Context(), gqlerror.List{err}), status)
}

// inputBytes refuses an operation whose variables or string literals hold
// a NUL or invalid UTF-8, after validation and before execution.
type inputBytes struct{}

var _ interface {
	graphql.OperationContextMutator
	graphql.HandlerExtension
} = inputBytes{}

func (inputBytes) ExtensionName() string                   { return "InputBytes" }
func (inputBytes) Validate(graphql.ExecutableSchema) error { return nil }

func (inputBytes) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	for name, v := range oc.Variables {
		if what := badString(v); what != "" {
			return badInput("variable $%s %s", name, what)
		}
	}
	// Literals anywhere in the document, fragments included: a fragment
	// spread in the operation passes its arguments to the resolvers too.
	for _, op := range oc.Doc.Operations {
		for _, v := range op.VariableDefinitions {
			if err := literals(v.DefaultValue, "the default of $"+v.Variable); err != nil {
				return err
			}
		}
		if err := selections(op.SelectionSet); err != nil {
			return err
		}
		if err := directives(op.Directives); err != nil {
			return err
		}
	}
	for _, f := range oc.Doc.Fragments {
		if err := selections(f.SelectionSet); err != nil {
			return err
		}
		if err := directives(f.Directives); err != nil {
			return err
		}
	}
	return nil
}

func badInput(format string, args ...any) *gqlerror.Error {
	return gqlerror.WrapIfUnwrapped(models.Errorf(models.BadUserInput, format, args...))
}

// badString says what is wrong with the first bad string in a decoded
// variable value, or "" when none is.
func badString(v any) string {
	switch v := v.(type) {
	case string:
		switch {
		case !utf8.ValidString(v):
			return "is not valid UTF-8"
		case strings.IndexByte(v, 0) >= 0:
			return "contains a NUL character"
		}
	case []any:
		for _, e := range v {
			if what := badString(e); what != "" {
				return what
			}
		}
	case map[string]any:
		for _, e := range v {
			if what := badString(e); what != "" {
				return what
			}
		}
	}
	return ""
}

// selections checks the literal arguments of every field in set, nested
// ones included. Fragment spreads are checked with the fragments.
func selections(set ast.SelectionSet) *gqlerror.Error {
	for _, s := range set {
		switch s := s.(type) {
		case *ast.Field:
			for _, a := range s.Arguments {
				if err := literals(a.Value, fmt.Sprintf("argument %s of %s", a.Name, s.Name)); err != nil {
					return err
				}
			}
			if err := directives(s.Directives); err != nil {
				return err
			}
			if err := selections(s.SelectionSet); err != nil {
				return err
			}
		case *ast.InlineFragment:
			if err := directives(s.Directives); err != nil {
				return err
			}
			if err := selections(s.SelectionSet); err != nil {
				return err
			}
		case *ast.FragmentSpread:
			if err := directives(s.Directives); err != nil {
				return err
			}
		}
	}
	return nil
}

func directives(ds ast.DirectiveList) *gqlerror.Error {
	for _, d := range ds {
		for _, a := range d.Arguments {
			if err := literals(a.Value, fmt.Sprintf("argument %s of @%s", a.Name, d.Name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// literals checks the string literals of a value (lists and input objects
// included); variables in it are checked with the variables.
func literals(v *ast.Value, where string) *gqlerror.Error {
	if v == nil {
		return nil
	}
	if v.Kind == ast.StringValue || v.Kind == ast.BlockValue {
		if what := badString(v.Raw); what != "" {
			return badInput("%s %s", where, what)
		}
	}
	for _, c := range v.Children {
		if err := literals(c.Value, where); err != nil {
			return err
		}
	}
	return nil
}
