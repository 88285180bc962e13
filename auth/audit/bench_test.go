package audit

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// BenchmarkAuditBatch is the audit log's cost per event, as the writer
// pays it: one INSERT per batchSize events. A refresh records one.
func BenchmarkAuditBatch(b *testing.B) {
	bench := func(b *testing.B, dsn string) {
		db := testdb.Open(b, dsn)
		ip, ua := "192.0.2.1", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"
		batch := make([]models.AuditEvent, 0, batchSize)
		b.ReportAllocs()
		for b.Loop() {
			e := models.NewAuditEvent(time.Now(), models.AuditRefresh, models.AuditSuccess)
			e.UserID, e.SessionID = models.Null("6f1c1c52-4a8e-4a55-9d0e-3c1b0b7f2f11"), models.Null("0d7c6a3e-8b65-4c1f-a1a4-2f3ad9d0f3c2")
			e.IP, e.UserAgent = models.Null(Clean(ip, 64)), models.Null(Clean(ua, 512))
			if batch = append(batch, e); len(batch) == batchSize {
				if err := models.InsertAuditEvents(context.Background(), db, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
	}
	b.Run("sqlite", func(b *testing.B) { bench(b, testdb.SQLite(b)) })
	if os.Getenv("TEST_DATABASE_URL") != "" {
		b.Run("postgres", func(b *testing.B) { bench(b, testdb.Postgres(b)) })
	}
}
