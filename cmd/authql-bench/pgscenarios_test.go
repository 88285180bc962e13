package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// withPGScenarios is sampleReport with a replicas and a bigdb result on
// its PostgreSQL database.
func withPGScenarios(p99 time.Duration, peak int64, users int) *report {
	r := sampleReport()
	lat := make([]time.Duration, 200)
	for i := range lat {
		// 1 ms … 200 ms, out of order: p99 is the 198th.
		lat[i] = time.Duration(200-i) * time.Millisecond * p99 / (198 * time.Millisecond)
	}
	r.Results = append(r.Results,
		revocationResult("post<gres>&", lat, revocationStats{Logouts: 100, Replicas: 3, Refusals: 200, First: 150}, 10*time.Second),
		socketResult("post<gres>&", lat, socketStats{Sockets: 200, Replicas: 3, Closed: 200}, 5*time.Second),
		scenarioResult{DB: "post<gres>&", Name: "bigdb", Title: "`me` with many users", Conns: "32",
			Runs: []runStats{{Elapsed: 10 * time.Second, All: opStats{N: 100_000}}}, PeakRSS: peak, StartRSS: peak / 2,
			BigDB: &bigDBStats{Users: users, Revocations: 100_000, Seeding: 2 * time.Minute}})
	return r
}

func TestRevocationResultPercentiles(t *testing.T) {
	r := withPGScenarios(198*time.Millisecond, 100*mib, 1_000_000)
	res := r.named("replicas")
	got := res.med().All
	want := latencies{P50: 100 * time.Millisecond, P90: 180 * time.Millisecond, P99: 198 * time.Millisecond, Max: 200 * time.Millisecond}
	if got.Lat != want || got.N != 200 {
		t.Errorf("got N %d %+v, want N 200 %+v", got.N, got.Lat, want)
	}
	if rate(*res) != "–" || runsList(*res) != "–" {
		t.Errorf("req/s %q, runs %q: want none for the replicas scenario", rate(*res), runsList(*res))
	}
	if n := note(*res); !strings.Contains(n, "150/200") || !strings.Contains(n, "max 200 ms") {
		t.Errorf("note %q lacks the first-request refusals or the max", n)
	}
}

func TestPGScenarioTargetRows(t *testing.T) {
	for _, tc := range []struct {
		name      string
		p99       time.Duration
		peak      int64
		users     int
		revocMet  string
		bigMet    string
		bigShowed string
	}{
		{"BothMet", 50 * time.Millisecond, 100 * mib, 1_000_000, "yes", "yes", "100.0 MiB"},
		{"BothMissed", 150 * time.Millisecond, 200 * mib, 1_000_000, "no", "no", "200.0 MiB"},
		{"OtherSeedSaysSo", 50 * time.Millisecond, 100 * mib, 1000, "yes", "yes", "100.0 MiB with 1,000 users and 100,000 revocations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string][4]string{}
			for _, row := range targetRows(withPGScenarios(tc.p99, tc.peak, tc.users)) {
				got[row[0]] = row
			}
			if row := got[revocationTarget]; strings.Fields(row[3] + " ?")[0] != tc.revocMet || row[2] != fmtDur(tc.p99) {
				t.Errorf("revocation row %q, want met %s with %s", row, tc.revocMet, fmtDur(tc.p99))
			}
			if row := got[socketTarget]; strings.Fields(row[3] + " ?")[0] != tc.revocMet || row[2] != fmtDur(tc.p99) {
				t.Errorf("sockets row %q, want met %s with %s", row, tc.revocMet, fmtDur(tc.p99))
			}
			if row := got[bigDBTarget]; strings.Fields(row[3] + " ?")[0] != tc.bigMet || row[2] != tc.bigShowed {
				t.Errorf("bigdb row %q, want met %s with %q", row, tc.bigMet, tc.bigShowed)
			}
		})
	}
}

func TestMarkdownPGScenarios(t *testing.T) {
	md := markdown(sampleReport(), "BENCHMARKS.svg")
	if strings.Count(md, "not measured (-pg, -scenarios") != 3 {
		t.Errorf("without the PostgreSQL-only scenarios, want their three targets marked not measured:\n%s", md)
	}
	md = markdown(withPGScenarios(50*time.Millisecond, 100*mib, 1_000_000), "BENCHMARKS.svg")
	for _, want := range []string{"| post<gres>& | `me` with many users |", "| post<gres>& | logout on one of 3 replicas", "| " + revocationTarget + " | post<gres>& | 50.0 ms | yes", "Replicas: 3 authql processes", "Big database:",
		"| " + socketTarget + " | post<gres>& | 50.0 ms | yes", "Sockets: 3 authql processes", "200 sockets on 2 replicas, 200 closed 4401"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "not measured (-pg") {
		t.Errorf("markdown marks a measured target not measured:\n%s", md)
	}
	// The chart leaves them out.
	if svg := svgChart(withPGScenarios(50*time.Millisecond, 100*mib, 1_000_000)); strings.Contains(svg, "replicas") || strings.Contains(svg, "bigdb") || strings.Contains(svg, "sockets") {
		t.Error("the chart shows a PostgreSQL-only scenario")
	}
}

func TestSplitScenarios(t *testing.T) {
	load, pg := splitScenarios(" me,bigdb,,replicas,me,flood,bigdb")
	if !slices.Equal(load, []string{"me", "flood"}) || !slices.Equal(pg, []string{"bigdb", "replicas"}) {
		t.Errorf("got load %q, pg %q", load, pg)
	}
}
