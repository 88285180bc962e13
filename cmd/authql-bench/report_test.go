package main

import (
	"encoding/xml"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/auth"
)

func TestPercentile(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, ms(i))
	}
	ten := hundred[:10]
	for _, tc := range []struct {
		name string
		d    []time.Duration
		p    float64
		want time.Duration
	}{
		{"Hundred/p50", hundred, 50, ms(50)},
		{"Hundred/p90", hundred, 90, ms(90)},
		{"Hundred/p99", hundred, 99, ms(99)},
		{"Hundred/p100", hundred, 100, ms(100)},
		// Nearest rank: with 10 values, p99 is the largest and p50 the 5th.
		{"Ten/p50", ten, 50, ms(5)},
		{"Ten/p99", ten, 99, ms(10)},
		{"Ten/p91", ten, 91, ms(10)},
		{"Ten/p90", ten, 90, ms(9)},
		{"One/p1", hundred[:1], 1, ms(1)},
		{"Empty", nil, 99, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.d, tc.p); got != tc.want {
				t.Errorf("percentile(%d values, %v) = %v, want %v", len(tc.d), tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarizeSortsUnorderedLatencies(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 1000; i++ {
		d = append(d, time.Duration(i)*time.Microsecond)
	}
	rand.Shuffle(len(d), func(i, j int) { d[i], d[j] = d[j], d[i] })
	got := summarize(d)
	want := latencies{P50: 500 * time.Microsecond, P90: 900 * time.Microsecond, P99: 990 * time.Microsecond, Max: time.Millisecond}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
}

func TestMedianRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rates []float64
		want  int
	}{
		{"Three", []float64{300, 100, 200}, 2},
		{"EvenTakesLowerMiddle", []float64{400, 100, 300, 200}, 3},
		{"One", []float64{5}, 0},
		{"TiesKeepOrder", []float64{7, 7, 7}, 1},
		{"None", nil, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := medianRun(tc.rates); got != tc.want {
				t.Errorf("medianRun(%v) = %d, want %d", tc.rates, got, tc.want)
			}
		})
	}
}

func TestRewriteSection(t *testing.T) {
	before := "# Benchmarks\n\nHand-written text, kept.\n\n## Method\n\nMore text.\n"
	after := "\n## After\n\nKept too.\n"

	t.Run("AppendsMarkersWhenAbsent", func(t *testing.T) {
		got, err := rewriteSection(before, "figures 1\n")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got, before) {
			t.Errorf("the text before the section changed:\n%s", got)
		}
		if !strings.HasSuffix(got, startMarker+"\nfigures 1\n"+endMarker+"\n") {
			t.Errorf("no marked section at the end:\n%s", got)
		}
	})
	t.Run("ReplacesOnlyBetweenMarkers", func(t *testing.T) {
		doc := before + startMarker + "\nold figures\nmore old\n" + endMarker + after
		got, err := rewriteSection(doc, "new figures")
		if err != nil {
			t.Fatal(err)
		}
		want := before + startMarker + "\nnew figures\n" + endMarker + after
		if got != want {
			t.Errorf("got\n%q\nwant\n%q", got, want)
		}
	})
	t.Run("Idempotent", func(t *testing.T) {
		once, err := rewriteSection(before, "figures\n\n| a | b |\n")
		if err != nil {
			t.Fatal(err)
		}
		twice, err := rewriteSection(once, "figures\n\n| a | b |\n")
		if err != nil {
			t.Fatal(err)
		}
		if once != twice {
			t.Errorf("a second rewrite with the same figures changed the file:\n%q\n%q", once, twice)
		}
	})
	t.Run("NoTrailingNewline", func(t *testing.T) {
		got, err := rewriteSection("text", "x")
		if err != nil {
			t.Fatal(err)
		}
		if want := "text\n\n" + startMarker + "\nx\n" + endMarker + "\n"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	for _, tc := range []struct{ name, doc string }{
		{"StartOnly", before + startMarker + "\n"},
		{"EndOnly", before + endMarker + "\n"},
		{"EndBeforeStart", endMarker + "\n" + startMarker + "\n"},
		{"TwoPairs", startMarker + endMarker + startMarker + endMarker},
	} {
		t.Run("Refuses"+tc.name, func(t *testing.T) {
			if got, err := rewriteSection(tc.doc, "x"); err == nil {
				t.Errorf("rewrote malformed markers without an error:\n%s", got)
			}
		})
	}
}

// sampleReport is a report as a two-database run would leave it, with
// figures chosen on both sides of the targets.
func sampleReport() *report {
	run := func(n int, p99 time.Duration) runStats {
		rs := runStats{Elapsed: 10 * time.Second}
		rs.All = opStats{N: n, Lat: latencies{P50: p99 / 4, P90: p99 / 2, P99: p99, Max: 2 * p99}}
		rs.Ops[opMe] = rs.All
		return rs
	}
	res := func(db, name string, n int, p99 time.Duration, rss int64) scenarioResult {
		return scenarioResult{DB: db, Name: name, Title: name + " <&> title", Conns: "8",
			Runs: []runStats{run(n-10, p99), run(n, p99), run(n+10, p99)}, Median: 1, PeakRSS: rss, StartRSS: rss / 2}
	}
	return &report{
		Date:        time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		Command:     "go run ./cmd/authql-bench",
		Machine:     machine{Cores: 2, CPU: "Test <CPU> & co", Go: "go1.26"},
		Spec:        scenarioSpec{Conns: 32, SlowConns: 8, Flooders: 16},
		Duration:    10 * time.Second,
		Warmup:      2 * time.Second,
		Runs:        3,
		Argon2:      auth.DefaultArgon2,
		HashTime:    25 * time.Millisecond, // 40 hashes/s with one worker
		HashWorkers: 1,
		DBs:         []string{"sqlite", "post<gres>&"},
		Results: []scenarioResult{
			res("sqlite", "me-floor", 330_000, 2*time.Millisecond, 0),          // 33,000 req/s
			res("sqlite", "me", 300_000, 3*time.Millisecond, 50*mib),           // 30,000 req/s: 0.91 ×, p99 1.5 ×
			res("sqlite", "refresh-floor", 40_000, 2*time.Millisecond, 0),      // 4,000/s
			res("sqlite", "refresh", 20_000, 20*time.Millisecond, 40*mib),      // 2,000/s: 0.5 ×
			res("sqlite", "login", 370, 200*time.Millisecond, 90*mib),          // 37/s of the timed 40/s (no floor)
			res("post<gres>&", "me-floor", 200_000, 3*time.Millisecond, 0),     // 20,000 req/s
			res("post<gres>&", "me", 100_000, 9*time.Millisecond, 70*mib),      // 0.5 ×, p99 3 ×
			res("post<gres>&", "refresh-floor", 50_000, 2*time.Millisecond, 0), // 5,000/s
			res("post<gres>&", "refresh", 40_000, 4*time.Millisecond, 40*mib),  // 0.8 ×
			res("post<gres>&", "login-floor", 400, 25*time.Millisecond, 0),     // 40/s
			res("post<gres>&", "login", 300, 200*time.Millisecond, 90*mib),     // 30/s: 0.75 ×
		},
	}
}

func TestTargetRows(t *testing.T) {
	got := map[string]string{}
	for _, row := range targetRows(sampleReport()) {
		got[row[0]+" on "+row[1]] = strings.Fields(row[3])[0]
	}
	want := map[string]string{
		"`me` ≥ 0.85 × the floor (gqlgen `me` from memory) on sqlite":            "yes",
		"`me` ≥ 0.85 × the floor (gqlgen `me` from memory) on post<gres>&":       "no",
		"`me` p99 ≤ 2 × the floor's p99 on sqlite":                               "yes",
		"`me` p99 ≤ 2 × the floor's p99 on post<gres>&":                          "no",
		"chained `refresh` (audit on) ≥ 0.70 × the bare rotation on sqlite":      "no",
		"chained `refresh` (audit on) ≥ 0.70 × the bare rotation on post<gres>&": "yes",
		"`login` ≥ 0.90 × the hash rate on sqlite":                               "yes",
		"`login` ≥ 0.90 × the hash rate on post<gres>&":                          "no",
		"peak RSS ≤ 64 MiB under `me` on sqlite":                                 "yes",
		"peak RSS ≤ 64 MiB under `me` on post<gres>&":                            "no",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: met = %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d target rows, want %d: %v", len(got), len(want), got)
	}
}

func TestSVGIsWellFormed(t *testing.T) {
	r := sampleReport()
	svg := svgChart(r)
	dec := xml.NewDecoder(strings.NewReader(svg))
	var root string
	var bars []string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			if se.Name.Local == "title" {
				var title string
				if err := dec.DecodeElement(&title, &se); err != nil {
					t.Fatal(err)
				}
				bars = append(bars, title)
			}
		}
	}
	if root != "svg" {
		t.Errorf("root element is %q, want svg", root)
	}
	// One bar per result (grouped by scenario), each titled with its
	// database and scenario as written: the escaping round-trips.
	var want []string
	for _, res := range r.Results {
		want = append(want, res.DB+" "+res.Name)
	}
	var got []string
	for _, b := range bars {
		name, _, _ := strings.Cut(b, ":")
		got = append(got, name)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("bars %q, want one per result %q", got, want)
	}
}

func TestMarkdownHasEveryResult(t *testing.T) {
	r := sampleReport()
	md := markdown(r, "BENCHMARKS.svg")
	for _, want := range []string{"30,000", "2,000", "37.0", "Test <CPU> & co", "](BENCHMARKS.svg)", "2026-11-23 12:00 UTC"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// Every result has its row in the figures table.
	rows := 0
	for line := range strings.SplitSeq(md, "\n") {
		for _, db := range r.DBs {
			if strings.HasPrefix(line, "| "+db+" | ") {
				rows++
			}
		}
	}
	if rows != len(r.Results) {
		t.Errorf("%d rows of figures, want %d:\n%s", rows, len(r.Results), md)
	}
}

func TestParseCPUList(t *testing.T) {
	got, err := parseCPUList("0-3,6,8-9")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 2, 3, 6, 8, 9}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if s := formatCPUList(got); s != "0,1,2,3,6,8,9" {
		t.Errorf("formatCPUList = %q", s)
	}
	for _, bad := range []string{"", "a", "3-1", "1-", "1,,2"} {
		if got, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) = %v, want an error", bad, got)
		}
	}
}

func TestFmtInt(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 24000: "24,000", 1234567.6: "1,234,568", -1500: "-1,500"} {
		if got := fmtInt(v); got != want {
			t.Errorf("fmtInt(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestCommandLineRedactsPassword(t *testing.T) {
	got := commandLine([]string{"-pg", "postgres://u:secret@h/db", "-runs", "1", "-target=http://a:pw@h/query"})
	if strings.Contains(got, "secret") || strings.Contains(got, "pw@") {
		t.Errorf("a password is in the command line: %s", got)
	}
	if !strings.Contains(got, "-runs 1") || !strings.Contains(got, "postgres://u:xxxxx@h/db") {
		t.Errorf("command line lost its flags: %s", got)
	}
}

func TestPairedRatioPairsRunsBackToBack(t *testing.T) {
	runs := func(rates ...int) *scenarioResult {
		r := &scenarioResult{}
		for _, n := range rates {
			r.Runs = append(r.Runs, runStats{Elapsed: time.Second, All: opStats{N: n}})
		}
		r.Median = medianOf(r.Runs)
		return r
	}
	// The machine slowed down at the second pair and sped up at the third:
	// the medians of each (20 and 20) would say 1.
	server, floor := runs(10, 30, 20), runs(20, 40, 10)
	if got := pairedRatio(server, floor, rateOf); got != 0.75 {
		t.Errorf("pairedRatio = %v, want the median of 0.5, 0.75 and 2: 0.75", got)
	}
}
