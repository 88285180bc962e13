package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/authql/authql/auth"
)

// scenarioResult is every run of one scenario on one database.
type scenarioResult struct {
	DB      string
	Name    string
	Title   string
	Conns   string
	Runs    []runStats
	Median  int   // index into Runs
	PeakRSS int64 // bytes; 0 when unknown (a -target server)
	// StartRSS is the server's resident memory as the scenario began: what
	// earlier work left (the Go heap returns freed memory to the system
	// only gradually), part of PeakRSS that the scenario did not add.
	StartRSS int64

	// Revocation is set for the replicas scenario, whose one run's
	// latencies are the delays from a logout on one replica to its refusal
	// on another, and whose N is the refusals.
	Revocation *revocationStats
	// BigDB is set for the bigdb scenario: how its database was filled.
	BigDB *bigDBStats
	// Sockets is set for the sockets scenario, whose one run's latencies
	// are the delays from a logout on one replica to its socket's close
	// on another.
	Sockets *socketStats
}

// noRate reports whether r measures delays only (no rate, one run).
func (r scenarioResult) noRate() bool { return r.Revocation != nil || r.Sockets != nil }

func (r scenarioResult) med() runStats { return r.Runs[r.Median] }

// machine describes where the figures were taken.
type machine struct {
	Cores      int
	CPU        string
	Memory     string
	OS         string
	Go         string
	Postgres   string // empty when not used
	Commit     string
	GoMaxProcs int    // the load generator's
	LoadAvg    string // /proc/loadavg's three figures when the run began
}

// report is everything a run of the tool measured, and how.
type report struct {
	Date      time.Time
	Command   string
	Machine   machine
	Pinning   []string // one line per decision, in words
	ServerEnv []string
	Spec      scenarioSpec
	Duration  time.Duration
	Warmup    time.Duration
	Runs      int

	Argon2      auth.Argon2Params
	HashTime    time.Duration // one verify, median, on the load generator's core
	HashWorkers int           // of the server

	DBs     []string
	Results []scenarioResult
}

// hashRate is the most logins per second the server's hashing pool can
// serve: its workers, each verifying one password per HashTime.
func (r *report) hashRate() float64 {
	if r.HashTime <= 0 {
		return 0
	}
	return float64(r.HashWorkers) / r.HashTime.Seconds()
}

// result returns the result of scenario name on db, or nil.
func (r *report) result(db, name string) *scenarioResult {
	for i := range r.Results {
		if r.Results[i].DB == db && r.Results[i].Name == name {
			return &r.Results[i]
		}
	}
	return nil
}

// named returns the first result of scenario name on any database, or nil.
func (r *report) named(name string) *scenarioResult {
	for i := range r.Results {
		if r.Results[i].Name == name {
			return &r.Results[i]
		}
	}
	return nil
}

// fmtInt writes v rounded, with thousands separators.
func fmtInt(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtRate writes a rate: whole numbers from 100 up, one decimal below.
func fmtRate(v float64) string {
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return fmtInt(v)
}

// fmtDur writes a latency with three significant digits or so.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0f ms", float64(d)/1e6)
}

// fmtRSS writes the server's peak RSS and, in parentheses, its RSS at the
// start of the scenario.
func fmtRSS(r scenarioResult) string {
	if r.PeakRSS <= 0 {
		return "–"
	}
	s := fmt.Sprintf("%.1f MiB", float64(r.PeakRSS)/mib)
	if r.StartRSS > 0 {
		s += fmt.Sprintf(" (%.1f)", float64(r.StartRSS)/mib)
	}
	return s
}

// rate writes the median run's rate; the replicas scenario has none.
func rate(r scenarioResult) string {
	if r.noRate() {
		return "–"
	}
	return fmtRate(r.med().Rate())
}

// runsList writes every run's rate.
func runsList(r scenarioResult) string {
	if r.noRate() {
		return "–"
	}
	s := make([]string, len(r.Runs))
	for i, run := range r.Runs {
		s[i] = fmtRate(run.Rate())
	}
	return strings.Join(s, " / ")
}

// refusals writes the refused and failed requests of the measured group.
func refusals(s runStats) string {
	return fmt.Sprintf("%s / %s", fmtInt(float64(s.All.Limited)), fmtInt(float64(s.All.Failed)))
}

// note says what the headline figures leave out: the mix per operation,
// the flood's logins.
func note(r scenarioResult) string {
	s := r.med()
	per := func(n int) string { return fmtRate(float64(n)/s.Elapsed.Seconds()) + "/s" }
	switch r.Name {
	case "mix":
		return fmt.Sprintf("me %s p99 %s; refresh %s p99 %s; login %s p99 %s, %s refused",
			per(s.Ops[opMe].N), fmtDur(s.Ops[opMe].Lat.P99),
			per(s.Ops[opRefresh].N), fmtDur(s.Ops[opRefresh].Lat.P99),
			per(s.Ops[opLogin].N), fmtDur(s.Ops[opLogin].Lat.P99), per(s.Ops[opLogin].Limited))
	case "flood":
		b := s.Background[opLogin]
		return fmt.Sprintf("logins served %s, refused (RATE_LIMITED) %s, failed %s", per(b.N), per(b.Limited), per(b.Failed))
	case "replicas":
		if v := r.Revocation; v != nil {
			return fmt.Sprintf("%d logouts on A, %d refusals on the %d others, max %s; refused by the first request: %d/%d",
				v.Logouts, v.Refusals, v.Replicas-1, fmtDur(s.All.Lat.Max), v.First, v.Refusals)
		}
	case "sockets":
		if v := r.Sockets; v != nil {
			return fmt.Sprintf("%d sockets on %d replicas, %d closed 4401 by logouts on A, max %s", v.Sockets, v.Replicas-1, v.Closed, fmtDur(s.All.Lat.Max))
		}
	case "bigdb":
		if v := r.BigDB; v != nil {
			return fmt.Sprintf("%s users and %s revocations seeded in %s; at start: RSS right after the restart",
				fmtInt(float64(v.Users)), fmtInt(float64(v.Revocations)), v.Seeding.Round(time.Second))
		}
	}
	return ""
}

// printTable writes the figures for a terminal.
func printTable(w io.Writer, r *report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "database\tscenario\tconns\treq/s\truns\tp50\tp90\tp99\trefused/failed\tpeak RSS (at start)\tnote")
	for _, res := range r.Results {
		s := res.med()
		rss := fmtRSS(res)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", res.DB, res.Name, res.Conns,
			rate(res), runsList(res), fmtDur(s.All.Lat.P50), fmtDur(s.All.Lat.P90), fmtDur(s.All.Lat.P99),
			refusals(s), rss, note(res))
	}
	tw.Flush()
	if r.HashTime > 0 {
		fmt.Fprintf(w, "\nhash rate: %d worker(s) / %s per argon2id verify (m=%d KiB, t=%d, p=%d) = %.1f/s\n",
			r.HashWorkers, fmtDur(r.HashTime), r.Argon2.Memory, r.Argon2.Time, r.Argon2.Threads, r.hashRate())
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tdatabase\tmeasured\tmet")
	for _, row := range targetRows(r) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.ReplaceAll(row[0], "`", ""), row[1], row[2], row[3])
	}
	tw.Flush()
	for _, res := range r.Results {
		if e := res.med().All.LastErr; e != "" && res.med().All.Failed > 0 {
			fmt.Fprintf(w, "%s %s: last failure: %s\n", res.DB, res.Name, e)
		}
	}
}

// markdown writes the generated section of BENCHMARKS.md.
func markdown(r *report, svgName string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("### Figures of the last run\n\n")
	p("Written by `%s` on %s.\n\n", r.Command, r.Date.UTC().Format("2006-01-02 15:04 UTC"))
	writeSettings(p, r)
	p("\n| database | scenario | connections | req/s | runs (req/s) | p50 | p90 | p99 | refused / failed | server peak RSS (at start) | notes |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, res := range r.Results {
		s := res.med()
		rss := fmtRSS(res)
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", res.DB, res.Title, res.Conns,
			rate(res), runsList(res), fmtDur(s.All.Lat.P50), fmtDur(s.All.Lat.P90), fmtDur(s.All.Lat.P99),
			refusals(s), rss, note(res))
	}
	p("\nConnections of the flood: `me`'s + the login flooders'. req/s counts the requests answered without error that ended within the run; \"refused\" are RATE_LIMITED answers (the hashing pool was busy, or the worker's client address had its share of it in flight), \"failed\" any other error. Peak RSS is the server's VmHWM, reset before each scenario; in parentheses its RSS when the scenario began, which includes memory earlier scenarios' password hashes (19 MiB each) left to the Go runtime.\n\n")
	if r.named("me-floor") != nil || r.named("refresh-floor") != nil || r.named("login-floor") != nil {
		p("Floors (the rows \"floor of …\"): the targets are ratios to them, since the absolute figures of this shared machine move by a factor of four from one day to the next. They run in a process of their own, the tool re-executed and pinned like the server, and each floor's runs alternate with its scenario's (floor, server, server, floor, …) so that both see the machine as it was. The floor of `me` is a minimal gqlgen server (authql's schema and generated executor, POST transport, gqlgen's document cache) answering `me` from memory after an HS256 check of the bearer token, with no logs, metrics, limits or rule engine, over the same HTTP stack and the same %d connections. The floor of `refresh` is the bare rotation: one transaction through `models.Open`'s driver and pool, on a fresh database of the same kind, that marks the presented refresh token rotated by its hash and inserts its successor, %d chains at once. The floor of `login` is argon2id verifies at the server's cost, one loop per hashing worker of the server.\n\n",
			r.Spec.Conns, r.Spec.SlowConns)
	}
	if res := r.named("replicas"); res != nil && res.Revocation != nil {
		p("Replicas: %d authql processes on the one PostgreSQL database (the two extra ones started like the first, on other ports), which tell each other of logouts by `LISTEN`/`NOTIFY`. %d times: log in on A, check that the token works on B and C, `logout` on A, then send `{ me { id } }` to B and C back to back, no pause, until each refuses it (UNAUTHENTICATED); p50/p90/p99 are of the delays from A's answer to each refusal, \"runs\" and req/s do not apply.\n\n",
			res.Revocation.Replicas, res.Revocation.Logouts)
	}
	if res := r.named("sockets"); res != nil && res.Sockets != nil {
		p("Sockets: %d authql processes on the one PostgreSQL database. %d sockets (graphql-transport-ws, `internal/wsclient`) are opened on B and C, alternately, each with a session of its own signed in on A and a `sessionEvents` subscription; then each session is logged out on A, one at a time, and timed from A's answer to its socket's close (4401, after the `SESSION_REVOKED`), all the other sockets still open.\n\n",
			res.Sockets.Replicas, res.Sockets.Sockets)
	}
	if res := r.named("bigdb"); res != nil && res.BigDB != nil {
		p("Big database: on a database of its own, the server migrates it and the load's users register; it is stopped, %s users (with the role user, one real argon2id hash for all) and %s revocations expiring in an hour are inserted by SQL, and it is started again, so that it loads the revocations at start; then `me` runs as above. Its \"at start\" is the RSS right after the restart.\n\n",
			fmtInt(float64(res.BigDB.Users)), fmtInt(float64(res.BigDB.Revocations)))
	}
	p("![req/s per scenario and database, log scale, with the targets](%s)\n\n", svgName)
	p("| target | database | measured | met |\n|---|---|---|---|\n")
	for _, row := range targetRows(r) {
		p("| %s | %s | %s | %s |\n", row[0], row[1], row[2], row[3])
	}
	if r.named("replicas") == nil {
		p("| %s | postgres | not measured (-pg, -scenarios replicas) | |\n", revocationTarget)
	}
	if r.named("sockets") == nil {
		p("| %s | postgres | not measured (-pg, -scenarios sockets) | |\n", socketTarget)
	}
	if r.named("bigdb") == nil {
		p("| %s | postgres | not measured (-pg, -scenarios bigdb) | |\n", bigDBTarget)
	}
	return b.String()
}

// writeSettings writes the list of how the run was made: machine, runs,
// connections, pinning, environment, hash rate.
func writeSettings(p func(string, ...any), r *report) {
	m := r.Machine
	p("- Machine: %d cores (%s), %s, %s, %s", m.Cores, m.CPU, m.Memory, m.OS, m.Go)
	if m.Postgres != "" {
		p(", PostgreSQL %s", m.Postgres)
	}
	p(".\n")
	if m.LoadAvg != "" {
		// Other work on the machine lowers the figures; this says how
		// much there was.
		p("- Load average when the run began (1, 5, 15 min): %s.\n", m.LoadAvg)
	}
	if m.Commit != "" {
		p("- Server: built from commit %s.\n", m.Commit)
	}
	p("- Runs: %d of %s after a %s warm-up, per scenario; the run with the median req/s is shown (its own percentiles), every run's req/s in \"runs\".\n",
		r.Runs, r.Duration, r.Warmup)
	p("- Connections: %d for `me`, the mix and `me` during the flood (plus %d login clients flooding); %d for `login` and `refresh`.\n",
		r.Spec.Conns, r.Spec.Flooders, r.Spec.SlowConns)
	for _, l := range r.Pinning {
		p("- %s\n", l)
	}
	if len(r.ServerEnv) > 0 {
		p("- Server environment: `%s`.\n", strings.Join(r.ServerEnv, " "))
	}
	if r.HashTime > 0 {
		p("- Hash rate: %d hashing worker(s) ÷ %s per argon2id verify (m=%d KiB, t=%d, p=%d; the shortest of %d, timed in the tool on the load generator's core) = %.1f logins/s at most.\n",
			r.HashWorkers, fmtDur(r.HashTime), r.Argon2.Memory, r.Argon2.Time, r.Argon2.Threads, hashSamples, r.hashRate())
	}
}

// The markers around the part of BENCHMARKS.md the tool rewrites.
const (
	startMarker = "<!-- authql-bench:start (written by go run ./cmd/authql-bench -write; edits inside are lost) -->"
	endMarker   = "<!-- authql-bench:end -->"
)

// rewriteSection replaces what lies between the markers in doc with
// section, leaving everything else as it was; a doc without the markers
// gets them, around section, at its end.
func rewriteSection(doc, section string) (string, error) {
	section = strings.TrimRight(section, "\n") + "\n"
	i := strings.Index(doc, startMarker)
	j := strings.Index(doc, endMarker)
	switch {
	case i < 0 && j < 0:
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		if doc != "" {
			doc += "\n"
		}
		return doc + startMarker + "\n" + section + endMarker + "\n", nil
	case i < 0 || j < 0 || j < i:
		return "", errors.New("BENCHMARKS.md has one authql-bench marker without the other, or the end before the start: fix the markers by hand")
	case strings.Count(doc, startMarker) > 1 || strings.Count(doc, endMarker) > 1:
		return "", errors.New("BENCHMARKS.md has the authql-bench markers more than once: keep one pair")
	}
	return doc[:i+len(startMarker)] + "\n" + section + doc[j:], nil
}

// writeSection rewrites the section of the file at path.
func writeSection(path, section string) error {
	doc, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	out, err := rewriteSection(string(doc), section)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

// describeMachine reads the machine's description from /proc and friends.
func describeMachine(root string) machine {
	m := machine{Go: runtime.Version(), GoMaxProcs: runtime.GOMAXPROCS(0), CPU: "unknown CPU"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch strings.TrimSpace(k) {
			case "processor":
				// Counted here rather than with runtime.NumCPU, which
				// counts only the cores this (pinned) process may use.
				m.Cores++
			case "model name":
				m.CPU = strings.TrimSpace(v)
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	m.OS = "Linux"
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.OS += " (Linux " + strings.TrimSpace(string(b)) + ")"
	}
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		if out, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no",
			// The tool's own output does not change the server.
			"--", ".", ":!BENCHMARKS.md", ":!BENCHMARKS.svg").Output(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
			m.Commit += " with uncommitted changes"
		}
	}
	return m
}
