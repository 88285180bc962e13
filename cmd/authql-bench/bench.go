package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// dbBench runs the selected scenarios on one database.
type dbBench struct {
	o    options
	db   string
	rep  *report
	bin  string
	tmp  string
	env  []string
	cpus string // the server's, empty when not pinned
	sel  []scenario
	log  io.Writer
}

// startDB starts the server on a fresh database (unless -target names
// one) and returns its URL, the server (nil with -target), the database's
// DSN, and what to do when done.
func (b *dbBench) startDB(ctx context.Context) (url string, srv *server, dsn string, done func(), err error) {
	if b.o.target != "" {
		return b.o.target, nil, "", func() {}, nil
	}
	var cleanup []func()
	done = func() {
		for _, f := range slices.Backward(cleanup) {
			f()
		}
	}
	switch b.db {
	case "sqlite":
		dsn = "sqlite://" + filepath.Join(b.tmp, "authql.db")
	case "postgres":
		var version string
		var drop func() error
		if dsn, version, drop, err = createPostgres(ctx, b.o.pg); err != nil {
			return "", nil, "", nil, err
		}
		b.rep.Machine.Postgres = version
		cleanup = append(cleanup, func() {
			if err := drop(); err != nil {
				fmt.Fprintf(b.log, "could not drop the benchmark database: %v\n", err)
			}
		})
		if b.o.pinPostgres {
			restore, err := pinPostgres(b.cpus)
			if err != nil {
				done()
				return "", nil, "", nil, fmt.Errorf("-pin-postgres: %v", err)
			}
			cleanup = append(cleanup, func() {
				if err := restore(); err != nil {
					fmt.Fprintf(b.log, "could not restore PostgreSQL's CPU affinity: %v\n", err)
				}
			})
		}
	}
	fmt.Fprintf(b.log, "%s: starting the server…\n", b.db)
	srv, err = startServer(ctx, b.bin, append(slices.Clone(b.env), "DATABASE_URL="+dsn), b.cpus, filepath.Join(b.tmp, b.db+".log"))
	if err != nil {
		done()
		return "", nil, "", nil, err
	}
	cleanup = append(cleanup, srv.stop)
	return srv.url, srv, dsn, done, nil
}

func (b *dbBench) run(ctx context.Context) error {
	url, srv, dsn, done, err := b.startDB(ctx)
	if err != nil {
		return err
	}
	defer done()
	var floors *floorProc
	if b.o.floors && b.o.target == "" {
		f, stop, err := b.startFloor(ctx)
		if err != nil {
			return fmt.Errorf("floors: %w", err)
		}
		defer stop()
		floors = f
	}

	c := newClient(url, b.o.spec.Conns+b.o.spec.Flooders+b.o.spec.SlowConns)
	rnd := make([]byte, 4)
	rand.Read(rnd)
	n := b.o.spec.usersNeeded()
	fmt.Fprintf(b.log, "%s: registering %d users…\n", b.db, n)
	users, err := register(ctx, c, "bench-"+hex.EncodeToString(rnd), n)
	if err != nil {
		return err
	}
	if err := checkServer(c, users[0]); err != nil {
		return err
	}
	for _, s := range b.sel {
		if err := b.runScenario(ctx, s, c, users, srv, floors); err != nil {
			return err
		}
	}
	if b.db == "postgres" && b.o.replicas {
		res, err := b.measureRevocation(ctx, srv, dsn, users[0])
		if err != nil {
			return fmt.Errorf("replicas: %w", err)
		}
		b.rep.Results = append(b.rep.Results, res)
	}
	if b.db == "postgres" && b.o.socketsScenario {
		res, err := b.measureSockets(ctx, srv, dsn, users)
		if err != nil {
			return fmt.Errorf("sockets: %w", err)
		}
		b.rep.Results = append(b.rep.Results, res)
	}
	return nil
}

// runScenario measures s, and its floor when floors is not nil and s has
// one, and adds their results to the report: the floor's first.
func (b *dbBench) runScenario(ctx context.Context, s scenario, c *client, users []*user, srv *server, floors *floorProc) error {
	groups := s.groups(c, users)
	res := scenarioResult{DB: b.db, Name: s.Name, Title: s.Title, Conns: connsOf(groups)}
	var fl floorRunner
	var floorRes scenarioResult
	if floors != nil {
		var conns string
		var err error
		if fl, conns, err = floors.floorFor(s, b.o.spec, b.rep.HashWorkers); err != nil {
			return err
		}
		floorRes = scenarioResult{DB: b.db, Name: s.Name + "-floor", Title: floorTitles[s.Name], Conns: conns}
	}
	if srv != nil {
		if err := resetPeakRSS(srv.pid()); err != nil {
			fmt.Fprintf(b.log, "cannot reset the server's peak RSS (%v): the figure is the peak since start\n", err)
		}
		res.StartRSS, _ = currentRSS(srv.pid())
	}
	label := b.db + " " + s.Name
	var err error
	if fl != nil {
		err = b.measureWithFloor(ctx, fl, groups, label, &res, &floorRes)
	} else {
		err = b.measure(ctx, groups, label, &res)
	}
	if err != nil {
		return err
	}
	if srv != nil {
		if rss, err := peakRSS(srv.pid()); err == nil {
			res.PeakRSS = rss
		}
	}
	if fl != nil {
		b.rep.Results = append(b.rep.Results, floorRes)
	}
	b.rep.Results = append(b.rep.Results, res)
	return nil
}

const defaultScenarios = "me,refresh,login,mix,flood"

// splitScenarios splits a -scenarios list into the load scenarios and the
// PostgreSQL-only ones, each without duplicates.
func splitScenarios(list string) (load, pgOnly []string) {
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
		case slices.Contains(pgScenarios, n):
			if !slices.Contains(pgOnly, n) {
				pgOnly = append(pgOnly, n)
			}
		case !slices.Contains(load, n):
			load = append(load, n)
		}
	}
	return load, pgOnly
}

// connsOf says how many connections a scenario's groups use.
func connsOf(groups []group) string {
	s := strconv.Itoa(len(groups[0].workers))
	for _, g := range groups[1:] {
		s += fmt.Sprintf(" + %d", len(g.workers))
	}
	return s
}

// measure runs the warm-up, then b.o.runs measured runs of groups, logging
// each under label, and records them and the median run in res.
func (b *dbBench) measure(ctx context.Context, groups []group, label string, res *scenarioResult) error {
	if b.o.warmup > 0 {
		if _, err := runGroups(ctx, groups, b.o.warmup); err != nil {
			return err
		}
	}
	for i := range b.o.runs {
		rs, err := runGroups(ctx, groups, b.o.duration)
		if err != nil {
			return err
		}
		res.Runs = append(res.Runs, rs)
		logRun(b.log, label, i, rs)
	}
	res.Median = medianOf(res.Runs)
	return nil
}

// logRun logs run i of label.
func logRun(w io.Writer, label string, i int, rs runStats) {
	fmt.Fprintf(w, "%s run %d: %s req/s, p50 %s, p99 %s, refused %d, failed %d\n", label, i+1,
		fmtRate(rs.Rate()), fmtDur(rs.All.Lat.P50), fmtDur(rs.All.Lat.P99), rs.All.Limited, rs.All.Failed)
}

// medianOf returns the index of the run with the median rate.
func medianOf(runs []runStats) int {
	rates := make([]float64, len(runs))
	for i, r := range runs {
		rates[i] = r.Rate()
	}
	return medianRun(rates)
}
