package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/auth/audit"
	"github.com/authql/authql/internal/pgcluster"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// TestAuditQueueThroughOutage: while PostgreSQL is down, audit events stay
// queued (none dropped) until the queue reaches its high-water mark; from
// then on sign-ins are refused with SERVICE_UNAVAILABLE rather than made
// without their record. Once the database is back every queued event is
// written, and sign-ins are served again.
func TestAuditQueueThroughOutage(t *testing.T) {
	testdb.Long(t, "starts a PostgreSQL cluster of its own and stops it twice, 5 s")
	pg := pgcluster.Start(t)
	db, _, err := models.Open(pg.DSN(), models.Options{Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	if err := models.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	s, err := NewService(context.Background(), db, []byte(strings.Repeat("k", 32)), Config{
		Issuer: "authql", Audience: "authql", AccessTTL: time.Minute, RefreshTTL: time.Hour,
		Signup: true, Argon2: Argon2Params{Memory: 64, Time: 1, Threads: 1},
		AuditQueueBytes: 64 << 10,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := context.Background()
	if _, err := s.Register(ctx, "outage@example.com", "password1"); err != nil {
		t.Fatal(err)
	}
	if err := s.FlushAudit(ctx); err != nil {
		t.Fatal(err)
	}

	pg.Stop()
	// Refreshes with a malformed token fail without the database, each
	// with an audit event: they fill the queue.
	queued := 0
	for range 10_000 {
		_, err := s.Refresh(ctx, "malformed")
		if errors.Is(err, audit.ErrFull) {
			break
		}
		if models.ErrorCode(err) != models.Unauthenticated {
			t.Fatalf("refresh with a malformed token: %v", err)
		}
		queued++
	}
	q := s.AuditQueue()
	if !q.Full || q.Dropped != 0 || q.Events != queued {
		t.Fatalf("after %d events with the database down: queue %+v; want full, none dropped, all queued", queued, q)
	}
	if _, err := s.Login(ctx, "outage@example.com", "password1"); !errors.Is(err, audit.ErrFull) || models.ErrorCode(err) != models.ServiceUnavailable {
		t.Errorf("login with the audit queue full: %v, want SERVICE_UNAVAILABLE (audit queue full)", err)
	}

	pg.Start()
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.FlushAudit(fctx); err != nil {
		t.Fatalf("flush once the database is back: %v", err)
	}
	var n int64
	if err := db.Model(&models.AuditEvent{}).Where("type = ? AND outcome = ?", models.AuditRefresh, models.AuditFailure).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != int64(queued) {
		t.Errorf("%d REFRESH failures written after the outage, want %d", n, queued)
	}
	if q := s.AuditQueue(); q.Full || q.Failing || q.Events != 0 {
		t.Errorf("queue after the outage: %+v", q)
	}
	if _, err := s.Login(ctx, "outage@example.com", "password1"); err != nil {
		t.Errorf("login after the outage: %v", err)
	}

	// A shutdown during an outage waits for the database (up to its
	// context) and writes what is queued.
	pg.Stop()
	const more = 50
	for range more {
		s.Refresh(ctx, "malformed")
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close(fctx) }()
	pg.Start()
	if err := <-closed; err != nil {
		t.Fatalf("Close with the database back within its timeout: %v", err)
	}
	if err := db.Model(&models.AuditEvent{}).Where("type = ? AND outcome = ?", models.AuditRefresh, models.AuditFailure).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != int64(queued+more) {
		t.Errorf("%d REFRESH failures written after a shutdown during an outage, want %d", n, queued+more)
	}
}
