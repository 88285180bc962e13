package main

// Attacks on accounts and identities (issue 10 §3, §5): admin bootstrap,
// lookalike emails, password forms, bad bytes, and typed text in the log.
// Over real HTTP, on SQLite and (with TEST_DATABASE_URL) PostgreSQL.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// TestAdminBootstrapHijackRefused: whoever registers AUTH_ADMIN_EMAIL
// before the admin is created (sign-up is open, the email no secret) does
// not become the admin at the next start; the server refuses to start,
// naming the variable and the fix, and the operator's explicit grant works.
func TestAdminBootstrapHijackRefused(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		env := map[string]string{"DATABASE_URL": dsn}
		url, stop := startRun(t, env)
		// The attacker registers the configured email, spelled otherwise:
		// the Unicode domain and another case are one address.
		attacker := gql(t, url, "", `mutation { register(email: "ROOT@xn--bcher-kva.example", password: "attacker-pw") { user { id } } }`).OK(t)
		attackerID := attacker.Str("register", "user", "id")
		if err := stop(); err != nil {
			t.Fatal(err)
		}

		env["AUTH_ADMIN_EMAIL"] = "root@Bücher.example"
		env["AUTH_ADMIN_PASSWORD"] = "operator-password"
		env["PORT"] = "0"
		env["AUTH_ARGON2_MEMORY"], env["AUTH_ARGON2_TIME"] = "64", "1"
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var stdout bytes.Buffer
		err := run(ctx, nil, func(k string) string { return env[k] }, nil, &stdout, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "AUTH_ADMIN_EMAIL") || !strings.Contains(err.Error(), "authql user roles --email") {
			t.Fatalf("run with AUTH_ADMIN_EMAIL of another's account = %v (stdout %q), want a refusal naming AUTH_ADMIN_EMAIL and the fix", err, stdout.String())
		}
		var admins int64
		if err := openTestDB(t, dsn).Table("user_roles").Where("role_name = ?", models.RoleAdmin).Count(&admins).Error; err != nil || admins != 0 {
			t.Fatalf("%d admins after the refused start (%v), want none", admins, err)
		}

		// The operator checked: it is theirs. An explicit grant, then the
		// start goes through and changes nothing.
		runCLI(t, env, "", "user", "roles", "--email", "root@bücher.example", "--set", "admin,user").ok(t)
		url, _ = startRun(t, env)
		r := gql(t, url, "", `mutation { login(email: "root@xn--bcher-kva.example", password: "attacker-pw") { user { id roles } } }`).OK(t)
		if r.Str("login", "user", "id") != attackerID || fmt.Sprint(r.Get("login", "user", "roles")) != "[admin user]" {
			t.Errorf("after the grant: %v, want %s with [admin user]", r.Data, attackerID)
		}
	})
}

// TestEmailsMeanOnePerson: the spellings of one address are one account,
// and lookalikes made of invisible characters, mixed scripts or IP
// addresses are refused with BAD_USER_INPUT saying why.
func TestEmailsMeanOnePerson(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := newTestServer(t, dsn, nil)
		for _, person := range []struct {
			email    string
			stored   string
			variants []string
		}{
			{"Anna@Bücher.example", "anna@xn--bcher-kva.example", []string{
				"anna@xn--bcher-kva.example", "ANNA@BÜCHER.EXAMPLE", "anna@bu\u0308cher.example", " anna@XN--BCHER-KVA.example ",
			}},
			{"Straße@example.com", "strasse@example.com", []string{"STRASSE@example.com", "strasse@EXAMPLE.com"}},
			{"kelvin@example.com", "kelvin@example.com", []string{"\u212Aelvin@example.com"}}, // KELVIN SIGN
			{"Zoë@example.com", "zoë@example.com", []string{"ZOË@example.com", "zoe\u0308@example.com"}},
		} {
			t.Run(person.stored, func(t *testing.T) {
				r := ts.do(t, "", registerDoc, map[string]any{"e": person.email, "p": "password1"}).OK(t)
				id := r.Str("register", "user", "id")
				if got := r.Str("register", "user", "email"); got != person.stored {
					t.Errorf("stored email %q, want %q", got, person.stored)
				}
				for _, v := range person.variants {
					if r := ts.do(t, "", registerDoc, map[string]any{"e": v, "p": "password1"}); r.Code(t) != models.BadUserInput || !strings.Contains(r.Errors[0].Message, "already exists") {
						t.Errorf("register %q: %+v, want BAD_USER_INPUT already exists", v, r.Errors)
					}
					if got := ts.login(t, v, "password1").OK(t).Str("login", "user", "id"); got != id {
						t.Errorf("login %q: user %s, want %s", v, got, id)
					}
				}
			})
		}
		for _, tc := range []struct{ name, email, want string }{
			{"CyrillicA", "p\u0430ypal@example.com", "mix"},
			{"GreekOmicron", "g\u03bfogle@example.com", "mix"},
			{"MixedDomainLabel", "anna@ex\u0430mple.com", "mix"},
			{"ZeroWidthSpace", "an\u200bna@example.com", "invisible"},
			{"ZeroWidthJoiner", "anna\u200d@example.com", "invisible"},
			{"BidiOverride", "anna\u202e@example.com", "invisible"},
			{"IPLiteral", "anna@[192.0.2.1]", "IP address"},
			{"IPDomain", "anna@192.0.2.1", "IP address"},
			{"NumericTLD", "anna@3232235521.0", "IP address"},
			{"BadIDNA", "anna@xn--a.example", "not a valid domain"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, doc := range []string{registerDoc, `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }`} {
					r := ts.do(t, "", doc, map[string]any{"e": tc.email, "p": "password1"})
					if r.Code(t) != models.BadUserInput || !strings.Contains(r.Errors[0].Message, tc.want) {
						t.Errorf("%+v, want BAD_USER_INPUT saying %q", r.Errors, tc.want)
					}
				}
			})
		}
		var n int64
		if err := ts.DB.Table("users").Count(&n).Error; err != nil || n != 4 {
			t.Errorf("%d users (%v), want the 4 people", n, err)
		}
	})
}

// TestPasswordsNormalizedToNFC: a password typed in another Unicode form
// is the same password; a hash made before passwords were normalized (of
// the form typed then) still logs in with that form, and is replaced by a
// hash of the NFC form, with which the other forms then log in too.
func TestPasswordsNormalizedToNFC(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := newTestServer(t, dsn, nil)
		const nfc, nfd = "caf\u00e9-au-lait", "cafe\u0301-au-lait"

		ts.register(t, "new@example.com", nfd)
		for _, p := range []string{nfc, nfd} {
			ts.login(t, "new@example.com", p).OK(t)
		}

		// An account from before: its hash is of the decomposed form.
		h, err := auth.NewHasher(cheapArgon2)
		if err != nil {
			t.Fatal(err)
		}
		old, _ := h.Hash(nfd)
		u := &models.User{ID: uuid.NewString(), Email: "old@example.com", PasswordHash: old}
		if err := models.CreateUser(context.Background(), ts.DB, u, []string{models.RoleUser}, nil); err != nil {
			t.Fatal(err)
		}
		if code := ts.login(t, "old@example.com", "cafe-au-lait").Code(t); code != models.Unauthenticated {
			t.Fatalf("wrong password: %s, want UNAUTHENTICATED", code)
		}
		ts.login(t, "old@example.com", nfd).OK(t)
		var stored string
		ts.DB.Table("users").Where("id = ?", u.ID).Pluck("password_hash", &stored)
		if stored == old {
			t.Fatal("the hash of the typed form was not replaced at login")
		}
		for _, p := range []string{nfc, nfd} {
			ts.login(t, "old@example.com", p).OK(t)
		}
	})
}

// TestBadBytesAreBadInput: a NUL or invalid UTF-8 in any string argument,
// however it is sent (a JSON escape, raw bytes in the body, an escape in a
// literal of the document), is BAD_USER_INPUT before anything runs, on both
// databases, and commits nothing.
func TestBadBytesAreBadInput(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := newTestServer(t, dsn, nil)
		admin := ts.admin(t)
		user := ts.register(t, "user@example.com", "password1")
		var rows0 int64
		countRows := func() int64 {
			var n, total int64
			for _, table := range []string{"users", "sessions", "user_roles", "refresh_tokens"} {
				ts.DB.Table(table).Count(&n)
				total += n
			}
			return total
		}
		rows0 = countRows()

		const nul, bad = `\u0000`, "\xff\xfe"
		jsonVars := func(doc, vars string) string {
			return fmt.Sprintf(`{"query":%q,"variables":%s}`, doc, vars)
		}
		for _, tc := range []struct{ name, token, body string }{
			{"RegisterEmailNUL", "", jsonVars(registerDoc, `{"e":"a`+nul+`b@example.com","p":"password1"}`)},
			{"RegisterPasswordNUL", "", jsonVars(registerDoc, `{"e":"new@example.com","p":"pass`+nul+`word1"}`)},
			{"RegisterEmailBadUTF8", "", jsonVars(registerDoc, `{"e":"a`+bad+`b@example.com","p":"password1"}`)},
			{"RegisterPasswordBadUTF8", "", jsonVars(registerDoc, `{"e":"new@example.com","p":"pass`+bad+`word1"}`)},
			{"RegisterEmailLiteralNUL", "", `{"query":"mutation { register(email: \"a\\u0000b@example.com\", password: \"password1\") { accessToken } }"}`},
			{"RegisterInFragmentNUL", "", `{"query":"mutation { ...F } fragment F on Mutation { register(email: \"new@example.com\", password: \"pass\\u0000word1\") { accessToken } }"}`},
			{"LoginEmailNUL", "", jsonVars(`mutation($e: String!) { login(email: $e, password: "password1") { accessToken } }`, `{"e":"user@example.com`+nul+`"}`)},
			{"LoginPasswordNUL", "", jsonVars(`mutation($p: String!) { login(email: "user@example.com", password: $p) { accessToken } }`, `{"p":"password1`+nul+`"}`)},
			{"LoginPasswordBadUTF8", "", jsonVars(`mutation($p: String!) { login(email: "user@example.com", password: $p) { accessToken } }`, `{"p":"password1`+bad+`"}`)},
			{"RefreshTokenNUL", "", jsonVars(`mutation($t: String!) { refresh(refreshToken: $t) { accessToken } }`, `{"t":"`+nul+`"}`)},
			{"SetUserRolesIDNUL", admin.Access, jsonVars(`mutation($id: ID!) { setUserRoles(userId: $id, roles: ["user"]) { id } }`, `{"id":"`+user.UserID+nul+`"}`)},
			{"SetUserRolesRoleNUL", admin.Access, jsonVars(`mutation($r: [String!]!) { setUserRoles(userId: "`+user.UserID+`", roles: $r) { id } }`, `{"r":["admin`+nul+`"]}`)},
			{"SetUserRolesRoleBadUTF8", admin.Access, jsonVars(`mutation($r: [String!]!) { setUserRoles(userId: "`+user.UserID+`", roles: $r) { id } }`, `{"r":["admin`+bad+`"]}`)},
			{"RevokeSessionIDNUL", user.Access, jsonVars(`mutation($id: ID!) { revokeSession(id: $id) }`, `{"id":"`+nul+`"}`)},
			{"UsersCursorNUL", admin.Access, jsonVars(`query($a: String) { users(after: $a) { id } }`, `{"a":"`+nul+`"}`)},
			{"AuditLogUserNUL", admin.Access, jsonVars(`query($u: ID) { auditLog(userId: $u) { id } }`, `{"u":"`+nul+`"}`)},
			{"AuditLogCursorLiteralNUL", admin.Access, `{"query":"{ auditLog(after: \"\\u0000\") { id } }"}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodPost, ts.URL+"/query", strings.NewReader(tc.body))
				req.Header.Set("Content-Type", "application/json")
				if tc.token != "" {
					req.Header.Set("Authorization", "Bearer "+tc.token)
				}
				r := doRequest(t, req)
				if r.Code(t) != models.BadUserInput {
					t.Errorf("status %d, %+v; want BAD_USER_INPUT", r.Status, r.Errors)
				}
				if r.Data["register"] != nil || r.Data["login"] != nil || r.Data["setUserRoles"] != nil {
					t.Errorf("data %v, want none", r.Data)
				}
			})
		}
		if n := countRows(); n != rows0 {
			t.Errorf("%d rows after the refusals, want %d: something was committed", n, rows0)
		}
		// The same checks hold for callers that are not GraphQL.
		if _, err := ts.Svc.AddUser(context.Background(), "cli@example.com", "pass\x00word1", []string{"user"}); models.ErrorCode(err) != models.BadUserInput {
			t.Errorf("AddUser with a NUL in the password: %v, want BAD_USER_INPUT", err)
		}
		if _, err := ts.Svc.SetUserRoles(context.Background(), user.UserID, []string{"user\x00"}); models.ErrorCode(err) != models.BadUserInput {
			t.Errorf("SetUserRoles with a NUL in a role: %v, want BAD_USER_INPUT", err)
		}
	})
}

// doRequest sends req and decodes the GraphQL response.
func doRequest(t *testing.T, req *http.Request) gqlResponse {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out gqlResponse
	out.Status = resp.StatusCode
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("status %d: %v", resp.StatusCode, err)
	}
	return out
}

// TestUserAgentCleaned: a User-Agent with bytes that are not UTF-8, or one
// cut inside a character at 512 bytes, is stored cleaned: the sign-in
// works on both databases and the session shows valid UTF-8.
func TestUserAgentCleaned(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := newTestServer(t, dsn, nil)
		for i, tc := range []struct{ name, ua, want string }{
			{"InvalidUTF8", "agent/1.0 \xff\xfe(x)", "agent/1.0 \ufffd\ufffd(x)"},
			{"CutInsideCharacter", strings.Repeat("a", 511) + "é", strings.Repeat("a", 511)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := postGraphQL(t, ts.URL, map[string]string{"User-Agent": tc.ua}, registerDoc,
					map[string]any{"e": fmt.Sprintf("ua%d@example.com", i), "p": "password1"}).OK(t)
				token := r.Str("register", "accessToken")
				sessions := ts.do(t, token, `{ mySessions { userAgent } }`, nil).OK(t).Get("mySessions").([]any)
				got := sessions[0].(map[string]any)["userAgent"].(string)
				if got != tc.want {
					t.Errorf("stored User-Agent %q, want %q", got, tc.want)
				}
				var stored string
				ts.DB.Table("sessions").Where("user_id = ?", r.Str("register", "user", "id")).Pluck("user_agent", &stored)
				if !utf8.ValidString(stored) || len(stored) > 512 {
					t.Errorf("stored %q: not valid UTF-8 of at most 512 bytes", stored)
				}
			})
		}
	})
}

// TestLogHoldsNoTypedEmail: when register fails inside (here the database
// is gone), the error line in the log names the call, not the email typed.
func TestLogHoldsNoTypedEmail(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		var logs syncBuffer
		ts := newTestServer(t, dsn, nil, func(c *testConfig) { c.Log = &logs })
		sqlDB, _ := ts.DB.DB()
		sqlDB.Close()
		r := ts.do(t, "", registerDoc, map[string]any{"e": "typed-secret@example.com", "p": "password1"})
		if len(r.Errors) == 0 {
			t.Fatal("register succeeded on a closed database")
		}
		if !strings.Contains(logs.String(), "CreateUser") {
			t.Fatalf("no CreateUser error line in the log:\n%s", logs.String())
		}
		if strings.Contains(logs.String(), "typed-secret") {
			t.Errorf("the log holds the email typed:\n%s", logs.String())
		}
	})
}
