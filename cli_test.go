package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// cliResult is what one command run through run() did.
type cliResult struct {
	Err            error
	Stdout, Stderr string
}

// runCLI runs authql with args, the environment env (cheap argon2 unless
// set) and stdin, and returns its error and output.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) cliResult {
	t.Helper()
	e := map[string]string{"AUTH_ARGON2_MEMORY": "64", "AUTH_ARGON2_TIME": "1"}
	maps.Copy(e, env)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, args, func(k string) string { return e[k] }, strings.NewReader(stdin), &out, &errOut)
	return cliResult{Err: err, Stdout: out.String(), Stderr: errOut.String()}
}

// ok fails the test unless the command succeeded, and returns its output.
func (r cliResult) ok(t *testing.T) string {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("command failed: %v (stderr %q)", r.Err, r.Stderr)
	}
	return r.Stdout
}

func TestCLIHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"}, {"serve", "--help"},
		{"migrate", "--help"}, {"migrate", "-h"},
		{"user"}, {"user", "--help"}, {"user", "add", "--help"}, {"user", "roles", "-h"},
		{"keys", "--help"}, {"keys", "rotate", "--help"},
		{"health", "--help"}, {"version", "--help"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			// No database configured: help must not touch one.
			r := runCLI(t, map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}, "", args...)
			if out := r.ok(t); !strings.HasPrefix(out, "Usage") {
				t.Errorf("stdout = %q, want the usage", out)
			}
		})
	}
	out := runCLI(t, nil, "", "--help").ok(t)
	for _, cmd := range []string{"authql [serve]", "authql migrate", "authql user add", "authql user roles", "authql keys rotate", "authql health", "authql version", "AUTH_AUTO_MIGRATE"} {
		if !strings.Contains(out, cmd) {
			t.Errorf("usage does not list %q", cmd)
		}
	}
}

func TestLoadConfigAutoMigrate(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  bool
	}{{"", true}, {"true", true}, {"false", false}, {" FALSE ", false}, {"0", false}} {
		c, err := loadConfig(func(k string) string { return map[string]string{"AUTH_AUTO_MIGRATE": tc.value}[k] })
		if err != nil || c.AutoMigrate != tc.want {
			t.Errorf("AUTH_AUTO_MIGRATE=%q: %v, %v; want %v", tc.value, c.AutoMigrate, err, tc.want)
		}
	}
	if _, err := loadConfig(func(k string) string { return map[string]string{"AUTH_AUTO_MIGRATE": "never"}[k] }); err == nil || !strings.Contains(err.Error(), "AUTH_AUTO_MIGRATE") {
		t.Errorf("AUTH_AUTO_MIGRATE=never: %v, want an error naming the variable", err)
	}
}

func TestCLIVersion(t *testing.T) {
	out := runCLI(t, nil, "", "version").ok(t)
	if !strings.HasPrefix(out, "authql ") || !strings.Contains(out, "module github.com/authql/authql") || !strings.Contains(out, "go "+runtime.Version()) {
		t.Errorf("version printed %q", out)
	}
	defer func(v string) { version = v }(version)
	version = "v1.2.3" // as -ldflags "-X main.version=v1.2.3" sets it
	if out := runCLI(t, nil, "", "version").ok(t); !strings.HasPrefix(out, "authql v1.2.3\n") {
		t.Errorf("version with main.version set printed %q", out)
	}
}

func TestCLIMigrate(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		env := map[string]string{"DATABASE_URL": dsn}
		want := ""
		for _, id := range models.MigrationIDs() {
			want += "applied " + id + "\n"
		}
		if out := runCLI(t, env, "", "migrate").ok(t); out != want {
			t.Errorf("first migrate printed %q, want %q", out, want)
		}
		if out := runCLI(t, env, "", "migrate").ok(t); out != "up to date\n" {
			t.Errorf("second migrate printed %q, want up to date", out)
		}
	})
}

// TestCLINoAutoMigrate: with AUTH_AUTO_MIGRATE=false, serve and the
// commands refuse a database that lacks migrations, saying to run authql
// migrate; after it, they run. Migrations they do not know get a warning.
func TestCLINoAutoMigrate(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		env := map[string]string{"DATABASE_URL": dsn, "AUTH_AUTO_MIGRATE": "false", "PORT": "0"}
		wantErr := "the database schema lacks migrations " + strings.Join(models.MigrationIDs(), ", ") + ": run `authql migrate`"
		r := runCLI(t, env, "password1\n", "user", "add", "--email", "a@example.com", "--password-stdin")
		if r.Err == nil || !strings.Contains(r.Err.Error(), wantErr) {
			t.Errorf("user add on an unmigrated database: %v, want %q", r.Err, wantErr)
		}
		r = runCLI(t, env, "") // serve
		if r.Err == nil || !strings.Contains(r.Err.Error(), wantErr) {
			t.Errorf("serve on an unmigrated database: %v, want %q", r.Err, wantErr)
		}
		db := testdb.OpenAsIs(t, dsn)
		if st, err := models.MigrationStatus(context.Background(), db); err != nil || len(st.Pending) != len(models.MigrationIDs()) {
			t.Errorf("AUTH_AUTO_MIGRATE=false migrated: %+v, %v", st, err)
		}

		runCLI(t, env, "", "migrate").ok(t)
		runCLI(t, env, "password1\n", "user", "add", "--email", "a@example.com", "--password-stdin").ok(t)

		// A newer version's migration: warned about, not refused.
		if err := db.Exec(`INSERT INTO schema_migrations (id) VALUES ('209912310001_from_the_future')`).Error; err != nil {
			t.Fatal(err)
		}
		r = runCLI(t, env, "password2\n", "user", "add", "--email", "b@example.com", "--password-stdin")
		r.ok(t)
		if !strings.Contains(r.Stderr, "does not know") || !strings.Contains(r.Stderr, "209912310001_from_the_future") {
			t.Errorf("stderr = %q, want a warning naming the unknown migration", r.Stderr)
		}
		url, _ := startRun(t, env)
		gql(t, url, "", `mutation { login(email: "b@example.com", password: "password2") { accessToken } }`).OK(t)
	})
}

// TestCLIUserAddThenLogin: a user added by the CLI logs in through a
// running server, with the roles given and a hash of the configured argon2
// parameters.
func TestCLIUserAddThenLogin(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		env := map[string]string{"DATABASE_URL": dsn}
		id := strings.TrimSpace(runCLI(t, env, "correct horse battery\r\n", "user", "add", "--email", " Ops@Example.com ", "--password-stdin", "--role", "ADMIN", "--role", "user,admin").ok(t))
		plain := strings.TrimSpace(runCLI(t, env, "password1", "user", "add", "--email", "plain@example.com", "--password-stdin").ok(t))

		url, _ := startRun(t, env)
		r := gql(t, url, "", `mutation { login(email: "ops@example.com", password: "correct horse battery") { accessToken user { id email roles } } }`).OK(t)
		if got := r.Str("login", "user", "id"); got != id {
			t.Errorf("logged in as %s, want the id user add printed, %s", got, id)
		}
		if roles := fmt.Sprint(r.Get("login", "user", "roles")); roles != "[admin user]" {
			t.Errorf("roles = %s, want [admin user]", roles)
		}
		admin := r.Str("login", "accessToken")
		gql(t, url, admin, `{ users { email } }`).OK(t) // admin's

		r = gql(t, url, "", `mutation { login(email: "plain@example.com", password: "password1") { accessToken user { id roles } } }`).OK(t)
		if r.Str("login", "user", "id") != plain || fmt.Sprint(r.Get("login", "user", "roles")) != "[user]" {
			t.Errorf("default role: got %v, want %s with [user]", r.Data, plain)
		}

		// What the commands did is in the audit log, written before they
		// exited.
		runCLI(t, env, "", "user", "roles", "--email", "plain@example.com", "--set", "user").ok(t)
		r = gql(t, url, admin, `{ auditLog(first: 10) { type outcome userId actorId detail } }`).OK(t)
		var got []string
		for _, e := range r.Get("auditLog").([]any) {
			e := e.(map[string]any)
			if e["type"] == "REGISTER" || e["type"] == "ROLES_CHANGED" {
				got = append(got, fmt.Sprintf("%v %v %v %v %v", e["type"], e["outcome"], e["userId"], e["actorId"], e["detail"]))
			}
		}
		want := []string{
			"ROLES_CHANGED SUCCESS " + plain + " <nil> user",
			"REGISTER SUCCESS " + plain + " <nil> user",
			"REGISTER SUCCESS " + id + " <nil> admin,user",
		}
		if !slices.Equal(got, want) {
			t.Errorf("audit log of the commands, newest first:\n got %q\nwant %q", got, want)
		}

		var hash string
		if err := testdb.OpenAsIs(t, dsn).Raw(`SELECT password_hash FROM users WHERE id = ?`, id).Scan(&hash).Error; err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(hash, "m=64,t=1,p=1") {
			t.Errorf("hash %q was not made with AUTH_ARGON2_MEMORY=64 AUTH_ARGON2_TIME=1", hash)
		}
	})
}

func TestCLIUserErrors(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		env := map[string]string{"DATABASE_URL": dsn}
		runCLI(t, env, "root-password\n", "user", "add", "--email", "root@example.com", "--password-stdin", "--role", "admin").ok(t)
		for _, tc := range []struct {
			name  string
			stdin string
			args  []string
			want  string
		}{
			{"UnknownUserCommand", "", []string{"user", "remove"}, `unknown user command "remove"`},
			{"AddBadFlag", "", []string{"user", "add", "--emial", "a@example.com"}, "flag provided but not defined: -emial"},
			{"AddExtraArgument", "", []string{"user", "add", "--email", "a@example.com", "--password-stdin", "secret123"}, `unexpected argument "secret123"`},
			{"AddNoEmail", "password1\n", []string{"user", "add", "--password-stdin"}, "--email is required"},
			{"AddNoPasswordStdin", "password1\n", []string{"user", "add", "--email", "a@example.com"}, "--password-stdin is required"},
			{"AddEmptyPassword", "\n", []string{"user", "add", "--email", "a@example.com", "--password-stdin"}, "empty password on standard input"},
			{"AddNoStdin", "", []string{"user", "add", "--email", "a@example.com", "--password-stdin"}, "empty password on standard input"},
			{"AddShortPassword", "short\n", []string{"user", "add", "--email", "a@example.com", "--password-stdin"}, "password must be at least 8 characters"},
			{"AddBadEmail", "password1\n", []string{"user", "add", "--email", "not-an-email", "--password-stdin"}, "invalid email address"},
			{"AddUnknownRole", "password1\n", []string{"user", "add", "--email", "a@example.com", "--password-stdin", "--role", "user,superuser"}, `unknown role "superuser"`},
			{"AddTakenEmail", "password1\n", []string{"user", "add", "--email", "ROOT@example.com", "--password-stdin"}, "already exists"},
			{"RolesNoEmail", "", []string{"user", "roles", "--set", "user"}, "--email is required"},
			{"RolesNoSet", "", []string{"user", "roles", "--email", "root@example.com"}, "--set is required"},
			{"RolesUnknownEmail", "", []string{"user", "roles", "--email", "nobody@example.com", "--set", "user"}, `no user has the email "nobody@example.com"`},
			{"RolesUnknownRole", "", []string{"user", "roles", "--email", "root@example.com", "--set", "admin,owner"}, `unknown role "owner"`},
			{"RolesLastAdmin", "", []string{"user", "roles", "--email", "root@example.com", "--set", "user"}, "cannot remove the admin role from the last admin"},
			{"UnknownCommand", "", []string{"users"}, `unknown command "users"`},
			{"MigrateArgument", "", []string{"migrate", "now"}, `unexpected argument "now"`},
			{"VersionFlag", "", []string{"version", "--short"}, "flag provided but not defined"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := runCLI(t, env, tc.stdin, tc.args...)
				if r.Err == nil || !strings.Contains(r.Err.Error(), tc.want) {
					t.Errorf("error = %v, want one saying %q", r.Err, tc.want)
				}
				if r.Stdout != "" {
					t.Errorf("stdout = %q, want nothing on failure", r.Stdout)
				}
			})
		}
		var n int64
		if err := testdb.OpenAsIs(t, dsn).Table("users").Count(&n).Error; err != nil || n != 1 {
			t.Errorf("%d users after the failures (%v), want root alone", n, err)
		}
		if out := runCLI(t, env, "", "user", "roles", "--email", "Root@Example.com", "--set", " User , ADMIN").ok(t); out != "admin,user\n" {
			t.Errorf("user roles printed %q, want admin,user", out)
		}
	})
}

// TestCLIUserRolesReachesRunningServer: on PostgreSQL, a role the CLI
// grants applies at the running server's next request (the CLI's change is
// published to the replicas' listeners).
func TestCLIUserRolesReachesRunningServer(t *testing.T) {
	c := newCluster(t, nil)
	u := c.start(t, nil)
	env := map[string]string{"DATABASE_URL": c.dsn}
	runCLI(t, env, "password1\n", "user", "add", "--email", "ada@example.com", "--password-stdin").ok(t)
	ada := loginAt(t, u, "ada@example.com", "password1")
	if code := gql(t, u, ada.Access, `{ users { id } }`).Code(t); code != models.Forbidden {
		t.Fatalf("users as a plain user: %s, want FORBIDDEN", code)
	}
	runCLI(t, env, "", "user", "roles", "--email", "ada@example.com", "--set", "admin,user").ok(t)
	waitFor(t, "the server to let ada list users", func() bool {
		return len(gql(t, u, ada.Access, `{ users { id } }`).Errors) == 0
	})
	runCLI(t, env, "", "user", "roles", "--email", "ada@example.com", "--set", "user").ok(t)
	waitFor(t, "the server to refuse ada the users", func() bool {
		r := gql(t, u, ada.Access, `{ users { id } }`)
		return len(r.Errors) > 0 && r.Code(t) == models.Forbidden
	})
}

func TestCLIHealth(t *testing.T) {
	url, _ := startRun(t, map[string]string{"DATABASE_URL": testdb.SQLite(t)})
	out := runCLI(t, nil, "", "health", "--url", url+"/healthz").ok(t)
	if !strings.Contains(out, "200 OK") {
		t.Errorf("health printed %q", out)
	}
	// The default URL is /readyz on PORT.
	port := url[strings.LastIndex(url, ":")+1:]
	r := runCLI(t, map[string]string{"PORT": port}, "", "health")
	if r.Err == nil && !strings.Contains(r.Stdout, "127.0.0.1:"+port+"/readyz") {
		t.Errorf("health on PORT %s printed %q", port, r.Stdout)
	} else if r.Err != nil && !strings.Contains(r.Err.Error(), "127.0.0.1:"+port+"/readyz") {
		t.Errorf("health on PORT %s: %v, want the default URL in the error", port, r.Err)
	}

	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database unreachable", http.StatusServiceUnavailable)
	}))
	defer notReady.Close()
	r = runCLI(t, nil, "", "health", "--url", notReady.URL+"/readyz")
	if r.Err == nil || !strings.Contains(r.Err.Error(), "503 Service Unavailable database unreachable") {
		t.Errorf("health of a 503: %v, want the status and reason", r.Err)
	}

	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hanging.Close()
	if r := runCLI(t, nil, "", "health", "--url", hanging.URL, "--timeout", "50ms"); r.Err == nil || !strings.Contains(r.Err.Error(), "deadline exceeded") {
		t.Errorf("health of a server that does not answer: %v, want a timeout", r.Err)
	}
	for _, args := range [][]string{{"health", "--timeout", "0s"}, {"health", "--url"}, {"health", "extra"}} {
		if r := runCLI(t, nil, "", args...); r.Err == nil {
			t.Errorf("%q succeeded", args)
		}
	}
}

// TestRunConcurrentStarts: servers started at the same moment on one new
// database (replicas of a fresh deployment) all migrate it, or wait for
// the one that does, ensure the same admin, and serve.
func TestRunConcurrentStarts(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		env := map[string]string{
			"DATABASE_URL": dsn, "PORT": "0", "AUTH_ARGON2_MEMORY": "64", "AUTH_ARGON2_TIME": "1",
			"AUTH_ADMIN_EMAIL": "root@example.com", "AUTH_ADMIN_PASSWORD": "root-password",
		}
		if strings.HasPrefix(dsn, "sqlite") {
			// The file exists, in WAL mode, before the servers open it:
			// SQLite can refuse the switch to WAL with SQLITE_BUSY, busy
			// timeout or not, to one of several connections creating the
			// same file at once (about once in 500 runs of this test).
			sqlDB, _ := testdb.OpenAsIs(t, dsn).DB()
			sqlDB.Close()
		}
		ctx, cancel := context.WithCancel(context.Background())
		const n = 3
		addrs := make(chan string, n)
		done := make(chan error, n)
		for range n {
			go func() {
				out := &addrWriter{addr: addrs}
				done <- run(ctx, nil, func(k string) string { return env[k] }, nil, out, io.Discard)
			}()
		}
		running := n
		defer func() {
			cancel()
			for range running {
				<-done
			}
		}()
		var urls []string
		for range n {
			select {
			case url := <-addrs:
				urls = append(urls, url)
			case err := <-done:
				running--
				t.Fatalf("a server failed to start: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("the servers did not all start")
			}
		}
		if st, err := models.MigrationStatus(context.Background(), testdb.OpenAsIs(t, dsn)); err != nil || len(st.Pending)+len(st.Unknown) != 0 {
			t.Errorf("schema after the starts: %+v, %v; want at head", st, err)
		}
		for _, url := range urls {
			gql(t, url, "", `mutation { login(email: "root@example.com", password: "root-password") { accessToken } }`).OK(t)
		}
	})
}
