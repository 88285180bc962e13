package auth

import (
	"testing"
	"time"
)

// TestTOTPVectors checks the RFC 6238 Appendix B vectors for SHA-1 (8
// digits, seed "12345678901234567890"), and that the 6-digit codes apps
// show are their last six digits.
func TestTOTPVectors(t *testing.T) {
	seed := []byte("12345678901234567890")
	for _, tc := range []struct {
		unix int64
		want string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	} {
		step := totpStep(time.Unix(tc.unix, 0))
		if got := hotp(seed, uint64(step), 8); got != tc.want {
			t.Errorf("T=%d: got %s, want %s", tc.unix, got, tc.want)
		}
		if got := totpCode(seed, step); got != tc.want[2:] {
			t.Errorf("T=%d: 6 digits %s, want %s", tc.unix, got, tc.want[2:])
		}
	}
}

// TestTOTPMatch: one step of drift each way, never a step at or before the
// last accepted one.
func TestTOTPMatch(t *testing.T) {
	seed := newTotpSeed()
	now := time.Unix(1_800_000_015, 0)
	cur := totpStep(now)
	for _, tc := range []struct {
		name     string
		step     int64
		last     int64
		wantOK   bool
		wantStep int64
	}{
		{"Now", cur, 0, true, cur},
		{"StepBefore", cur - 1, 0, true, cur - 1},
		{"StepAfter", cur + 1, 0, true, cur + 1},
		{"TwoStepsBefore", cur - 2, 0, false, 0},
		{"TwoStepsAfter", cur + 2, 0, false, 0},
		{"Replayed", cur, cur, false, 0},
		{"OlderThanLastAccepted", cur - 1, cur, false, 0},
		{"NewerThanLastAccepted", cur + 1, cur, true, cur + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step, ok := totpMatch(seed, totpCode(seed, tc.step), now, tc.last)
			if ok != tc.wantOK || step != tc.wantStep {
				t.Errorf("got %d, %v; want %d, %v", step, ok, tc.wantStep, tc.wantOK)
			}
		})
	}
	if _, ok := totpMatch(seed, "12345", now, 0); ok {
		t.Error("a 5-digit code matched")
	}
}
