// Command authql is a GraphQL authentication API: sign-up, login, refresh,
// logout and me, with an @auth directive that gates fields by role or
// permission.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/auth/keys"
	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/httpapi"
	"github.com/authql/authql/models"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal starts a graceful shutdown; from then on signals
	// have their default effect, so a second one stops the process at once.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "authql: %v\n", err)
		os.Exit(1)
	}
}

// keysUsage is the help of authql keys --help.
const keysUsage = `Usage: authql keys rotate [--alg ALG] [--activate-in DURATION]

Adds a new signing key to the database of DATABASE_URL and prints its kid.
From its activation on (at once by default) every server signs with it,
learning of it at once on PostgreSQL (within 30 s on SQLite); the previous
key is retired then and keeps verifying the tokens it signed until they
have expired.

  --alg ALG               the new key's algorithm: HS256, EdDSA or ES256
                          (default: the current key's; AUTH_JWT_ALG is not
                          read, so a shell without it changes nothing)
  --activate-in DURATION  publish the key in the JWKS now but sign with it
                          only after DURATION (e.g. 10m), so that relying
                          parties caching the JWKS (up to 5 minutes) have it
                          before the first token it signs

A server started with AUTH_JWT_ALG set to another algorithm than the
current key's replaces that key at start: after a rotation with --alg, set
AUTH_JWT_ALG to that algorithm too, or leave it unset.

Keys configured outside the database are not rotated here: with
AUTH_JWT_PRIVATE_KEY_FILE replace the file and restart, with AUTH_JWT_SECRET
set a new secret and restart.
`

// run runs the authql command that args name (serve when none) until ctx
// is done. It takes the process's environment as arguments so that tests
// can run whole servers and commands in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd, rest := "serve", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "keys":
		return keysCommand(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return migrateCommand(ctx, rest, getenv, stdout, stderr)
	case "user":
		return userCommand(ctx, rest, getenv, stdin, stdout, stderr)
	case "health":
		return healthCommand(ctx, rest, getenv, stdout)
	case "mail":
		return mailCommand(ctx, rest, getenv, stdout)
	case "version":
		return versionCommand(rest, stdout)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q (see authql --help)", cmd)
}

// isHelp reports whether a is a request for help.
func isHelp(a string) bool {
	switch a {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// openDB opens the configured database and migrates it (see prepareSchema);
// the returned function closes it.
func openDB(ctx context.Context, cfg config, log *slog.Logger) (*gorm.DB, models.Dialect, func(), error) {
	db, dialect, err := models.Open(cfg.DatabaseURL, cfg.DB)
	if err != nil {
		return nil, "", nil, err
	}
	closeDB := func() {
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	}
	if err := prepareSchema(ctx, db, cfg.AutoMigrate, log); err != nil {
		closeDB()
		return nil, "", nil, err
	}
	return db, dialect, closeDB, nil
}

// keysCommand runs "authql keys ...".
func keysCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	if args[0] != "rotate" {
		return fmt.Errorf("unknown keys command %q (see authql keys --help)", args[0])
	}
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	activateIn := fs.Duration("activate-in", 0, "")
	algFlag := fs.String("alg", "", "")
	if done, err := parseFlags(fs, args[1:], keysUsage, stdout); done || err != nil {
		return err
	}
	alg := ""
	if *algFlag != "" {
		var ok bool
		if alg, ok = keys.ParseAlg(*algFlag); !ok {
			return fmt.Errorf("keys rotate: --alg %q is not supported; use HS256, EdDSA or ES256", *algFlag)
		}
	}
	if *activateIn < 0 {
		return fmt.Errorf("keys rotate: --activate-in %s is negative", *activateIn)
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	switch {
	case cfg.JWTPrivateKeyFile != "":
		return errors.New("keys rotate: AUTH_JWT_PRIVATE_KEY_FILE is set, so the signing key is that file's: to rotate, replace the file and restart the servers")
	case cfg.JWTSecret != nil:
		return errors.New("keys rotate: AUTH_JWT_SECRET is set, so the signing key is that secret: to rotate, set a new secret and restart the servers")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	db, _, closeDB, err := openDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeDB()
	kid, err := keys.Rotate(ctx, db, keys.Config{Alg: alg, Encryption: cfg.Encryption}, *activateIn, time.Now, log)
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	fmt.Fprintln(stdout, kid)
	return nil
}

// serve starts the server and serves until ctx is done.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if isHelp(args[0]) {
			fmt.Fprint(stdout, usage)
			return nil
		}
		return fmt.Errorf("unknown argument %q (see authql --help)", args[0])
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	log, stopLogging := startLogging(ctx, cfg, stderr)
	// Deferred first, so run last: every line of the shutdown is written.
	defer stopLogging()
	m := httpapi.NewMetrics()
	// Listening first gives the port, which PORT=0 leaves to the system,
	// before the service is built with the example's origins.
	ln, err := net.Listen("tcp", ":"+cfg.Port)
	if err != nil {
		return err
	}
	if cfg.MaxConnsPerClient > 0 {
		ln = httpapi.LimitConns(ln, cfg.MaxConnsPerClient, cfg.TrustedProxies, m)
	}
	defer ln.Close()
	listenOrigins(&cfg, ln.Addr())

	ml, err := newMailer(cfg, portOf(ln.Addr()))
	if err != nil {
		return err
	}
	if err := cfg.Standards.required(); err != nil {
		return err
	}
	db, dialect, closeDB, err := openDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	// Runs after the servers have shut down, the background work has
	// stopped and the service has closed (deferred below, so run before).
	defer closeDB()
	svc, err := startService(ctx, cfg, db, m, ml, log)
	if err != nil {
		return err
	}
	ml.newSender(db, cfg.Mail.From, svc, m, log)
	// Deferred after closeDB, so run before it: the audit events still
	// queued are written while the database is open, retried for up to
	// AUTH_SHUTDOWN_TIMEOUT (at least 10 s) should it be down.
	defer closeService(svc, cfg.ShutdownTimeout, log)

	// The background work is stopped not with ctx but once the servers
	// have shut down, and waited for before the database closes: the
	// requests still in flight must hear of revocations too.
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var g errgroup.Group
	defer func() { stopBackground(); g.Wait() }()
	if err := startBackground(bg, &g, cfg, db, svc, ml.sender, log); err != nil {
		return err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	m.Watch(sqlDB, svc)
	ready := httpapi.NewReadiness(sqlDB, svc, log)
	return serveHTTP(ctx, cfg, ln, dialect, svc, m, ready, log, stdout, ml.where())
}

// startLogging returns the logger of cfg writing to stderr, and the
// function that writes out what is still buffered when serve returns.
func startLogging(ctx context.Context, cfg config, stderr io.Writer) (*slog.Logger, func()) {
	if cfg.LogFormat == "" && httpapi.IsTerminal(stderr) {
		// A person is reading: each line at once.
		return httpapi.NewLogger(stderr, "text", cfg.LogLevel), func() {}
	}
	buf := httpapi.NewLogBuffer(stderr)
	logCtx, stopLogging := context.WithCancel(context.WithoutCancel(ctx))
	logDone := make(chan struct{})
	go func() { buf.Run(logCtx); close(logDone) }()
	return httpapi.NewLogger(buf, cfg.LogFormat, cfg.LogLevel), func() { stopLogging(); <-logDone }
}

// startService builds the auth service over db and ensures the admin of
// AUTH_ADMIN_EMAIL.
func startService(ctx context.Context, cfg config, db *gorm.DB, m *httpapi.Metrics, ml *mailer, log *slog.Logger) (*auth.Service, error) {
	if err := warnLooseFiles(ctx, db, log); err != nil {
		return nil, err
	}
	if cfg.Encryption.Current == nil {
		log.WarnContext(ctx, "AUTH_ENCRYPTION_KEY is not set: the signing keys and secrets kept in the database are stored unencrypted")
	}
	warnIssuer(ctx, cfg, log)
	acfg := authConfig(cfg)
	acfg.Observer = m
	ml.configure(&acfg)
	svc, err := auth.NewService(ctx, db, cfg.JWTSecret, acfg, log)
	if err != nil {
		return nil, err
	}
	if cfg.AdminEmail == "" {
		return svc, nil
	}
	if err := svc.EnsureAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword); errors.Is(err, auth.ErrAdminEmailNotAdmin) {
		closeService(svc, cfg.ShutdownTimeout, log)
		// Never promoted at start: whoever registered the email first
		// would become the admin (see EnsureAdmin).
		return nil, fmt.Errorf("AUTH_ADMIN_EMAIL: an account with this email exists and is not an admin, so authql will not make it one at start. "+
			"Check who owns it; if it is the intended admin, grant the role with `authql user roles --email %s --set admin,user` and start again, "+
			"otherwise set AUTH_ADMIN_EMAIL to another email", cfg.AdminEmail)
	} else if err != nil {
		closeService(svc, cfg.ShutdownTimeout, log)
		return nil, fmt.Errorf("AUTH_ADMIN_EMAIL/AUTH_ADMIN_PASSWORD: %s", models.ErrorMessage(err))
	}
	return svc, nil
}

// closeService writes the audit events still queued, retrying for up to
// timeout (at least 10 s) should the database be down.
func closeService(svc *auth.Service, timeout time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), max(timeout, 10*time.Second))
	defer cancel()
	if err := svc.Close(ctx); err != nil {
		log.Error("audit events not all written at shutdown", "err", err)
	}
}

// purgeInterval is how often expired rows are deleted.
const purgeInterval = 10 * time.Minute

// startBackground starts, in g, the work that runs beside the requests
// until ctx is done: hearing other replicas, purging expired rows,
// reloading signing keys, measuring the stored hashes' costs, bounding
// SQLite's write-ahead log and delivering mail. It returns an error,
// having started nothing, if the other replicas cannot be heard.
func startBackground(ctx context.Context, g *errgroup.Group, cfg config, db *gorm.DB, svc *auth.Service, sender *mail.Sender, log *slog.Logger) error {
	// Several replicas may share a PostgreSQL database: hear what they
	// change (revocations, users, roles, keys) before serving anything.
	// (On SQLite, which one process serves, there is no one to hear.)
	l, err := svc.Listen(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("listen for changes by other replicas: %w", err)
	}
	// The listener runs in a goroutine of its own; waiting here for it to
	// close its connection keeps it in the group serve waits for.
	g.Go(func() error { <-l.Done(); return nil })
	g.Go(func() error { svc.RunPurge(ctx, purgeInterval); return nil })
	// Rotations by other processes (authql keys rotate, another replica's
	// start) reach this one within the interval; an unknown kid also
	// triggers a reload.
	g.Go(func() error { svc.Keys().RunReload(ctx, keys.ReloadInterval); return nil })
	// Failed logins are padded to the slowest stored hash's cost: learn
	// those costs now rather than at each class's first failed login.
	g.Go(func() error {
		if err := svc.MeasureHashClasses(ctx); err != nil && ctx.Err() == nil {
			log.Warn("measuring the costs of the stored password hashes failed; failed logins are padded to the costs seen so far", "err", err)
		}
		return nil
	})
	g.Go(func() error {
		models.BoundWAL(ctx, db, walWarnings(ctx, log, time.Now))
		return nil
	})
	// Stopped after the servers: a mail queued by a request in flight goes out.
	g.Go(func() error { sender.Run(ctx); return nil })
	return nil
}

// walWarnEvery is how often a failing checkpoint of the write-ahead log is
// logged while it keeps failing.
const walWarnEvery = time.Minute

// walWarnings returns the failure callback of models.BoundWAL: the first
// failure is logged at once, and later ones at most every walWarnEvery
// with how many there were. The check runs four times a second, so a
// lasting fault (a full disk) would otherwise log four lines a second.
func walWarnings(ctx context.Context, log *slog.Logger, now func() time.Time) func(error) {
	var last time.Time
	failures := 0
	return func(err error) {
		failures++
		if t := now(); last.IsZero() || t.Sub(last) >= walWarnEvery {
			log.WarnContext(ctx, "checkpoint of the SQLite write-ahead log failed; trying again shortly", "err", err, "failures", failures)
			last, failures = t, 0
		}
	}
}

// serveHTTP serves the API on ln, and the metrics on AUTH_METRICS_ADDR,
// until ctx is done, then shuts the servers down (see httpapi.Shutdown).
func serveHTTP(ctx context.Context, cfg config, ln net.Listener, dialect models.Dialect, svc *auth.Service, m *httpapi.Metrics, ready *httpapi.Readiness, log *slog.Logger, stdout io.Writer, mailTo string) error {
	hcfg := httpConfig(cfg)
	h := httpapi.New(hcfg, svc, log, m, ready)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// The read and write timeouts are for requests: the websockets clear
	// them on upgrade and are closed (1001) as the shutdown begins, which
	// does not wait for them.
	srv.RegisterOnShutdown(h.CloseSockets)
	servers := []*http.Server{srv}
	if cfg.Metrics && cfg.MetricsAddr == "" && !hcfg.MetricsOnPort() {
		log.Warn("metrics are not served: with AUTH_ENV=production, /metrics is served only on AUTH_METRICS_ADDR, or on PORT with AUTH_METRICS_PUBLIC=true")
	}
	if cfg.Metrics && cfg.MetricsAddr != "" {
		msrv, err := m.Serve(cfg.MetricsAddr, srv.ErrorLog, stdout)
		if err != nil {
			return err
		}
		servers = append(servers, msrv)
	}
	// Where mails go is on the start line: `go run .` users find there the
	// directory of the mails whose links they follow.
	fmt.Fprintf(stdout, "authql listening on http://%s (%s); %s\n", ln.Addr(), dialect, mailTo)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		for _, s := range servers[1:] {
			s.Close()
		}
		return err
	case <-ctx.Done():
	}
	return httpapi.Shutdown(ready, servers, serveErr, cfg.ShutdownDelay, cfg.ShutdownTimeout, shutdownDelayed, log)
}

// shutdownDelayed is time.After, for the shutdown delay; a test of the
// whole program replaces it to end the delay once it has seen what happens
// during it, rather than wait it out.
var shutdownDelayed = time.After

// warnLooseFiles logs a warning for each SQLite file (the database, its
// -wal and -shm) that others than its owner may read: it holds password
// hashes, and signing keys unless AUTH_ENCRYPTION_KEY encrypts them.
// authql creates them private (0600); older versions and copies may not
// have.
func warnLooseFiles(ctx context.Context, db *gorm.DB, log *slog.Logger) error {
	files, err := models.DatabaseFiles(ctx, db)
	if err != nil {
		return err
	}
	for _, path := range slices.Sorted(maps.Keys(files)) {
		if mode := files[path]; mode&0o077 != 0 {
			log.WarnContext(ctx, "a database file is readable by others than its owner: it holds password hashes and keys; make it private with chmod 600",
				"file", path, "mode", mode.String())
		}
	}
	return nil
}
