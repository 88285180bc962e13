package auth

import "time"

// Observer is told what the service does, for metrics. The service calls it
// synchronously on request paths, so implementations must be cheap and safe
// for concurrent use. auth does not import a metrics library: the server
// adapts an Observer to one.
type Observer interface {
	// AuthEvent counts one audited event, by its type and outcome (the
	// names of models.AuditEventType and models.AuditOutcome values).
	AuthEvent(typ, outcome string)
	// HashWait records how long a password hash waited for a worker,
	// whether or not it got one.
	HashWait(d time.Duration)
}

// nopObserver is the Observer of a Service configured without one.
type nopObserver struct{}

func (nopObserver) AuthEvent(string, string) {}
func (nopObserver) HashWait(time.Duration)   {}

var _ Observer = nopObserver{}
