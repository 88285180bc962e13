package main

// Mail through the whole program (issue 12, "Mail"): where serve sends
// mail (SMTP, or .eml files in development), what production requires,
// authql mail test, template overrides and the metrics. The delivery
// itself (retries, sealing, replicas) is tested in package mail.

import (
	"context"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/internal/smtptest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// withProductionMail adds to env what production requires of mail: an
// SMTP server (a test's own), a sender and the app's URL.
func withProductionMail(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	env["AUTH_SMTP_URL"] = smtptest.Start(t).URL
	env["AUTH_MAIL_FROM"] = "Example <no-reply@example.com>"
	env["AUTH_APP_URL"] = "https://app.example.com"
	if env["AUTH_PUBLIC_URL"] == "" {
		env["AUTH_PUBLIC_URL"] = "https://auth.example.com" // also required in production
	}
	return env
}

// enqueue queues a reset mail to the address in the database at dsn, as
// another process would (a server sees it at its next poll).
func enqueue(t *testing.T, dsn, to string) *models.OutboxMail {
	t.Helper()
	c, err := mail.NewComposer(mail.Config{From: devMailFrom, AppURL: "http://localhost:1/example"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Compose(mail.KindReset, to, mail.Vars{Link: c.Link("/reset", "secret-token"), Code: "ABCD2345", ExpiresAt: time.Now().Add(15 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if err := testdb.OpenAsIs(t, dsn).Transaction(func(tx *gorm.DB) error { return models.EnqueueMail(tx, m) }); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestProductionRequiresMail: production without SMTP, a sender or the
// app's URL refuses to start, naming every variable missing; with
// them it starts.
func TestProductionRequiresMail(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"NoMail", map[string]string{}, []string{"AUTH_SMTP_URL, AUTH_MAIL_FROM, AUTH_APP_URL", "AUTH_ENV=production"}},
		{"NoAppURL", map[string]string{"AUTH_SMTP_URL": "smtps://u:p@smtp.example.com", "AUTH_MAIL_FROM": "no-reply@example.com"}, []string{"AUTH_APP_URL: must be set"}},
		{"AppURLHTTP", map[string]string{"AUTH_SMTP_URL": "smtps://smtp.example.com", "AUTH_MAIL_FROM": "no-reply@example.com", "AUTH_APP_URL": "http://app.example.com"}, []string{"AUTH_APP_URL", "https"}},
		{"Insecure", map[string]string{"AUTH_SMTP_URL": "smtp://mailpit:1025", "AUTH_SMTP_INSECURE": "true", "AUTH_MAIL_FROM": "no-reply@example.com", "AUTH_APP_URL": "https://app.example.com"}, []string{"AUTH_SMTP_INSECURE", "production"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["AUTH_ENV"] = "production"
			tc.env["DATABASE_URL"] = filepath.Join(t.TempDir(), "prod.db")
			_ = wantServeRefused(t, tc.env, tc.want...)
		})
	}
	t.Run("CommandsWithoutMail", func(t *testing.T) {
		// A release step or a probe needs no SMTP password; the mail test
		// does, and says so.
		env := map[string]string{"AUTH_ENV": "production", "DATABASE_URL": filepath.Join(t.TempDir(), "prod.db")}
		runCLI(t, env, "", "migrate").ok(t)
		if r := runCLI(t, env, "", "mail", "test", "--to", "ops@example.com"); r.Err == nil || !strings.Contains(r.Err.Error(), "AUTH_SMTP_URL, AUTH_MAIL_FROM, AUTH_APP_URL") {
			t.Errorf("mail test in production without mail = %v, want the variables named", r.Err)
		}
	})
	t.Run("WithMail", func(t *testing.T) {
		env := withProductionMail(t, map[string]string{"AUTH_ENV": "production", "DATABASE_URL": filepath.Join(t.TempDir(), "prod.db")})
		startRun(t, env)
	})
}

// TestMailConfigRefused: mail settings that cannot work stop the start
// with a message naming the variable, and never echo a password.
func TestMailConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"Scheme", map[string]string{"AUTH_SMTP_URL": "http://user:hunter2@smtp.example.com"}, []string{"AUTH_SMTP_URL", "smtps://"}},
		{"Query", map[string]string{"AUTH_SMTP_URL": "smtps://user:hunter2@smtp.example.com?tls=no"}, []string{"AUTH_SMTP_URL", "no path, query"}},
		{"InsecureWithPassword", map[string]string{"AUTH_SMTP_URL": "smtp://user:hunter2@mailpit:1025", "AUTH_SMTP_INSECURE": "true"}, []string{"AUTH_SMTP_URL", "clear text"}},
		{"InsecureWithoutSMTP", map[string]string{"AUTH_SMTP_INSECURE": "true"}, []string{"AUTH_SMTP_INSECURE", "without AUTH_SMTP_URL"}},
		{"DirWithSMTP", map[string]string{"AUTH_SMTP_URL": "smtps://smtp.example.com", "AUTH_MAIL_DIR": "mail"}, []string{"AUTH_MAIL_DIR", "unset one"}},
		{"From", map[string]string{"AUTH_MAIL_FROM": "no reply"}, []string{"AUTH_MAIL_FROM", "not an email address"}},
		{"AppURLFragment", map[string]string{"AUTH_APP_URL": "https://app.example.com/#/"}, []string{"AUTH_APP_URL", "fragment"}},
		{"AppURLRelative", map[string]string{"AUTH_APP_URL": "/app"}, []string{"AUTH_APP_URL", "absolute"}},
		{"ResetTTLTooLong", map[string]string{"AUTH_RESET_TTL": "48h"}, []string{"AUTH_RESET_TTL", "at most 24h"}},
		{"VerifyTTLTooShort", map[string]string{"AUTH_VERIFY_TTL": "5s"}, []string{"AUTH_VERIFY_TTL", "at least 1m"}},
		{"MailLimit", map[string]string{"AUTH_MAIL_LIMIT": "5 an hour"}, []string{"AUTH_MAIL_LIMIT", "COUNT/DURATION"}},
		{"TemplatesMissing", map[string]string{"AUTH_MAIL_TEMPLATES": "/nonexistent/templates"}, []string{"AUTH_MAIL_TEMPLATES", "/nonexistent/templates"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["DATABASE_URL"] = filepath.Join(t.TempDir(), "bad.db")
			if err := wantServeRefused(t, tc.env, tc.want...); strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the SMTP password", err)
			}
		})
	}
}

// TestDevelopmentMailToFiles: `go run .` without AUTH_SMTP_URL writes each
// mail as a private .eml file to mail/ beside the SQLite file, and says
// where on the start line; the link in the file works as mailed.
func TestDevelopmentMailToFiles(t *testing.T) {
	dir := t.TempDir()
	dsn := filepath.Join(dir, "authql.db")
	env := map[string]string{"DATABASE_URL": dsn}
	out := &syncBuffer{}
	env["PORT"] = "0"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, nil, out, io.Discard) }()
	defer func() { cancel(); <-done }()
	want := "mails written as .eml files to " + filepath.Join(dir, "mail")
	waitFor(t, "the start line", func() bool { return strings.Contains(out.String(), "listening on") })
	if line := out.String(); !strings.Contains(line, want) {
		t.Fatalf("start line %q does not say %q", line, want)
	}

	m := enqueue(t, dsn, "dev@example.com")
	var path string
	waitFor(t, "the .eml file", func() bool {
		matches, _ := filepath.Glob(filepath.Join(dir, "mail", "*-"+m.ID+".eml"))
		if len(matches) == 1 {
			path = matches[0]
		}
		return path != ""
	})
	if !regexp.MustCompile(`/\d{8}T\d{6}\.\d{9}Z-` + m.ID + `\.eml$`).MatchString(path) {
		t.Errorf("file %s is not named <time>-<id>.eml", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600: it holds a live link", path, fi.Mode().Perm())
	}
	if d, _ := os.Stat(filepath.Dir(path)); d.Mode().Perm() != 0o700 {
		t.Errorf("mail directory has mode %v, want 0700", d.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	// The text part is 7bit: the link reads whole in the file.
	if !strings.Contains(string(raw), "\r\nhttp://localhost:1/example/reset#token=secret-token\r\n") {
		t.Errorf("the .eml file lacks the link, whole on its line:\n%s", raw)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "mail", ".tmp-*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// TestServeDeliversOverSMTP: with AUTH_ENCRYPTION_KEY a reset queued by
// authql user reset (no server running) is sealed in its row; serve
// then delivers it readable over AUTH_SMTP_URL, says where on the start
// line, and counts it in authql_mail_total, whose series are all there
// from the start. A reset asked over HTTP links to the default
// AUTH_APP_URL: the example frontend on the server's port.
func TestServeDeliversOverSMTP(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		srv := smtptest.Start(t)
		key := make([]byte, secret.KeySize)
		copy(key, "mail test key of thirty-two byte")
		env := map[string]string{"DATABASE_URL": dsn, "AUTH_SMTP_URL": srv.URL, "AUTH_ARGON2_MEMORY": "64", "AUTH_ARGON2_TIME": "1",
			"AUTH_ENCRYPTION_KEY": base64.StdEncoding.EncodeToString(key)}
		runCLI(t, env, "password1\n", "user", "add", "--email", "ops@example.com", "--password-stdin").ok(t)
		runCLI(t, env, "", "user", "reset", "--email", "ops@example.com").ok(t)
		var row models.OutboxMail
		if err := testdb.OpenAsIs(t, dsn).Where("kind = ?", "reset").First(&row).Error; err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(row.Message, "enc:v1:") || strings.Contains(row.Message, "#token=") || strings.Contains(row.Message, "code in the app") {
			t.Fatalf("queued message not sealed: %.40q", row.Message)
		}

		out := &syncBuffer{}
		env["PORT"] = "0"
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, nil, out, io.Discard) }()
		defer func() { cancel(); <-done }()
		waitFor(t, "the start line", func() bool { return listeningRE.MatchString(out.String()) })
		if !strings.Contains(out.String(), "mails sent through smtp://"+srv.Addr) || strings.Contains(out.String(), "secret") {
			t.Errorf("start line %q: want the SMTP server named, without its password", out.String())
		}
		port := listeningRE.FindStringSubmatch(out.String())[1]
		url := "http://127.0.0.1:" + port
		metrics := scrape(t, url)
		for _, o := range []string{"retried", "failed"} {
			if !strings.Contains(metrics, `authql_mail_total{outcome="`+o+`"} 0`) {
				t.Errorf("/metrics lacks authql_mail_total{outcome=%q} 0", o)
			}
		}

		got := srv.Wait(t, "ops@example.com", "Reset your password")
		if !strings.HasPrefix(got.Link(), "http://localhost:8080/example/reset#token=") || len(got.Code()) != 8 {
			t.Errorf("delivered link %q code %q: want the sealed message opened", got.Link(), got.Code())
		}
		gql(t, url, "", `mutation { requestPasswordReset(email: "ops@example.com") { requestId } }`).OK(t)
		var second smtptest.Mail
		waitFor(t, "the second reset", func() bool {
			if n := srv.Count("ops@example.com"); n >= 2 {
				second = srv.Mails()[n-1]
			}
			return second.Raw != nil
		})
		if want := "http://localhost:" + port + "/example/reset#token="; !strings.HasPrefix(second.Link(), want) {
			t.Errorf("link %q, want it to start with %s", second.Link(), want)
		}
		waitFor(t, "the sent count", func() bool { return strings.Contains(scrape(t, url), `authql_mail_total{outcome="sent"} 2`) })
	})
}

// TestMailTestCommand: authql mail test sends one mail at once through
// SMTP and says where; a refusal fails it with the server's answer;
// without SMTP in development it writes the .eml file and names it.
func TestMailTestCommand(t *testing.T) {
	srv := smtptest.Start(t)
	env := map[string]string{"AUTH_SMTP_URL": srv.URL, "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
	out := runCLI(t, env, "", "mail", "test", "--to", "ops@example.com").ok(t)
	if want := "test mail to ops@example.com accepted by smtp://" + srv.Addr; !strings.Contains(out, want) {
		t.Errorf("output %q, want %q", out, want)
	}
	got := srv.Wait(t, "ops@example.com", "authql test mail")
	if !strings.Contains(got.Text, "Delivery works") || got.From != "no-reply@localhost" {
		t.Errorf("test mail from %q: %q", got.From, got.Text)
	}
	if logins := srv.Logins(); len(logins) != 1 || logins[0] != "test" {
		t.Errorf("SMTP logins %v, want the URL's user once", logins)
	}

	srv.Refuse()
	r := runCLI(t, env, "", "mail", "test", "--to", "ops@example.com")
	if r.Err == nil || !strings.Contains(r.Err.Error(), "451") {
		t.Errorf("mail test to a refusing server = %v, want the 451 answer", r.Err)
	}
	if r := runCLI(t, env, "", "mail", "test", "--to", "not an address"); r.Err == nil || !strings.Contains(r.Err.Error(), "--to") {
		t.Errorf("mail test --to 'not an address' = %v, want a refusal naming --to", r.Err)
	}

	dir := t.TempDir()
	out = runCLI(t, map[string]string{"DATABASE_URL": filepath.Join(dir, "authql.db")}, "", "mail", "test", "--to", "dev@example.com").ok(t)
	path := strings.TrimSpace(strings.TrimPrefix(out, "test mail to dev@example.com written to "))
	if filepath.Dir(path) != filepath.Join(dir, "mail") {
		t.Fatalf("output %q, want the .eml file in %s", out, filepath.Join(dir, "mail"))
	}
	if raw, err := os.ReadFile(path); err != nil || !strings.Contains(string(raw), "Subject: authql test mail") {
		t.Errorf("%s: %v %q", path, err, raw)
	}
	if out := runCLI(t, nil, "", "mail", "--help").ok(t); !strings.Contains(out, "authql mail test --to ADDRESS") {
		t.Errorf("mail --help = %q", out)
	}
}

// TestMailTemplatesOverride: a template in AUTH_MAIL_TEMPLATES replaces
// the embedded one in the mail delivered; a broken one stops the start,
// naming the file.
func TestMailTemplatesOverride(t *testing.T) {
	srv := smtptest.Start(t)
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("test.subject.txt", "Hello from {{.AppURL}}")
	write("test.txt", "Custom body for {{.Email}}.")
	env := map[string]string{"AUTH_SMTP_URL": srv.URL, "AUTH_APP_URL": "https://app.example.com", "AUTH_MAIL_TEMPLATES": dir, "DATABASE_URL": "unused.db"}
	runCLI(t, env, "", "mail", "test", "--to", "ops@example.com").ok(t)
	got := srv.Wait(t, "ops@example.com", "Hello from https://app.example.com")
	if got.Text != "Custom body for ops@example.com." || !strings.Contains(got.HTML, "Delivery works") {
		t.Errorf("text %q html %q: want the override's text and the embedded HTML", got.Text, got.HTML)
	}

	for name, text := range map[string]string{"reset.txt": "{{.Link", "verify.html": "{{.Token}}"} {
		t.Run(name, func(t *testing.T) {
			broken := t.TempDir()
			if err := os.WriteFile(filepath.Join(broken, name), []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			r := runCLI(t, map[string]string{"AUTH_MAIL_TEMPLATES": broken, "DATABASE_URL": filepath.Join(broken, "authql.db")}, "", "serve")
			if r.Err == nil || !strings.Contains(r.Err.Error(), "AUTH_MAIL_TEMPLATES") || !strings.Contains(r.Err.Error(), name) {
				t.Errorf("serve with a broken %s = %v, want a refusal naming AUTH_MAIL_TEMPLATES and the file", name, r.Err)
			}
		})
	}
}

// wantServeRefused runs serve with env and fails the test unless it
// refuses to start with an error that says each of want, and returns
// that error.
func wantServeRefused(t *testing.T, env map[string]string, want ...string) error {
	t.Helper()
	r := runCLI(t, env, "", "serve")
	if r.Err == nil {
		t.Fatal("serve started")
	}
	for _, w := range want {
		if !strings.Contains(r.Err.Error(), w) {
			t.Errorf("error %q does not say %q", r.Err, w)
		}
	}
	return r.Err
}
