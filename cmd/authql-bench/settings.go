package main

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/authql/authql/auth"
)

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
