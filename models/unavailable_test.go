package models_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"gorm.io/gorm"

	"github.com/authql/authql/models"
)

// TestUnavailable: errors of a database that cannot be reached count as
// unavailable, and so are SERVICE_UNAVAILABLE with retryAfter; errors of
// the request or the code do not.
func TestUnavailable(t *testing.T) {
	// A real refused connection: nothing listens on port 1.
	_, _, refused := models.Open("postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", models.Options{})
	if refused == nil {
		t.Fatal("connected to port 1")
	}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"ConnectionRefused", refused, true},
		{"Deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), true},
		{"ClientCancelled", fmt.Errorf("query: %w", context.Canceled), false},
		// As the SQLite driver reported a COMMIT on a full disk whose
		// rollback failed too (seen in TestFaultSQLiteFullDisk).
		{"SQLiteFullThenRollbackFailed", fmt.Errorf("InsertAuditEvents(1): %w",
			errors.New("database or disk is full (13); SQL logic error: cannot rollback - no transaction is active (1)")), true},
		{"NotFound", gorm.ErrRecordNotFound, false},
		{"Coded", models.Errorf(models.BadUserInput, "bad"), false},
		{"Other", errors.New("syntax error"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := models.Unavailable(c.err); got != c.want {
				t.Errorf("Unavailable(%v) = %v, want %v", c.err, got, c.want)
			}
			wantCode := models.Internal
			if c.want {
				wantCode = models.ServiceUnavailable
			} else if errors.As(c.err, new(*models.Error)) {
				wantCode = models.BadUserInput
			}
			if got := models.ErrorCode(c.err); got != wantCode {
				t.Errorf("ErrorCode = %s, want %s", got, wantCode)
			}
		})
	}
}
