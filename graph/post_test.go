package graph

import (
	"strings"
	"testing"
)

// TestResponseMediaBounded: only the first bound media ranges of
// Accept, over all its values, are read; within them the choice is as
// before.
func TestResponseMediaBounded(t *testing.T) {
	const bound = 32 // maxAcceptParts, spelled out so the test checks the number
	filler := func(n int) string { return strings.TrimSuffix(strings.Repeat("text/x-a;q=0.1,", n), ",") }
	for _, c := range []struct {
		name   string
		accept []string
		want   string
	}{
		{"Within", []string{filler(bound-1) + "," + mediaGraphQLResponse}, mediaGraphQLResponse},
		{"Past", []string{filler(bound) + "," + mediaGraphQLResponse}, mediaJSON},
		{"PastAcrossValues", []string{filler(bound / 2), filler(bound / 2), mediaGraphQLResponse}, mediaJSON},
		{"WithinAcrossValues", []string{filler(bound / 2), filler(bound/2 - 1), mediaGraphQLResponse}, mediaGraphQLResponse},
		{"Huge", []string{filler(100000) + "," + mediaGraphQLResponse}, mediaJSON},
	} {
		if got := responseMedia(c.accept); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
