package main

// The floor process: the tool re-executed with floorEnv set, pinned like
// the server, serving the floors the server's figures are divided by. Each
// floor is the least work its operation can be done with on the same
// stack: what authql adds above it (logs, metrics, audit, rules, caches)
// is what the ratios measure.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/golang-jwt/jwt/v5"
	"github.com/vektah/gqlparser/v2/ast"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/graph"
	"github.com/authql/authql/models"
)

// The floor process's environment: floorEnv says the process is one; the
// others configure it (see startFloor).
const (
	floorEnv       = "AUTHQL_BENCH_FLOOR"
	floorSecretEnv = "AUTHQL_BENCH_FLOOR_SECRET" // hex HS256 key of the me floor
	floorUsersEnv  = "AUTHQL_BENCH_FLOOR_USERS"  // how many users the me floor holds
	floorDSNEnv    = "AUTHQL_BENCH_FLOOR_DSN"    // database of the rotation floor
	floorChainsEnv = "AUTHQL_BENCH_FLOOR_CHAINS" // rotation chains seeded
	floorArgon2Env = "AUTHQL_BENCH_FLOOR_ARGON2" // memory,time,threads of the hash floor
)

// floorUserID is the id of the me floor's user i, and the subject of its
// tokens (floorToken).
func floorUserID(i int) string { return fmt.Sprintf("floor-user-%d", i) }

// floorToken signs the me floor's access token for user i with secret.
func floorToken(secret []byte, i int) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": floorUserID(i),
		"exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
}

// runFloor serves the floors on PORT until ctx ends.
func runFloor(ctx context.Context, getenv func(string) string) error {
	secret, err := hex.DecodeString(getenv(floorSecretEnv))
	if err != nil || len(secret) == 0 {
		return fmt.Errorf("%s: %v", floorSecretEnv, err)
	}
	n, _ := strconv.Atoi(getenv(floorUsersEnv))
	chains, _ := strconv.Atoi(getenv(floorChainsEnv))
	rot, err := newRotationFloor(ctx, getenv(floorDSNEnv), chains)
	if err != nil {
		return fmt.Errorf("rotation floor: %w", err)
	}
	hash, err := newHashFloor(getenv(floorArgon2Env))
	if err != nil {
		return fmt.Errorf("hash floor: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /query", meFloor(secret, n))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {})
	mux.HandleFunc("POST /rotate", timedFloor(rot.run))
	mux.HandleFunc("POST /hash", timedFloor(hash.run))
	srv := &http.Server{Addr: "127.0.0.1:" + getenv("PORT"), Handler: mux}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// floorPrincipal is the context key of the me floor's user.
type floorPrincipal struct{}

// meFloor is a minimal gqlgen server answering { me { id email } } from
// memory after an HS256 check: authql's schema and generated executor, POST
// transport and gqlgen's own document cache; no logs, metrics, limits or
// rule engine.
func meFloor(secret []byte, n int) http.Handler {
	users := make(map[string]*models.User, n)
	for i := range n {
		id := floorUserID(i)
		users[id] = &models.User{ID: id, Email: id + "@floor.example.com"}
	}
	cfg := graph.Config{Resolvers: floorResolver{}}
	cfg.Directives.Auth = func(ctx context.Context, _ any, next graphql.Resolver, _, _ *string, _, _ *int) (any, error) {
		if ctx.Value(floorPrincipal{}) == nil {
			return nil, errors.New("unauthenticated")
		}
		return next(ctx)
	}
	srv := handler.New(graph.NewExecutableSchema(cfg))
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	key := func(*jwt.Token) (any, error) { return secret, nil }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			var claims jwt.RegisteredClaims
			if _, err := parser.ParseWithClaims(bearer, &claims, key); err == nil {
				if u := users[claims.Subject]; u != nil {
					r = r.WithContext(context.WithValue(r.Context(), floorPrincipal{}, u))
				}
			}
		}
		srv.ServeHTTP(w, r)
	})
}

// floorResolver resolves me only; the embedded interfaces are nil, and
// nothing the floor is sent reaches them.
type floorResolver struct{ graph.ResolverRoot }

func (f floorResolver) Query() graph.QueryResolver { return floorQuery{} }

type floorQuery struct{ graph.QueryResolver }

func (floorQuery) Me(ctx context.Context) (*models.User, error) {
	u, _ := ctx.Value(floorPrincipal{}).(*models.User)
	return u, nil
}

// floorRun is what one timed run of a floor did: its successful
// operations' latencies, summarized, and its failures.
type floorRun struct {
	Elapsed time.Duration
	N       int
	Failed  int
	LastErr string
	Lat     latencies
}

// timedFloor serves POST ?d=<duration>&n=<loops>: it runs f for d with n
// loops at once and answers its floorRun as JSON.
func timedFloor(f func(ctx context.Context, d time.Duration, n int) floorRun) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || d <= 0 || n <= 0 {
			http.Error(w, "d: a positive duration, n: a positive count", http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(f(r.Context(), d, n))
	}
}

// runLoops runs n loops of op until d has passed and sums what they did;
// as the load's workers do, only operations that end within d count.
func runLoops(ctx context.Context, n int, d time.Duration, op func(i int) error) floorRun {
	start := time.Now()
	deadline := start.Add(d)
	lat := make([][]time.Duration, n)
	fails := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				err := op(i)
				if t1 := time.Now(); t1.After(deadline) {
					return
				} else if err != nil {
					fails[i]++
					errs[i] = err
				} else {
					lat[i] = append(lat[i], t1.Sub(t0))
				}
			}
		})
	}
	wg.Wait()
	out := floorRun{Elapsed: d}
	var all []time.Duration
	for i := range n {
		all = append(all, lat[i]...)
		out.Failed += fails[i]
		if errs[i] != nil {
			out.LastErr = errs[i].Error()
		}
	}
	out.N, out.Lat = len(all), summarize(all)
	return out
}

// rotationFloor is the bare rotation: in one transaction through
// models.Open's driver and pool, mark the presented refresh token rotated
// by its hash and insert its successor; chains at once, each presenting
// the token it made last.
type rotationFloor struct {
	db     *gorm.DB
	chains []rotationChain
}

type rotationChain struct {
	session, hash string
}

// newRotationFloor migrates the database at dsn and seeds a user with one
// session and token per chain.
func newRotationFloor(ctx context.Context, dsn string, chains int) (*rotationFloor, error) {
	db, _, err := models.Open(dsn, models.Options{})
	if err != nil {
		return nil, err
	}
	if err := models.Migrate(ctx, db); err != nil {
		return nil, err
	}
	now := time.Now()
	u := models.User{ID: newHash()[:36], Email: "floor@floor.example.com", PasswordHash: "-", CreatedAt: now, UpdatedAt: now}
	if err := db.Omit(clause.Associations).Create(&u).Error; err != nil {
		return nil, err
	}
	f := &rotationFloor{db: db, chains: make([]rotationChain, chains)}
	for i := range f.chains {
		s := models.Session{ID: newHash()[:36], UserID: u.ID, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
		t := models.RefreshToken{ID: newHash(), SessionID: s.ID, CreatedAt: now, ExpiresAt: s.ExpiresAt}
		if err := db.Omit(clause.Associations).Create(&s).Error; err != nil {
			return nil, err
		}
		if err := db.Omit(clause.Associations).Create(&t).Error; err != nil {
			return nil, err
		}
		f.chains[i] = rotationChain{session: s.ID, hash: t.ID}
	}
	return f, nil
}

// newHash is a new token's hash, as authql stores it: hex SHA-256 of 32
// random bytes.
func newHash() string {
	b := make([]byte, 32)
	rand.Read(b)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// run rotates min(n, chains) chains at once for d.
func (f *rotationFloor) run(ctx context.Context, d time.Duration, n int) floorRun {
	return runLoops(ctx, min(n, len(f.chains)), d, func(i int) error {
		c := &f.chains[i]
		next := newHash()
		err := f.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			now := time.Now()
			var sessions []string
			if err := tx.Raw(`UPDATE refresh_tokens SET rotated_at = ? WHERE id = ? AND rotated_at IS NULL RETURNING session_id`,
				now, c.hash).Scan(&sessions).Error; err != nil {
				return err
			}
			if len(sessions) == 0 {
				return errors.New("presented token not found")
			}
			return tx.Exec(`INSERT INTO refresh_tokens (id, session_id, created_at, expires_at, parent_id) VALUES (?, ?, ?, ?, ?)`,
				next, sessions[0], now, now.Add(24*time.Hour), c.hash).Error
		})
		if err == nil {
			c.hash = next
		}
		return err
	})
}

// hashFloor verifies the benchmark's password at the server's argon2id
// cost, as its hashing workers do.
type hashFloor struct {
	h      *auth.Hasher
	stored string
}

// newHashFloor reads "memory,time,threads" and hashes the password once.
func newHashFloor(params string) (*hashFloor, error) {
	var p auth.Argon2Params
	if _, err := fmt.Sscanf(params, "%d,%d,%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return nil, fmt.Errorf("%q: %v", params, err)
	}
	h, err := auth.NewHasher(p)
	if err != nil {
		return nil, err
	}
	stored, err := h.Hash(benchPassword)
	return &hashFloor{h: h, stored: stored}, err
}

// run verifies with n loops at once, one per hashing worker of the server.
func (f *hashFloor) run(ctx context.Context, d time.Duration, n int) floorRun {
	return runLoops(ctx, n, d, func(int) error {
		if ok, _, err := f.h.Verify(f.stored, benchPassword); err != nil || !ok {
			return fmt.Errorf("verify: %v", err)
		}
		return nil
	})
}

// floorMain runs the floor process when the tool was started as one; it
// reports whether it was.
func floorMain() bool {
	if os.Getenv(floorEnv) == "" {
		return false
	}
	if err := runFloor(context.Background(), os.Getenv); err != nil {
		fmt.Fprintf(os.Stderr, "authql-bench floor: %v\n", err)
		os.Exit(1)
	}
	return true
}
