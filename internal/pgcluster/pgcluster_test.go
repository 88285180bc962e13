package pgcluster

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"
)

// TestCluster walks the harness through every fault it offers, with one
// table written before the first and read after the last: the data survive
// a stop, a crash and a freeze.
func TestCluster(t *testing.T) {
	c := Start(t)
	exec := func(q string) error {
		db, err := sql.Open("pgx", c.DSN())
		if err != nil {
			return err
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err = db.ExecContext(ctx, q)
		return err
	}
	if err := exec("CREATE TABLE t (n int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}

	c.Stop()
	if c.Ready() {
		t.Fatal("Ready after Stop")
	}
	c.Start()
	if err := exec("INSERT INTO t VALUES (2)"); err != nil {
		t.Fatalf("after Stop/Start: %v", err)
	}

	c.Kill()
	if c.Ready() {
		t.Fatal("Ready after Kill")
	}
	c.Start()

	// A connection opened before the freeze hangs inside it, as does a new
	// one: the context's deadline is what ends the wait.
	db, err := sql.Open("pgx", c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c.Freeze()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err = conn.ExecContext(ctx, "INSERT INTO t VALUES (3)")
	expired := ctx.Err()
	cancel()
	if err == nil || !errors.Is(expired, context.DeadlineExceeded) {
		t.Fatalf("established connection during Freeze: err = %v, want it to wait out the deadline", err)
	}
	if c.Ready() {
		t.Fatal("Ready while frozen")
	}
	c.Thaw()
	if !c.Ready() {
		t.Fatal("not Ready after Thaw")
	}

	db2, err := sql.Open("pgx", c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	var n int
	if err := db2.QueryRow("SELECT count(*) FROM t WHERE n IN (1, 2)").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows 1 and 2 after the faults: n = %d, err = %v", n, err)
	}
}
