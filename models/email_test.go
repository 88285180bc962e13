package models_test

import (
	"context"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

func TestNormalizeEmail(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{" Ada@Example.COM ", "ada@example.com"},
		{"anna@bücher.example", "anna@xn--bcher-kva.example"},
		{"anna@BÜCHER.example", "anna@xn--bcher-kva.example"},
		{"anna@bu\u0308cher.example", "anna@xn--bcher-kva.example"}, // NFD
		{"anna@xn--bcher-kva.example", "anna@xn--bcher-kva.example"},
		{"Straße@example.com", "strasse@example.com"},
		{"\u212Aelvin@example.com", "kelvin@example.com"},
		{"ZOE\u0308@example.com", "zoë@example.com"},
		{"ΣΟΦΙΑ@example.gr", "σοφια@example.gr"},
		{"иван@пример.рф", "иван@xn--e1afmkfd.xn--p1ai"},
		{"user+tag@example.com", "user+tag@example.com"},
		{"田中@example.jp", "田中@example.jp"},
		{"a1-b_c@sub.example.org", "a1-b_c@sub.example.org"},
	} {
		got, err := models.NormalizeEmail(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		// Idempotent: the migration compares stored forms with it.
		if again, err := models.NormalizeEmail(got); err != nil || again != got {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want it unchanged", got, again, err)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"a\x00b@example.com", "NUL"},
		{"a\xffb@example.com", "not valid UTF-8"},
		{"a\tb@example.com", "invisible"},
		{"an\u200bna@example.com", "invisible"},
		{"\ufeffanna@example.com", "invisible"},
		{"anna\u2066@example.com", "invisible"},
		{"anna@exam\u00adple.com", "invisible"}, // soft hyphen
		{"an\ue000na@example.com", "private-use"},
		{"p\u0430ypal@example.com", "mix"},
		{"\u0440aypal@example.com", "mix"},
		{"g\u03bfogle@example.com", "mix"},
		{"anna@\u0440aypal.com", "mix"},
		{"anna@[192.0.2.1]", "IP address"},
		{"anna@[IPv6:2001:db8::1]", "IP address"},
		{"anna@192.0.2.1", "IP address"},
		{"anna@0x7f.1", "IP address"},
		{"anna@example", "invalid email"},
		{"anna@.example.com", "invalid email"},
		{"anna", "invalid email"},
		{"@example.com", "invalid email"},
		{"Bob <bob@example.com>", "not a valid domain"},
		{"anna@xn--a.example", "not a valid domain"},
		{"anna@exa_mple.com", "not a valid domain"},
		{strings.Repeat("a", 250) + "@example.com", "too long"},
		{strings.Repeat("a", 5000), "too long"},
	} {
		_, err := models.NormalizeEmail(tc.in)
		if models.ErrorCode(err) != models.BadUserInput || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NormalizeEmail(%q) = %v; want BAD_USER_INPUT saying %q", tc.in, err, tc.want)
		}
	}
}

// TestMigrateEmailNormalisation: rows stored lower-cased by earlier
// versions are renormalized; two rows that are one address fail the
// migration naming both user ids, and change nothing.
func TestMigrateEmailNormalisation(t *testing.T) {
	insert := func(t *testing.T, dsn string, rows map[string]string) *gorm.DB {
		db := testdb.OpenAsIs(t, dsn)
		if err := models.MigrateInitial(db); err != nil {
			t.Fatal(err)
		}
		for id, email := range rows {
			if err := db.Exec(`INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?, ?, 'x', '2026-01-01 00:00:00', '2026-01-01 00:00:00')`, id, email).Error; err != nil {
				t.Fatal(err)
			}
		}
		return db
	}
	const a, b, c = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b", "00000000-0000-4000-8000-00000000000c"
	t.Run("Renormalized", func(t *testing.T) {
		testdb.Each(t, func(t *testing.T, dsn string) {
			db := insert(t, dsn, map[string]string{
				a: "anna@bücher.example",    // a Unicode domain, stored as typed
				b: "straße@example.com",     // lower-cased, not folded
				c: "an\u200bna@example.com", // refused now: left as it was
			})
			if err := models.Migrate(context.Background(), db); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{a: "anna@xn--bcher-kva.example", b: "strasse@example.com", c: "an\u200bna@example.com"}
			for id, email := range want {
				var got string
				db.Table("users").Where("id = ?", id).Pluck("email", &got)
				if got != email {
					t.Errorf("user %s: email %q, want %q", id, got, email)
				}
			}
		})
	})
	t.Run("Collision", func(t *testing.T) {
		testdb.Each(t, func(t *testing.T, dsn string) {
			db := insert(t, dsn, map[string]string{
				a: "anna@xn--bcher-kva.example",
				b: "anna@bücher.example",
			})
			err := models.Migrate(context.Background(), db)
			if err == nil || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) || strings.Contains(err.Error(), "anna") {
				t.Fatalf("Migrate = %v; want a failure naming users %s and %s, not their emails", err, a, b)
			}
			var got string
			db.Table("users").Where("id = ?", b).Pluck("email", &got)
			if got != "anna@bücher.example" {
				t.Errorf("after the failed migration: %q, want the row unchanged", got)
			}
		})
	})
}
