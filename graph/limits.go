package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Error codes of the document limits.
const (
	codeDepthLimit      = "DEPTH_LIMIT_EXCEEDED"
	codeComplexityLimit = "COMPLEXITY_LIMIT_EXCEEDED" // gqlgen's complexity extension
)

func init() {
	// Both are refusals of the document as a whole, before anything runs:
	// HTTP 422 like a validation failure, rather than gqlgen's default 200.
	errcode.RegisterErrorType(codeDepthLimit, errcode.KindProtocol)
	errcode.RegisterErrorType(codeComplexityLimit, errcode.KindProtocol)
}

// documentLimits refuses, before execution, a document nested deeper than
// maxDepth, and one that asks for introspection (__schema or __type) when
// introspection is off. Deep documents cost work at every level even when
// each level is cheap; the complexity limit alone does not see it where
// fields are cheap.
type documentLimits struct {
	maxDepth      int
	introspection bool
}

var _ interface {
	graphql.OperationContextMutator
	graphql.HandlerExtension
} = documentLimits{}

func (documentLimits) ExtensionName() string                   { return "DocumentLimits" }
func (documentLimits) Validate(graphql.ExecutableSchema) error { return nil }

func (l documentLimits) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	w := walker{fragments: map[string]int{}, doc: oc.Doc}
	depth := w.depth(oc.Operation.SelectionSet)
	if w.introspects && !l.introspection {
		err := gqlerror.Errorf("introspection is disabled on this server")
		errcode.Set(err, errcode.ValidationFailed)
		return err
	}
	if l.maxDepth > 0 && depth > l.maxDepth {
		err := gqlerror.Errorf("the document is nested %d levels deep, more than the limit of %d", depth, l.maxDepth)
		errcode.Set(err, codeDepthLimit)
		return err
	}
	return nil
}

// walker measures a document's depth. The depth of each fragment is
// computed once: expanding fragment spreads anew at every use would let a
// small document of fragments that spread each other several times make
// the walk itself exponential. Validation has already refused fragment
// cycles.
type walker struct {
	doc         *ast.QueryDocument
	fragments   map[string]int // name -> depth of its selection set
	introspects bool
}

func (w *walker) depth(set ast.SelectionSet) int {
	deepest := 0
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__schema" || s.Name == "__type" {
				w.introspects = true
			}
			d = 1 + w.depth(s.SelectionSet)
		case *ast.InlineFragment:
			d = w.depth(s.SelectionSet)
		case *ast.FragmentSpread:
			var ok bool
			if d, ok = w.fragments[s.Name]; !ok {
				if f := w.doc.Fragments.ForName(s.Name); f != nil {
					d = w.depth(f.SelectionSet)
				}
				w.fragments[s.Name] = d
			}
		}
		deepest = max(deepest, d)
	}
	return deepest
}
