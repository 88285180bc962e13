// Package authzcases is the one table of authorization cases that runs
// against authql itself and against the authz package in front of the
// example service, so that the two can never drift: a case added here runs
// on both (authql_test.go and authz/conformance_test.go).
package authzcases

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authql/authql/auth/keys"
	"github.com/authql/authql/internal/authtest"
)

// Rule is the @auth a case is decided by.
type Rule struct{ Role, Permission string }

// Rules the table uses, and the fields gated by them on each target.
var (
	AnyCaller  = Rule{}
	AdminRole  = Rule{Role: "admin"}
	RolesRead  = Rule{Permission: "roles:read"}
	TargetRule = []Rule{AnyCaller, AdminRole, RolesRead}
)

// AuthqlQuery is a document whose only field is gated by rule on authql.
// authql has no field gated by roles:read alone: Query.roles needs the
// role admin and its type Role the permission roles:read, which only
// admins hold, so the outcomes agree with a field gated by the permission.
func AuthqlQuery(rule Rule) string {
	switch rule {
	case AdminRole:
		return `{ users(first: 1) { id } }`
	case RolesRead:
		return `{ roles { name } }`
	}
	return `{ me { id } }`
}

// Env is one case's authql: a real test server (EdDSA keys in its
// database, its issuer its own URL), a plain user and an admin.
type Env struct {
	TS          *authtest.Server
	User, Admin authtest.Tokens
}

// NewEnv starts authql on dsn for one case.
func NewEnv(t *testing.T, dsn string) *Env {
	t.Helper()
	ts := authtest.NewServer(t, dsn, nil, authtest.WithAlg(keys.AlgEdDSA), authtest.WithIssuerURL())
	return &Env{TS: ts, User: ts.Register(t, "user@example.com", "user-password"), Admin: ts.Admin(t)}
}

// Case is one row: how its token is made (through authql, or forged with
// its stored keys), the rule, and the expected outcome: Code "" for
// success, else extensions.code and, for UNAUTHENTICATED, reason.
type Case struct {
	Name         string
	Rule         Rule
	Token        func(t *testing.T, e *Env) string
	Code, Reason string
	// Eventually: the outcome may take a moment to reach a target that
	// learns of it from authql's revocation feed or a background refetch
	// of its JWKS (poll for it, within a second: the bound).
	Eventually bool
}

// Cases is the table.
var Cases = []Case{
	{Name: "NoToken", Rule: AnyCaller, Token: func(*testing.T, *Env) string { return "" }, Code: "UNAUTHENTICATED", Reason: "NO_TOKEN"},
	{Name: "AnyCaller", Rule: AnyCaller, Token: user},
	{Name: "RoleHeld", Rule: AdminRole, Token: admin},
	{Name: "RoleLacking", Rule: AdminRole, Token: user, Code: "FORBIDDEN"},
	{Name: "PermissionHeld", Rule: RolesRead, Token: admin},
	{Name: "PermissionLacking", Rule: RolesRead, Token: user, Code: "FORBIDDEN"},
	{Name: "RevokedSession", Rule: AnyCaller, Token: revoked, Code: "UNAUTHENTICATED", Reason: "TOKEN_REVOKED", Eventually: true},
	{Name: "AccountDisabled", Rule: AnyCaller, Token: disabled, Code: "UNAUTHENTICATED", Reason: "TOKEN_REVOKED", Eventually: true},
	{Name: "Expired", Rule: AnyCaller, Token: expired, Code: "UNAUTHENTICATED", Reason: "TOKEN_EXPIRED"},
	{Name: "WrongAudience", Rule: AnyCaller, Token: wrongAudience, Code: "UNAUTHENTICATED", Reason: "TOKEN_INVALID"},
	{Name: "UnknownKID", Rule: AnyCaller, Token: unknownKID, Code: "UNAUTHENTICATED", Reason: "TOKEN_INVALID"},
	{Name: "BadSignature", Rule: AnyCaller, Token: badSignature, Code: "UNAUTHENTICATED", Reason: "TOKEN_INVALID"},
	{Name: "RotatedKeyStillVerifying", Rule: AdminRole, Token: oldKeyAfterRotation},
	{Name: "RotatedInKey", Rule: AdminRole, Token: newKeyAfterRotation},
	// authz refetches a stale key set in the background and verifies
	// with the cached one meanwhile: the retired key goes at that refetch.
	{Name: "RetiredKey", Rule: AnyCaller, Token: retiredKey, Code: "UNAUTHENTICATED", Reason: "TOKEN_INVALID", Eventually: true},
	// Roles changed after the token's issue: authql decides with the
	// user's current roles, authz with those of the feed's ROLES_CHANGED.
	{Name: "RoleGrantedAfterIssue", Rule: AdminRole, Token: roleGranted, Eventually: true},
	{Name: "RoleRemovedAfterIssue", Rule: AdminRole, Token: roleRemoved, Code: "FORBIDDEN", Eventually: true},
}

func user(_ *testing.T, e *Env) string  { return e.User.Access }
func admin(_ *testing.T, e *Env) string { return e.Admin.Access }

// revoked is a token whose session logged out.
func revoked(t *testing.T, e *Env) string {
	e.TS.Do(t, e.User.Access, `mutation { logout }`, nil).OK(t)
	return e.User.Access
}

// disabled is a token of a user an admin then disabled.
func disabled(t *testing.T, e *Env) string {
	e.TS.Do(t, e.Admin.Access, `mutation($id: ID!) { disableUser(userId: $id) { id } }`, map[string]any{"id": e.User.UserID}).OK(t)
	return e.User.Access
}

// expired is a token past its exp and the skew.
func expired(t *testing.T, e *Env) string {
	e.TS.Clock.Advance(15*time.Minute + keys.MaxClockSkew + time.Second)
	return e.User.Access
}

// wrongAudience is signed by authql's key, for another audience.
func wrongAudience(t *testing.T, e *Env) string {
	kid := authtest.KID(t, e.User.Access)
	m, k := authtest.StoredKey(t, e.TS, kid)
	return authtest.Forge(t, e.User.Access, m, k, kid, func(c jwt.MapClaims) { c["aud"] = []string{"another-service"} })
}

// unknownKID is signed by a key authql never had.
func unknownKID(t *testing.T, e *Env) string {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return authtest.Forge(t, e.User.Access, jwt.SigningMethodEdDSA, priv, "no-such-key", nil)
}

// badSignature is a real token with its signature's first character
// changed.
func badSignature(t *testing.T, e *Env) string {
	tok := e.User.Access
	i := strings.LastIndex(tok, ".") + 1
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// rotate adds a key that signs at once, as `authql keys rotate` does, lets
// the test clock pass its activation and reloads authql's keys.
func rotate(t *testing.T, e *Env) string {
	t.Helper()
	kid, err := keys.Rotate(context.Background(), e.TS.DB, keys.Config{Alg: keys.AlgEdDSA}, 0, e.TS.Clock.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.TS.Clock.Advance(time.Second)
	if err := e.TS.Svc.Keys().Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return kid
}

// oldKeyAfterRotation: a token of the key rotated out verifies until the
// last token it signed has expired.
func oldKeyAfterRotation(t *testing.T, e *Env) string {
	rotate(t, e)
	return e.Admin.Access
}

// newKeyAfterRotation: a token of the key rotated in, fresh from a login.
func newKeyAfterRotation(t *testing.T, e *Env) string {
	kid := rotate(t, e)
	tok := authtest.TokensOf(e.TS.Login(t, "admin@example.com", "admin-password").OK(t), "login").Access
	if authtest.KID(t, tok) != kid {
		t.Fatalf("login signs with %s, want the rotated-in %s", authtest.KID(t, tok), kid)
	}
	return tok
}

// retiredKey: past the retired key's verification window (its last
// token's expiry), a token made with its private key (from the database,
// or an old backup) is refused, fresh times and all.
func retiredKey(t *testing.T, e *Env) string {
	old := authtest.KID(t, e.User.Access)
	m, k := authtest.StoredKey(t, e.TS, old)
	rotate(t, e)
	e.TS.Clock.Advance(keys.ReloadInterval + 15*time.Minute + 2*keys.MaxClockSkew + time.Minute)
	now := e.TS.Clock.Now()
	return authtest.Forge(t, e.User.Access, m, k, old, func(c jwt.MapClaims) {
		c["iat"], c["nbf"], c["exp"] = now.Unix(), now.Unix(), now.Add(10*time.Minute).Unix()
	})
}

// Outcome is the code and reason of a response's first error ("" for none).
func Outcome(r authtest.Response) (code, reason string) {
	if len(r.Errors) == 0 {
		return "", ""
	}
	code, _ = r.Errors[0].Extensions["code"].(string)
	reason, _ = r.Errors[0].Extensions["reason"].(string)
	return code, reason
}

// Check fails t unless code and reason are the case's.
func (c Case) Check(t *testing.T, code, reason string) {
	t.Helper()
	if code != c.Code || reason != c.Reason {
		t.Errorf("%s: got code %q reason %q, want %q %q", c.Name, code, reason, c.Code, c.Reason)
	}
}

// setRoles gives the plain user roles, as setUserRoles does.
func setRoles(t *testing.T, e *Env, roles ...string) {
	t.Helper()
	if _, err := e.TS.Svc.SetUserRoles(context.Background(), e.User.UserID, roles); err != nil {
		t.Fatal(err)
	}
}

// roleGranted: the user's token from before they were made an admin.
func roleGranted(t *testing.T, e *Env) string {
	setRoles(t, e, "user", "admin")
	return e.User.Access
}

// roleRemoved: an admin's token (claims roles admin) from before the role
// was taken away.
func roleRemoved(t *testing.T, e *Env) string {
	setRoles(t, e, "user", "admin")
	tok := authtest.TokensOf(e.TS.Login(t, "user@example.com", "user-password").OK(t), "login").Access
	setRoles(t, e, "user")
	return tok
}

// Find returns the case named name, failing t when there is none.
func Find(t *testing.T, name string) Case {
	t.Helper()
	for _, c := range Cases {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no case %q", name)
	return Case{}
}
