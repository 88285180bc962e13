package httpapi_test

// @auth(aal, maxAge) over real HTTP with the injected clock (issue 13):
// the step-up answer (RFC 9470), reauthenticate raising the session the
// client's access token already names, the claims of access tokens across
// refresh, and every mutation with a step-up refused at level 1 to a user
// who has a factor. On SQLite and (with TEST_DATABASE_URL) PostgreSQL.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/authql/authql/graph"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

const reauthDoc = `mutation($pw: String, $p: MfaProof) { reauthenticate(password: $pw, proof: $p) { ` + authtest.PayloadFields + ` } }`

// Probes of a step-up: deleteAccount is @auth(aal: 2), and with a wrong
// password fails after the directive with BAD_USER_INPUT; removeMfaFactor
// is @auth(aal: 2, maxAge: 300), and with an unknown id fails after it
// too.
const (
	aalProbe    = `mutation { deleteAccount(password: "not the password") }`
	maxAgeProbe = `mutation { removeMfaFactor(id: "00000000-0000-0000-0000-000000000000") }`
)

// stepUpErr returns the INSUFFICIENT_USER_AUTHENTICATION error of r,
// failing otherwise.
func stepUpErr(t *testing.T, r authtest.Response, what string) map[string]any {
	t.Helper()
	if len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != models.InsufficientUserAuthentication {
		t.Fatalf("%s: %+v, want INSUFFICIENT_USER_AUTHENTICATION", what, r.Errors)
	}
	return r.Errors[0].Extensions
}

// passed fails unless r got past the step-up (whatever the resolver said).
func passed(t *testing.T, r authtest.Response, what string) {
	t.Helper()
	for _, e := range r.Errors {
		if e.Extensions["code"] == models.InsufficientUserAuthentication || e.Extensions["code"] == models.Unauthenticated {
			t.Errorf("%s: %+v, want past the step-up", what, r.Errors)
		}
	}
}

func TestStepUpOverHTTP(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, authtest.NewClock())

		// Without a factor, aal: 2 is the highest the user has: level 1.
		plain := ts.Register(t, "plain@example.com", "password1")
		if r := ts.Do(t, plain.Access, aalProbe, nil); r.Code(t) != models.BadUserInput {
			t.Errorf("aal 2 for a user without factors: %+v, want past the step-up", r.Errors)
		}

		user := ts.Register(t, "stepup@example.com", "password1")
		f := giveFactor(t, ts, user.UserID)
		access := user.Access
		if c := authtest.Claims(t, access); c["acr"] != "aal1" || fmt.Sprint(c["amr"]) != "[pwd]" {
			t.Errorf("a password session's claims: acr %v amr %v", c["acr"], c["amr"])
		}
		ext := stepUpErr(t, ts.Do(t, access, aalProbe, nil), "aal 2 at level 1")
		if ext["acrValues"] != "aal2" || ext["maxAge"] != nil {
			t.Errorf("extensions %v, want acrValues aal2 only", ext)
		}

		ts.Clock.Advance(time.Minute)
		r := ts.Do(t, access, reauthDoc, map[string]any{"p": map[string]any{"totpCode": f.code(t, ts)}}).OK(t)
		raised := authtest.TokensOf(r, "reauthenticate")
		stepAt := ts.Clock.Now()
		c := authtest.Claims(t, raised.Access)
		if c["acr"] != "aal2" || fmt.Sprint(c["amr"]) != "[otp mfa]" || c["auth_time"] != float64(stepAt.Unix()) {
			t.Errorf("after reauthenticate: acr %v amr %v auth_time %v, want aal2 [otp mfa] now", c["acr"], c["amr"], c["auth_time"])
		}
		if authtest.SID(t, raised.Access) != authtest.SID(t, access) {
			t.Error("reauthenticate started another session")
		}
		// The same access token as before passes now: the directive reads
		// the session.
		if r := ts.Do(t, access, aalProbe, nil); r.Code(t) != models.BadUserInput {
			t.Errorf("aal 2 after reauthenticate, same token: %+v", r.Errors)
		}
		passed(t, ts.Do(t, access, maxAgeProbe, nil), "maxAge 300 just after reauthenticate")
		// The session's earlier refresh token was replaced.
		if code := ts.Refresh(t, user.Refresh).Code(t); code != models.Unauthenticated {
			t.Errorf("the refresh token from before the step-up: %s, want UNAUTHENTICATED", code)
		}

		ts.Clock.Advance(301 * time.Second)
		ext = stepUpErr(t, ts.Do(t, access, maxAgeProbe, nil), "maxAge 300 after 301 s")
		if ext["maxAge"] != float64(300) || ext["acrValues"] != nil {
			t.Errorf("extensions %v, want maxAge 300 only", ext)
		}
		// The password alone renews auth_time; the level stays 2.
		r = ts.Do(t, access, reauthDoc, map[string]any{"pw": "password1"}).OK(t)
		passed(t, ts.Do(t, access, maxAgeProbe, nil), "maxAge 300 after the password again")
		fresh := authtest.TokensOf(r, "reauthenticate")
		// Refresh keeps the session's acr, amr and auth_time.
		ts.Clock.Advance(time.Minute)
		refreshed := authtest.TokensOf(ts.Refresh(t, fresh.Refresh).OK(t), "refresh")
		c = authtest.Claims(t, refreshed.Access)
		if c["acr"] != "aal2" || fmt.Sprint(c["amr"]) != "[pwd]" || c["auth_time"] != float64(ts.Clock.Now().Add(-time.Minute).Unix()) {
			t.Errorf("after refresh: acr %v amr %v auth_time %v, want aal2 [pwd] the reauthentication's", c["acr"], c["amr"], c["auth_time"])
		}

		// Refusals of reauthenticate itself.
		for _, tc := range []struct {
			name string
			vars map[string]any
		}{
			{"Nothing", map[string]any{}},
			{"WrongPassword", map[string]any{"pw": "password2"}},
			{"UsedCode", map[string]any{"p": map[string]any{"recoveryCode": "0000-0000-0000-0000"}}},
			{"PasskeyWithoutCeremony", map[string]any{"p": map[string]any{"webauthnResponse": "{}"}}},
		} {
			if r := ts.Do(t, access, reauthDoc, tc.vars); r.Code(t) != models.BadUserInput {
				t.Errorf("%s: %+v, want BAD_USER_INPUT", tc.name, r.Errors)
			}
		}
	})
}

// TestSteppedMutationsRefusedAtLevel1 walks the schema: every mutation
// whose @auth has aal or maxAge is refused to an admin with a factor who
// signed in with the password only, with INSUFFICIENT_USER_AUTHENTICATION
// asking for aal2, before its resolver runs.
func TestSteppedMutationsRefusedAtLevel1(t *testing.T) {
	t.Parallel()
	schema := graph.NewExecutableSchema(graph.Config{}).Schema()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, authtest.NewClock())
		admin := ts.Admin(t)
		giveFactor(t, ts, admin.UserID)
		n := 0
		for _, f := range schema.Mutation.Fields {
			d := f.Directives.ForName("auth")
			if d == nil || (d.Arguments.ForName("aal") == nil && d.Arguments.ForName("maxAge") == nil) {
				continue
			}
			n++
			t.Run(f.Name, func(t *testing.T) {
				doc := "mutation { " + f.Name + args(f) + selection(schema, f.Type) + " }"
				ext := stepUpErr(t, ts.Do(t, admin.Access, doc, nil), doc)
				if ext["acrValues"] != "aal2" {
					t.Errorf("%s: extensions %v, want acrValues aal2", doc, ext)
				}
			})
		}
		if n < 14 {
			t.Errorf("%d stepped mutations found, want the 14 of the schema at least", n)
		}
		var users int64
		ts.DB.Model(&models.User{}).Count(&users)
		if users != 1 {
			t.Errorf("%d users after the refusals, want the admin alone", users)
		}
	})
}

// args are literal values of f's required arguments, of their types.
func args(f *ast.FieldDefinition) string {
	var parts []string
	for _, a := range f.Arguments {
		if !a.Type.NonNull || a.DefaultValue != nil {
			continue
		}
		v := `"00000000-0000-0000-0000-000000000000"`
		switch {
		case a.Type.Elem != nil:
			v = "[]"
		case a.Type.NamedType == "Boolean":
			v = "true"
		case a.Type.NamedType == "Int":
			v = "1"
		}
		parts = append(parts, a.Name+": "+v)
	}
	if len(parts) == 0 {
		return ""
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// selection is the least selection a field of type t needs.
func selection(s *ast.Schema, t *ast.Type) string {
	if def := s.Types[t.Name()]; def != nil && def.Kind == ast.Object {
		return " { __typename }"
	}
	return ""
}
