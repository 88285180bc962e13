package authz_test

import (
	"testing"
	"time"

	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/authzcases"
	"github.com/authql/authql/internal/testdb"
)

// TestCasesOnAuthz runs the table of internal/authzcases against authz:
// the example service, in front of authz configured on a real authql,
// answering a real GraphQL request for a field gated by the case's rule.
// The same table runs against authql itself (internal/authzcases), so the
// two agree case by case.
func TestCasesOnAuthz(t *testing.T) {
	t.Parallel()
	for _, c := range authzcases.Cases {
		t.Run(c.Name, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, dsn string) {
				e := authzcases.NewEnv(t, dsn)
				svc := authzcases.StartService(t, e)
				token := c.Token(t, e)
				query := authzcases.ServiceQuery(c.Rule)
				code, reason := authzcases.Outcome(svc.Do(t, token, query))
				if c.Eventually {
					// Learnt from the feed: poll, within the bound.
					start := time.Now()
					authtest.WaitFor(t, c.Name+" on authz", func() bool {
						code, reason = authzcases.Outcome(svc.Do(t, token, query))
						return code == c.Code && reason == c.Reason
					})
					t.Logf("%s after %s", c.Name, time.Since(start))
				}
				c.Check(t, code, reason)
			})
		})
	}
}
