package httpapi_test

import (
	"database/sql"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/authql/authql/httpapi"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
)

func TestReadyz(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		if code, body := authtest.Probe(t, ts.URL, "/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Errorf("GET /healthz = %d %q", code, body)
		}
		if code, body := authtest.Probe(t, ts.URL, "/readyz"); code != http.StatusOK || body != "ok\n" {
			t.Errorf("GET /readyz = %d %q, want 200 ok", code, body)
		}

		t.Run("ShuttingDown", func(t *testing.T) {
			sqlDB, _ := ts.DB.DB()
			rd := httpapi.NewReadiness(sqlDB, ts.Svc, slog.New(slog.DiscardHandler))
			rd.Drain()
			w := httptest.NewRecorder()
			rd.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if w.Code != http.StatusServiceUnavailable || w.Body.String() != "shutting down\n" {
				t.Errorf("draining: %d %q, want 503 shutting down", w.Code, w.Body)
			}
		})
	})
}

func TestReadyzDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil)
	// A PostgreSQL server that is not there, with credentials in the DSN:
	// the reason given must name neither.
	db, err := sql.Open("pgx", "postgres://authql:s3cret-pw@127.0.0.1:1/authql?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var logged authtest.SyncBuffer
	rd := httpapi.NewReadiness(db, ts.Svc, slog.New(slog.NewJSONHandler(&logged, nil)))
	w := httptest.NewRecorder()
	rd.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if w.Code != http.StatusServiceUnavailable || w.Body.String() != "database unreachable\n" {
		t.Errorf("GET /readyz = %d %q, want 503 database unreachable", w.Code, w.Body)
	}
	if !strings.Contains(logged.String(), "127.0.0.1") {
		t.Errorf("the driver's error is not logged: %s", logged.String())
	}
}
