package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// floorProc is the floor process the tool started for one database (see
// floor.go), pinned like the server.
type floorProc struct {
	srv    *server
	base   string // http://127.0.0.1:port
	secret []byte
	http   *http.Client
}

// startFloor starts the floor process for b's database: the me floor with
// one user per `me` connection, the rotation floor on a fresh database of
// the same dialect (a second SQLite file, or a second PostgreSQL database
// dropped afterwards), the hash floor at the server's argon2id cost. stop
// ends it.
func (b *dbBench) startFloor(ctx context.Context) (_ *floorProc, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	var dsn string
	drop := func() error { return nil }
	switch b.db {
	case "sqlite":
		dsn = "sqlite://" + filepath.Join(b.tmp, "floor.db")
	case "postgres":
		if dsn, _, drop, err = createPostgres(ctx, b.o.pg); err != nil {
			return nil, nil, err
		}
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	a := b.rep.Argon2
	env := []string{
		floorEnv + "=1",
		floorSecretEnv + "=" + hex.EncodeToString(secret),
		floorUsersEnv + "=" + strconv.Itoa(b.o.spec.Conns),
		floorDSNEnv + "=" + dsn,
		floorChainsEnv + "=" + strconv.Itoa(b.o.spec.SlowConns),
		floorArgon2Env + "=" + fmt.Sprintf("%d,%d,%d", a.Memory, a.Time, a.Threads),
	}
	fmt.Fprintf(b.log, "%s: starting the floors…\n", b.db)
	srv, err := startServer(ctx, exe, env, b.cpus, filepath.Join(b.tmp, b.db+"-floor.log"))
	if err != nil {
		drop()
		return nil, nil, err
	}
	u, _ := url.Parse(srv.url)
	f := &floorProc{srv: srv, base: "http://" + u.Host, secret: secret, http: &http.Client{}}
	return f, func() {
		srv.stop()
		if err := drop(); err != nil {
			fmt.Fprintf(b.log, "could not drop the floor's database: %v\n", err)
		}
	}, nil
}

// floorRunner is one run of a floor for d.
type floorRunner func(ctx context.Context, d time.Duration) (runStats, error)

// floorFor returns the floor of scenario s, or nil when it has none: me
// against the me floor with the same connections and client; chained
// refresh against the bare rotation with as many chains; login against
// the hash floor with one loop per hashing worker of the server.
func (f *floorProc) floorFor(s scenario, spec scenarioSpec, hashWorkers int) (floorRunner, string, error) {
	switch s.Name {
	case "me":
		c := newClient(f.base+"/query", spec.Conns)
		ws := make([]*worker, spec.Conns)
		for i := range ws {
			tok, err := floorToken(f.secret, i)
			if err != nil {
				return nil, "", err
			}
			ws[i] = &worker{c: c.as(workerAddr(i)), u: &user{access: tok}}
		}
		groups := []group{{stepMe, ws}}
		return func(ctx context.Context, d time.Duration) (runStats, error) {
			return runGroups(ctx, groups, d)
		}, strconv.Itoa(spec.Conns), nil
	case "refresh":
		return f.remote("rotate", spec.SlowConns, opRefresh), strconv.Itoa(spec.SlowConns) + " chains", nil
	case "login":
		return f.remote("hash", hashWorkers, opLogin), strconv.Itoa(hashWorkers) + " worker(s)", nil
	}
	return nil, "", nil
}

// floorTitles name the floors in the report.
var floorTitles = map[string]string{
	"me":      "floor of `me`: minimal gqlgen server, `me` from memory after an HS256 check",
	"refresh": "floor of `refresh`: bare rotation transaction (models.Open's driver and pool)",
	"login":   "floor of `login`: argon2id verifies at the configured cost",
}

// remote runs the floor process's timed floor name with n loops.
func (f *floorProc) remote(name string, n int, op opKind) floorRunner {
	return func(ctx context.Context, d time.Duration) (runStats, error) {
		u := fmt.Sprintf("%s/%s?d=%s&n=%d", f.base, name, d, n)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
		if err != nil {
			return runStats{}, err
		}
		resp, err := f.http.Do(req)
		if err != nil {
			return runStats{}, err
		}
		defer resp.Body.Close()
		var fr floorRun
		if resp.StatusCode != http.StatusOK {
			return runStats{}, fmt.Errorf("floor %s: HTTP %d", name, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(&fr); err != nil {
			return runStats{}, fmt.Errorf("floor %s: %v", name, err)
		}
		st := opStats{N: fr.N, Failed: fr.Failed, Lat: fr.Lat, LastErr: fr.LastErr}
		rs := runStats{Elapsed: fr.Elapsed, All: st}
		rs.Ops[op] = st
		return rs, nil
	}
}

// measureWithFloor measures scenario s's groups and, between its runs, its
// floor: warm-up of both, then the runs alternate (floor first on odd
// runs, the server first on even ones, so that neither always follows the
// other), so that both see the machine as it was at the time. It returns
// the floor's result, or nil when s has none.
func (b *dbBench) measureWithFloor(ctx context.Context, fl floorRunner, groups []group, label string, res, floorRes *scenarioResult) error {
	server := func(d time.Duration) (runStats, error) { return runGroups(ctx, groups, d) }
	floor := func(d time.Duration) (runStats, error) { return fl(ctx, d) }
	if b.o.warmup > 0 {
		for _, f := range []func(time.Duration) (runStats, error){floor, server} {
			if _, err := f(b.o.warmup); err != nil {
				return err
			}
		}
	}
	order := []struct {
		f   func(time.Duration) (runStats, error)
		res *scenarioResult
		tag string
	}{{floor, floorRes, " floor"}, {server, res, ""}}
	for i := range b.o.runs {
		for _, o := range order {
			rs, err := o.f(b.o.duration)
			if err != nil {
				return err
			}
			o.res.Runs = append(o.res.Runs, rs)
			logRun(b.log, label+o.tag, i, rs)
		}
		slices.Reverse(order)
	}
	res.Median, floorRes.Median = medianOf(res.Runs), medianOf(floorRes.Runs)
	return nil
}
