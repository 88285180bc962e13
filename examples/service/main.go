// Command service is an example of a second GraphQL service behind authql:
// its fields are gated by @auth, enforced by the authz package, which
// reads authql's discovery document and JWKS and follows its revocation
// feed. See README.md, "Other GraphQL services".
//
//	AUTHQL_URL        authql's public URL, its AUTH_ISSUER (required)
//	AUDIENCE          the aud a token must hold here (default authql)
//	SERVICE_EMAIL     the service account (a user with authql's role
//	SERVICE_PASSWORD  `service`) that reads the revocation feed (required
//	                  unless NO_REVOCATION_FEED is set)
//	NO_REVOCATION_FEED  "true": run without the feed (SERVICE_EMAIL unset);
//	                  revoked tokens are then refused only at expiry
//	PORT              listen port (default 8081)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/authql/authql/authz"
	"github.com/authql/authql/examples/service/api"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "service:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; listening, when set, is told the address
// (tests listen on PORT=0).
func run(ctx context.Context, getenv func(string) string, stderr io.Writer, listening func(addr string)) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	issuer := strings.TrimSpace(getenv("AUTHQL_URL"))
	if issuer == "" {
		return errors.New("AUTHQL_URL is required: authql's public URL (its AUTH_ISSUER)")
	}
	cfg := authz.Config{Issuer: issuer, Audience: or(getenv("AUDIENCE"), "authql"), Logger: log}
	if email := getenv("SERVICE_EMAIL"); email != "" {
		ts := &api.TokenSource{Endpoint: strings.TrimSuffix(issuer, "/") + "/query", Email: email, Password: getenv("SERVICE_PASSWORD")}
		cfg.FeedToken = ts.Token
	} else if getenv("NO_REVOCATION_FEED") == "true" {
		cfg.NoRevocationFeed = true // authz.New logs the warning
	} else {
		return errors.New("SERVICE_EMAIL is required (a user with authql's role service, for the revocation feed), or NO_REVOCATION_FEED=true to accept revoked tokens until they expire")
	}
	v, err := authz.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer v.Close()
	mux := http.NewServeMux()
	mux.Handle("/query", v.Middleware(api.NewHandler(v)))
	ln, err := net.Listen("tcp", ":"+or(getenv("PORT"), "8081"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Info("listening", "addr", ln.Addr().String(), "authql", issuer)
	if listening != nil {
		listening(ln.Addr().String())
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
