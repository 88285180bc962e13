//go:build race

package authtest

// RaceEnabled reports whether the tests run under the race detector.
const RaceEnabled = true
