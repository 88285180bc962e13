package auth

import (
	"fmt"
	"testing"
	"time"
)

func TestRateAuditsCoalesce(t *testing.T) {
	var ra rateAudits
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c1 := Client{IP: "192.0.2.1", UserAgent: "a"}
	key := keyedLimitKey(nil, "login-client", "192.0.2.1")

	// The first refusal is recorded at once.
	e, ok := ra.refused(key, t0, c1, "", "")
	if !ok || e.n != 1 || e.limit != "login-client" || e.client != c1 || !e.at.Equal(t0) {
		t.Fatalf("first refusal: %+v, %v; want recorded at once", e, ok)
	}
	if got := e.event().detail; got != "login-client (1 refused)" {
		t.Errorf("detail = %q", got)
	}
	// 999 more within the minute: counted, not recorded.
	for i := range 999 {
		if _, ok := ra.refused(key, t0.Add(time.Duration(i)*50*time.Millisecond), c1, "", ""); ok {
			t.Fatalf("refusal %d within the minute was recorded", i+2)
		}
	}
	if due := ra.sweep(t0.Add(59*time.Second), false); len(due) != 0 {
		t.Fatalf("sweep within the minute: %+v", due)
	}
	// A minute on, the next refusal records all 1000 of them.
	e, ok = ra.refused(key, t0.Add(time.Minute), c1, "", "")
	if !ok || e.n != 1000 {
		t.Fatalf("refusal a minute on: %+v, %v; want 1000 recorded", e, ok)
	}
	// Then a few, and silence: the sweep a minute later records them,
	// at the time of the last one.
	last := t0.Add(time.Minute + 10*time.Second)
	ra.refused(key, t0.Add(time.Minute+5*time.Second), c1, "", "")
	ra.refused(key, last, c1, "", "")
	due := ra.sweep(t0.Add(2*time.Minute), false)
	if len(due) != 1 || due[0].n != 2 || !due[0].at.Equal(last) {
		t.Fatalf("sweep after silence: %+v, want 2 refused at %s", due, last)
	}
	// Quiet for a minute more: forgotten, and the next one is immediate.
	if due := ra.sweep(t0.Add(3*time.Minute), false); len(due) != 0 || len(ra.m) != 0 {
		t.Fatalf("quiet counter: due %+v, %d kept", due, len(ra.m))
	}
	if _, ok := ra.refused(key, t0.Add(3*time.Minute), c1, "", ""); !ok {
		t.Error("refusal after the counter was forgotten was not recorded at once")
	}
	// Close records everything pending, due or not.
	ra.refused(key, t0.Add(3*time.Minute+time.Second), c1, "", "")
	if due := ra.sweep(t0.Add(3*time.Minute+2*time.Second), true); len(due) != 1 || due[0].n != 1 {
		t.Errorf("final sweep: %+v, want the 1 pending", due)
	}
}

// TestRateAuditsBounded: past maxRateAuditKeys counters, refusals of new
// clients share one counter per limit, without a client.
func TestRateAuditsBounded(t *testing.T) {
	var ra rateAudits
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	recorded := 0
	for i := range maxRateAuditKeys + 500 {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		if _, ok := ra.refused(keyedLimitKey(nil, "refresh", ip), t0, Client{IP: ip}, "", ""); ok {
			recorded++
		}
	}
	if len(ra.m) > maxRateAuditKeys+1 {
		t.Errorf("%d counters kept, want at most %d", len(ra.m), maxRateAuditKeys+1)
	}
	// One event per tracked client, one for all the others.
	if recorded != maxRateAuditKeys+1 {
		t.Errorf("%d events recorded, want %d", recorded, maxRateAuditKeys+1)
	}
	due := ra.sweep(t0.Add(time.Minute), false)
	if len(due) != 1 || due[0].n != 499 || due[0].client != (Client{}) {
		t.Errorf("overflow sweep: %+v, want one event of 499 without a client", due)
	}
}
