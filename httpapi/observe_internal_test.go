package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/authql/authql/graph"
)

// BenchmarkObserve measures what observe adds to a request, in process:
// the request id, the log line (JSON, to io.Discard) and the metrics of a
// GraphQL request, around a handler that only fills the RequestInfo as the
// GraphQL handler would.
func BenchmarkObserve(b *testing.B) {
	body := []byte(`{"data":{"me":{"id":"1","email":"user@example.com"}}}`)
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info := graph.RequestInfoFrom(r.Context()); info != nil {
			info.Operation, info.Outcome, info.UserID = "me", "ok", "7f7f7f7f-0000-4000-8000-000000000000"
		}
		w.Write(body)
	})
	req := httptest.NewRequest(http.MethodPost, "/query", nil)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"Bare", inner},
		{"Observed", observe(NewLogger(io.Discard, "json", slog.LevelInfo), NewMetrics(), inner)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	for id, keep := range map[string]bool{
		"abc-123":                  true,
		"A.b_C-9":                  true,
		strings.Repeat("a", 128):   true,
		strings.Repeat("a", 129):   false,
		"":                         false,
		"has space":                false,
		"new\nline":                false,
		`quote"`:                   false,
		"ünïcode":                  false,
		"Bearer eyJhbGciOiJIUzI1N": false,
	} {
		h := http.Header{}
		h.Set("X-Request-ID", id)
		got := requestID(h)
		if (got == id) != keep {
			t.Errorf("requestID(%q) = %q, keep = %v", id, got, keep)
		}
		if got == "" {
			t.Errorf("requestID(%q) is empty", id)
		}
	}
	if a, b := requestID(http.Header{}), requestID(http.Header{}); a == b {
		t.Errorf("two new request ids are both %q", a)
	}
}
