package httpapi_test

// Attacks on accounts and identities (issue 10 §3, §5): admin bootstrap,
// lookalike emails, password forms, bad bytes, and typed text in the log.
// Over real HTTP, on SQLite and (with TEST_DATABASE_URL) PostgreSQL.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// TestEmailsMeanOnePerson: the spellings of one address are one account,
// and lookalikes made of invisible characters, mixed scripts or IP
// addresses are refused with BAD_USER_INPUT saying why.
func TestEmailsMeanOnePerson(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
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
				r := ts.Do(t, "", authtest.RegisterDoc, map[string]any{"e": person.email, "p": "password1"}).OK(t)
				id := r.Str("register", "user", "id")
				if got := r.Str("register", "user", "email"); got != person.stored {
					t.Errorf("stored email %q, want %q", got, person.stored)
				}
				for _, v := range person.variants {
					if r := ts.Do(t, "", authtest.RegisterDoc, map[string]any{"e": v, "p": "password1"}); r.Code(t) != models.BadUserInput || !strings.Contains(r.Errors[0].Message, "already exists") {
						t.Errorf("register %q: %+v, want BAD_USER_INPUT already exists", v, r.Errors)
					}
					if got := ts.Login(t, v, "password1").OK(t).Str("login", "user", "id"); got != id {
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
				for _, doc := range []string{authtest.RegisterDoc, `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }`} {
					r := ts.Do(t, "", doc, map[string]any{"e": tc.email, "p": "password1"})
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
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		const nfc, nfd = "caf\u00e9-au-lait", "cafe\u0301-au-lait"

		ts.Register(t, "new@example.com", nfd)
		for _, p := range []string{nfc, nfd} {
			ts.Login(t, "new@example.com", p).OK(t)
		}

		// An account from before: its hash is of the decomposed form.
		h, err := auth.NewHasher(authtest.CheapArgon2)
		if err != nil {
			t.Fatal(err)
		}
		old, _ := h.Hash(nfd)
		u := &models.User{ID: uuid.NewString(), Email: "old@example.com", PasswordHash: old}
		if err := models.CreateUser(context.Background(), ts.DB, u, []string{models.RoleUser}, nil); err != nil {
			t.Fatal(err)
		}
		if code := ts.Login(t, "old@example.com", "cafe-au-lait").Code(t); code != models.Unauthenticated {
			t.Fatalf("wrong password: %s, want UNAUTHENTICATED", code)
		}
		ts.Login(t, "old@example.com", nfd).OK(t)
		var stored string
		ts.DB.Table("users").Where("id = ?", u.ID).Pluck("password_hash", &stored)
		if stored == old {
			t.Fatal("the hash of the typed form was not replaced at login")
		}
		for _, p := range []string{nfc, nfd} {
			ts.Login(t, "old@example.com", p).OK(t)
		}
	})
}

// TestBadBytesAreBadInput: a NUL or invalid UTF-8 in any string argument,
// however it is sent (a JSON escape, raw bytes in the body, an escape in a
// literal of the document), is BAD_USER_INPUT before anything runs, on both
// databases, and commits nothing.
func TestBadBytesAreBadInput(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		admin := ts.Admin(t)
		user := ts.Register(t, "user@example.com", "password1")
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
			{"RegisterEmailNUL", "", jsonVars(authtest.RegisterDoc, `{"e":"a`+nul+`b@example.com","p":"password1"}`)},
			{"RegisterPasswordNUL", "", jsonVars(authtest.RegisterDoc, `{"e":"new@example.com","p":"pass`+nul+`word1"}`)},
			{"RegisterEmailBadUTF8", "", jsonVars(authtest.RegisterDoc, `{"e":"a`+bad+`b@example.com","p":"password1"}`)},
			{"RegisterPasswordBadUTF8", "", jsonVars(authtest.RegisterDoc, `{"e":"new@example.com","p":"pass`+bad+`word1"}`)},
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
func doRequest(t *testing.T, req *http.Request) authtest.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out authtest.Response
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
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		for i, tc := range []struct{ name, ua, want string }{
			{"InvalidUTF8", "agent/1.0 \xff\xfe(x)", "agent/1.0 \ufffd\ufffd(x)"},
			{"CutInsideCharacter", strings.Repeat("a", 511) + "é", strings.Repeat("a", 511)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := authtest.PostGraphQL(t, ts.URL, map[string]string{"User-Agent": tc.ua}, authtest.RegisterDoc,
					map[string]any{"e": fmt.Sprintf("ua%d@example.com", i), "p": "password1"}).OK(t)
				token := r.Str("register", "accessToken")
				sessions := ts.Do(t, token, `{ mySessions { userAgent } }`, nil).OK(t).Get("mySessions").([]any)
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
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		var logs authtest.SyncBuffer
		ts := authtest.NewServer(t, dsn, nil, func(c *authtest.Config) { c.Log = &logs })
		sqlDB, _ := ts.DB.DB()
		sqlDB.Close()
		r := ts.Do(t, "", authtest.RegisterDoc, map[string]any{"e": "typed-secret@example.com", "p": "password1"})
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

func TestPasswordHashUpgrade(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		u := ts.Register(t, "imported@example.com", "password1")
		stored := func() string {
			var user models.User
			if err := ts.DB.Where("id = ?", u.UserID).Take(&user).Error; err != nil {
				t.Fatal(err)
			}
			return user.PasswordHash
		}
		if h := stored(); !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
			t.Fatalf("stored hash %q is not argon2id with the configured parameters", h)
		}
		t.Run("FromBcrypt", func(t *testing.T) {
			b, _ := bcrypt.GenerateFromPassword([]byte("imported-pw"), bcrypt.MinCost)
			ts.DB.Model(&models.User{}).Where("id = ?", u.UserID).Update("password_hash", string(b))
			if code := ts.Login(t, "imported@example.com", "wrong-password").Code(t); code != models.Unauthenticated {
				t.Errorf("wrong password: code = %s", code)
			}
			ts.Login(t, "imported@example.com", "imported-pw").OK(t)
			if h := stored(); !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
				t.Errorf("hash not upgraded: %q", h)
			}
			ts.Login(t, "imported@example.com", "imported-pw").OK(t)
		})
		t.Run("FromOlderArgon2Parameters", func(t *testing.T) {
			old := authtest.NewServer(t, dsn, nil, func(c *authtest.Config) { c.Auth.Argon2.Memory = 32 })
			old.Do(t, "", `mutation { register(email: "old@example.com", password: "password1") { accessToken } }`, nil).OK(t)
			ts.Login(t, "old@example.com", "password1").OK(t)
			var user models.User
			ts.DB.Where("email = ?", "old@example.com").Take(&user)
			if !strings.HasPrefix(user.PasswordHash, "$argon2id$v=19$m=64,t=1,p=1$") {
				t.Errorf("hash not upgraded: %q", user.PasswordHash)
			}
		})
	})
}

func TestNoPlaintextSecretsStored(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		const password = "very-secret-password"
		u := ts.Register(t, "user@example.com", password)
		r := authtest.TokensOf(ts.Refresh(t, u.Refresh).OK(t), "refresh")
		tables := []string{"users", "sessions", "refresh_tokens", "revocations"}
		for _, table := range tables {
			var rows []map[string]any
			if err := ts.DB.Table(table).Find(&rows).Error; err != nil {
				t.Fatal(err)
			}
			dump := fmt.Sprint(rows)
			for _, secret := range []string{password, u.Refresh, r.Refresh} {
				if strings.Contains(dump, secret) {
					t.Errorf("table %s holds a plaintext secret", table)
				}
			}
		}
	})
}

// TestRegisterAtomic makes the first session's insert fail: the account
// must not remain, and its email is free for the next attempt.
func TestRegisterAtomic(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		// In this test's database only: a session from this User-Agent
		// cannot be inserted.
		var ddl []string
		if ts.DB.Dialector.Name() == string(models.Postgres) {
			ddl = []string{
				`CREATE FUNCTION refuse_session() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN IF NEW.user_agent = ''Refused/1.0'' THEN RAISE EXCEPTION ''session refused by the test''; END IF; RETURN NEW; END'`,
				`CREATE TRIGGER refuse_session BEFORE INSERT ON sessions FOR EACH ROW EXECUTE FUNCTION refuse_session()`,
			}
		} else {
			ddl = []string{`CREATE TRIGGER refuse_session BEFORE INSERT ON sessions WHEN NEW.user_agent = 'Refused/1.0' BEGIN SELECT RAISE(ABORT, 'session refused by the test'); END`}
		}
		for _, q := range ddl {
			if err := ts.DB.Exec(q).Error; err != nil {
				t.Fatal(err)
			}
		}
		doc := `mutation { register(email: "ada@example.com", password: "password1") { accessToken } }`
		r := doAs(t, ts, "", "Refused/1.0", doc, nil)
		if code := r.Code(t); code != models.Internal {
			t.Errorf("register whose session cannot be inserted: %s, want INTERNAL_SERVER_ERROR", code)
		}
		count := func(table, where string, args ...any) int64 {
			var n int64
			if err := ts.DB.Table(table).Where(where, args...).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := count("users", "email = ?", "ada@example.com"); n != 0 {
			t.Errorf("users with the email after the failed register = %d, want 0", n)
		}
		if n := count("user_roles", "1 = 1"); n != 0 {
			t.Errorf("user_roles rows = %d, want 0", n)
		}
		for _, e := range auditRows(t, ts, models.AuditRegister) {
			if e.Outcome != models.AuditFailure || e.UserID != nil {
				t.Errorf("REGISTER event %+v, want a failure naming no user", e)
			}
		}
		// The email is free: the next attempt succeeds.
		u := authtest.TokensOf(doAs(t, ts, "", "Agent/1.0", `mutation { register(email: "ada@example.com", password: "password1") { `+authtest.PayloadFields+` } }`, nil).OK(t), "register")
		ts.Me(t, u.Access).OK(t)
		if n := count("users", "1 = 1"); n != 1 {
			t.Errorf("users = %d, want 1", n)
		}
	})
}
