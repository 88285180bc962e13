package graph

import (
	"regexp"
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
		directive @auth(role: String, permission: String, aal: Int, maxAge: Int) on FIELD_DEFINITION | OBJECT
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

// credentialWords name the mutations that manage credentials: passwords,
// emails, second factors, passkeys, recovery codes, and accounts and
// sessions of other users (the admin's). Every mutation whose name has one
// must carry @auth with aal or maxAge, or be listed in notStepped with the
// reason it needs neither, so that a new one cannot ship without step-up.
var credentialWords = regexp.MustCompile(`Password|Email|Mfa|Factor|Passkey|Recovery|Totp|User|Account|Session`)

// notStepped are the credential mutations that carry no aal or maxAge of
// their own, and why.
var notStepped = map[string]string{
	"requestPasswordReset":      "public: proves nothing, mails the address",
	"resetPassword":             "public: the mailed secret is the proof, and factors stay (the next login asks for one)",
	"verifyEmail":               "public: the mailed secret is the proof",
	"confirmEmailChange":        "public: the mailed secret is the proof; requestEmailChange is stepped",
	"sendEmailVerification":     "mails the caller's own address; changes no credential",
	"confirmTotp":               "completes enrollTotp, which is stepped, with a code of the new factor",
	"finishPasskeyRegistration": "completes beginPasskeyRegistration, which is stepped, with its single-use ceremony",
	"renamePasskey":             "changes a label, not a credential",
	"beginPasskeyLogin":         "public: a sign-in",
	"finishPasskeyLogin":        "public: a sign-in",
	"revokeSession":             "ends one of the caller's own sessions: taking access away is never a risk to the account",
	"verifyMfa":                 "public: a sign-in",
}

// TestCredentialMutationsStepUp: every mutation that manages credentials
// requires a second factor (aal) or a recent sign-in (maxAge), except
// those notStepped explains.
func TestCredentialMutationsStepUp(t *testing.T) {
	s := NewExecutableSchema(Config{}).Schema()
	found := 0
	for _, f := range s.Mutation.Fields {
		if !credentialWords.MatchString(f.Name) {
			continue
		}
		found++
		stepped := false
		if d := f.Directives.ForName("auth"); d != nil {
			stepped = d.Arguments.ForName("aal") != nil || d.Arguments.ForName("maxAge") != nil
		}
		why, exempt := notStepped[f.Name]
		switch {
		case !stepped && !exempt:
			t.Errorf("Mutation.%s manages credentials but its @auth has neither aal nor maxAge", f.Name)
		case stepped && exempt:
			t.Errorf("Mutation.%s is stepped up, but notStepped says %q: remove it from the list", f.Name, why)
		}
	}
	for name := range notStepped {
		if s.Mutation.Fields.ForName(name) == nil {
			t.Errorf("notStepped lists %s, which is not a mutation", name)
		}
	}
	if found < 20 {
		t.Errorf("only %d credential mutations found; the pattern matches too little to prove anything", found)
	}
}
