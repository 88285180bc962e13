package graph_test

import (
	"context"
	"testing"
	"time"

	"github.com/authql/authql/graph"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/internal/wsclient"
)

// TestCloseAllWhileAccepting: a shutdown (CloseAll) that runs just after a
// socket was added, before it was accepted, still closes it with 1001;
// it used to be marked closed and left open.
func TestCloseAllWhileAccepting(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil)
		defer graph.SetAddedHook(func(m *graph.Sockets) { m.CloseAll() })()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, status, err := wsclient.Dial(ctx, ts.URL+"/query", wsclient.Options{})
		if err != nil {
			t.Fatalf("dial: %d %v", status, err)
		}
		defer c.CloseNow()
		cl, seen, err := c.WaitClose(ctx)
		if err != nil || cl.Code != graph.CloseGoingAway {
			t.Fatalf("socket closed at its accept: %v %v (read %+v), want 1001", cl, err, seen)
		}
	})
}
