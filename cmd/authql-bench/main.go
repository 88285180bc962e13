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
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if floorMain() {
		return
	}
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
	floors      bool

	// The scenarios that need PostgreSQL and are not load.
	replicas         bool
	bigdb            bool
	socketsScenario  bool
	sockets          int
	revocations      int
	bigdbUsers       int
	bigdbRevocations int
}

// pgScenarios are the scenarios that run only on PostgreSQL, after the
// load scenarios: revocation across three replicas, and memory with a big
// database (in a database of its own).
var pgScenarios = []string{"replicas", "sockets", "bigdb"}

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

Three more scenarios run only on PostgreSQL, after the others (and by default
with -pg): replicas starts two more servers on the same database and times
-revocations logouts on the first until the two others refuse the token
(p50/p90/p99 of the delay); sockets starts two more, opens -sockets
websockets on them, each of its own session, and times each session's
logout on the first to its socket's close (4401); bigdb seeds a database of its own with
-bigdb-users users and -bigdb-revocations live revocations by SQL, restarts
the server on it, and runs me, for its peak RSS.

Unless -floors=false, the started server's me, chained refresh and login
are each measured against a floor in the same run, their runs alternating
with the floor's: a minimal gqlgen server answering me from memory after an
HS256 check, the bare rotation transaction (through models.Open's driver and
pool, on a database of the same kind), and argon2id verifies at the
server's cost. The floors run in a process of their own (this tool,
re-executed), pinned like the server; the targets are ratios to them.

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cpus, canPin := pinnableCPUs()
	o, sel, dbs, err := parseOptions(args, canPin, stderr)
	if err != nil || o == nil {
		return err
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
	rep, envMap, err := newReport(*o, args, root, dbs)
	if err != nil {
		return err
	}
	serverCPUs := describePinning(rep, *o, cpus, dbs)

	// The hash rate the login target is relative to without a floor.
	rep.HashWorkers = hashWorkers(envMap, *o, cpus)
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
	serverEnv := append(slices.Clone(baseEnv), o.env...)
	if o.target == "" {
		rep.ServerEnv = append([]string{"DATABASE_URL=(fresh)"}, serverEnv...)
	} else {
		rep.ServerEnv = slices.Clone(o.env)
	}
	for _, db := range dbs {
		b := &dbBench{o: *o, db: db, rep: rep, bin: bin, tmp: tmp, env: serverEnv, cpus: serverCPUs, sel: sel, log: stderr}
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
	return output(stdout, rep, root, o.write)
}

// baseEnv is the started server's environment, before -env.
var baseEnv = []string{
	// Long enough that no access token expires during a benchmark.
	"AUTH_ACCESS_TTL=1h",
	// The limits would measure the limiter, not the service: lifted as
	// they were for the peers' figures in the issue. The hashing pool
	// still bounds logins, and the flood scenario shows it.
	"AUTH_LOGIN_LIMIT_ACCOUNT=off", "AUTH_LOGIN_LIMIT_CLIENT=off",
	"AUTH_REGISTER_LIMIT=off", "AUTH_REFRESH_LIMIT=off",
	"AUTH_TRUSTED_PROXIES=" + trustedLoopback,
}

// pinnableCPUs returns the CPUs the tool may use (those it started with,
// when re-executed under taskset) and whether the server can be pinned to
// one of them and the load to the others.
func pinnableCPUs() ([]int, bool) {
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
	return cpus, canPin
}

// output prints the figures and, with write, writes them into
// BENCHMARKS.md and BENCHMARKS.svg at root.
func output(stdout io.Writer, rep *report, root string, write bool) error {
	fmt.Fprintln(stdout)
	printTable(stdout, rep)
	if !write {
		return nil
	}
	if err := os.WriteFile(filepath.Join(root, "BENCHMARKS.svg"), []byte(svgChart(rep)), 0o644); err != nil {
		return err
	}
	if err := writeSection(filepath.Join(root, "BENCHMARKS.md"), markdown(rep, "BENCHMARKS.svg")); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nwrote %s and %s\n", filepath.Join(root, "BENCHMARKS.md"), filepath.Join(root, "BENCHMARKS.svg"))
	return nil
}
