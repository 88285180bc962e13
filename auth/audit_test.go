package auth

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// TestAuditWriterCloseWritesEverything queues far more events than the
// queue holds, from several goroutines, with a flush interval too long to
// ever fire: every event must be in the database once Close returns, the
// last partial batch included, and an event recorded after Close too.
func TestAuditWriterCloseWritesEverything(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		db := openDB(t, dsn)
		w := newAuditWriter(db, slog.New(slog.DiscardHandler), 8*300, 5, time.Hour)
		const writers, each = 7, 143 // 1001 events: the last batch is partial
		at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		var wg sync.WaitGroup
		for g := range writers {
			wg.Go(func() {
				for i := range each {
					e := models.NewAuditEvent(at, models.AuditLogin, models.AuditSuccess)
					e.Detail = models.Null(fmt.Sprintf("%d/%d", g, i))
					w.add(e)
				}
			})
		}
		wg.Wait()
		if err := w.close(context.Background()); err != nil {
			t.Fatal(err)
		}
		var details []string
		if err := db.Model(&models.AuditEvent{}).Pluck("detail", &details).Error; err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, d := range details {
			if seen[d] {
				t.Errorf("event %s written twice", d)
			}
			seen[d] = true
		}
		for g := range writers {
			for i := range each {
				if d := fmt.Sprintf("%d/%d", g, i); !seen[d] {
					t.Errorf("event %s lost", d)
				}
			}
		}

		// After Close the writer is gone: add writes the event itself.
		w.add(models.NewAuditEvent(at, models.AuditLogout, models.AuditSuccess))
		var n int64
		if err := db.Model(&models.AuditEvent{}).Where("type = ?", models.AuditLogout).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("event recorded after Close: %d rows, want 1", n)
		}
		if err := w.flush(context.Background()); err != nil {
			t.Errorf("flush after Close: %v", err)
		}
	})
}

// TestAuditWriterFlush: flush returns only once what was queued before it
// is in the database, however long the flush interval.
func TestAuditWriterFlush(t *testing.T) {
	db := openDB(t, testdb.SQLite(t))
	w := newAuditWriter(db, slog.New(slog.DiscardHandler), 1<<20, 50, time.Hour)
	t.Cleanup(func() { w.close(context.Background()) })
	for range 3 {
		w.add(models.NewAuditEvent(time.Now(), models.AuditRefresh, models.AuditSuccess))
	}
	if err := w.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := db.Model(&models.AuditEvent{}).Where("type = ?", models.AuditRefresh).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("after flush: %d events, want 3", n)
	}
}

// TestAuditWriterBadRowAlone: a row the database refuses costs only
// itself, not the rest of its batch.
func TestAuditWriterBadRowAlone(t *testing.T) {
	db := openDB(t, testdb.SQLite(t))
	w := newAuditWriter(db, slog.New(slog.DiscardHandler), 1<<20, 50, time.Hour)
	good := models.NewAuditEvent(time.Now(), models.AuditLogin, models.AuditSuccess)
	dup := models.NewAuditEvent(time.Now(), models.AuditLogin, models.AuditFailure)
	w.add(dup)
	if err := w.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.add(good)
	w.add(dup) // the same primary key again: refused
	if err := w.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := db.Model(&models.AuditEvent{}).Where("id = ?", good.ID).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Error("the good event of a batch with a refused row was lost")
	}
}

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

func TestClean(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"curl/8.0", 512, "curl/8.0"},
		{"a\x00b", 512, "ab"},
		{"bad\xffbyte", 512, "bad\uFFFDbyte"},
		{"héllo", 2, "h"}, // é cut in two is dropped
		{"héllo", 3, "hé"},
	} {
		if got := clean(c.in, c.max); got != c.want {
			t.Errorf("clean(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}
