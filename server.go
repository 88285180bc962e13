// Command authql is a GraphQL authentication API: sign-up, login, refresh,
// logout and me, with an @auth directive that gates fields by role or
// permission.
package main

import (
	"bytes"
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

	"gorm.io/gorm"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/graph"
	"github.com/authql/authql/internal/playground"
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

// purgeInterval is how often expired rows are deleted.
const purgeInterval = 10 * time.Minute

// usage is the help of authql --help.
const usage = `Usage:
  authql [serve]              serve the GraphQL API: POST /query, playground at GET /,
                              public keys at GET /.well-known/jwks.json (and the
                              example frontend at /example/ with AUTH_EXAMPLE_UI=true)
  authql migrate              apply the database migrations and exit
  authql user add [flags]     add a user (see authql user --help)
  authql user roles [flags]   set a user's roles
  authql keys rotate [flags]  add a new signing key (see authql keys --help)
  authql health [flags]       exit 0 if the local server is ready (for container health checks)
  authql version              print the version and build information

Each command takes --help. All read the configuration below.

` + configHelp

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
		if alg, ok = auth.ParseAlg(*algFlag); !ok {
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
	kid, err := auth.RotateKey(ctx, db, auth.KeyConfig{Alg: alg, Encryption: cfg.Encryption}, *activateIn, time.Now, log)
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
	logOut, logFormat := stderr, cfg.LogFormat
	if logFormat == "" && isTerminal(stderr) {
		logFormat = "text" // a person is reading: each line at once
	} else {
		buf := newLogBuffer(stderr)
		logCtx, stopLogging := context.WithCancel(context.WithoutCancel(ctx))
		logDone := make(chan struct{})
		go func() { buf.run(logCtx); close(logDone) }()
		// Deferred first, so run last: every line of the shutdown is
		// written.
		defer func() { stopLogging(); <-logDone }()
		logOut = buf
	}
	log := newLogger(logOut, logFormat, cfg.LogLevel)
	m := newMetrics()
	// Listening first gives the port, which PORT=0 leaves to the system,
	// before the service is built with the example's origins.
	ln, err := net.Listen("tcp", ":"+cfg.Port)
	if err != nil {
		return err
	}
	if cfg.MaxConnsPerClient > 0 {
		ln = limitConns(ln, cfg.MaxConnsPerClient, cfg.TrustedProxies, m.connsRefused)
	}
	defer ln.Close()
	if cfg.ExampleUI {
		cfg.CORSOrigins = append(cfg.CORSOrigins, exampleOrigins(ln.Addr())...)
	}

	db, dialect, closeDB, err := openDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeDB() // runs after shutdown returned: no request is in flight then
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	if err := warnLooseFiles(ctx, db, log); err != nil {
		return err
	}
	if cfg.Encryption.Current == nil {
		log.WarnContext(ctx, "AUTH_ENCRYPTION_KEY is not set: the signing keys and secrets kept in the database are stored unencrypted")
	}
	acfg := authConfig(cfg)
	acfg.Observer = m
	svc, err := auth.NewService(ctx, db, cfg.JWTSecret, acfg, log)
	if err != nil {
		return err
	}
	// Deferred after closeDB, so run before it: the audit events still
	// queued are written while the database is open, retried for up to
	// AUTH_SHUTDOWN_TIMEOUT (at least 10 s) should it be down.
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), max(cfg.ShutdownTimeout, 10*time.Second))
		defer cancel()
		if err := svc.Close(ctx); err != nil {
			log.Error("audit events not all written at shutdown", "err", err)
		}
	}()
	if cfg.AdminEmail != "" {
		if err := svc.EnsureAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword); errors.Is(err, auth.ErrAdminEmailNotAdmin) {
			// Never promoted at start: whoever registered the email first
			// would become the admin (see EnsureAdmin).
			return fmt.Errorf("AUTH_ADMIN_EMAIL: an account with this email exists and is not an admin, so authql will not make it one at start. "+
				"Check who owns it; if it is the intended admin, grant the role with `authql user roles --email %s --set admin,user` and start again, "+
				"otherwise set AUTH_ADMIN_EMAIL to another email", cfg.AdminEmail)
		} else if err != nil {
			return fmt.Errorf("AUTH_ADMIN_EMAIL/AUTH_ADMIN_PASSWORD: %s", models.ErrorMessage(err))
		}
	}
	if dialect == models.Postgres {
		// Several replicas may share this database: hear what they change
		// (revocations, users, roles, keys) before serving anything.
		// Not stopped with ctx but once the server has shut down: the
		// requests still in flight must hear of revocations too.
		lctx, stopListening := context.WithCancel(context.WithoutCancel(ctx))
		l, err := svc.Listen(lctx, cfg.DatabaseURL)
		if err != nil {
			stopListening()
			return fmt.Errorf("listen for changes by other replicas: %w", err)
		}
		defer func() { stopListening(); <-l.Done() }()
	}
	go svc.RunPurge(ctx, purgeInterval)
	// Failed logins are padded to the slowest stored hash's cost: learn
	// those costs now rather than at each class's first failed login.
	go func() {
		if err := svc.MeasureHashClasses(ctx); err != nil && ctx.Err() == nil {
			log.Warn("measuring the costs of the stored password hashes failed; failed logins are padded to the costs seen so far", "err", err)
		}
	}()
	if dialect == models.SQLite {
		go boundWAL(ctx, db, log)
	}
	// Rotations by other processes (authql keys rotate, another replica's
	// start) reach this one within the interval; an unknown kid also
	// triggers a reload.
	go svc.Keys().RunReload(ctx, auth.KeyReloadInterval)

	m.watch(sqlDB, svc)
	ready := newReadiness(sqlDB, svc, log)

	srv := &http.Server{
		Handler:           newServer(cfg, svc, log, m, ready),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	servers := []*http.Server{srv}
	if cfg.Metrics && cfg.MetricsAddr == "" && !metricsOnPort(cfg) {
		log.Warn("metrics are not served: with AUTH_ENV=production, /metrics is served only on AUTH_METRICS_ADDR, or on PORT with AUTH_METRICS_PUBLIC=true")
	}
	if cfg.Metrics && cfg.MetricsAddr != "" {
		msrv, err := m.serve(cfg.MetricsAddr, srv.ErrorLog, stdout)
		if err != nil {
			ln.Close()
			return err
		}
		servers = append(servers, msrv)
	}
	fmt.Fprintf(stdout, "authql listening on http://%s (%s)\n", ln.Addr(), dialect)
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
	return shutdown(ready, servers, serveErr, cfg.ShutdownDelay, cfg.ShutdownTimeout, log)
}

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

// boundWAL keeps SQLite's write-ahead log from growing without bound under
// load (see models.CheckpointWAL) until ctx is done.
func boundWAL(ctx context.Context, db *gorm.DB, log *slog.Logger) {
	t := time.NewTicker(models.WALCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := models.CheckpointWAL(ctx, db); err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "checkpoint of the SQLite write-ahead log failed; trying again shortly", "err", err)
			}
		}
	}
}

// authConfig is the auth service's configuration, for serve and for the
// commands that act through the service.
func authConfig(cfg config) auth.Config {
	return auth.Config{
		Issuer:         cfg.Issuer,
		Audience:       cfg.Audience,
		AccessTTL:      cfg.AccessTTL,
		RefreshTTL:     cfg.RefreshTTL,
		ReuseInterval:  cfg.ReuseInterval,
		Signup:         cfg.Signup,
		Argon2:         cfg.Argon2,
		JWTAlg:         cfg.JWTAlg,
		JWTPrivateKey:  cfg.JWTPrivateKey,
		Encryption:     cfg.Encryption,
		Limits:         cfg.Limits,
		TrustedProxies: cfg.TrustedProxies,
		HashWorkers:    cfg.HashWorkers,
		HashWait:       cfg.HashWait,
		UserCacheSize:  cfg.UserCacheSize,
		MaxSessions:    cfg.MaxSessions,
		SyncTimeout:    cfg.SyncTimeout,
		AuditRetention: cfg.AuditRetention,

		AuditQueueBytes: cfg.AuditQueueBytes,

		// Browser sessions: the refresh cookie, CSRF and CORS.
		RefreshCookie:  cfg.RefreshCookie,
		CookieInsecure: cfg.CookieInsecure,
		AllowedOrigins: cfg.CORSOrigins,
	}
}

// newServer returns the whole HTTP surface of authql.
func newServer(cfg config, svc *auth.Service, log *slog.Logger, m *metrics, ready *readiness) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, cfg, svc, log, m, ready)
	return observe(log, m, mux)
}

// addRoutes lists every route.
func addRoutes(mux *http.ServeMux, cfg config, svc *auth.Service, log *slog.Logger, m *metrics, ready *readiness) {
	docs := graph.NewDocumentCache(graph.DefaultDocumentCacheBytes)
	if m != nil {
		m.watchDocuments(docs)
	}
	gql := graph.NewHandler(svc, log, graph.Options{
		Introspection: cfg.Introspection,
		MaxDepth:      cfg.MaxDepth,
		MaxComplexity: cfg.MaxComplexity,
		NoSuggestions: cfg.Production,
		MaxSessions:   cfg.MaxSessions,
		DocumentCache: docs,
	})
	mux.Handle("POST /query", cors(svc.OriginAllowed, noStore(limitBody(cfg.MaxBodyBytes, svc.Middleware(gql)))))
	mux.Handle("OPTIONS /query", cors(svc.OriginAllowed, nil))
	if cfg.Playground {
		mux.Handle("GET /{$}", playground.Handler("authql", "/query"))
		mux.Handle("GET "+playground.AssetsPath, playground.AssetsHandler())
	}
	if cfg.ExampleUI {
		mux.Handle("GET "+examplePath, exampleHandler())
	}
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		// Public keys only, and the same for everyone: caches may keep
		// them. Five minutes is why a rotation should use --activate-in.
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Write(svc.Keys().JWKS())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /readyz", ready)
	if metricsOnPort(cfg) {
		// Not for the public (see AUTH_METRICS_ADDR): block it at the proxy.
		mux.Handle("GET /metrics", m.handler())
	}
}

// metricsOnPort reports whether /metrics is served on the API's port. In
// production only with AUTH_METRICS_PUBLIC=true: the metrics tell anyone
// who can reach the API its traffic, its error rates and its database
// pool's state, and "block it at the proxy" is too easily forgotten.
func metricsOnPort(cfg config) bool {
	return cfg.Metrics && cfg.MetricsAddr == "" && (!cfg.Production || cfg.MetricsPublic)
}

// noStore keeps tokens in responses out of every cache.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// limitBody reads the request body, up to max bytes, before anything else
// runs: a larger body is refused with HTTP 413 without being read further,
// so that one request cannot make the server buffer or parse without limit.
// Reading it here (rather than only capping the reader) makes the refusal
// the same whether or not the client declared a Content-Length.
func limitBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			tooLarge(w, max)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			tooLarge(w, max)
			return
		case err != nil:
			http.Error(w, "could not read the request body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// tooLarge answers 413 with a GraphQL-shaped error, so that clients that
// only read JSON errors still see why.
func tooLarge(w http.ResponseWriter, max int64) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	fmt.Fprintf(w, `{"errors":[{"message":"request body too large: the limit is %d bytes","extensions":{"code":"PAYLOAD_TOO_LARGE"}}]}`+"\n", max)
}

// cors answers browsers' CORS checks on /query: for an origin that allowed
// accepts, yes with credentials (the refresh cookie, the Authorization
// header); for any other origin, no Access-Control-* header at all, so that
// browsers keep other sites from sending JSON requests or reading answers.
// A preflight (OPTIONS) is answered here; other requests go on to next.
func cors(allowed func(origin string) bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The answer depends on Origin: caches must not give one origin's
		// answer to another.
		h.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		ok := allowed(origin)
		if ok {
			// The request's own origin, never "*": browsers refuse "*" with
			// credentials, and reflecting any origin would be the same hole.
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if r.Method != http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		if !ok {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, X-Request-ID")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
	})
}
