package audit

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
		db := testdb.Open(t, dsn)
		w := newWriter(db, slog.New(slog.DiscardHandler), 8*300, 5, time.Hour)
		const writers, each = 7, 143 // 1001 events: the last batch is partial
		at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		var wg sync.WaitGroup
		for g := range writers {
			wg.Go(func() {
				for i := range each {
					e := models.NewAuditEvent(at, models.AuditLogin, models.AuditSuccess)
					e.Detail = models.Null(fmt.Sprintf("%d/%d", g, i))
					w.Record(e)
				}
			})
		}
		wg.Wait()
		if err := w.Close(context.Background()); err != nil {
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
		w.Record(models.NewAuditEvent(at, models.AuditLogout, models.AuditSuccess))
		var n int64
		if err := db.Model(&models.AuditEvent{}).Where("type = ?", models.AuditLogout).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("event recorded after Close: %d rows, want 1", n)
		}
		if err := w.Flush(context.Background()); err != nil {
			t.Errorf("flush after Close: %v", err)
		}
	})
}

// TestAuditWriterFlush: flush returns only once what was queued before it
// is in the database, however long the flush interval.
func TestAuditWriterFlush(t *testing.T) {
	db := testdb.Open(t, testdb.SQLite(t))
	w := newWriter(db, slog.New(slog.DiscardHandler), 1<<20, 50, time.Hour)
	t.Cleanup(func() { w.Close(context.Background()) })
	for range 3 {
		w.Record(models.NewAuditEvent(time.Now(), models.AuditRefresh, models.AuditSuccess))
	}
	if err := w.Flush(context.Background()); err != nil {
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
	db := testdb.Open(t, testdb.SQLite(t))
	w := newWriter(db, slog.New(slog.DiscardHandler), 1<<20, 50, time.Hour)
	good := models.NewAuditEvent(time.Now(), models.AuditLogin, models.AuditSuccess)
	dup := models.NewAuditEvent(time.Now(), models.AuditLogin, models.AuditFailure)
	w.Record(dup)
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.Record(good)
	w.Record(dup) // the same primary key again: refused
	if err := w.Close(context.Background()); err != nil {
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
		if got := Clean(c.in, c.max); got != c.want {
			t.Errorf("Clean(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}
