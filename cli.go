package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/models"
)

// version is authql's version, set at build time with
// -ldflags "-X main.version=v1.2.3"; empty, authql version reports the
// module version and VCS revision Go recorded in the binary.
var version string

const migrateUsage = `Usage: authql migrate

Applies the database migrations that the database of DATABASE_URL lacks,
prints their IDs (or that the schema is up to date), and exits. Several
servers or commands migrating one database at once take turns: each
migration is applied once.

serve runs this at start, unless AUTH_AUTO_MIGRATE=false: then run it
before starting (or upgrading) the servers, which refuse to start on a
database that lacks a migration.
`

const healthUsage = `Usage: authql health [--url URL] [--timeout DURATION]

Asks the server whether it is ready and exits 0 if it answers 200, 1
otherwise, printing why. For container health checks, where the image has
no shell or curl:

  healthcheck:
    test: ["CMD", "/authql", "health"]

  --url URL           what to GET (default http://127.0.0.1:$PORT/readyz)
  --timeout DURATION  how long to wait for the answer (default 3s)
`

const versionUsage = `Usage: authql version

Prints authql's version, the VCS revision and time it was built from, and
the Go version that built it.
`

// parseFlags parses args into fs. It prints usage to stdout and returns
// done for -h or --help; any other error says to see cmd --help.
func parseFlags(fs *flag.FlagSet, args []string, usage string, stdout io.Writer) (done bool, err error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		io.WriteString(stdout, usage)
		return true, nil
	} else if err != nil {
		return false, fmt.Errorf("%s: %v (see authql %s --help)", fs.Name(), err, strings.Fields(fs.Name())[0])
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("%s: unexpected argument %q (see authql %s --help)", fs.Name(), fs.Arg(0), strings.Fields(fs.Name())[0])
	}
	return false, nil
}

// prepareSchema brings db's schema to this version's migrations, or with
// autoMigrate false (AUTH_AUTO_MIGRATE=false) refuses a database that lacks
// one. A database with migrations this version does not know, applied by a
// newer authql, is used with a warning rather than refused: during a
// rolling upgrade the old servers keep running beside the new ones, which
// works because migrations only add to the schema.
func prepareSchema(ctx context.Context, db *gorm.DB, autoMigrate bool, log *slog.Logger) error {
	var st models.SchemaStatus
	var err error
	if autoMigrate {
		if st, err = models.ApplyMigrations(ctx, db); err != nil {
			return err
		}
		if len(st.Pending) > 0 {
			log.Info("applied database migrations", "ids", st.Pending)
		}
	} else {
		if st, err = models.MigrationStatus(ctx, db); err != nil {
			return err
		}
		if len(st.Pending) > 0 {
			return fmt.Errorf("the database schema lacks migrations %s: run `authql migrate` (AUTH_AUTO_MIGRATE is false)", strings.Join(st.Pending, ", "))
		}
	}
	if len(st.Unknown) > 0 {
		log.Warn("the database has migrations this version of authql does not know, applied by a newer version; running on, as migrations only add to the schema",
			"unknown", st.Unknown)
	}
	return nil
}

// migrateCommand runs "authql migrate".
func migrateCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	if done, err := parseFlags(fs, args, migrateUsage, stdout); done || err != nil {
		return err
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	// Not openDB: migrating is this command's point, whatever
	// AUTH_AUTO_MIGRATE says.
	db, _, err := models.Open(cfg.DatabaseURL, cfg.DB)
	if err != nil {
		return err
	}
	if sqlDB, err := db.DB(); err == nil {
		defer sqlDB.Close()
	}
	st, err := models.ApplyMigrations(ctx, db)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, id := range st.Pending {
		fmt.Fprintf(stdout, "applied %s\n", id)
	}
	if len(st.Pending) == 0 {
		fmt.Fprintln(stdout, "up to date")
	}
	if len(st.Unknown) > 0 {
		fmt.Fprintf(stderr, "warning: the database has migrations this version of authql does not know, applied by a newer version: %s\n", strings.Join(st.Unknown, ", "))
	}
	return nil
}

// openService opens the database as serve does (migrating it unless
// AUTH_AUTO_MIGRATE=false) and returns the auth service over it, with the
// configured argon2 parameters and keys.
func openService(ctx context.Context, getenv func(string) string, stderr io.Writer) (*auth.Service, *gorm.DB, func(), error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	db, _, closeDB, err := openDB(ctx, cfg, log)
	if err != nil {
		return nil, nil, nil, err
	}
	acfg := authConfig(cfg)
	// The commands sign nothing, and are run from shells that may lack the
	// servers' key variables: they never touch the signing keys.
	acfg.ReadOnlyKeys = true
	// A command that mails (authql user reset) queues it in the outbox,
	// where the servers' senders find it; without what production needs
	// to mail, it is refused ("mail is not configured").
	if cfg.Mail.required() == nil {
		if acfg.Mail, err = mailComposer(cfg, cfg.Port); err != nil {
			closeDB()
			return nil, nil, nil, err
		}
	}
	svc, err := auth.NewService(ctx, db, cfg.JWTSecret, acfg, log)
	if err != nil {
		closeDB()
		return nil, nil, nil, err
	}
	closeAll := func() {
		// The service writes audit events in the background: what the
		// command did (REGISTER, ROLES_CHANGED) is written here, before
		// the database closes.
		if err := svc.Close(context.WithoutCancel(ctx)); err != nil {
			log.Error("audit events not all written", "err", err)
		}
		closeDB()
	}
	return svc, db, closeAll, nil
}

// commandError is err for an operator: the message of a coded error (such
// as "unknown role"), or the whole internal error, which here goes to the
// operator's terminal rather than to a client.
func commandError(cmd string, err error) error {
	var e *models.Error
	if errors.As(err, &e) {
		return fmt.Errorf("%s: %s", cmd, e.Message)
	}
	return fmt.Errorf("%s: %w", cmd, err)
}

// healthCommand runs "authql health".
func healthCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	// PORT alone, not the whole configuration: a health check runs every
	// few seconds and needs nothing else (such as reading a key file).
	port := strings.TrimSpace(getenv("PORT"))
	if port == "" {
		port = defaultConfig().Port
	}
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:"+port+"/readyz", "")
	timeout := fs.Duration("timeout", 3*time.Second, "")
	if done, err := parseFlags(fs, args, healthUsage, stdout); done || err != nil {
		return err
	}
	if *timeout <= 0 {
		return fmt.Errorf("health: --timeout %s must be positive", *timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("health: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		reason := strings.TrimSpace(strings.SplitN(string(body), "\n", 2)[0])
		return fmt.Errorf("health: GET %s: %s %s", *url, resp.Status, reason)
	}
	fmt.Fprintf(stdout, "ok: GET %s: %s\n", *url, resp.Status)
	return nil
}

// versionCommand runs "authql version".
func versionCommand(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if done, err := parseFlags(fs, args, versionUsage, stdout); done || err != nil {
		return err
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("version: this binary carries no build information")
	}
	v := version
	if v == "" {
		v = bi.Main.Version // "(devel)" when built from a checkout
	}
	fmt.Fprintf(stdout, "authql %s\n", v)
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if settings["vcs.modified"] == "true" {
			rev += " (modified)"
		}
		fmt.Fprintf(stdout, "revision %s\n", rev)
	}
	if t := settings["vcs.time"]; t != "" {
		fmt.Fprintf(stdout, "time %s\n", t)
	}
	fmt.Fprintf(stdout, "module %s %s\n", bi.Main.Path, bi.Main.Version)
	fmt.Fprintf(stdout, "go %s\n", bi.GoVersion)
	return nil
}
