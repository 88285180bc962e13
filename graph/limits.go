package graph

import (
	"context"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Error codes of the document limits.
const (
	codeDepthLimit      = "DEPTH_LIMIT_EXCEEDED"
	codeComplexityLimit = "COMPLEXITY_LIMIT_EXCEEDED" // the code gqlgen's own complexity limit uses
)

func init() {
	// Both are refusals of the document as a whole, before anything runs:
	// HTTP 422 like a validation failure, rather than gqlgen's default 200.
	errcode.RegisterErrorType(codeDepthLimit, errcode.KindProtocol)
	errcode.RegisterErrorType(codeComplexityLimit, errcode.KindProtocol)
}

// documentLimits refuses, before execution, a document nested deeper than
// maxDepth, one more complex than maxComplexity, and one that asks for
// introspection (__schema or __type) when introspection is off. Deep
// documents cost work at every level even where each field is cheap;
// complexity bounds the number of fields, aliases included.
//
// It replaces gqlgen's complexity extension, whose walk expands every
// fragment spread anew: forty fragments that each spread the next twice
// (a few hundred bytes) kept it busy for minutes, before any limit applied.
type documentLimits struct {
	maxDepth      int
	maxComplexity int
	introspection bool
}

var _ interface {
	graphql.OperationContextMutator
	graphql.HandlerExtension
} = documentLimits{}

func (documentLimits) ExtensionName() string                   { return "DocumentLimits" }
func (documentLimits) Validate(graphql.ExecutableSchema) error { return nil }

func (l documentLimits) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	w := walker{fragments: map[string]cost{}, doc: oc.Doc}
	c := w.walk(oc.Operation.SelectionSet)
	if w.introspects && !l.introspection {
		err := gqlerror.Errorf("introspection is disabled on this server")
		errcode.Set(err, errcode.ValidationFailed)
		return err
	}
	if l.maxDepth > 0 && c.depth > l.maxDepth {
		err := gqlerror.Errorf("the document is nested %d levels deep, more than the limit of %d", c.depth, l.maxDepth)
		errcode.Set(err, codeDepthLimit)
		return err
	}
	if l.maxComplexity > 0 && c.complexity > l.maxComplexity {
		err := gqlerror.Errorf("the operation has complexity %s, more than the limit of %d", c.String(), l.maxComplexity)
		errcode.Set(err, codeComplexityLimit)
		return err
	}
	return nil
}

// cost is what a selection set asks for: how deeply its fields nest, and
// how many fields it selects, each counting one plus its own selections
// (saturating at maxCost, so that it cannot overflow).
type cost struct{ depth, complexity int }

const maxCost = 1 << 40

func (c cost) String() string {
	if c.complexity >= maxCost {
		return "beyond " + strconv.Itoa(maxCost)
	}
	return strconv.Itoa(c.complexity)
}

// walker measures a document. The cost of each fragment is computed once
// and reused at every spread, so the walk is linear in the document's size
// whatever the spreads multiply to. Validation has already refused fragment
// cycles.
type walker struct {
	doc         *ast.QueryDocument
	fragments   map[string]cost
	introspects bool
}

func (w *walker) walk(set ast.SelectionSet) cost {
	var total cost
	for _, sel := range set {
		var c cost
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__schema" || s.Name == "__type" {
				w.introspects = true
			}
			c = w.walk(s.SelectionSet)
			c.depth++
			c.complexity = min(c.complexity+1, maxCost)
		case *ast.InlineFragment:
			c = w.walk(s.SelectionSet)
		case *ast.FragmentSpread:
			var ok bool
			if c, ok = w.fragments[s.Name]; !ok {
				if f := w.doc.Fragments.ForName(s.Name); f != nil {
					c = w.walk(f.SelectionSet)
				}
				w.fragments[s.Name] = c
			}
		}
		total.depth = max(total.depth, c.depth)
		total.complexity = min(total.complexity+c.complexity, maxCost)
	}
	return total
}
