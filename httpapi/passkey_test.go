package httpapi_test

// Passkeys over real HTTP (issue 13): registration and sign-in with a
// software authenticator, the level and methods of the session, renaming
// and deleting, on SQLite and (with TEST_DATABASE_URL) PostgreSQL.

import (
	"strings"
	"testing"

	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

const (
	beginRegDoc   = `mutation($l: String) { beginPasskeyRegistration(label: $l) { ceremonyId options expiresAt } }`
	finishRegDoc  = `mutation($c: ID!, $cred: String!) { finishPasskeyRegistration(ceremonyId: $c, credential: $cred) { id label backedUp createdAt lastUsedAt } }`
	beginLogDoc   = `mutation($e: String) { beginPasskeyLogin(email: $e) { ceremonyId options expiresAt } }`
	finishLogDoc  = `mutation($c: ID!, $cred: String!) { finishPasskeyLogin(ceremonyId: $c, credential: $cred) { ` + authtest.PayloadFields + ` } }`
	renameDoc     = `mutation($id: ID!, $l: String!) { renamePasskey(id: $id, label: $l) { id label } }`
	deletePassDoc = `mutation($id: ID!) { deletePasskey(id: $id) }`
)

// registerPasskey registers a passkey of a for the session's user and
// returns its id.
func registerPasskey(t *testing.T, ts *authtest.Server, access string, a *authtest.Authenticator, label string) string {
	t.Helper()
	r := ts.Do(t, access, beginRegDoc, map[string]any{"l": label}).OK(t)
	cred, err := a.Create(r.Str("beginPasskeyRegistration", "options"))
	if err != nil {
		t.Fatal(err)
	}
	f := ts.Do(t, access, finishRegDoc, map[string]any{"c": r.Str("beginPasskeyRegistration", "ceremonyId"), "cred": cred}).OK(t)
	return f.Str("finishPasskeyRegistration", "id")
}

// passkeySignIn signs in with a passkey of a, email "" for a
// discoverable sign-in.
func passkeySignIn(t *testing.T, ts *authtest.Server, email string, a *authtest.Authenticator) authtest.Response {
	t.Helper()
	vars := map[string]any{}
	if email != "" {
		vars["e"] = email
	}
	r := ts.Do(t, "", beginLogDoc, vars).OK(t)
	cred, err := a.Get(r.Str("beginPasskeyLogin", "options"))
	if err != nil {
		t.Fatal(err)
	}
	return ts.Do(t, "", finishLogDoc, map[string]any{"c": r.Str("beginPasskeyLogin", "ceremonyId"), "cred": cred})
}

func TestPasskeyOverHTTP(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		user := ts.Register(t, "pia@example.com", "password1")
		a := authtest.NewAuthenticator()
		// A user without a second factor registers their first passkey
		// from a password session (aal 2 is the highest they have).
		id := registerPasskey(t, ts, user.Access, a, "Phone")

		for _, email := range []string{"", "pia@example.com"} {
			r := passkeySignIn(t, ts, email, a).OK(t)
			tok := authtest.TokensOf(r, "finishPasskeyLogin")
			if tok.UserID != user.UserID {
				t.Fatalf("signed in %s, want %s", tok.UserID, user.UserID)
			}
			c := authtest.Claims(t, tok.Access)
			if c["acr"] != "aal2" || !strings.Contains(strings.Join(strs(c["amr"]), " "), "hwk user mfa") {
				t.Errorf("claims acr %v amr %v, want aal2, hwk user mfa", c["acr"], c["amr"])
			}
		}

		// The passkey now makes aal 2 the user's level: a password
		// session cannot add another.
		pw := authtest.TokensOf(ts.Login(t, "pia@example.com", "password1"), "login")
		if pw.Access != "" {
			if code := ts.Do(t, pw.Access, beginRegDoc, nil).Code(t); code != models.InsufficientUserAuthentication {
				t.Errorf("beginPasskeyRegistration at level 1: %s, want %s", code, models.InsufficientUserAuthentication)
			}
		}

		pk := authtest.TokensOf(passkeySignIn(t, ts, "", a).OK(t), "finishPasskeyLogin")
		other := ts.Register(t, "oli@example.com", "password1")
		if code := ts.Do(t, other.Access, renameDoc, map[string]any{"id": id, "l": "mine"}).Code(t); code != models.NotFound {
			t.Errorf("rename another's passkey: %s, want NOT_FOUND", code)
		}
		if got := ts.Do(t, pk.Access, renameDoc, map[string]any{"id": id, "l": "Laptop"}).OK(t).Str("renamePasskey", "label"); got != "Laptop" {
			t.Errorf("label %q", got)
		}
		if code := ts.Do(t, other.Access, deletePassDoc, map[string]any{"id": id}).Code(t); code != models.NotFound {
			t.Errorf("delete another's passkey: %s, want NOT_FOUND", code)
		}
		ts.Do(t, pk.Access, deletePassDoc, map[string]any{"id": id}).OK(t)
		if r := passkeySignIn(t, ts, "", a); r.Code(t) != models.BadUserInput || r.Errors[0].Message != "the passkey could not be verified" {
			t.Errorf("sign-in with a deleted passkey: %+v", r.Errors)
		}
	})
}

// TestPasskeyCeremonyRefusals: an assertion from another origin, without
// user verification, or for a spent ceremony gets BAD_USER_INPUT, and
// never the library's reasons.
func TestPasskeyCeremonyRefusals(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		user := ts.Register(t, "ria@example.com", "password1")
		a := authtest.NewAuthenticator()
		registerPasskey(t, ts, user.Access, a, "")

		a.Origin = "https://evil.test"
		if r := passkeySignIn(t, ts, "", a); r.Code(t) != models.BadUserInput || r.Errors[0].Message != "the passkey could not be verified" {
			t.Errorf("another origin: %+v", r.Errors)
		}
		a.Origin, a.UV = authtest.WebAuthnOrigin, false
		if r := passkeySignIn(t, ts, "", a); r.Code(t) != models.BadUserInput {
			t.Errorf("no user verification: %+v", r.Errors)
		}
		a.UV = true
		r := ts.Do(t, "", beginLogDoc, nil).OK(t)
		c := r.Str("beginPasskeyLogin", "ceremonyId")
		cred, err := a.Get(r.Str("beginPasskeyLogin", "options"))
		if err != nil {
			t.Fatal(err)
		}
		ts.Do(t, "", finishLogDoc, map[string]any{"c": c, "cred": cred}).OK(t)
		if r := ts.Do(t, "", finishLogDoc, map[string]any{"c": c, "cred": cred}); r.Code(t) != models.BadUserInput {
			t.Errorf("ceremony again: %+v", r.Errors)
		}
	})
}

// strs is a JSON array of strings.
func strs(v any) []string {
	var out []string
	if a, ok := v.([]any); ok {
		for _, s := range a {
			if s, ok := s.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}
