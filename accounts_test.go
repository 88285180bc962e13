package main

// Attacks on accounts and identities (issue 10 §3, §5): admin bootstrap,
// lookalike emails, password forms, bad bytes, and typed text in the log.
// Over real HTTP, on SQLite and (with TEST_DATABASE_URL) PostgreSQL.

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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
		if err := testdb.OpenAsIs(t, dsn).Table("user_roles").Where("role_name = ?", models.RoleAdmin).Count(&admins).Error; err != nil || admins != 0 {
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
