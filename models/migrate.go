package models

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// migrations is the schema's history, oldest first. A migration, once
// released, never changes: databases that applied it will not apply it
// again. A schema change is a new entry at the end, with an ID that sorts
// after the others (date and a counter, then a name), such as
//
//	{ID: "202611240001_audit_events", Migrate: func(tx *gorm.DB) error {
//		type AuditEvent struct{ ... } // the table as of this migration
//		return tx.AutoMigrate(&AuditEvent{})
//	}},
//
// Migrations declare the structs they need themselves rather than using
// the live ones of models.go: those describe the schema at head and will
// change, which would silently change what an old migration does.
//
// A migration must keep the previous version of authql working on the
// migrated schema (add tables, nullable or defaulted columns, indexes;
// drop or rename only what the previous version no longer uses): during a
// rolling upgrade old servers run on it, warned but not stopped (see
// SchemaStatus.Unknown).
var migrations = []*gormigrate.Migration{
	{ID: "202611230001_initial", Migrate: migrateInitial},
	{ID: "202611230002_audit_events", Migrate: migrateAuditEvents},
	{ID: "202611290001_email_normalisation", Migrate: migrateEmailNormalisation},
	{ID: "202611290003_secrets_at_rest", Migrate: migrateSecretsAtRest},
	{ID: "202611290004_refresh_successor", Migrate: migrateRefreshSuccessor},
	{ID: "202611300001_accounts", Migrate: migrateAccounts},
	{ID: "202612010001_mfa", Migrate: migrateMfa},
	{ID: "202612150001_live", Migrate: migrateLive},
}

// migrationsTable records the IDs of the applied migrations.
const migrationsTable = "schema_migrations"

// migrateLockKey is the PostgreSQL advisory lock that serializes
// migrations of one database. The value is arbitrary but must never change:
// servers of different versions starting together must take the same lock.
const migrateLockKey int64 = 0x2f6b_64c1_8e0a_53d7

// LegacyHS256Setting is the setting where authql kept its generated HS256
// secret before the signing_keys table. The first start with the key store
// takes it over as its first key; from then on the key store is its one
// place.
const LegacyHS256Setting = "jwt_hs256_secret"

// migrateSecretsAtRest deletes the copy of the generated HS256 secret that
// stayed in settings after the key store took it over: a secret must live
// in one place, where it is encrypted (AUTH_ENCRYPTION_KEY) and erased when
// its key retires. A store that has keys never reads the setting again.
func migrateSecretsAtRest(tx *gorm.DB) error {
	return tx.Exec("DELETE FROM settings WHERE name = ? AND EXISTS (SELECT 1 FROM signing_keys)", LegacyHS256Setting).Error
}

// migrateAuditEvents creates the audit log. It has no foreign keys, on
// purpose: the record of what happened to an account must outlive the
// account. The indexes serve auditLog's three orders of reading: all
// events, one user's, one type's, each newest first by (at, id).
func migrateAuditEvents(tx *gorm.DB) error {
	type AuditEvent struct {
		ID        string    `gorm:"primaryKey;size:36;index:idx_audit_events_at,priority:2;index:idx_audit_events_user,priority:3;index:idx_audit_events_type,priority:3"`
		At        time.Time `gorm:"not null;index:idx_audit_events_at,priority:1;index:idx_audit_events_user,priority:2;index:idx_audit_events_type,priority:2"`
		Type      string    `gorm:"size:32;not null;index:idx_audit_events_type,priority:1"`
		Outcome   string    `gorm:"size:16;not null"`
		Reason    *string   `gorm:"size:64"`
		UserID    *string   `gorm:"size:36;index:idx_audit_events_user,priority:1"`
		ActorID   *string   `gorm:"size:36"`
		SessionID *string   `gorm:"size:36"`
		IP        *string   `gorm:"size:64"`
		UserAgent *string   `gorm:"size:512"`
		Detail    *string   `gorm:"size:1024"`
	}
	return tx.AutoMigrate(&AuditEvent{})
}

// migrateEmailNormalisation brings the stored emails to NormalizeEmail's
// form. Before it, an email was stored trimmed and lower-cased only, so
// rows can differ from the new form (another Unicode form, a Unicode
// domain, a letter that lower-casing and case folding treat apart), and a
// person could hold two accounts that are now one address.
//
// It calls the live NormalizeEmail, unlike the rule for migrations: what
// it must produce is exactly what the running code looks emails up by.
// Rows are read first and only the ones that change are updated, each
// after checking that no other user has its new form: two accounts that
// are one address once normalized make the migration fail, naming both
// user ids (never the emails, which reach logs), for an operator to decide
// which account the person keeps. A row the new rules refuse (a zero-width
// character, mixed scripts, an IP-address domain) is left as it is: no
// other form of it is that person's, and the lookalike it may be stays
// unable to sign in, as new ones are.
func migrateEmailNormalisation(tx *gorm.DB) error {
	type change struct{ id, email string }
	var changes []change
	rows, err := tx.Table("users").Select("id, email").Order("id").Rows()
	if err != nil {
		return err
	}
	for rows.Next() {
		var id, email string
		if err := rows.Scan(&id, &email); err != nil {
			rows.Close()
			return err
		}
		if norm, err := NormalizeEmail(email); err == nil && norm != email {
			changes = append(changes, change{id, norm})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, c := range changes {
		var other []string
		if err := tx.Table("users").Where("email = ? AND id <> ?", c.email, c.id).Pluck("id", &other).Error; err != nil {
			return err
		}
		if len(other) > 0 {
			return fmt.Errorf("users %s and %s have emails that are one address once normalized (Unicode form, case folding, IDNA domain): "+
				"keep one account per person (delete the other, or change its email in the database) and start again", other[0], c.id)
		}
		if err := tx.Table("users").Where("id = ?", c.id).Update("email", c.email).Error; err != nil {
			return err
		}
	}
	return nil
}

// migrateRefreshSuccessor links each refresh token to the token it replaced
// and marks successors spent by a retry (see RotateRefreshToken), and
// records on each session the latest expiry of the access tokens it issued
// (see Revoke). Nullable columns only: the previous version inserts rows
// without them and ignores them. No index on parent_id: it is read only
// when a rotated token is presented again, through the session_id index,
// and an index would cost every rotation a write.
func migrateRefreshSuccessor(tx *gorm.DB) error {
	type Session struct {
		AccessExpiresAt *time.Time
	}
	type RefreshToken struct {
		ParentID *string `gorm:"size:64"`
		SpentAt  *time.Time
	}
	m := tx.Migrator()
	for _, c := range []struct {
		model any
		field string
	}{{&Session{}, "AccessExpiresAt"}, {&RefreshToken{}, "ParentID"}, {&RefreshToken{}, "SpentAt"}} {
		if m.HasColumn(c.model, c.field) {
			continue
		}
		if err := m.AddColumn(c.model, c.field); err != nil {
			return err
		}
	}
	return nil
}

// migrateInitial creates the schema of authql before versioned migrations:
// exactly the tables, columns, indexes and constraints that its AutoMigrate
// of the models created. Databases made by those versions have them all
// already, so over them it changes nothing (AutoMigrate only adds what is
// missing) and they upgrade by recording it as applied.
//
// The structs are a snapshot and must never be edited. Their type and field
// names matter: GORM derives table, join-column and constraint names from
// them.
func migrateInitial(tx *gorm.DB) error {
	type Permission struct {
		Name string `gorm:"primaryKey;size:128"`
	}
	type Role struct {
		Name        string       `gorm:"primaryKey;size:64"`
		Permissions []Permission `gorm:"many2many:role_permissions;constraint:OnDelete:CASCADE"`
	}
	type User struct {
		ID           string     `gorm:"primaryKey;size:36;index:idx_users_page,priority:2"`
		Email        string     `gorm:"size:320;not null;uniqueIndex"`
		PasswordHash string     `gorm:"size:255;not null"`
		Roles        []Role     `gorm:"many2many:user_roles;constraint:OnDelete:CASCADE"`
		CreatedAt    time.Time  `gorm:"not null;index:idx_users_page,priority:1"`
		UpdatedAt    time.Time  `gorm:"not null"`
		LastLoginAt  *time.Time ``
	}
	type Session struct {
		ID         string    `gorm:"primaryKey;size:36"`
		UserID     string    `gorm:"size:36;not null;index"`
		User       *User     `gorm:"constraint:OnDelete:CASCADE"`
		CreatedAt  time.Time `gorm:"not null"`
		LastUsedAt time.Time `gorm:"not null"`
		ExpiresAt  time.Time `gorm:"not null;index"`
		RevokedAt  *time.Time
		UserAgent  string `gorm:"size:512"`
		IP         string `gorm:"size:64"`
	}
	type RefreshToken struct {
		ID        string    `gorm:"primaryKey;size:64"`
		SessionID string    `gorm:"size:36;not null;index"`
		Session   *Session  `gorm:"constraint:OnDelete:CASCADE"`
		CreatedAt time.Time `gorm:"not null"`
		ExpiresAt time.Time `gorm:"not null;index"`
		RotatedAt *time.Time
	}
	type Revocation struct {
		ID        string    `gorm:"primaryKey;size:64"`
		ExpiresAt time.Time `gorm:"not null;index"`
	}
	type Setting struct {
		Name  string `gorm:"primaryKey;size:64"`
		Value string `gorm:"size:1024;not null"`
	}
	type SigningKey struct {
		KID        string     `gorm:"column:kid;primaryKey;size:64"`
		Seq        int64      `gorm:"not null;uniqueIndex"`
		Alg        string     `gorm:"size:16;not null"`
		PrivateKey string     `gorm:"size:4096;not null"`
		PublicKey  string     `gorm:"size:4096;not null"`
		CreatedAt  time.Time  `gorm:"not null"`
		NotBefore  time.Time  `gorm:"not null"`
		RetiredAt  *time.Time ``
	}
	type RateLimit struct {
		ID  string `gorm:"primaryKey;size:64"`
		TAT int64  `gorm:"not null;index"`
	}
	// The order of the AutoMigrate of earlier versions.
	return tx.AutoMigrate(&User{}, &Role{}, &Permission{}, &Session{}, &RefreshToken{}, &Revocation{}, &Setting{}, &SigningKey{}, &RateLimit{})
}

// MigrationIDs returns the IDs of every migration this binary knows, oldest
// first.
func MigrationIDs() []string {
	ids := make([]string, len(migrations))
	for i, m := range migrations {
		ids[i] = m.ID
	}
	return ids
}

// SchemaStatus is how a database's schema stands against this binary's
// migrations.
type SchemaStatus struct {
	// Pending are the migrations this binary knows and the database lacks,
	// in order.
	Pending []string
	// Unknown are migrations the database has and this binary does not
	// know: a newer version of authql applied them.
	Unknown []string
}

// MigrationStatus returns the status of db's schema. A database without the
// migrations table (new, or made by a version before versioned migrations)
// lacks every migration.
func MigrationStatus(ctx context.Context, db *gorm.DB) (_ SchemaStatus, err error) {
	defer Wrap(&err, "MigrationStatus")
	return schemaStatus(db.WithContext(ctx))
}

func schemaStatus(db *gorm.DB) (SchemaStatus, error) {
	var applied []string
	if db.Migrator().HasTable(migrationsTable) {
		if err := db.Table(migrationsTable).Order("id").Pluck("id", &applied).Error; err != nil {
			return SchemaStatus{}, err
		}
	}
	var s SchemaStatus
	for _, m := range migrations {
		if !slices.Contains(applied, m.ID) {
			s.Pending = append(s.Pending, m.ID)
		}
	}
	known := MigrationIDs()
	for _, id := range applied {
		if !slices.Contains(known, id) {
			s.Unknown = append(s.Unknown, id)
		}
	}
	return s, nil
}

// Migrate applies the pending migrations and seeds the built-in roles (see
// ApplyMigrations).
func Migrate(ctx context.Context, db *gorm.DB) error {
	_, err := ApplyMigrations(ctx, db)
	return err
}

// ApplyMigrations applies the migrations db lacks, in order and all in one
// transaction, then seeds the built-in roles. It returns the status before
// it ran: the migrations it applied (Pending) and those it does not know
// (Unknown), which it leaves alone so that this binary keeps working on a
// schema that a newer one has extended (a rolling upgrade), as long as
// migrations only add.
//
// Several processes may call it at once on one database (replicas starting
// together): each migration is applied once, and the others wait for it.
func ApplyMigrations(ctx context.Context, db *gorm.DB) (_ SchemaStatus, err error) {
	defer Wrap(&err, "ApplyMigrations")
	var status SchemaStatus
	err = inMigrationTx(ctx, db, func(tx *gorm.DB) error {
		var err error
		if status, err = schemaStatus(tx); err != nil {
			return err
		}
		if len(status.Pending) > 0 {
			// The options are built here, not shared: gormigrate.New keeps
			// a pointer to them.
			m := gormigrate.New(tx, &gormigrate.Options{
				TableName:    migrationsTable,
				IDColumnName: "id",
				IDColumnSize: 255,
				// tx is the transaction: gormigrate must not open its own.
				UseTransaction: false,
			}, migrations)
			if err := m.Migrate(); err != nil {
				return err
			}
		}
		// Under the lock too: concurrent seedings could deadlock each
		// other on the rows they both insert.
		return seedRoles(tx)
	})
	return status, err
}

// inMigrationTx runs f in one transaction holding the database's migration
// lock, so that of several processes migrating one database at once, one
// migrates and the others wait for it, then find nothing left to do.
//
// One transaction for all migrations: one that fails leaves the schema as
// it was, not half-changed. Both databases run DDL in transactions. A
// future migration that cannot run in one (such as CREATE INDEX
// CONCURRENTLY) will need its own step outside it, under the lock.
//
// On PostgreSQL the lock is a session-level advisory lock, taken and
// released on one dedicated connection, which runs the transaction too.
// Session-level rather than transaction-level (pg_advisory_xact_lock):
// it is held from before the transaction begins until after it committed,
// and would keep covering a step run outside the transaction. It must be
// one connection because the lock belongs to the session that took it:
// through the pool, the unlock could go to another connection, leaving the
// lock held. If the process dies, its connection closes and PostgreSQL
// releases the lock, so a crash cannot leave the database locked.
//
// On SQLite the lock is the database's own write lock, which the
// transaction takes at BEGIN (see immediateDriver), waiting up to
// busy_timeout for any other writer, in this process or another, and
// holds until it ends.
func inMigrationTx(ctx context.Context, db *gorm.DB, f func(tx *gorm.DB) error) error {
	// A migration may rewrite a whole table: no AUTH_DB_TIMEOUT for it.
	ctx = WithoutTimeout(ctx)
	db = db.WithContext(ctx)
	if db.Dialector.Name() != string(Postgres) {
		return db.Transaction(f)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		// Not ctx: the lock must be released even when ctx is done. If
		// this fails too, the connection is closed rather than pooled,
		// which releases the lock.
		uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(uctx, "SELECT pg_advisory_unlock($1)", migrateLockKey); err != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	// A session on conn alone (a new session, not the bare statement, so
	// that f's queries do not accumulate conditions on one statement).
	onConn := db.Session(&gorm.Session{Context: ctx, NewDB: true})
	onConn.Statement.ConnPool = conn
	return onConn.Transaction(f)
}
