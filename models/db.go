// Package models holds authql's persistent domain: users, roles and
// permissions, sessions, refresh tokens and revocations, signing keys,
// audit events and rate-limit counters, stored with GORM on PostgreSQL or
// on embedded SQLite, and their migrations.
//
// It is the only package that knows which database it runs on: the
// dialect-specific SQL, the pgx LISTEN loop that hears other replicas
// (listen.go) and SQLite's write-ahead log bound (wal.go) live here, each
// behind a function that works on both.
package models

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names the database behind a *gorm.DB.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// ParseDSN tells which database a DATABASE_URL selects and returns the DSN
// to hand to its driver: postgres:// and postgresql:// select PostgreSQL,
// sqlite://PATH or a plain file path select SQLite.
func ParseDSN(dsn string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return Postgres, dsn, nil
	case strings.HasPrefix(dsn, "sqlite://"):
		dsn = strings.TrimPrefix(dsn, "sqlite://")
	case strings.Contains(dsn, "://"):
		return "", "", fmt.Errorf("unsupported database URL scheme in %q: use postgres://, postgresql://, sqlite://PATH or a file path", redactDSN(dsn))
	}
	path, query, _ := strings.Cut(dsn, "?")
	if path == "" {
		return "", "", fmt.Errorf("empty SQLite path")
	}
	if path == ":memory:" {
		// Each pooled connection would get its own empty database.
		return "", "", fmt.Errorf("in-memory SQLite is not supported: use a file path")
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", "", fmt.Errorf("invalid SQLite options %q: %v", query, err)
	}
	// Order matters: busy_timeout first, so that the journal-mode switch
	// itself waits for a concurrent opener instead of failing with
	// SQLITE_BUSY; then WAL, so readers never block the writer; then foreign
	// keys, which SQLite leaves off unless asked on every connection.
	// journal_size_limit comes after WAL: it is what a reset WAL file is
	// truncated back to (see CheckpointWAL), so that one burst of writes does
	// not leave a large file behind for good. temp_store(MEMORY) keeps
	// statement journals in memory in small chunks: by default a
	// statement that needs one (in a transaction, one that may fail after
	// changing rows, as a rotation's writes do) got a 64 KiB buffer, which
	// modernc's allocator maps and unmaps with a system call each time;
	// that was 11% of the server's CPU under chained refreshes, and a
	// third of a rotation's in BenchmarkRotate. The temporary tables of
	// large sorts live in memory too (as in PocketBase); authql's queries
	// sort by an index or a page at a time.
	q["_pragma"] = append([]string{"busy_timeout(10000)", "journal_mode(WAL)", fmt.Sprintf("journal_size_limit(%d)", WALSizeLimit), "synchronous(NORMAL)", "foreign_keys(1)", "temp_store(MEMORY)"}, q["_pragma"]...)
	// Every transaction here writes; taking the write lock at BEGIN makes a
	// concurrent writer wait on busy_timeout instead of failing with
	// SQLITE_BUSY when a read lock cannot be upgraded.
	if q.Get("_txlock") == "" {
		q.Set("_txlock", "immediate")
	}
	// Times are written in the driver's default format, "2006-01-02
	// 15:04:05.999999999-07:00", sortable as text since they are always in
	// UTC (see Now). It is deliberately not asked for with _time_format:
	// the driver (glebarez/go-sqlite, v1.23.0 included) stops reading
	// the options at _time_format, so _txlock above was silently ignored
	// and every transaction was DEFERRED. A deferred transaction that reads
	// before it writes fails at once with SQLITE_BUSY when another
	// connection wrote in between, which the audit log's background writer
	// made common.
	q.Del("_time_format")
	return SQLite, path + "?" + q.Encode(), nil
}

// Pool defaults. PostgreSQL gets enough connections for the server's
// concurrent requests without crowding its max_connections (100 by default)
// when a few replicas share it; SQLite runs one writer at a time, so more
// connections than a few readers only queue on its lock.
const (
	DefaultPostgresMaxConns = 20
	DefaultSQLiteMaxConns   = 8
	// DefaultConnMaxLifetime rolls connections over, so that after a
	// PgBouncer restart or a failover the pool ends up on the new server
	// within that time instead of keeping its old connections forever. One
	// redial per connection per 30 minutes costs nothing measurable.
	DefaultConnMaxLifetime = 30 * time.Minute
)

// DefaultMaxConns is the pool size of the dialect when Options leave it 0.
func DefaultMaxConns(d Dialect) int {
	if d == SQLite {
		return DefaultSQLiteMaxConns
	}
	return DefaultPostgresMaxConns
}

// Options size the connection pool; zero fields take the defaults.
type Options struct {
	// MaxConns bounds the open connections (0: DefaultMaxConns).
	MaxConns int
	// MaxIdleConns is how many connections stay open when idle (0:
	// MaxConns). Fewer than MaxConns makes the pool close connections as
	// soon as a burst ends and dial them again at the next one.
	MaxIdleConns int
	// ConnMaxLifetime closes a connection that old when it is next
	// returned to the pool (0: DefaultConnMaxLifetime).
	ConnMaxLifetime time.Duration
	// Timeout is the deadline of every statement and transaction (0:
	// DefaultTimeout; see deadlinePool).
	Timeout time.Duration
}

// withDefaults fills the zero fields of o for dialect d, or reports values
// no pool can have.
func (o Options) withDefaults(d Dialect) (Options, error) {
	if o.MaxConns < 0 || o.MaxIdleConns < 0 || o.ConnMaxLifetime < 0 || o.Timeout < 0 {
		return o, fmt.Errorf("negative pool option %+v", o)
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns(d)
	}
	if o.MaxIdleConns == 0 {
		o.MaxIdleConns = o.MaxConns
	}
	if o.MaxIdleConns > o.MaxConns {
		return o, fmt.Errorf("%d idle connections exceed the %d open ones the pool may have", o.MaxIdleConns, o.MaxConns)
	}
	if o.ConnMaxLifetime == 0 {
		o.ConnMaxLifetime = DefaultConnMaxLifetime
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	return o, nil
}

// Open connects to the database that dsn selects (see ParseDSN), with its
// connection pool sized by opts.
func Open(dsn string, opts Options) (*gorm.DB, Dialect, error) {
	dialect, driverDSN, err := ParseDSN(dsn)
	if err != nil {
		return nil, "", err
	}
	if opts, err = opts.withDefaults(dialect); err != nil {
		return nil, "", err
	}
	var d gorm.Dialector
	switch dialect {
	case Postgres:
		d = postgres.Open(driverDSN)
	case SQLite:
		if err := prepareSQLiteFile(sqlitePath(driverDSN)); err != nil {
			return nil, "", err
		}
		d = sqlite.Open(driverDSN)
	}
	db, err := gorm.Open(d, &gorm.Config{
		// Duplicate keys surface as gorm.ErrDuplicatedKey on both databases.
		TranslateError: true,
		NowFunc:        Now,
		// Nothing from GORM's logger: its slow-query and error lines
		// interpolate the statements' parameters, which include password
		// hashes and refresh token hashes. Errors reach the server's log
		// through the callers, without them.
		Logger: logger.Discard,
	})
	if err != nil {
		return nil, "", fmt.Errorf("open %s database: %w", dialect, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, "", err
	}
	// Pools are sized on purpose: database/sql keeps only 2 idle
	// connections by default, so under concurrent load it would close the
	// others as each request finished and dial PostgreSQL (or reopen SQLite
	// and rerun its pragmas) for the next: a TCP and TLS handshake, a
	// backend process fork and authentication per request.
	sqlDB.SetMaxOpenConns(opts.MaxConns)
	sqlDB.SetMaxIdleConns(opts.MaxIdleConns)
	sqlDB.SetConnMaxLifetime(opts.ConnMaxLifetime)
	// A pool left idle this long gives its connections back to the
	// database; the next burst dials them once each, not per request.
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, "", fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	pool := &deadlinePool{db: sqlDB, timeout: opts.Timeout}
	if dialect == SQLite {
		pool.writers = make(chan struct{}, 1)
	}
	db.ConnPool, db.Statement.ConnPool = pool, pool
	return db, dialect, nil
}

// Now is the time GORM stamps rows with: UTC, so that SQLite's text times
// compare correctly as strings.
func Now() time.Time { return time.Now().UTC() }

// redactDSN drops a password from a URL so it can appear in an error.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		return u.Redacted()
	}
	return "the database URL"
}

// sqlitePath is the file of an SQLite driver DSN, or "" for a URI (file:…)
// whose file the driver resolves.
func sqlitePath(driverDSN string) string {
	path, _, _ := strings.Cut(driverDSN, "?")
	if strings.HasPrefix(path, "file:") {
		return ""
	}
	return path
}

// prepareSQLiteFile checks that the database file's directory exists and
// creates the file, readable by its owner only, when it does not exist.
//
// Without the check SQLite reports a missing directory as "out of memory
// (14)". The file holds password hashes and signing keys: created here with
// mode 0600 rather than by SQLite (0644 less the umask), and SQLite gives
// the -wal and -shm files it creates beside it the mode of the database
// file, so all three stay private.
func prepareSQLiteFile(path string) error {
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("the SQLite database %s cannot be created: the directory %s does not exist; create it, or set DATABASE_URL to a file in an existing directory", path, dir)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f.Close()
	}
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	return fmt.Errorf("create the SQLite database %s: %w", path, err)
}

// WALSizeLimit is the size, in bytes, that SQLite's write-ahead log is
// truncated back to whenever it is reset, and past which CheckpointWAL
// empties it.
const WALSizeLimit = 8 << 20

// WALCheckInterval is how often a server should call CheckpointWAL: a
// look at the log's size, cheap, and often enough that refreshes at full
// speed (about 5 MB of log a second on 2 cores) add little to the limit.
const WALCheckInterval = 250 * time.Millisecond

// DatabaseFiles returns the files of an SQLite database that exist (the
// database, its -wal and -shm files) with their modes; nil on PostgreSQL.
func DatabaseFiles(ctx context.Context, db *gorm.DB) (_ map[string]fs.FileMode, err error) {
	defer Wrap(&err, "DatabaseFiles")
	path, err := sqliteFile(ctx, db)
	if err != nil || path == "" {
		return nil, err
	}
	files := map[string]fs.FileMode{}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err == nil {
			files[p] = fi.Mode().Perm()
		}
	}
	return files, nil
}

// sqliteFile is the file of db's main database, or "" on PostgreSQL.
func sqliteFile(ctx context.Context, db *gorm.DB) (string, error) {
	if db.Dialector.Name() != string(SQLite) {
		return "", nil
	}
	var rows []struct {
		Name string
		File string
	}
	if err := db.WithContext(ctx).Raw("PRAGMA database_list").Scan(&rows).Error; err != nil {
		return "", err
	}
	for _, r := range rows {
		if r.Name == "main" {
			return r.File, nil
		}
	}
	return "", errors.New("no main database")
}

// CheckpointWAL keeps SQLite's write-ahead log bounded: once it is larger
// than WALSizeLimit it copies the log into the database and truncates it.
// It returns the log's size before. On PostgreSQL it does nothing.
//
// SQLite's own automatic checkpoints are passive: they never wait for
// readers, and the log starts over only when no reader is using it. Under
// steady load (refreshes on several connections) there always is one, so
// the log grows without bound until the last connection closes; it passed
// 140 MB in the refresh benchmark. A TRUNCATE checkpoint waits (through
// busy_timeout) for the readers of the moment to finish, holding off new
// writers meanwhile: a pause of a few milliseconds, once the log has grown.
func CheckpointWAL(ctx context.Context, db *gorm.DB) (walBytes int64, err error) {
	defer Wrap(&err, "CheckpointWAL")
	path, err := sqliteFile(ctx, db)
	if err != nil || path == "" {
		return 0, err
	}
	fi, err := os.Stat(path + "-wal")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	if fi.Size() <= WALSizeLimit {
		return fi.Size(), nil
	}
	// A passive checkpoint first copies what it can without blocking
	// anyone; the TRUNCATE checkpoint holds the write lock while it copies,
	// so it is left only the little written since. Once the log is past
	// twice the limit, writers are outrunning the copy (a loaded machine,
	// seen in CI under the race detector: 34 MB), and the passive pass only
	// lets them run further ahead, so the TRUNCATE checkpoint goes first
	// and writers wait for it.
	if fi.Size() <= 2*WALSizeLimit {
		if err := db.WithContext(ctx).Exec("PRAGMA wal_checkpoint(PASSIVE)").Error; err != nil {
			return fi.Size(), err
		}
	}
	// SQLite answers busy at once, without waiting, while another
	// connection runs an automatic checkpoint; those are short.
	for range 20 {
		var busy, log, done int
		if err := db.WithContext(ctx).Raw("PRAGMA wal_checkpoint(TRUNCATE)").Row().Scan(&busy, &log, &done); err != nil {
			return fi.Size(), err
		}
		if busy == 0 {
			return fi.Size(), nil
		}
		select {
		case <-ctx.Done():
			return fi.Size(), ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fi.Size(), errors.New("the write-ahead log could not be emptied: other connections kept it busy")
}
