package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

func TestLoadConfigPool(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want models.Options
	}{
		// Zero fields: models.Open fills in its defaults for the dialect.
		{"Defaults", map[string]string{}, models.Options{}},
		{"Set", map[string]string{"DATABASE_URL": "postgres://db/authql", "AUTH_DB_MAX_CONNS": "40", "AUTH_DB_MAX_IDLE_CONNS": "30", "AUTH_DB_CONN_MAX_LIFETIME": "1h"},
			models.Options{MaxConns: 40, MaxIdleConns: 30, ConnMaxLifetime: time.Hour}},
		// 20 idle fits PostgreSQL's default of 20 open (SQLite's is 8).
		{"IdleWithinPostgresDefault", map[string]string{"DATABASE_URL": "postgres://db/authql", "AUTH_DB_MAX_IDLE_CONNS": "20"},
			models.Options{MaxIdleConns: 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if c.DB != tc.want {
				t.Errorf("pool = %+v, want %+v", c.DB, tc.want)
			}
		})
	}
}

// TestPoolNoDialsUnderLoad runs concurrent me and refresh requests, more
// than the pool has connections, against a pool that has already dialed
// every connection it may have, and proves that the load dials none: the
// pool never closes one (not as surplus idle, not for age), never exceeds
// its size, and on PostgreSQL the backends serving the database after the
// load are the ones that served it before.
func TestPoolNoDialsUnderLoad(t *testing.T) {
	const (
		maxConns = 6
		workers  = 32 // the benchmark's keep-alive connections for reads
	)
	// Without a sized pool (database/sql keeps 2 idle connections), 6
	// rounds already close connections on both databases; 15 leave a
	// margin. (It ran 200 rounds: 6,400 requests.)
	const rounds = 15
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := newTestServer(t, dsn, nil, withPool(models.Options{MaxConns: maxConns}))
		sqlDB, _ := ts.DB.DB()
		sessions := make([]tokens, workers)
		for i := range sessions {
			sessions[i] = ts.register(t, fmt.Sprintf("load%d@example.com", i), "password1")
		}

		// Fill the pool: from here on, a connection the pool has not got
		// could only come from a dial.
		hold := make([]*sql.Conn, maxConns)
		for i := range hold {
			c, err := sqlDB.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			hold[i] = c
		}
		for _, c := range hold {
			c.Close()
		}
		before := sqlDB.Stats()
		pidsBefore := backendPIDs(t, ts)

		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
		defer client.CloseIdleConnections()
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				s := sessions[w]
				for r := range rounds {
					// A third refreshes: me reads the user cache, so the
					// refreshes are what keeps the pool busy.
					if r%3 == 2 {
						var out struct {
							Refresh struct{ AccessToken, RefreshToken string }
						}
						if err := postLoad(client, ts.URL, "", `mutation($t: String!) { refresh(refreshToken: $t) { accessToken refreshToken } }`, map[string]any{"t": s.Refresh}, &out); err != nil {
							t.Errorf("worker %d round %d: refresh: %v", w, r, err)
							return
						}
						s.Access, s.Refresh = out.Refresh.AccessToken, out.Refresh.RefreshToken
						continue
					}
					var out struct{ Me struct{ ID string } }
					if err := postLoad(client, ts.URL, s.Access, `{ me { id } }`, nil, &out); err != nil || out.Me.ID != s.UserID {
						t.Errorf("worker %d round %d: me = %q, %v; want %q", w, r, out.Me.ID, err, s.UserID)
						return
					}
				}
			})
		}
		wg.Wait()

		after := sqlDB.Stats()
		t.Logf("%d requests: %d waits for a connection; pool before %+v, after %+v", workers*rounds, after.WaitCount-before.WaitCount, before, after)
		if after.MaxOpenConnections != maxConns || after.OpenConnections != maxConns {
			t.Errorf("pool after the load: %d open of at most %d, want all %d kept", after.OpenConnections, after.MaxOpenConnections, maxConns)
		}
		if after.MaxIdleClosed != before.MaxIdleClosed || after.MaxLifetimeClosed != before.MaxLifetimeClosed || after.MaxIdleTimeClosed != before.MaxIdleTimeClosed {
			t.Errorf("the pool closed connections under load (idle surplus %d, lifetime %d, idle time %d): each is dialed again",
				after.MaxIdleClosed-before.MaxIdleClosed, after.MaxLifetimeClosed-before.MaxLifetimeClosed, after.MaxIdleTimeClosed-before.MaxIdleTimeClosed)
		}
		if pidsBefore != nil {
			pidsAfter := backendPIDs(t, ts)
			for pid := range pidsAfter {
				if !pidsBefore[pid] {
					t.Errorf("backend %d connected during the load: a new connection was dialed (before %v, after %v)", pid, pidsBefore, pidsAfter)
				}
			}
		}
	})
}

// backendPIDs returns the process ids of the PostgreSQL backends of the
// server's pool, one per connection, or nil on SQLite. The replicas'
// listening connection is not the pool's, and comes and goes on its own.
func backendPIDs(tb testing.TB, ts *testServer) map[int]bool {
	tb.Helper()
	if ts.DB.Dialector.Name() != "postgres" {
		return nil
	}
	var pids []int
	if err := ts.DB.Raw("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name <> 'authql-listener'").Scan(&pids).Error; err != nil {
		tb.Fatal(err)
	}
	m := make(map[int]bool, len(pids))
	for _, p := range pids {
		m[p] = true
	}
	return m
}
