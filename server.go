// Command authql is a GraphQL authentication API: sign-up, login, refresh,
// logout and me, with an @auth directive that gates fields by role or
// permission.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/99designs/gqlgen/graphql/playground"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/graph"
	"github.com/authql/authql/models"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "authql: %v\n", err)
		os.Exit(1)
	}
}

// maxBodyBytes bounds a GraphQL request body.
const maxBodyBytes = 1 << 20

// purgeInterval is how often expired rows are deleted.
const purgeInterval = 10 * time.Minute

// run starts authql and serves until ctx is done. It takes the process's
// environment as arguments so that tests can run whole servers in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help", "help":
			fmt.Fprint(stdout, "Usage: authql\n\nServes the authql GraphQL API: POST /query, playground at GET /.\n\n"+configHelp)
			return nil
		default:
			return fmt.Errorf("unknown argument %q (see authql --help)", a)
		}
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	db, dialect, err := models.Open(cfg.DatabaseURL)
	if err != nil {
		return err
	}
	if sqlDB, err := db.DB(); err == nil {
		defer sqlDB.Close()
	}
	if err := models.Migrate(ctx, db); err != nil {
		return err
	}
	key := cfg.JWTSecret
	if key == nil {
		// Kept in the database so that restarts, and every replica sharing
		// the database, verify the same tokens. Set AUTH_JWT_SECRET to keep
		// the key out of the database.
		s, err := models.SettingValue(ctx, db, "jwt_hs256_secret", func() (string, error) {
			b := make([]byte, 32)
			_, err := rand.Read(b)
			return base64.RawStdEncoding.EncodeToString(b), err
		})
		if err != nil {
			return err
		}
		if key, err = base64.RawStdEncoding.DecodeString(s); err != nil {
			return fmt.Errorf("stored signing key is corrupt: %w", err)
		}
	}
	svc, err := auth.NewService(ctx, db, key, auth.Config{
		Issuer:        cfg.Issuer,
		Audience:      cfg.Audience,
		AccessTTL:     cfg.AccessTTL,
		RefreshTTL:    cfg.RefreshTTL,
		ReuseInterval: cfg.ReuseInterval,
		Signup:        cfg.Signup,
		Argon2:        cfg.Argon2,

		// Browser sessions: the refresh cookie, CSRF and CORS.
		RefreshCookie:  cfg.RefreshCookie,
		CookieInsecure: cfg.CookieInsecure,
		AllowedOrigins: cfg.CORSOrigins,
	}, log)
	if err != nil {
		return err
	}
	if cfg.AdminEmail != "" {
		if err := svc.EnsureAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword); err != nil {
			return fmt.Errorf("AUTH_ADMIN_EMAIL/AUTH_ADMIN_PASSWORD: %s", models.ErrorMessage(err))
		}
	}
	go svc.RunPurge(ctx, purgeInterval)

	ln, err := net.Listen("tcp", ":"+cfg.Port)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           newServer(svc, log),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "authql listening on http://%s (%s)\n", ln.Addr(), dialect)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newServer returns the whole HTTP surface of authql.
func newServer(svc *auth.Service, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, svc, log)
	return mux
}

// addRoutes lists every route.
func addRoutes(mux *http.ServeMux, svc *auth.Service, log *slog.Logger) {
	mux.Handle("POST /query", cors(svc.OriginAllowed, noStore(limitBody(svc.Middleware(graph.NewHandler(svc, log, true))))))
	mux.Handle("OPTIONS /query", cors(svc.OriginAllowed, nil))
	mux.Handle("GET /{$}", playground.Handler("authql", "/query"))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
}

// noStore keeps tokens in responses out of every cache.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// limitBody bounds the request body so that one request cannot make the
// server buffer without limit.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		next.ServeHTTP(w, r)
	})
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
