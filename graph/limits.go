package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/authql/authql/auth"
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

// The fixed bounds of every document. They are not configurable because
// they bound the work done before any configurable limit can apply, and
// they are far above what any client of this schema sends: the playground's
// introspection query, the largest document there is, has 190 tokens and
// 73 fields.
const (
	// ParserTokenLimit bounds the tokens of a document: the parser stops
	// at the first one past it (GRAPHQL_PARSE_FAILED), so that parsing
	// costs at most that many tokens whatever the body's size.
	ParserTokenLimit = 4000
	// MaxFields bounds the fields and fragment spreads written in a
	// document, aliased fields included, counted before validation
	// (COMPLEXITY_LIMIT_EXCEEDED). gqlparser's validation compares the
	// fields that share a response name pairwise, and the fragments spread
	// in one selection set pairwise, so its cost grows with the square of
	// their number: 2,000 repeats of `me { id }` took a second of CPU, a
	// 64 KB document of them tens of seconds, and n conflicting aliases
	// make n²/2 errors.
	MaxFields = 400
	// MaxRepeats bounds how many times one selection set (with its inline
	// fragments) selects one response name, and how many fragments it
	// spreads: the numbers whose square validation costs. With both, the
	// worst document within the limits costs a few milliseconds of CPU
	// (see BenchmarkHostileDocuments); a client repeats a field only by
	// accident, and colocated fragments rarely number more than a dozen.
	MaxRepeats = 16
	// MaxErrors bounds the errors of one response: validation stops
	// recording errors past it, and a response with more (from execution)
	// carries the first MaxErrors.
	MaxErrors = 50
	// DefaultMaxSessions is Options.MaxSessions when 0: the most sessions
	// mySessions can list (AUTH_MAX_SESSIONS).
	DefaultMaxSessions = auth.DefaultMaxSessions
)

// documentGate bounds what a document costs, from its text to its
// execution:
//
//   - before gqlgen parses and validates a document it has not seen, the
//     gate parses it itself with the token limit and counts its fields,
//     depth and complexity (pages counted as the least they can be, since
//     the variables are not known yet), refusing it before validation, the
//     step whose cost grows with the square of the fields;
//   - gqlgen's validation records at most MaxErrors errors (validationRules);
//   - once gqlgen has parsed, validated and coerced the variables, the gate
//     measures the operation again, pages counted with the variables'
//     values, and refuses introspection when it is off;
//   - a document that passed everything is kept in the DocumentCache (and its
//     hash in the persisted queries), so that the next request with the same
//     text skips the parser, the count and the validation alike.
//
// The measuring walk replaces gqlgen's complexity extension, whose walk
// expands every fragment spread anew: forty fragments that each spread the
// next twice (a few hundred bytes) kept it busy for minutes, before any
// limit applied.
type documentGate struct {
	schema        *ast.Schema
	maxDepth      int
	maxComplexity int
	maxSessions   int
	introspection bool
	docs          *DocumentCache
	apq           *persistedQueries
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
	graphql.OperationContextMutator
	graphql.ResponseInterceptor
} = (*documentGate)(nil)

func (*documentGate) ExtensionName() string                   { return "DocumentGate" }
func (*documentGate) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters runs before gqlgen parses the document (and
// after the persisted-query extension has put the document of a hash in
// params). A document in the cache has passed already; any other is parsed
// and measured here, without the variables.
func (g *documentGate) MutateOperationParameters(_ context.Context, params *graphql.RawParams) *gqlerror.Error {
	if params.Query == "" || g.docs.lru.has(params.Query) {
		return nil // gqlgen says what is missing; or known good
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: params.Query}, ParserTokenLimit)
	if err != nil {
		gerr, ok := err.(*gqlerror.Error)
		if !ok {
			gerr = gqlerror.Errorf("the document does not parse")
		}
		errcode.Set(gerr, errcode.ParseFailed)
		return gerr
	}
	n, repeated := countFields(doc)
	if n > MaxFields {
		err := gqlerror.Errorf("the document has more than %d fields and fragment spreads (aliased fields included), the limit", MaxFields)
		errcode.Set(err, codeComplexityLimit)
		return err
	}
	if repeated != nil {
		return repeated
	}
	// Every operation, not only the one named: validation costs them all.
	w := g.walker(doc, nil)
	for _, op := range doc.Operations {
		if err := g.check(w.walk(g.rootType(op), op.SelectionSet)); err != nil {
			return err
		}
	}
	return nil
}

// MutateOperationContext runs once the document has parsed and validated
// and the variables are coerced. It is the last of the handler's
// operation-context mutators, so a document it passes has passed every
// limit: it is kept then.
func (g *documentGate) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	w := g.walker(oc.Doc, oc.Variables)
	c := w.walk(g.rootType(oc.Operation), oc.Operation.SelectionSet)
	if w.introspects && !g.introspection {
		err := gqlerror.Errorf("introspection is disabled on this server")
		errcode.Set(err, errcode.ValidationFailed)
		return err
	}
	if err := g.check(c); err != nil {
		return err
	}
	if !g.docs.lru.has(oc.RawQuery) {
		g.docs.lru.add(oc.RawQuery, oc.Doc, documentBytes(oc.RawQuery, oc.Doc))
	}
	if s := extension.GetApqStats(ctx); s != nil && s.SentQuery {
		g.apq.lru.add(s.Hash, oc.RawQuery, int64(len(oc.RawQuery)))
	}
	return nil
}

// InterceptResponse keeps at most MaxErrors errors in a response: the
// complexity limit bounds how many fields can fail, not how many errors
// that makes in one answer.
func (g *documentGate) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp != nil && len(resp.Errors) > MaxErrors {
		resp.Errors = resp.Errors[:MaxErrors]
	}
	return resp
}

func (g *documentGate) check(c cost) *gqlerror.Error {
	if g.maxDepth > 0 && c.depth > g.maxDepth {
		err := gqlerror.Errorf("the document is nested %d levels deep, more than the limit of %d", c.depth, g.maxDepth)
		errcode.Set(err, codeDepthLimit)
		return err
	}
	if g.maxComplexity > 0 && c.complexity > g.maxComplexity {
		err := gqlerror.Errorf("the operation has complexity %s, more than the limit of %d", c.String(), g.maxComplexity)
		errcode.Set(err, codeComplexityLimit)
		return err
	}
	return nil
}

func (g *documentGate) walker(doc *ast.QueryDocument, vars map[string]any) *walker {
	return &walker{schema: g.schema, doc: doc, vars: vars, known: vars != nil, maxSessions: g.maxSessions, fragments: map[string]cost{}}
}

func (g *documentGate) rootType(op *ast.OperationDefinition) *ast.Definition {
	switch op.Operation {
	case ast.Mutation:
		return g.schema.Mutation
	case ast.Subscription:
		return g.schema.Subscription
	}
	return g.schema.Query
}

// validationRules returns gqlparser's rules, each reporting through a
// counter that drops every error past MaxErrors: n conflicting aliases
// make n²/2 errors (a 37 KB document made a 300 MB answer), and building
// them is most of their cost. Without suggestions, the rules that suggest
// names ("Did you mean ...?") are replaced by their variants that do not:
// the suggestions would reveal the schema that production's introspection
// setting hides. (gqlgen swaps two of them itself, by name; the others are
// left to this function.)
func validationRules(suggestions bool) func() *rules.Rules {
	return func() *rules.Rules {
		r := rules.NewDefaultRules()
		if !suggestions {
			for _, swap := range []struct {
				with    core.Rule
				replace string
			}{
				{rules.FieldsOnCorrectTypeRuleWithoutSuggestions, rules.FieldsOnCorrectTypeRule.Name},
				{rules.ScalarLeafsRuleWithoutSuggestions, rules.ScalarLeafsRule.Name},
				{rules.KnownArgumentNamesRuleWithoutSuggestions, rules.KnownArgumentNamesRule.Name},
				{rules.KnownTypeNamesRuleWithoutSuggestions, rules.KnownTypeNamesRule.Name},
				{rules.ValuesOfCorrectTypeRuleWithoutSuggestions, rules.ValuesOfCorrectTypeRule.Name},
			} {
				r.RemoveRule(swap.replace)
				r.AddRule(swap.with.Name, swap.with.RuleFunc)
			}
		}
		// One validation walks the document on one goroutine: the count
		// needs no lock.
		errors := 0
		capped := rules.NewRules()
		for name, f := range r.GetInner() {
			capped.AddRule(name, func(observers *core.Events, addError core.AddErrFunc) {
				f(observers, func(options ...core.ErrorOption) {
					if errors++; errors <= MaxErrors {
						addError(options...)
					}
				})
			})
		}
		return capped
	}
}

// countFields returns the fields and fragment spreads written in doc (in
// its operations and fragment definitions, each counted once), stopping
// past MaxFields, and an error when one selection set (with the inline
// fragments in it, as validation merges them) selects one response name or
// spreads fragments more than MaxRepeats times.
func countFields(doc *ast.QueryDocument) (int, *gqlerror.Error) {
	n := 0
	var repeated *gqlerror.Error
	// set counts one selection set's response names and spreads, merged
	// with those of its inline fragments; the fields' own selection sets
	// are counted apart.
	var count func(sel ast.SelectionSet, names map[string]int, spreads *int)
	count = func(set ast.SelectionSet, names map[string]int, spreads *int) {
		for _, sel := range set {
			if n > MaxFields || repeated != nil {
				return
			}
			switch s := sel.(type) {
			case *ast.Field:
				n++
				name := s.Alias
				if name == "" {
					name = s.Name
				}
				if names[name]++; names[name] > MaxRepeats {
					repeated = gqlerror.Errorf("one selection set selects %q more than %d times, the limit", name, MaxRepeats)
					return
				}
				if len(s.SelectionSet) > 0 {
					count(s.SelectionSet, map[string]int{}, new(int))
				}
			case *ast.InlineFragment:
				count(s.SelectionSet, names, spreads)
			case *ast.FragmentSpread:
				n++
				if *spreads++; *spreads > MaxRepeats {
					repeated = gqlerror.Errorf("one selection set spreads more than %d fragments, the limit", MaxRepeats)
					return
				}
			}
		}
	}
	for _, op := range doc.Operations {
		count(op.SelectionSet, map[string]int{}, new(int))
	}
	for _, f := range doc.Fragments {
		count(f.SelectionSet, map[string]int{}, new(int))
	}
	if repeated != nil {
		errcode.Set(repeated, codeComplexityLimit)
	}
	return n, repeated
}

// documentBytes estimates the memory that the parsed document of query
// holds: the text (the AST's names point into it), and per node of the
// AST what TestDocumentBytesCoversTheAST measures a node to take at most.
func documentBytes(query string, doc *ast.QueryDocument) int64 {
	nodes := 0
	var walkValue func(*ast.Value)
	walkValue = func(v *ast.Value) {
		if v == nil {
			return
		}
		nodes++
		for _, c := range v.Children {
			nodes++
			walkValue(c.Value)
		}
	}
	walkDirectives := func(ds ast.DirectiveList) {
		for _, d := range ds {
			nodes++
			for _, a := range d.Arguments {
				nodes++
				walkValue(a.Value)
			}
		}
	}
	var walkSet func(ast.SelectionSet)
	walkSet = func(set ast.SelectionSet) {
		for _, sel := range set {
			nodes++
			switch s := sel.(type) {
			case *ast.Field:
				for _, a := range s.Arguments {
					nodes++
					walkValue(a.Value)
				}
				walkDirectives(s.Directives)
				walkSet(s.SelectionSet)
			case *ast.InlineFragment:
				walkDirectives(s.Directives)
				walkSet(s.SelectionSet)
			case *ast.FragmentSpread:
				walkDirectives(s.Directives)
			}
		}
	}
	for _, op := range doc.Operations {
		nodes++
		for _, v := range op.VariableDefinitions {
			nodes += 2
			walkValue(v.DefaultValue)
			walkDirectives(v.Directives)
		}
		walkDirectives(op.Directives)
		walkSet(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		nodes++
		walkDirectives(f.Directives)
		walkSet(f.SelectionSet)
	}
	return documentBaseBytes + int64(len(query)) + int64(nodes)*bytesPerNode
}

// What a parsed document takes at most, as TestDocumentBytesCoversTheAST
// measures it: the document itself, and per AST node (with its position,
// slices and maps).
const (
	documentBaseBytes = 1024
	bytesPerNode      = 300
)
