package graph

import (
	"context"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/models"
)

// adminRule is auditEvents' rule, checked at the start (by @auth) and
// again before each event.
var adminRule = auth.Rule{Role: models.RoleAdmin}

// auditEventStream is auditEvents: the audit events of every replica as
// they are written, of type typ when set. The caller's role is checked
// again before each event, against their roles now (the socket's current
// principal: authenticateSocket may have replaced it), and the
// subscription ends once it fails: an admin demoted, disabled or signed
// out stops seeing the log at the next event.
func auditEventStream(ctx context.Context, svc *auth.Service, typ *models.AuditEventType) (<-chan *models.AuditEvent, error) {
	if err := svc.Authorize(ctx, adminRule); err != nil {
		return nil, err
	}
	sub := svc.SubscribeAudit(typ)
	out := make(chan *models.AuditEvent)
	go func() {
		defer close(out)
		defer sub.Cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.C:
				if !ok || svc.Authorize(ctx, adminRule) != nil {
					// Lagged: the subscriber resumes from auditLog.
					return
				}
				select {
				case out <- &e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}
