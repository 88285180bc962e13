package graph

import (
	"slices"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// rootFieldProblems returns one line per root field (of Query, Mutation and
// Subscription) that carries neither @auth nor @public, or both. Only the
// field's own directives count, not an @auth on the type it returns: the
// point is that whoever adds an operation decides, on that line, whether it
// is open.
func rootFieldProblems(s *ast.Schema) []string {
	var problems []string
	for _, root := range []*ast.Definition{s.Query, s.Mutation, s.Subscription} {
		if root == nil {
			continue
		}
		for _, f := range root.Fields {
			if f.Name == "__schema" || f.Name == "__type" || f.Name == "__typename" {
				continue // introspection, added by the parser
			}
			gated := f.Directives.ForName("auth") != nil
			public := f.Directives.ForName("public") != nil
			switch {
			case !gated && !public:
				problems = append(problems, root.Name+"."+f.Name+" has neither @auth nor @public")
			case gated && public:
				problems = append(problems, root.Name+"."+f.Name+" has both @auth and @public")
			}
		}
	}
	return problems
}

// TestRootFieldsDefaultDeny walks the schema the server executes (the one
// embedded in the generated code, so it cannot drift from the .graphqls
// files) and fails on any root field that is not explicitly gated or
// explicitly public.
func TestRootFieldsDefaultDeny(t *testing.T) {
	s := NewExecutableSchema(Config{}).Schema()
	if s.Query == nil || len(s.Query.Fields) == 0 || s.Mutation == nil || len(s.Mutation.Fields) == 0 {
		t.Fatal("executable schema has no Query or Mutation fields; the walk would prove nothing")
	}
	for _, p := range rootFieldProblems(s) {
		t.Error(p + ": mark it @auth(...) or, if it is meant to be open, @public")
	}

	// The check itself, on small schemas, so a check that never reports
	// anything cannot pass for a schema that is clean.
	const directives = `
		directive @auth(role: String, permission: String) on FIELD_DEFINITION | OBJECT
		directive @public on FIELD_DEFINITION
	`
	for _, tc := range []struct {
		name   string
		schema string
		want   []string
	}{
		{
			name: "Clean",
			schema: `type Query { me: String @auth, version: String @public }
				type Mutation { login: String @public, logout: Boolean @auth(role: "x") }`,
			want: nil,
		},
		{
			name: "UnannotatedQueryAndMutation",
			schema: `type Query { me: String @auth, users: [String] }
				type Mutation { login: String @public, deleteEverything: Boolean }`,
			want: []string{
				"Query.users has neither @auth nor @public",
				"Mutation.deleteEverything has neither @auth nor @public",
			},
		},
		{
			name:   "AuthOnReturnedTypeIsNotEnough",
			schema: `type Secret @auth { v: String } type Query { secret: Secret }`,
			want:   []string{"Query.secret has neither @auth nor @public"},
		},
		{
			name:   "BothIsContradictory",
			schema: `type Query { me: String @auth @public }`,
			want:   []string{"Query.me has both @auth and @public"},
		},
		{
			name:   "Subscription",
			schema: `type Query { me: String @auth } type Subscription { events: String }`,
			want:   []string{"Subscription.events has neither @auth nor @public"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := gqlparser.LoadSchema(&ast.Source{Name: tc.name + ".graphqls", Input: directives + tc.schema})
			if err != nil {
				t.Fatalf("schema: %v", err)
			}
			if got := rootFieldProblems(s); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
