package authzcases_test

import (
	"testing"

	"github.com/authql/authql/internal/authzcases"
	"github.com/authql/authql/internal/testdb"
)

// TestCasesOnAuthql runs the table against authql itself: a real GraphQL
// request to its /query asking for a field gated by the case's rule. The
// same table runs against authz in authz/conformance_test.go.
func TestCasesOnAuthql(t *testing.T) {
	t.Parallel()
	for _, c := range authzcases.Cases {
		t.Run(c.Name, func(t *testing.T) {
			testdb.Each(t, func(t *testing.T, dsn string) {
				e := authzcases.NewEnv(t, dsn)
				token := c.Token(t, e)
				code, reason := authzcases.Outcome(e.TS.Do(t, token, authzcases.AuthqlQuery(c.Rule), nil))
				c.Check(t, code, reason)
			})
		})
	}
}
