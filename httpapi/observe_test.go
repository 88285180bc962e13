package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/graph"
	"github.com/authql/authql/httpapi"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

func TestNewLogger(t *testing.T) {
	t.Parallel()
	ctx := graph.WithRequestInfo(context.Background(), &graph.RequestInfo{ID: "req-1"})
	for _, tc := range []struct {
		name, format string
		level        slog.Level
		want         string // "" when nothing is logged
	}{
		{"NotATerminalIsJSON", "", slog.LevelInfo, `{"time":`},
		{"JSON", "json", slog.LevelInfo, `{"time":`},
		{"Text", "text", slog.LevelInfo, `time=`},
		{"Level", "json", slog.LevelWarn, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			httpapi.NewLogger(&buf, tc.format, tc.level).InfoContext(ctx, "hello")
			got := buf.String()
			if tc.want == "" {
				if got != "" {
					t.Errorf("logged %q below the level", got)
				}
				return
			}
			if !strings.HasPrefix(got, tc.want) || !strings.Contains(got, "req-1") {
				t.Errorf("logged %q, want it to start with %q and hold the request id", got, tc.want)
			}
		})
	}
}

// TestInternalErrorLogCarriesRequestID breaks the database under a server
// whose log is captured: the internal error's line (with its cause) and the
// request's line carry the same request id, so one leads to the other.
func TestInternalErrorLogCarriesRequestID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _, err := models.Open(testdb.SQLite(t), models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := models.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	var logs authtest.SyncBuffer
	log := httpapi.NewLogger(&logs, "json", slog.LevelInfo)
	svc, err := auth.NewService(ctx, db, authtest.TestKey, auth.Config{
		Issuer: "authql", Audience: "authql", AccessTTL: time.Minute, RefreshTTL: time.Hour,
		Signup: true, Argon2: authtest.CheapArgon2, UserCacheSize: 1,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	hs := httptest.NewServer(httpapi.New(httpapi.DefaultConfig(), svc, log, httpapi.NewMetrics(), httpapi.NewReadiness(sqlDB, svc, log)))
	defer hs.Close()

	r := authtest.PostGraphQL(t, hs.URL, nil, authtest.RegisterDoc, map[string]any{"e": "user@example.com", "p": "password1"}).OK(t)
	// A second user pushes the first out of the one-user cache, so that
	// me must read the database.
	authtest.PostGraphQL(t, hs.URL, nil, authtest.RegisterDoc, map[string]any{"e": "other@example.com", "p": "password1"}).OK(t)
	sqlDB.Close()
	r = authtest.PostGraphQL(t, hs.URL, map[string]string{"Authorization": authtest.Bearer(r.Str("register", "accessToken")), "X-Request-ID": "broken-1"},
		`{ me { id } }`, nil)
	if code := r.Code(t); code != models.Internal {
		t.Fatalf("code %s, want INTERNAL_SERVER_ERROR", code)
	}

	var internal, request map[string]any
	for _, l := range authtest.LogLines(t, logs.String()) {
		switch l["msg"] {
		case "internal error":
			internal = l
		case "request":
			if l["request_id"] == "broken-1" {
				request = l
			}
		}
	}
	if internal == nil || internal["request_id"] != "broken-1" || internal["err"] == nil {
		t.Errorf("internal error line %v, want request_id broken-1 and the cause", internal)
	}
	if request == nil || request["level"] != "ERROR" || request["outcome"] != models.Internal {
		t.Errorf("request line %v, want level ERROR, outcome INTERNAL_SERVER_ERROR", request)
	}
}

// TestLogBuffer: buffered lines reach the output by the periodic flush,
// while the server runs, and all of them once it stops.
func TestLogBuffer(t *testing.T) {
	t.Parallel()
	var out authtest.SyncBuffer
	b := httpapi.NewLogBuffer(&out)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	fmt.Fprintln(b, "first")
	for !strings.Contains(out.String(), "first\n") {
		time.Sleep(10 * time.Millisecond) // the periodic flush; no timing asserted
	}
	fmt.Fprintln(b, "last")
	cancel()
	<-done
	if got := out.String(); got != "first\nlast\n" {
		t.Errorf("written %q, want both lines once", got)
	}
}
