package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// parseOptions reads the flags in args and checks them; it returns the
// options, the load scenarios selected and the databases, or nil options
// after -help.
func parseOptions(args []string, canPin bool, stderr io.Writer) (*options, []scenario, []string, error) {
	var o options
	fs := newFlagSet(&o, canPin, stderr)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil, nil, nil, nil
	} else if err != nil {
		return nil, nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, nil, fmt.Errorf("unexpected argument %q (see -help)", fs.Arg(0))
	}
	if err := o.check(canPin); err != nil {
		return nil, nil, nil, err
	}
	dbs, err := chooseDBs(o)
	if err != nil {
		return nil, nil, nil, err
	}
	scenarioSet := false
	fs.Visit(func(f *flag.Flag) { scenarioSet = scenarioSet || f.Name == "scenarios" })
	if !scenarioSet && o.target == "" && slices.Contains(dbs, "postgres") {
		o.scenarios += "," + strings.Join(pgScenarios, ",")
	}
	load, pgOnly := splitScenarios(o.scenarios)
	o.replicas, o.bigdb = slices.Contains(pgOnly, "replicas"), slices.Contains(pgOnly, "bigdb")
	o.socketsScenario = slices.Contains(pgOnly, "sockets")
	if len(pgOnly) > 0 && (o.target != "" || !slices.Contains(dbs, "postgres")) {
		return nil, nil, nil, fmt.Errorf("-scenarios %s: need -pg and the postgres database, and no -target", strings.Join(pgOnly, ","))
	}
	var sel []scenario
	if len(load) > 0 || len(pgOnly) == 0 {
		if sel, err = selectScenarios(scenarios(o.spec), strings.Join(load, ",")); err != nil {
			return nil, nil, nil, err
		}
	}
	return &o, sel, dbs, nil
}

// newFlagSet declares the tool's flags into o.
func newFlagSet(o *options, canPin bool, stderr io.Writer) *flag.FlagSet {
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
	fs.IntVar(&o.sockets, "sockets", 200, "sockets the sockets scenario opens on two replicas, each closed by a logout on the third")
	fs.IntVar(&o.bigdbUsers, "bigdb-users", 1_000_000, "users seeded for the bigdb scenario")
	fs.IntVar(&o.bigdbRevocations, "bigdb-revocations", 100_000, "live revocations seeded for the bigdb scenario")
	fs.BoolVar(&o.floors, "floors", true, "measure me, refresh and login against their floors in the same run, alternating runs (not with -target)")
	fs.BoolVar(&o.write, "write", false, "write the figures into BENCHMARKS.md (between the authql-bench markers) and the chart into BENCHMARKS.svg, at the repository's top")
	return fs
}

// check refuses flags no run can have.
func (o *options) check(canPin bool) error {
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
	return nil
}

// newReport starts the report of a run with o, and returns the -env
// values as a map.
func newReport(o options, args []string, root string, dbs []string) (*report, map[string]string, error) {
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
	var err error
	rep.Argon2, err = argon2From(envMap)
	return rep, envMap, err
}

// describePinning says in rep how the processes are pinned, and returns
// the server's CPU list for taskset (empty when not pinned).
func describePinning(rep *report, o options, cpus []int, dbs []string) string {
	serverCPUs := ""
	switch {
	case o.pin && o.target != "":
		rep.Pinning = append(rep.Pinning, fmt.Sprintf("Load generator pinned to core(s) %s (`taskset`); the -target server is pinned, or not, by whoever started it.", formatCPUList(cpus[1:])))
	case o.pin:
		serverCPUs = strconv.Itoa(cpus[0])
		rep.Pinning = append(rep.Pinning, fmt.Sprintf("Server (and the floors' process) pinned to core %s (`taskset -c %s`), load generator to core(s) %s (the tool re-executes itself under `taskset -c %s`).",
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
	return serverCPUs
}
