// Command authql-bench measures authql under load over HTTP: me, login,
// chained refresh, a 90/9/1 mix and me during a login flood, on SQLite and
// PostgreSQL; and, on PostgreSQL, how soon a logout on one of three
// replicas is refused on the others, and the memory with a million users. By default it builds the server of the current repository,
// starts it on a fresh database pinned to one core, runs the load from the
// other cores, and prints req/s and p50/p90/p99 per scenario; -write puts
// the figures, the machine and the settings into BENCHMARKS.md with a
// chart in BENCHMARKS.svg.
//
//	go run ./cmd/authql-bench -pg 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' -write
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/authql/authql/auth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "authql-bench: %v\n", err)
		os.Exit(1)
	}
}

// pinnedEnv carries the CPU list the tool started with into its re-exec
// under taskset, which only sees the cores left to it.
const pinnedEnv = "AUTHQL_BENCH_CPUS"

// trustedLoopback is the started server's AUTH_TRUSTED_PROXIES: the tool
// connects from loopback, and trusted as a proxy, each worker is the client
// its X-Forwarded-For names (workerAddr), so that the per-client share of
// the hashing pool applies to each worker, as to clients behind a real
// proxy, rather than to the whole load together. (A trusted proxy is also
// exempt from AUTH_MAX_CONNS_PER_CLIENT, as a real one is.)
const trustedLoopback = "127.0.0.0/8,::1"

// hashSamples is how many argon2id verifies are timed for the hash rate.
const hashSamples = 9

// envList is a repeatable KEY=VALUE flag.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }
func (e *envList) Set(v string) error {
	k, _, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	*e = append(*e, v)
	return nil
}

// options are the tool's flags.
type options struct {
	target      string
	targetDB    string
	pg          string
	dbs         string
	scenarios   string
	duration    time.Duration
	warmup      time.Duration
	runs        int
	spec        scenarioSpec
	pin         bool
	pinPostgres bool
	env         envList
	write       bool

	// The scenarios that need PostgreSQL and are not load.
	replicas         bool
	bigdb            bool
	revocations      int
	bigdbUsers       int
	bigdbRevocations int
}

// pgScenarios are the scenarios that run only on PostgreSQL, after the
// load scenarios: revocation across three replicas, and memory with a big
// database (in a database of its own).
var pgScenarios = []string{"replicas", "bigdb"}

const usage = `Usage: go run ./cmd/authql-bench [flags]

Measures authql over HTTP with keep-alive connections: me, login, chained
refresh (each connection sends the refresh token it got last), a mix (90% me,
9% refresh, 1% login) and me during a login flood. Each scenario runs a
warm-up, then -runs runs of -duration; the run with the median req/s is
reported with its p50/p90/p99.

By default it builds the server of this repository (go build), starts it on a
fresh SQLite file (and, with -pg, a fresh PostgreSQL database, dropped after)
with the rate limits off and AUTH_ACCESS_TTL=1h, and measures its peak RSS.
With at least two cores and taskset, the server runs on the first core and
the load generator on the others.

Each load connection is a client of its own, as real clients behind a proxy
are: it sends its own X-Forwarded-For address (from 198.18.0.0/15), and the
started server trusts loopback as a proxy (AUTH_TRUSTED_PROXIES, which also
exempts it from AUTH_MAX_CONNS_PER_CLIENT), so that the per-client share of
the hashing pool applies per connection rather than to the whole load. A
-target server should list the tool's address in its AUTH_TRUSTED_PROXIES
likewise; otherwise every connection counts as one client, and login
measures that client's share of the pool: mostly RATE_LIMITED answers,
counted as refused.

Two more scenarios run only on PostgreSQL, after the others (and by default
with -pg): replicas starts two more servers on the same database and times
-revocations logouts on the first until the two others refuse the token
(p50/p90/p99 of the delay); bigdb seeds a database of its own with
-bigdb-users users and -bigdb-revocations live revocations by SQL, restarts
the server on it, and runs me, for its peak RSS.

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	cpus, cpuErr := cpuList()
	_, tasksetErr := exec.LookPath("taskset")
	canPin := cpuErr == nil && tasksetErr == nil && len(cpus) >= 2
	if orig := os.Getenv(pinnedEnv); orig != "" {
		// Re-executed under taskset: the server gets the first core of the
		// original list.
		if c, err := parseCPUList(orig); err == nil && len(c) >= 2 {
			cpus, canPin = c, true
		}
	}

	fs := flag.NewFlagSet("authql-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&o.target, "target", "", "URL of the `/query` endpoint of a running server to measure instead of starting one (register must be open; its AUTH_TRUSTED_PROXIES should include the tool's address, or all connections are one client and login measures that client's share of the hashing pool)")
	fs.StringVar(&o.targetDB, "target-db", "target", "name of the -target server's database, for the report")
	fs.StringVar(&o.pg, "pg", "", "PostgreSQL `URL` on which to create (and drop) a database for the server; enables the postgres runs")
	fs.StringVar(&o.dbs, "db", "", "databases to measure, comma-separated: sqlite, postgres (default sqlite, and postgres with -pg)")
	fs.StringVar(&o.scenarios, "scenarios", defaultScenarios, "scenarios to run, comma-separated; with -pg and the postgres database the default adds "+strings.Join(pgScenarios, ","))
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured run")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before the runs of each scenario")
	fs.IntVar(&o.runs, "runs", 3, "measured runs per scenario; the median by req/s is reported")
	fs.IntVar(&o.spec.Conns, "conns", 32, "connections for me, the mix, and me during the flood")
	fs.IntVar(&o.spec.SlowConns, "slow-conns", 8, "connections for login and refresh")
	fs.IntVar(&o.spec.Flooders, "flooders", 16, "login connections flooding during the flood scenario")
	fs.BoolVar(&o.pin, "pin", canPin, "run the server on the first core and the load generator on the others (taskset)")
	fs.BoolVar(&o.pinPostgres, "pin-postgres", false, "also move every running postgres process onto the server's core for the postgres runs (taskset -acp), and back after; affects other users of that PostgreSQL meanwhile")
	fs.Var(&o.env, "env", "`KEY=VALUE` added to the server's environment (repeatable), e.g. AUTH_HASH_WORKERS=2; with -target, AUTH_ARGON2_* and AUTH_HASH_WORKERS here only describe the server, for the hash rate")
	fs.IntVar(&o.revocations, "revocations", 200, "logouts on one replica the replicas scenario times until the two others refuse the token")
	fs.IntVar(&o.bigdbUsers, "bigdb-users", 1_000_000, "users seeded for the bigdb scenario")
	fs.IntVar(&o.bigdbRevocations, "bigdb-revocations", 100_000, "live revocations seeded for the bigdb scenario")
	fs.BoolVar(&o.write, "write", false, "write the figures into BENCHMARKS.md (between the authql-bench markers) and the chart into BENCHMARKS.svg, at the repository's top")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", fs.Arg(0))
	}
	if o.runs < 1 || o.duration <= 0 || o.warmup < 0 || o.spec.Conns < 1 || o.spec.SlowConns < 1 || o.spec.Flooders < 0 {
		return errors.New("-runs, -duration, -conns and -slow-conns must be positive, -warmup and -flooders not negative")
	}
	if o.pin && !canPin {
		return errors.New("-pin needs taskset and at least two usable cores; use -pin=false")
	}
	if o.pinPostgres && (!o.pin || o.pg == "" || o.target != "") {
		return errors.New("-pin-postgres needs -pin and -pg, and no -target")
	}
	if o.revocations < 1 || o.bigdbUsers < 1 || o.bigdbRevocations < 0 {
		return errors.New("-revocations and -bigdb-users must be positive, -bigdb-revocations not negative")
	}
	dbs, err := chooseDBs(o)
	if err != nil {
		return err
	}
	scenarioSet := false
	fs.Visit(func(f *flag.Flag) { scenarioSet = scenarioSet || f.Name == "scenarios" })
	if !scenarioSet && o.target == "" && slices.Contains(dbs, "postgres") {
		o.scenarios += "," + strings.Join(pgScenarios, ",")
	}
	load, pgOnly := splitScenarios(o.scenarios)
	o.replicas, o.bigdb = slices.Contains(pgOnly, "replicas"), slices.Contains(pgOnly, "bigdb")
	if len(pgOnly) > 0 && (o.target != "" || !slices.Contains(dbs, "postgres")) {
		return fmt.Errorf("-scenarios %s: need -pg and the postgres database, and no -target", strings.Join(pgOnly, ","))
	}
	var sel []scenario
	if len(load) > 0 || len(pgOnly) == 0 {
		if sel, err = selectScenarios(scenarios(o.spec), strings.Join(load, ",")); err != nil {
			return err
		}
	}

	// The load generator leaves the server's core alone: re-executed under
	// taskset before anything else runs, so that every thread of it, and
	// GOMAXPROCS, see only the other cores.
	if o.pin && os.Getenv(pinnedEnv) == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		taskset, _ := exec.LookPath("taskset")
		argv := append([]string{"taskset", "-c", formatCPUList(cpus[1:]), exe}, args...)
		env := append(os.Environ(), pinnedEnv+"="+formatCPUList(cpus))
		return syscall.Exec(taskset, argv, env)
	}

	root, err := repoRoot(ctx)
	if err != nil && (o.target == "" || o.write) {
		return err
	}
	rep := &report{
		Date:     time.Now(),
		Command:  commandLine(args),
		Machine:  describeMachine(root),
		Spec:     o.spec,
		Duration: o.duration,
		Warmup:   o.warmup,
		Runs:     o.runs,
		DBs:      dbs,
	}
	envMap := map[string]string{}
	for _, kv := range o.env {
		k, v, _ := strings.Cut(kv, "=")
		envMap[k] = v
	}
	rep.Argon2, err = argon2From(envMap)
	if err != nil {
		return err
	}
	serverCPUs := ""
	switch {
	case o.pin && o.target != "":
		rep.Pinning = append(rep.Pinning, fmt.Sprintf("Load generator pinned to core(s) %s (`taskset`); the -target server is pinned, or not, by whoever started it.", formatCPUList(cpus[1:])))
	case o.pin:
		serverCPUs = strconv.Itoa(cpus[0])
		rep.Pinning = append(rep.Pinning, fmt.Sprintf("Server pinned to core %s (`taskset -c %s`), load generator to core(s) %s (the tool re-executes itself under `taskset -c %s`).",
			serverCPUs, serverCPUs, formatCPUList(cpus[1:]), formatCPUList(cpus[1:])))
	default:
		rep.Pinning = append(rep.Pinning, "Not pinned: server and load generator share every core.")
	}
	if slices.Contains(dbs, "postgres") {
		if o.pinPostgres {
			rep.Pinning = append(rep.Pinning, fmt.Sprintf("PostgreSQL pinned to the server's core %s during the postgres runs (`taskset -acp %s` on every running postgres process; new backends inherit it from the postmaster), restored after.", serverCPUs, serverCPUs))
		} else {
			rep.Pinning = append(rep.Pinning, "PostgreSQL not pinned: it is a system service the tool does not start, so its backends run on any core, the load generator's included (-pin-postgres moves it onto the server's core).")
		}
	}

	// The hash rate the login target is relative to.
	rep.HashWorkers = hashWorkers(envMap, o, cpus)
	fmt.Fprintf(stderr, "timing %d argon2id verifies (m=%d KiB, t=%d, p=%d)…\n", hashSamples, rep.Argon2.Memory, rep.Argon2.Time, rep.Argon2.Threads)
	if rep.HashTime, err = timeHash(rep.Argon2); err != nil {
		return err
	}

	tmp, err := os.MkdirTemp("", "authql-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := ""
	if o.target == "" {
		fmt.Fprintf(stderr, "building the server in %s…\n", root)
		if bin, err = buildServer(ctx, root, tmp); err != nil {
			return err
		}
	}
	baseEnv := []string{
		// Long enough that no access token expires during a benchmark.
		"AUTH_ACCESS_TTL=1h",
		// The limits would measure the limiter, not the service: lifted as
		// they were for the peers' figures in the issue. The hashing pool
		// still bounds logins, and the flood scenario shows it.
		"AUTH_LOGIN_LIMIT_ACCOUNT=off", "AUTH_LOGIN_LIMIT_CLIENT=off",
		"AUTH_REGISTER_LIMIT=off", "AUTH_REFRESH_LIMIT=off",
		"AUTH_TRUSTED_PROXIES=" + trustedLoopback,
	}
	serverEnv := append(slices.Clone(baseEnv), o.env...)
	if o.target == "" {
		rep.ServerEnv = append([]string{"DATABASE_URL=(fresh)"}, serverEnv...)
	} else {
		rep.ServerEnv = slices.Clone(o.env)
	}

	for _, db := range dbs {
		b := &dbBench{o: o, db: db, rep: rep, bin: bin, tmp: tmp, env: serverEnv, cpus: serverCPUs, sel: sel, log: stderr}
		if err := b.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", db, err)
		}
		if db == "postgres" && o.bigdb {
			// Last, so that its seeding distorts nothing else.
			if err := b.runBigDB(ctx); err != nil {
				return fmt.Errorf("bigdb: %w", err)
			}
		}
	}

	fmt.Fprintln(stdout)
	printTable(stdout, rep)
	if o.write {
		svg := svgChart(rep)
		if err := os.WriteFile(filepath.Join(root, "BENCHMARKS.svg"), []byte(svg), 0o644); err != nil {
			return err
		}
		if err := writeSection(filepath.Join(root, "BENCHMARKS.md"), markdown(rep, "BENCHMARKS.svg")); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nwrote %s and %s\n", filepath.Join(root, "BENCHMARKS.md"), filepath.Join(root, "BENCHMARKS.svg"))
	}
	return nil
}

// chooseDBs returns the databases to measure.
func chooseDBs(o options) ([]string, error) {
	if o.target != "" {
		if o.dbs != "" || o.pg != "" {
			return nil, errors.New("-target measures the server it names: -db and -pg do not apply (name its database with -target-db)")
		}
		return []string{o.targetDB}, nil
	}
	if o.dbs == "" {
		if o.pg != "" {
			return []string{"sqlite", "postgres"}, nil
		}
		return []string{"sqlite"}, nil
	}
	var dbs []string
	for _, d := range strings.Split(o.dbs, ",") {
		switch d = strings.TrimSpace(d); d {
		case "sqlite":
		case "postgres":
			if o.pg == "" {
				return nil, errors.New("-db postgres needs -pg URL, a PostgreSQL server on which to create the database")
			}
		default:
			return nil, fmt.Errorf("-db: unknown database %q (sqlite or postgres)", d)
		}
		if !slices.Contains(dbs, d) {
			dbs = append(dbs, d)
		}
	}
	return dbs, nil
}

// argon2From reads the server's argon2id parameters from the -env values,
// as the server would, defaulting like it.
func argon2From(env map[string]string) (auth.Argon2Params, error) {
	p := auth.DefaultArgon2
	for name, dst := range map[string]*uint32{"AUTH_ARGON2_MEMORY": &p.Memory, "AUTH_ARGON2_TIME": &p.Time} {
		if v, ok := env[name]; ok {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return p, fmt.Errorf("-env %s=%s: %v", name, v, err)
			}
			*dst = uint32(n)
		}
	}
	if v, ok := env["AUTH_ARGON2_THREADS"]; ok {
		n, err := strconv.ParseUint(v, 10, 8)
		if err != nil {
			return p, fmt.Errorf("-env AUTH_ARGON2_THREADS=%s: %v", v, err)
		}
		p.Threads = uint8(n)
	}
	return p, p.Validate()
}

// hashWorkers is the size of the server's hashing pool: AUTH_HASH_WORKERS
// when given, else the server's default (its cores but one, at least one),
// where its cores are the one it is pinned to or every core.
func hashWorkers(env map[string]string, o options, cpus []int) int {
	if n, err := strconv.Atoi(env["AUTH_HASH_WORKERS"]); err == nil && n > 0 {
		return n
	}
	if o.pin && o.target == "" {
		return 1
	}
	return max(1, len(cpus)-1)
}

// timeHash returns the shortest of hashSamples argon2id verifies with p:
// the cost of a hash on an idle core. The shortest rather than the median
// because other work on a shared machine only ever adds to it, and the
// login target is relative to what the hashing pool could do at best.
func timeHash(p auth.Argon2Params) (time.Duration, error) {
	h, err := auth.NewHasher(p)
	if err != nil {
		return 0, err
	}
	stored, err := h.Hash(benchPassword)
	if err != nil {
		return 0, err
	}
	d := make([]time.Duration, hashSamples)
	for i := range d {
		t0 := time.Now()
		if ok, _, err := h.Verify(stored, benchPassword); err != nil || !ok {
			return 0, fmt.Errorf("verify: %v", err)
		}
		d[i] = time.Since(t0)
	}
	return slices.Min(d), nil
}

// commandLine is how the tool was run, for the report, without a password
// in -pg.
func commandLine(args []string) string {
	out := []string{"go run ./cmd/authql-bench"}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "pg" || name == "target" {
			if !hasVal && i+1 < len(args) {
				i++
				val = args[i]
			}
			if u, err := url.Parse(val); err == nil {
				val = u.Redacted()
			}
			a = "-" + name + " '" + val + "'"
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

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

func (b *dbBench) run(ctx context.Context) error {
	url := b.o.target
	var srv *server
	var dsn string
	if b.o.target == "" {
		switch b.db {
		case "sqlite":
			dsn = "sqlite://" + filepath.Join(b.tmp, "authql.db")
		case "postgres":
			var version string
			var drop func() error
			var err error
			if dsn, version, drop, err = createPostgres(ctx, b.o.pg); err != nil {
				return err
			}
			b.rep.Machine.Postgres = version
			defer func() {
				if err := drop(); err != nil {
					fmt.Fprintf(b.log, "could not drop the benchmark database: %v\n", err)
				}
			}()
			if b.o.pinPostgres {
				restore, err := pinPostgres(b.cpus)
				if err != nil {
					return fmt.Errorf("-pin-postgres: %v", err)
				}
				defer func() {
					if err := restore(); err != nil {
						fmt.Fprintf(b.log, "could not restore PostgreSQL's CPU affinity: %v\n", err)
					}
				}()
			}
		}
		fmt.Fprintf(b.log, "%s: starting the server…\n", b.db)
		var err error
		srv, err = startServer(ctx, b.bin, append(slices.Clone(b.env), "DATABASE_URL="+dsn), b.cpus, filepath.Join(b.tmp, b.db+".log"))
		if err != nil {
			return err
		}
		defer srv.stop()
		url = srv.url
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
		groups := s.groups(c, users)
		res := scenarioResult{DB: b.db, Name: s.Name, Title: s.Title, Conns: connsOf(groups)}
		if srv != nil {
			if err := resetPeakRSS(srv.pid()); err != nil {
				fmt.Fprintf(b.log, "cannot reset the server's peak RSS (%v): the figure is the peak since start\n", err)
			}
			res.StartRSS, _ = currentRSS(srv.pid())
		}
		if err := b.measure(ctx, groups, b.db+" "+s.Name, &res); err != nil {
			return err
		}
		if srv != nil {
			if rss, err := peakRSS(srv.pid()); err == nil {
				res.PeakRSS = rss
			}
		}
		b.rep.Results = append(b.rep.Results, res)
	}
	if b.db == "postgres" && b.o.replicas {
		res, err := b.measureRevocation(ctx, srv, dsn, users[0])
		if err != nil {
			return fmt.Errorf("replicas: %w", err)
		}
		b.rep.Results = append(b.rep.Results, res)
	}
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
		fmt.Fprintf(b.log, "%s run %d: %s req/s, p50 %s, p99 %s, refused %d, failed %d\n", label, i+1,
			fmtRate(rs.Rate()), fmtDur(rs.All.Lat.P50), fmtDur(rs.All.Lat.P99), rs.All.Limited, rs.All.Failed)
	}
	rates := make([]float64, len(res.Runs))
	for i, r := range res.Runs {
		rates[i] = r.Rate()
	}
	res.Median = medianRun(rates)
	return nil
}
