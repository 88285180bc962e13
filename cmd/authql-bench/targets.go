package main

import (
	"fmt"
	"slices"
	"time"
)

// target is one of the targets, checked per database.
type target struct {
	Name     string
	Scenario string
	// value extracts the measured figure and formats it (v < 0: not
	// measured); want says whether it meets the target.
	value func(r *report, res *scenarioResult) (v float64, shown string)
	want  func(r *report, v float64) (ok bool, shown string)
}

const mib = 1 << 20

// rateTarget is a scenario's target as a share of its floor's rate in the
// same run: the absolute figures of a shared machine move by a factor of
// four from one day to the next, their ratio to a floor measured between
// their runs much less.
type rateTarget struct {
	share float64
	floor string // what the floor is, for the target's name
}

// rateTargets are the ratio targets by scenario.
var rateTargets = map[string]rateTarget{
	"me":      {0.85, "a minimal gqlgen server answering `me` from memory after an HS256 check"},
	"refresh": {0.70, "the bare rotation transaction"},
	"login":   {0.90, "the hash rate at the configured cost"},
}

// meP99Factor bounds `me`'s p99 as a multiple of its floor's.
const meP99Factor = 2.0

// floorOf returns the floor measured for res's scenario on its database.
func floorOf(r *report, res *scenarioResult) *scenarioResult {
	return r.result(res.DB, res.Name+"-floor")
}

// pairedRatio is the median over runs of fig(res's run i) ÷ fig(the
// floor's run i): each pair ran back to back, so their ratio cancels most
// of what other work on the machine did to both, which a ratio of the two
// medians (possibly from different moments) would not. With unequal runs
// it is the ratio of the median runs.
func pairedRatio(res, fl *scenarioResult, fig func(runStats) float64) float64 {
	if len(res.Runs) != len(fl.Runs) {
		return fig(res.med()) / fig(fl.med())
	}
	ratios := make([]float64, len(res.Runs))
	for i := range res.Runs {
		ratios[i] = fig(res.Runs[i]) / fig(fl.Runs[i])
	}
	slices.Sort(ratios)
	return ratios[(len(ratios)-1)/2]
}

// rateOf and p99Of are the figures the ratios compare.
func rateOf(s runStats) float64 { return s.Rate() }
func p99Of(s runStats) float64  { return float64(s.All.Lat.P99) }

// ratioTarget checks a scenario's rate against rateTargets.
func ratioTarget(name, scenario string) target {
	rt := rateTargets[scenario]
	return target{
		Name: name, Scenario: scenario,
		value: func(r *report, res *scenarioResult) (float64, string) {
			v := res.med().Rate()
			if fl := floorOf(r, res); fl != nil && fl.med().Rate() > 0 {
				ratio := pairedRatio(res, fl, rateOf)
				return ratio, fmt.Sprintf("%.2f × (medians %s/s and %s/s)", ratio, fmtRate(v), fmtRate(fl.med().Rate()))
			}
			if base := r.hashRate(); scenario == "login" && base > 0 {
				// -target: the hash rate timed in the tool.
				return v / base, fmt.Sprintf("%.2f × (%s/s of %s/s)", v/base, fmtRate(v), fmtRate(base))
			}
			return -1, fmtRate(v) + "/s, no floor (-target)"
		},
		want: func(_ *report, v float64) (bool, string) {
			return v >= rt.share, fmt.Sprintf("%.0f%% of the target", 100*v/rt.share)
		},
	}
}

// targets are the targets the tool measures. The last two come
// from the PostgreSQL-only scenarios replicas and bigdb.
var targets = []target{
	ratioTarget("`me` ≥ 0.85 × the floor (gqlgen `me` from memory)", "me"),
	{
		Name: "`me` p99 ≤ 2 × the floor's p99", Scenario: "me",
		value: func(r *report, res *scenarioResult) (float64, string) {
			p := res.med().All.Lat.P99
			fl := floorOf(r, res)
			if fl == nil || fl.med().All.Lat.P99 <= 0 {
				return -1, fmtDur(p) + ", no floor (-target)"
			}
			ratio := pairedRatio(res, fl, p99Of)
			return ratio, fmt.Sprintf("%.2f × (medians' %s and %s)", ratio, fmtDur(p), fmtDur(fl.med().All.Lat.P99))
		},
		want: func(_ *report, v float64) (bool, string) {
			return v <= meP99Factor, fmt.Sprintf("%.0f%% of the limit", 100*v/meP99Factor)
		},
	},
	ratioTarget("chained `refresh` (audit on) ≥ 0.70 × the bare rotation", "refresh"),
	ratioTarget("`login` ≥ 0.90 × the hash rate", "login"),
	{
		Name: "peak RSS ≤ 64 MiB under `me`", Scenario: "me",
		value: func(_ *report, s *scenarioResult) (float64, string) {
			if s.PeakRSS == 0 {
				return -1, "not measured (-target)"
			}
			return float64(s.PeakRSS), fmt.Sprintf("%.1f MiB", float64(s.PeakRSS)/mib)
		},
		want: func(_ *report, v float64) (bool, string) {
			return v <= 64*mib, fmt.Sprintf("%.0f%% of the limit", 100*v/(64*mib))
		},
	},
	{
		Name: revocationTarget, Scenario: "replicas",
		value: func(_ *report, s *scenarioResult) (float64, string) {
			p := s.med().All.Lat.P99
			return float64(p), fmtDur(p)
		},
		want: func(_ *report, v float64) (bool, string) {
			return time.Duration(v) <= 100*time.Millisecond, fmt.Sprintf("%.0f%% of the limit", 100*v/float64(100*time.Millisecond))
		},
	},
	{
		Name: socketTarget, Scenario: "sockets",
		value: func(_ *report, s *scenarioResult) (float64, string) {
			p := s.med().All.Lat.P99
			return float64(p), fmtDur(p)
		},
		want: func(_ *report, v float64) (bool, string) {
			return time.Duration(v) <= 100*time.Millisecond, fmt.Sprintf("%.0f%% of the limit", 100*v/float64(100*time.Millisecond))
		},
	},
	{
		Name: bigDBTarget, Scenario: "bigdb",
		value: func(_ *report, s *scenarioResult) (float64, string) {
			if s.PeakRSS == 0 {
				return -1, "not measured"
			}
			shown := fmt.Sprintf("%.1f MiB", float64(s.PeakRSS)/mib)
			if b := s.BigDB; b != nil && (b.Users != 1_000_000 || b.Revocations != 100_000) {
				// Seeded otherwise (-bigdb-users, -bigdb-revocations): say so.
				shown += fmt.Sprintf(" with %s users and %s revocations", fmtInt(float64(b.Users)), fmtInt(float64(b.Revocations)))
			}
			return float64(s.PeakRSS), shown
		},
		want: func(_ *report, v float64) (bool, string) {
			return v <= 128*mib, fmt.Sprintf("%.0f%% of the limit", 100*v/(128*mib))
		},
	},
}

// The names of the targets of the PostgreSQL-only scenarios.
const (
	revocationTarget = "revocation across 3 replicas, p99 ≤ 100 ms"
	socketTarget     = "logout on one of 3 replicas to its socket's close on another, p99 ≤ 100 ms"
	bigDBTarget      = "peak RSS ≤ 128 MiB with 1,000,000 users and 100,000 live revocations"
)

// targetRows evaluates every target on every database: name, database,
// measured, met.
func targetRows(r *report) [][4]string {
	var rows [][4]string
	for _, t := range targets {
		for _, db := range r.DBs {
			res := r.result(db, t.Scenario)
			if res == nil {
				continue
			}
			v, shown := t.value(r, res)
			met := "–"
			if v >= 0 {
				ok, how := t.want(r, v)
				met = map[bool]string{true: "yes", false: "no"}[ok] + " (" + how + ")"
			}
			rows = append(rows, [4]string{t.Name, db, shown, met})
		}
	}
	return rows
}
