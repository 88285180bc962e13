package main

import (
	"slices"
	"time"
)

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the values at
// or below it. It returns 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// Nearest rank: ceil(p/100 × n), 1-based. Computed in integers of
	// hundredths of a percent so that 99% of 100 values is exactly rank 99.
	n := len(sorted)
	rank := (int(p*100)*n + 9999) / 10000
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// latencies summarizes a set of request durations.
type latencies struct {
	P50, P90, P99, Max time.Duration
}

// summarize sorts d in place and returns its percentiles.
func summarize(d []time.Duration) latencies {
	slices.Sort(d)
	if len(d) == 0 {
		return latencies{}
	}
	return latencies{
		P50: percentile(d, 50),
		P90: percentile(d, 90),
		P99: percentile(d, 99),
		Max: d[len(d)-1],
	}
}

// medianRun returns the index of the run with the median rate: for an even
// number of runs, the lower of the two middle ones, so that the figures
// reported (rate and percentiles) all come from one real run rather than
// an average of two.
func medianRun(rates []float64) int {
	if len(rates) == 0 {
		return -1
	}
	idx := make([]int, len(rates))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case rates[a] < rates[b]:
			return -1
		case rates[a] > rates[b]:
			return 1
		}
		return 0
	})
	return idx[(len(idx)-1)/2]
}
