package models_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// dumpSchema returns db's schema, one line per table, column, index and
// constraint, sorted: on SQLite the statements in sqlite_master, on
// PostgreSQL information_schema's columns, pg_indexes and pg_constraint.
// The migrations table is left out.
func dumpSchema(tb testing.TB, db *gorm.DB) []string {
	tb.Helper()
	var queries []string
	if db.Dialector.Name() == "sqlite" {
		queries = []string{`SELECT type || ' ' || name || ' ON ' || tbl_name || ': ' || COALESCE(sql, '') FROM sqlite_master
			WHERE name NOT LIKE 'sqlite_%' AND tbl_name <> 'schema_migrations'`}
	} else {
		queries = []string{
			`SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || '(' || COALESCE(character_maximum_length, 0) || ') nullable=' || is_nullable || ' default=' || COALESCE(column_default, '')
				FROM information_schema.columns WHERE table_schema = current_schema() AND table_name <> 'schema_migrations'`,
			`SELECT 'index ' || indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'`,
			`SELECT 'constraint ' || conrelid::regclass::text || '.' || conname || ': ' || pg_get_constraintdef(oid) FROM pg_constraint
				WHERE connamespace = current_schema()::regnamespace AND conrelid::regclass::text <> 'schema_migrations'`,
		}
	}
	var lines []string
	for _, q := range queries {
		var got []string
		if err := db.Raw(q).Scan(&got).Error; err != nil {
			tb.Fatalf("dump schema: %v", err)
		}
		for _, l := range got {
			// SQLite keeps ALTER TABLE's ADD COLUMN as ", `col` ...",
			// CREATE TABLE's columns as ",`col` ...".
			l = strings.ReplaceAll(l, ", `", ",`")
			lines = append(lines, sortConstraints(l))
		}
	}
	slices.Sort(lines)
	return lines
}

// sortConstraints sorts the constraints of an SQLite CREATE TABLE
// statement: GORM writes them in no fixed order.
func sortConstraints(stmt string) string {
	body, ok := strings.CutSuffix(stmt, ")")
	parts := strings.Split(body, ",CONSTRAINT ")
	if !ok || len(parts) < 3 {
		return stmt
	}
	slices.Sort(parts[1:])
	return strings.Join(parts, ",CONSTRAINT ") + ")"
}

// head is the schema the migrations build: each table's columns and
// secondary indexes (their names; "unique" marks the unique ones) and
// foreign keys.
var head = map[string]struct {
	columns, indexes, foreignKeys []string
}{
	"users": {
		columns: []string{"id", "email", "password_hash", "created_at", "updated_at", "last_login_at", "email_verified", "disabled_at", "disabled_reason", "web_authn_id"},
		indexes: []string{"idx_users_email unique", "idx_users_page(created_at,id)", "idx_users_web_authn_id unique"},
	},
	"roles":       {columns: []string{"name"}},
	"permissions": {columns: []string{"name"}},
	"user_roles": {
		columns:     []string{"user_id", "role_name"},
		foreignKeys: []string{"fk_user_roles_user", "fk_user_roles_role"},
	},
	"role_permissions": {
		columns:     []string{"role_name", "permission_name"},
		foreignKeys: []string{"fk_role_permissions_role", "fk_role_permissions_permission"},
	},
	"sessions": {
		columns:     []string{"id", "user_id", "created_at", "last_used_at", "expires_at", "revoked_at", "user_agent", "ip", "access_expires_at", "aal", "amr", "auth_time"},
		indexes:     []string{"idx_sessions_user_id", "idx_sessions_expires_at"},
		foreignKeys: []string{"fk_sessions_user"},
	},
	"refresh_tokens": {
		columns:     []string{"id", "session_id", "created_at", "expires_at", "rotated_at", "parent_id", "spent_at"},
		indexes:     []string{"idx_refresh_tokens_session_id", "idx_refresh_tokens_expires_at"},
		foreignKeys: []string{"fk_refresh_tokens_session"},
	},
	"revocations": {columns: []string{"id", "expires_at"}, indexes: []string{"idx_revocations_expires_at"}},
	"settings":    {columns: []string{"name", "value"}},
	"signing_keys": {
		columns: []string{"kid", "seq", "alg", "private_key", "public_key", "created_at", "not_before", "retired_at"},
		indexes: []string{"idx_signing_keys_seq unique"},
	},
	"rate_limits": {columns: []string{"id", "tat"}, indexes: []string{"idx_rate_limits_tat"}},
	"audit_events": {
		columns: []string{"id", "at", "type", "outcome", "reason", "user_id", "actor_id", "session_id", "ip", "user_agent", "detail"},
		indexes: []string{"idx_audit_events_at(at,id)", "idx_audit_events_user(at,id,user_id)", "idx_audit_events_type(at,id,type)"},
	},
	"email_requests": {
		columns: []string{"id", "kind", "user_id", "email", "token_hash", "code_mac", "created_at", "expires_at", "used_at", "failed_codes"},
		indexes: []string{"idx_email_requests_user_id", "idx_email_requests_token_hash unique", "idx_email_requests_expires_at"},
	},
	"outbox_mails": {
		columns: []string{"id", "created_at", "kind", "status", "user_id", "request_id", "to", "message", "attempts", "next_attempt_at", "sent_at", "last_error"},
		indexes: []string{"idx_outbox_mails_due(next_attempt_at,status)", "idx_outbox_mails_user_id"},
	},
	"mfa_factors": {
		columns: []string{"id", "user_id", "type", "label", "secret", "created_at", "confirmed_at", "expires_at", "last_step", "last_used_at"},
		indexes: []string{"idx_mfa_factors_user_id"},
	},
	"recovery_codes": {
		columns: []string{"id", "user_id", "hash", "created_at", "used_at"},
		indexes: []string{"idx_recovery_codes_user_id"},
	},
	"passkeys": {
		columns: []string{"id", "user_id", "credential_id", "public_key", "attestation_type", "transports", "aaguid", "sign_count", "backup_eligible", "backed_up", "label", "created_at", "last_used_at"},
		indexes: []string{"idx_passkeys_user_id", "idx_passkeys_credential_id unique"},
	},
	"auth_challenges": {
		columns: []string{"id", "kind", "user_id", "data", "created_at", "expires_at", "used_at", "failures"},
		indexes: []string{"idx_auth_challenges_user_id", "idx_auth_challenges_expires_at"},
	},
	"live_events": {
		columns: []string{"id", "at", "type", "user_id", "session_id", "roles"},
		indexes: []string{"idx_live_events_at", "idx_live_events_user_id"},
	},
	"schema_migrations": {columns: []string{"id"}},
}

// checkHead fails the test unless db's schema is head's: the same tables,
// columns, secondary indexes and foreign keys, and every migration
// recorded once.
func checkHead(t *testing.T, db *gorm.DB) {
	t.Helper()
	m := db.Migrator()
	tables, err := m.GetTables()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for name := range head {
		want = append(want, name)
	}
	// SQLite's own table of AUTOINCREMENT counters (live_events' ids).
	tables = slices.DeleteFunc(tables, func(t string) bool { return t == "sqlite_sequence" })
	slices.Sort(want)
	slices.Sort(tables)
	if !slices.Equal(tables, want) {
		t.Errorf("tables = %q, want %q", tables, want)
	}
	for table, h := range head {
		cols, err := m.ColumnTypes(table)
		if err != nil {
			t.Fatalf("columns of %s: %v", table, err)
		}
		var got []string
		for _, c := range cols {
			got = append(got, c.Name())
		}
		if !sameSet(got, h.columns) {
			t.Errorf("%s columns = %q, want %q", table, got, h.columns)
		}
		idx, err := m.GetIndexes(table)
		if err != nil {
			t.Fatalf("indexes of %s: %v", table, err)
		}
		got = nil
		for _, i := range idx {
			if !strings.HasPrefix(i.Name(), "idx_") {
				continue // primary keys' own indexes, named by the database
			}
			name := i.Name()
			if cols := i.Columns(); len(cols) > 1 {
				// Sorted: GORM's PostgreSQL migrator lists them out of
				// order. Their order is checked by comparing dumps
				// (TestMigrationsMatchModels).
				slices.Sort(cols)
				name += "(" + strings.Join(cols, ",") + ")"
			}
			if u, _ := i.Unique(); u {
				name += " unique"
			}
			got = append(got, name)
		}
		if !sameSet(got, h.indexes) {
			t.Errorf("%s indexes = %q, want %q", table, got, h.indexes)
		}
		for _, fk := range h.foreignKeys {
			if !m.HasConstraint(table, fk) {
				t.Errorf("%s lacks the foreign key %s", table, fk)
			}
		}
	}
	var ids []string
	if err := db.Table("schema_migrations").Order("id").Pluck("id", &ids).Error; err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, models.MigrationIDs()) {
		t.Errorf("applied migrations = %q, want each of %q once", ids, models.MigrationIDs())
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestMigrateEmptyDatabase(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := testdb.OpenAsIs(t, dsn)
		ctx := context.Background()
		st, err := models.ApplyMigrations(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(st.Pending, models.MigrationIDs()) || len(st.Unknown) != 0 {
			t.Errorf("applied %q (unknown %q), want every migration %q", st.Pending, st.Unknown, models.MigrationIDs())
		}
		checkHead(t, db)
		roles, err := models.Roles(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if len(roles) != 3 || roles[0].Name != models.RoleAdmin || len(roles[0].Permissions) != 4 ||
			roles[1].Name != models.RoleService || !slices.Equal(roles[1].PermissionNames(), []string{models.PermEventsRead}) ||
			roles[2].Name != models.RoleUser {
			t.Errorf("seeded roles = %+v, want admin (4 permissions), service (events:read) and user", roles)
		}

		// Again: nothing to do, nothing changed.
		before := dumpSchema(t, db)
		st, err = models.ApplyMigrations(ctx, db)
		if err != nil || len(st.Pending) != 0 || len(st.Unknown) != 0 {
			t.Errorf("second run: applied %q, unknown %q, err %v; want nothing", st.Pending, st.Unknown, err)
		}
		if after := dumpSchema(t, db); !slices.Equal(before, after) {
			t.Errorf("second run changed the schema:\n%s", diff(before, after))
		}
		checkHead(t, db)
	})
}

// TestMigrationsMatchModels catches a change to the models (models.go and
// the other files' structs) that came without its migration: the schema
// the migrations build must be the one GORM derives from the models.
func TestMigrationsMatchModels(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		migrated := testdb.OpenAsIs(t, dsn)
		if err := models.Migrate(context.Background(), migrated); err != nil {
			t.Fatal(err)
		}
		var fromModels *gorm.DB
		if strings.HasPrefix(dsn, "sqlite://") {
			fromModels = testdb.OpenAsIs(t, testdb.SQLite(t))
		} else {
			fromModels = testdb.OpenAsIs(t, testdb.Postgres(t))
		}
		if err := fromModels.AutoMigrate(&models.User{}, &models.Role{}, &models.Permission{}, &models.Session{}, &models.RefreshToken{},
			&models.Revocation{}, &models.Setting{}, &models.SigningKey{}, &models.RateLimit{}, &models.AuditEvent{},
			&models.EmailRequest{}, &models.OutboxMail{},
			&models.MfaFactor{}, &models.RecoveryCode{}, &models.Passkey{}, &models.AuthChallenge{}, &models.LiveEvent{}); err != nil {
			t.Fatal(err)
		}
		want, got := dumpSchema(t, fromModels), dumpSchema(t, migrated)
		if !slices.Equal(got, want) {
			t.Errorf("the migrations' schema differs from the models' (add a migration):\n%s", diff(want, got))
		}
	})
}

// addedColumns are the columns that migrations after the initial one added
// to its tables: table -> column -> SQLite type.
var addedColumns = map[string]map[string]string{
	"sessions":       {"access_expires_at": "datetime", "aal": "integer NOT NULL DEFAULT 1", "amr": "text NOT NULL DEFAULT \"pwd\"", "auth_time": "datetime"},
	"refresh_tokens": {"parent_id": "text", "spent_at": "datetime"},
	"users":          {"email_verified": "numeric NOT NULL DEFAULT false", "disabled_at": "datetime", "disabled_reason": "text", "web_authn_id": "text"},
}

// withoutAdded removes addedColumns from a schema dump: PostgreSQL's column
// lines, and the columns of SQLite's CREATE TABLE statements.
func withoutAdded(lines []string) []string {
	var out []string
	for _, l := range lines {
		keep := true
		for table, cols := range addedColumns {
			for col, typ := range cols {
				if strings.HasPrefix(l, "column "+table+"."+col+" ") {
					keep = false
				}
				if strings.HasPrefix(l, "table "+table+" ON ") {
					l = strings.Replace(l, ",`"+col+"` "+typ, "", 1)
				}
			}
		}
		if keep {
			out = append(out, l)
		}
	}
	return out
}

// TestMigrateUpgradesUnversionedDatabase: a database made by authql before
// versioned migrations (AutoMigrate at start, no migrations table) keeps
// its schema and data and is then at head.
func TestMigrateUpgradesUnversionedDatabase(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := testdb.OpenAsIs(t, dsn)
		ctx := context.Background()
		if err := models.MigrateInitial(db); err != nil {
			t.Fatal(err)
		}
		// Rows as the old version left them, the admin role with a
		// permission the operator removed.
		for _, q := range []string{
			`INSERT INTO roles (name) VALUES ('admin'), ('user')`,
			`INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES ('00000000-0000-4000-8000-000000000001', 'old@example.com', 'x', '2026-01-01 00:00:00', '2026-01-01 00:00:00')`,
			`INSERT INTO user_roles (user_id, role_name) VALUES ('00000000-0000-4000-8000-000000000001', 'admin')`,
		} {
			if err := db.Exec(q).Error; err != nil {
				t.Fatal(err)
			}
		}
		before := dumpSchema(t, db)
		st, err := models.MigrationStatus(ctx, db)
		if err != nil || !slices.Equal(st.Pending, models.MigrationIDs()) {
			t.Fatalf("status of an unversioned database: %+v, %v; want every migration pending", st, err)
		}
		if err := models.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		// The migrations after the initial one add tables and nullable
		// columns of their own; of what the old version made, nothing
		// may change.
		after := withoutAdded(slices.DeleteFunc(dumpSchema(t, db), func(l string) bool {
			for _, added := range []string{"audit_events", "email_requests", "outbox_mails", "mfa_factors", "recovery_codes", "passkeys", "auth_challenges", "idx_users_web_authn_id", "live_events"} {
				if strings.Contains(l, added) {
					return true
				}
			}
			return false
		}))
		if !slices.Equal(before, after) {
			t.Errorf("upgrade changed the existing schema:\n%s", diff(before, after))
		}
		checkHead(t, db)
		u, err := models.UserByEmail(ctx, db, "old@example.com")
		if err != nil || !u.HasRole(models.RoleAdmin) {
			t.Errorf("old user after the upgrade: %+v, %v", u, err)
		}
		roles, err := models.Roles(ctx, db)
		if err != nil || len(roles) != 3 || roles[0].Name != models.RoleAdmin || len(roles[0].Permissions) != 0 {
			t.Errorf("roles after the upgrade = %+v, %v; want the operator's admin role kept without permissions", roles, err)
		}
	})
}

// TestMigrateConcurrently starts migrations of one empty database at once,
// as replicas starting together do: all succeed, and each migration is
// applied once (checkHead).
func TestMigrateConcurrently(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		const n = 4
		dbs := make([]*gorm.DB, n)
		for i := range dbs {
			dbs[i] = testdb.OpenAsIs(t, dsn) // a pool each, as separate processes have
		}
		applied := make([][]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				st, err := models.ApplyMigrations(context.Background(), dbs[i])
				applied[i], errs[i] = st.Pending, err
			}()
		}
		close(start)
		wg.Wait()
		var total int
		for i, err := range errs {
			if err != nil {
				t.Errorf("migration %d: %v", i, err)
			}
			total += len(applied[i])
		}
		if total != len(models.MigrationIDs()) {
			t.Errorf("applied %q in all; want each migration applied by exactly one", applied)
		}
		checkHead(t, dbs[0])
	})
}

// TestSchemaUnknownMigration: a database that a newer authql migrated
// further keeps working with this one, which reports what it does not know.
func TestSchemaUnknownMigration(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := testdb.OpenAsIs(t, dsn)
		ctx := context.Background()
		if err := models.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		if err := db.Exec(`INSERT INTO schema_migrations (id) VALUES ('209912310001_from_the_future')`).Error; err != nil {
			t.Fatal(err)
		}
		st, err := models.ApplyMigrations(ctx, db)
		if err != nil || len(st.Pending) != 0 || !slices.Equal(st.Unknown, []string{"209912310001_from_the_future"}) {
			t.Errorf("ApplyMigrations = %+v, %v; want nothing pending and the future migration unknown", st, err)
		}
	})
}

// TestMigrateFailureChangesNothing: a migration that fails undoes the
// whole run, earlier migrations of it included, and the next run applies
// them all.
func TestMigrateFailureChangesNothing(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := testdb.OpenAsIs(t, dsn)
		ctx := context.Background()
		restore := models.AppendMigration(&gormigrate.Migration{ID: "209912310001_fails", Migrate: func(tx *gorm.DB) error {
			if err := tx.Exec(`CREATE TABLE half_done (id integer)`).Error; err != nil {
				return err
			}
			return tx.Exec(`INSERT INTO no_such_table VALUES (1)`).Error
		}})
		_, err := models.ApplyMigrations(ctx, db)
		restore()
		if err == nil {
			t.Fatal("ApplyMigrations with a failing migration succeeded")
		}
		if tables, _ := db.Migrator().GetTables(); len(tables) != 0 {
			t.Errorf("tables after the failed run: %q, want none", tables)
		}
		if err := models.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		checkHead(t, db)
	})
}

// diff lists the lines only in want (-) and only in got (+).
func diff(want, got []string) string {
	var b strings.Builder
	for _, l := range want {
		if !slices.Contains(got, l) {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}

// TestMigrateDeletesTakenOverHS256Secret: a database where the key store
// took over the HS256 secret of the version before it still holds that
// secret's copy in settings; the migration deletes it. Where the key store
// has not started yet (no key), the secret stays, to be taken over.
func TestMigrateDeletesTakenOverHS256Secret(t *testing.T) {
	for _, withKey := range []bool{true, false} {
		testdb.Each(t, func(t *testing.T, dsn string) {
			db := testdb.OpenAsIs(t, dsn)
			ctx := context.Background()
			if err := models.MigrateInitial(db); err != nil {
				t.Fatal(err)
			}
			if err := db.Exec(`INSERT INTO settings (name, value) VALUES (?, 'c2VjcmV0')`, models.LegacyHS256Setting).Error; err != nil {
				t.Fatal(err)
			}
			if withKey {
				if err := db.Exec(`INSERT INTO signing_keys (kid, seq, alg, private_key, public_key, created_at, not_before) VALUES ('k', 1, 'HS256', 'c2VjcmV0', '', '2026-01-01 00:00:00', '2026-01-01 00:00:00')`).Error; err != nil {
					t.Fatal(err)
				}
			}
			if err := models.Migrate(ctx, db); err != nil {
				t.Fatal(err)
			}
			var n int64
			if err := db.Table("settings").Where("name = ?", models.LegacyHS256Setting).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int64{true: 0, false: 1}[withKey]; n != want {
				t.Errorf("with a signing key %v: %d copies of the HS256 secret in settings after migrating, want %d", withKey, n, want)
			}
		})
	}
}
