package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/models"
)

// seedChunk is how many users one INSERT adds, so that progress shows.
const seedChunk = 100_000

// runBigDB measures the server's memory under `me` with many users and
// live revocations, on a database of its own so that its seeding does not
// distort the other scenarios: start the server (it migrates), register the
// load's users, stop it, seed users and revocations with SQL, start it
// again (it loads the revocations at start), and run `me`.
func (b *dbBench) runBigDB(ctx context.Context) error {
	dsn, _, drop, err := createPostgres(ctx, b.o.pg)
	if err != nil {
		return err
	}
	defer func() {
		if err := drop(); err != nil {
			fmt.Fprintf(b.log, "could not drop the bigdb database: %v\n", err)
		}
	}()
	env := append(slices.Clone(b.env), "DATABASE_URL="+dsn)
	logPath := filepath.Join(b.tmp, "bigdb.log")
	fmt.Fprintf(b.log, "bigdb: starting the server to migrate the database…\n")
	srv, err := startServer(ctx, b.bin, env, b.cpus, logPath)
	if err != nil {
		return err
	}
	c := newClient(srv.url, b.o.spec.Conns)
	rnd := make([]byte, 4)
	rand.Read(rnd)
	// Registered before the restart: their access tokens stay valid (the
	// signing key is kept in the database), and the restarted server's
	// memory holds no password hashing.
	users, err := register(ctx, c, "bench-"+hex.EncodeToString(rnd), b.o.spec.Conns)
	srv.stop()
	if err != nil {
		return err
	}

	t0 := time.Now()
	if err := seedBigDB(ctx, dsn, b.o.bigdbUsers, b.o.bigdbRevocations, b.rep.Argon2, b.log); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	seeded := time.Since(t0)

	fmt.Fprintf(b.log, "bigdb: restarting the server…\n")
	if srv, err = startServer(ctx, b.bin, env, b.cpus, logPath+".2"); err != nil {
		return err
	}
	defer srv.stop()
	startRSS, _ := currentRSS(srv.pid())
	if err := resetPeakRSS(srv.pid()); err != nil {
		fmt.Fprintf(b.log, "cannot reset the server's peak RSS (%v): the figure is the peak since start\n", err)
	}
	c = newClient(srv.url, b.o.spec.Conns)
	if err := checkServer(c, users[0]); err != nil {
		return err
	}
	groups := make([]group, 1)
	groups[0].step = stepMe
	for _, u := range users {
		groups[0].workers = append(groups[0].workers, &worker{c: c, u: u})
	}
	res := scenarioResult{DB: b.db, Name: "bigdb",
		Title: fmt.Sprintf("`me` with %s users and %s live revocations", fmtInt(float64(b.o.bigdbUsers)), fmtInt(float64(b.o.bigdbRevocations))),
		Conns: connsOf(groups), StartRSS: startRSS,
		BigDB: &bigDBStats{Users: b.o.bigdbUsers, Revocations: b.o.bigdbRevocations, Seeding: seeded}}
	if err := b.measure(ctx, groups, "bigdb", &res); err != nil {
		return err
	}
	if rss, err := peakRSS(srv.pid()); err == nil {
		res.PeakRSS = rss
	}
	b.rep.Results = append(b.rep.Results, res)
	return nil
}

// bigDBStats is how the bigdb scenario's database was filled.
type bigDBStats struct {
	Users, Revocations int
	Seeding            time.Duration
}

// seedBigDB adds users (with the role user) and live revocations to the
// migrated database at dsn, by SQL: registering a million users through
// the API would take a million password hashes.
func seedBigDB(ctx context.Context, dsn string, users, revocations int, p auth.Argon2Params, log io.Writer) error {
	db, _, err := models.Open(dsn, models.Options{MaxConns: 1})
	if err != nil {
		return err
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	// One real hash for everyone: the server keeps users' hashes in its
	// cache, so they should be the size of real ones.
	h, err := auth.NewHasher(p)
	if err != nil {
		return err
	}
	hash, err := h.Hash("seeded-password")
	if err != nil {
		return err
	}
	for lo := 1; lo <= users; lo += seedChunk {
		hi := min(lo+seedChunk-1, users)
		fmt.Fprintf(log, "bigdb: seeding users %d to %d of %d…\n", lo, hi, users)
		if err := db.WithContext(ctx).Exec(`WITH u AS (
			INSERT INTO users (id, email, password_hash, created_at, updated_at)
			SELECT gen_random_uuid()::text, 'u' || g || '@seed.example.com', ?, now(), now() FROM generate_series(?::int, ?::int) g
			RETURNING id)
			INSERT INTO user_roles (user_id, role_name) SELECT id, ? FROM u`, hash, lo, hi, models.RoleUser).Error; err != nil {
			return err
		}
	}
	fmt.Fprintf(log, "bigdb: seeding %d revocations…\n", revocations)
	if err := db.WithContext(ctx).Exec(`INSERT INTO revocations (id, expires_at)
		SELECT gen_random_uuid()::text, now() + interval '1 hour' FROM generate_series(1, ?::int)`, revocations).Error; err != nil {
		return err
	}
	return db.WithContext(ctx).Exec("ANALYZE").Error
}
