package models

import (
	"context"
	"path/filepath"
	"testing"
)

// TestListenSQLite: one process serves a SQLite database, so there is no
// one to hear; serve calls Listen whatever the database, and waits on Done.
func TestListenSQLite(t *testing.T) {
	l, err := Listen(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "authql.db"), nil)
	if err != nil || l != nil {
		t.Fatalf("Listen(sqlite) = %v, %v; want nil, nil", l, err)
	}
	select {
	case <-l.Done():
	default:
		t.Error("a nil Listener's Done is not closed")
	}
	if l.PID() != 0 {
		t.Errorf("a nil Listener's PID = %d, want 0", l.PID())
	}
}
