package main

import (
	"encoding/xml"
	"fmt"
	"math"
	"slices"
	"strings"
)

// The chart's geometry, in SVG user units.
const (
	chartTop    = 70.0
	chartBottom = 360.0
	chartLeft   = 70.0
	barWidth    = 64.0
	groupGap    = 44.0
)

// chartLabels names the scenarios under their bars.
var chartLabels = map[string]string{
	"me": "me", "refresh": "refresh (chained)", "login": "login",
	"mix": "mix 90/9/1", "flood": "me during login flood",
	"me-floor": "floor: gqlgen me", "refresh-floor": "floor: bare rotation",
	"login-floor": "floor: argon2id",
}

// dbColors are the bars' colours, one per database in the order measured.
var dbColors = []string{"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1"}

// chartTarget is the target line drawn over a scenario's bar on db: a share
// of the rate of its floor in the same run (of the hash rate for login,
// without a floor).
func chartTarget(r *report, db, scenario string) (float64, string) {
	t := rateTargets[scenario]
	if t.share == 0 {
		return 0, ""
	}
	if fl := r.result(db, scenario+"-floor"); fl != nil {
		return t.share * fl.med().Rate(), fmt.Sprintf("target ≥ %.2f × floor", t.share)
	}
	if scenario == "login" && r.hashRate() > 0 {
		return t.share * r.hashRate(), fmt.Sprintf("target ≥ %.2f × hash rate", t.share)
	}
	return 0, ""
}

// svgChart draws req/s per scenario (groups) and database (bars) on a log
// scale, since the scenarios differ by three orders of magnitude (logins
// are bound by the password hash, me by nothing but CPU), with each
// scenario's target as a dashed line and each bar's p99 under its rate.
func svgChart(r *report) string {
	// The PostgreSQL-only scenarios measure a delay and memory, not req/s
	// to compare: left out of the chart.
	chart := *r
	chart.Results = nil
	for _, res := range r.Results {
		if !slices.Contains(pgScenarios, res.Name) {
			chart.Results = append(chart.Results, res)
		}
	}
	r = &chart
	var names []string
	for _, res := range r.Results {
		if !slices.Contains(names, res.Name) {
			names = append(names, res.Name)
		}
	}
	lo, hi := chartScale(r, names)
	y := func(v float64) float64 {
		if v < lo {
			v = lo
		}
		f := (math.Log10(v) - math.Log10(lo)) / (math.Log10(hi) - math.Log10(lo))
		return chartBottom - f*(chartBottom-chartTop)
	}
	nDB := max(len(r.DBs), 1)
	groupWidth := float64(nDB)*barWidth + groupGap
	width := max(chartLeft+float64(len(names))*groupWidth+20, 760)
	height := chartBottom + 90

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%.0f" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", chartLeft, esc("authql-bench: requests per second (log scale), median of "+fmt.Sprint(r.Runs)+" runs of "+r.Duration.String()))
	p(`<text x="%.0f" y="40" fill="#555">%s</text>`+"\n", chartLeft, esc(fmt.Sprintf("%d cores, %s; %s; under each rate its p99", r.Machine.Cores, r.Machine.CPU, r.Date.UTC().Format("2006-01-02"))))
	// Grid: one line per power of ten.
	for v := lo; v <= hi*1.0001; v *= 10 {
		p(`<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", chartLeft, width-20, y(v), y(v))
		p(`<text x="%.0f" y="%.1f" text-anchor="end" fill="#555">%s</text>`+"\n", chartLeft-6, y(v)+4, esc(shortNumber(v)))
	}
	p(`<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="#333"/>`+"\n", chartLeft, width-20, chartBottom, chartBottom)
	for gi, name := range names {
		gx := chartLeft + groupGap/2 + float64(gi)*groupWidth
		label := ""
		for di, db := range r.DBs {
			if res := r.result(db, name); res != nil {
				label = max(label, drawBar(p, r, res, gx+float64(di)*barWidth, dbColors[di%len(dbColors)], y))
			}
		}
		if label != "" {
			// Under the scenario's name rather than by the line, where it
			// would collide with the bars' labels.
			p(`<text x="%.1f" y="%.0f" text-anchor="middle" fill="#d62728" font-size="10">%s</text>`+"\n", gx+float64(nDB)*barWidth/2, chartBottom+32, esc(label))
		}
		p(`<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", gx+float64(nDB)*barWidth/2, chartBottom+18, esc(chartLabels[name]))
	}
	// Legend.
	for di, db := range r.DBs {
		lx := chartLeft + float64(di)*120
		p(`<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/>`+"\n", lx, chartBottom+54, dbColors[di%len(dbColors)])
		p(`<text x="%.0f" y="%.0f">%s</text>`+"\n", lx+18, chartBottom+64, esc(db))
	}
	lx := chartLeft + float64(len(r.DBs))*120
	p(`<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="#d62728" stroke-width="2" stroke-dasharray="6 3"/>`+"\n", lx, lx+24, chartBottom+60, chartBottom+60)
	p(`<text x="%.0f" y="%.0f">target</text>`+"\n", lx+30, chartBottom+64)
	p("</svg>\n")
	return b.String()
}

// chartScale returns the powers of ten the chart's axis spans: every
// bar's rate and every target.
func chartScale(r *report, names []string) (lo, hi float64) {
	lo, hi = math.Inf(1), 0.0
	for _, res := range r.Results {
		v := res.med().Rate()
		if v > 0 {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	for _, n := range names {
		for _, db := range r.DBs {
			if t, _ := chartTarget(r, db, n); t > 0 {
				lo, hi = math.Min(lo, t), math.Max(hi, t)
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 1, 10
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi*1.0001)))
	return lo, hi
}

// drawBar draws res's bar at x with its rate and p99 above it and, when
// its scenario has a target on its database, the target's dashed line
// across the bar; it returns the target's label.
func drawBar(p func(string, ...any), r *report, res *scenarioResult, x float64, color string, y func(float64) float64) string {
	s := res.med()
	v := s.Rate()
	top := y(v)
	p(`<rect x="%.1f" y="%.1f" width="%.0f" height="%.1f" fill="%s"><title>%s</title></rect>`+"\n",
		x+4, top, barWidth-8, chartBottom-top, color, esc(fmt.Sprintf("%s %s: %s req/s, p99 %s", res.DB, res.Name, fmtRate(v), fmtDur(s.All.Lat.P99))))
	p(`<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11">%s</text>`+"\n", x+barWidth/2, top-16, esc(fmtRate(v)))
	p(`<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="#555">%s</text>`+"\n", x+barWidth/2, top-4, esc("p99 "+fmtDur(s.All.Lat.P99)))
	t, label := chartTarget(r, res.DB, res.Name)
	if t > 0 {
		p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#d62728" stroke-width="2" stroke-dasharray="6 3"/>`+"\n", x, x+barWidth, y(t), y(t))
	}
	return label
}

// shortNumber writes powers of ten as 10, 100, 1k, 10k, 100k, 1M.
func shortNumber(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}

// esc escapes s for SVG text and attributes.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
