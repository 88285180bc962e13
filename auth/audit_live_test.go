package auth

import (
	"context"
	"strconv"
	"testing"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// nextAudit returns the next event of sub, failing the test when none
// comes within a deadline or the subscription ended.
func nextAudit(t *testing.T, sub *AuditSub) models.AuditEvent {
	t.Helper()
	return nextOf(t, "audit event", sub.C, sub.Lagged)
}

// Audit events reach this process's subscribers once written, each once,
// filtered by type when asked.
func TestSubscribeAudit(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newFlowEnv(t, dsn)
		all := e.s.SubscribeAudit(nil)
		defer all.Cancel()
		login := models.AuditLogin
		logins := e.s.SubscribeAudit(&login)
		defer logins.Cancel()
		g := e.register(t)
		e.login(t, g)
		if err := e.s.FlushAudit(e.ctx); err != nil {
			t.Fatal(err)
		}
		if ev := nextAudit(t, all); ev.Type != models.AuditRegister || *ev.UserID != g.User.ID {
			t.Errorf("first event %+v, want REGISTER of %s", ev, g.User.ID)
		}
		if ev := nextAudit(t, all); ev.Type != models.AuditLogin {
			t.Errorf("second event %+v, want LOGIN", ev)
		}
		if ev := nextAudit(t, logins); ev.Type != models.AuditLogin || *ev.UserID != g.User.ID {
			t.Errorf("LOGIN subscription got %+v", ev)
		}
		// Written again (a retry after a lost COMMIT): not delivered again.
		e.s.auditLive.publish([]models.AuditEvent{{ID: "x", Type: models.AuditLogin}, {ID: "x", Type: models.AuditLogin}})
		if a, l := nextAudit(t, all), nextAudit(t, logins); a.ID != "x" || l.ID != "x" {
			t.Errorf("got %+v and %+v, want x", a, l)
		}
		select {
		case ev := <-logins.C:
			t.Errorf("further event %+v", ev)
		case ev := <-all.C:
			t.Errorf("further event %+v", ev)
		default:
		}
	})
}

// A subscriber that falls a batch behind is dropped.
func TestSubscribeAuditLagging(t *testing.T) {
	t.Parallel()
	h := newAuditHub()
	s := &Service{auditLive: h}
	sub := s.SubscribeAudit(nil)
	for i := range auditBuffer + 1 {
		h.publish([]models.AuditEvent{{ID: strconv.Itoa(i), Type: models.AuditLogin}})
	}
	n := 0
	for range sub.C {
		n++
	}
	if n != auditBuffer || !sub.Lagged() || h.active() {
		t.Errorf("%d events then closed, lagged %v, hub active %v; want %d, true, false", n, sub.Lagged(), h.active(), auditBuffer)
	}
}

// Audit events written on one replica reach the subscribers of another.
func TestSubscribeAuditAcrossReplicas(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	ctx := context.Background()
	a := newReplica(t, ctx, testdb.Open(t, dsn), dsn)
	b := newReplica(t, ctx, testdb.OpenAsIs(t, dsn), dsn)
	reg := models.AuditRegister
	sub := b.SubscribeAudit(&reg)
	defer sub.Cancel()
	g := registerNth(t, a, ctx, 1)
	if err := a.FlushAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := nextAudit(t, sub); ev.Type != models.AuditRegister || ev.UserID == nil || *ev.UserID != g.User.ID {
		t.Errorf("b got %+v, want the REGISTER of %s written on a", ev, g.User.ID)
	}
}
